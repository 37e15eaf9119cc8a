#include "rules/rules.h"

#include "common/enums.h"
#include "rules/conversion.h"
#include "rules/insights.h"
#include "rules/logistics.h"
#include "rules/response_rate.h"
#include "rules/routing.h"

bool kefu_rules_three_party(const kefu_buyer_t *buyer) {
  return buyer && buyer->has_session && buyer->session.three_party;
}

int64_t kefu_rules_local_minute(const kefu_shop_t *shop, int64_t ts) {
  const int64_t minute = 60000, day = 24 * 60 * minute;
  int64_t t = ts + (int64_t)shop->config.utc_offset_minutes * minute;
  return ((t % day + day) % day) / minute;
}

void kefu_rules_apply(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_event_t *ev,
                      kefu_emitter_t *out) {
  switch (ev->source) {
  case KEFU_SRC_CONFIG: /* ROUTE-11: a config change may free a slot */
    kefu_rules_shop_config(shop, ev);
    kefu_rules_queue_release(env, shop, ev->ts, out);
    break;
  case KEFU_SRC_AGENT: /* ROUTE-11: so may any agent event */
    kefu_rules_agent_event(shop, ev);
    kefu_rules_queue_release(env, shop, ev->ts, out);
    break;
  case KEFU_SRC_ORDER:
    kefu_rules_order_event(shop, ev);
    if (ev->type == KEFU_ORDER_PAID) /* INSIGHT-3 */
      kefu_conversion_paid(shop, ev->buyer_id, ev->ts);
    break;
  case KEFU_SRC_CHAT: {
    if (ev->type == KEFU_CHAT_DELIVERABILITY_QUERY)
      kefu_rules_deliverability_query(env, shop, ev, out);
    kefu_rules_chat_routing(env, shop, ev, out);
    kefu_rules_response_rate(env, shop, ev, out);
    const kefu_buyer_t *buyer = ev->buyer_id ? kefu_shop_buyer(shop, ev->buyer_id) : NULL;
    kefu_rules_insight(env, shop, ev, kefu_rules_three_party(buyer), out);
    kefu_rules_logistics(env, shop, ev, out);
    break;
  }
  }
}

/* By kind: routing's timers, the response rate's, logistics', conversion's. */
void kefu_rules_fire(const kefu_rules_env_t *env, kefu_shop_t *shop, const char *buyer_id,
                     const kefu_timer_t *t, kefu_emitter_t *out) {
  if (kefu_rules_routing_timer(env, shop, buyer_id, t, out) ||
      kefu_rules_rate_timer(env, shop, buyer_id, t, out) ||
      kefu_rules_logistics_timer(shop, buyer_id, t, out))
    return;
  kefu_conversion_timer(shop, buyer_id, t);
}
