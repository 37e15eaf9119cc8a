#include "rules/rules.h"

#include "common/enums.h"
#include "rules/conversion.h"
#include "rules/insights.h"
#include "rules/logistics.h"
#include "rules/response_rate.h"
#include "rules/routing.h"
#include "ops/log.h"

json_t *kefu_rules_buyer(kefu_shop_t *shop, const char *buyer_id) {
  json_t *b = kefu_shop_get(shop, KEFU_ENT_BUYER, buyer_id);
  if (!b) {
    b = json_pack("{s:[], s:n, s:I, s:n}", "orders", "last_order", "last_order_ts", (json_int_t)0,
                  "exclusive_agent");
    json_object_set_new(shop->entities[KEFU_ENT_BUYER], buyer_id, b);
  }
  return b;
}

json_t *kefu_rules_session(const json_t *buyer) {
  json_t *s = json_object_get(buyer, "session");
  return json_is_object(s) ? s : NULL;
}

bool kefu_rules_buyer_three_party(const json_t *buyer) {
  return json_is_true(json_object_get(kefu_rules_session(buyer), "three_party"));
}

bool kefu_rules_three_party(kefu_shop_t *shop, const char *buyer_id) {
  return kefu_rules_buyer_three_party(kefu_shop_get(shop, KEFU_ENT_BUYER, buyer_id));
}

int64_t kefu_rules_local_minute(const kefu_shop_t *shop, int64_t ts) {
  const int64_t minute = 60000, day = 24 * 60 * minute;
  int64_t t = ts + kefu_cfg_int(shop, "utc_offset_minutes") * minute;
  return ((t % day + day) % day) / minute;
}

void kefu_rules_apply(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_event_t *ev,
                      kefu_emitter_t *out) {
  switch (ev->topic) {
  case KEFU_T_SHOP_CONFIG: /* ROUTE-11: a config change may free a slot */
    kefu_rules_shop_config(env, shop, ev);
    kefu_rules_queue_release(env, shop, ev->ts, out);
    break;
  case KEFU_T_AGENT: /* ROUTE-11: so may any agent event */
    kefu_rules_agent_event(shop, ev);
    kefu_rules_queue_release(env, shop, ev->ts, out);
    break;
  case KEFU_T_ORDER:
    kefu_rules_order_event(shop, ev);
    if (ev->type == KEFU_ORDER_PAID) /* INSIGHT-3 */
      kefu_conversion_paid(shop, ev->buyer_id, ev->ts);
    break;
  case KEFU_T_CHAT:
    if (ev->type == KEFU_CHAT_DELIVERABILITY_QUERY)
      kefu_rules_deliverability_query(env, shop, ev, out);
    kefu_rules_chat_routing(env, shop, ev, out);
    kefu_rules_response_rate(env, shop, ev, out);
    kefu_rules_insight(env, shop, ev, kefu_rules_three_party(shop, ev->buyer_id), out);
    kefu_rules_logistics(env, shop, ev, out);
    break;
  default: break;
  }
}

void kefu_rules_fire(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_timer_t *t,
                     kefu_emitter_t *out) {
  if (kefu_rules_routing_timer(env, shop, t, out) || kefu_rules_rate_timer(env, shop, t, out) ||
      kefu_rules_logistics_timer(shop, t, out) || kefu_conversion_timer(shop, t))
    return;
  /* A kind this build does not know is dropped, loudly: it can only come from a newer
   * kefu writing to the same Redis. */
  KEFU_WARN("rules", "shop %s: dropping a timer of unknown kind '%s'", shop->id, t->kind);
}
