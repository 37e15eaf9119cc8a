/* Each agent's measured conversion, INSIGHT-3: of the distinct (agent, buyer) pairs
 * routed to the agent in the last 30 local days whose 24 h window has ended or whose
 * buyer paid, the share whose buyer had a PAID order event in the shop within 24 h
 * (inclusive) after the pair's first decision. ROUTE-7 uses it once an agent has 20
 * such outcomes.
 *
 * A pair is open on the buyer (`conversion`: agent -> first decision ts) until the buyer
 * pays within the window (converted) or the window's timer fires (not converted); its
 * outcome then joins the agent's `outcomes` [[first ts, 0/1], ...], kept 30 days. */
#include <string.h>

#include "rules/conversion.h"

#define DAY_MS INT64_C(86400000)
#define WINDOW_MS DAY_MS
#define KEPT_MS (30 * DAY_MS)
#define MIN_OUTCOMES 20
#define TIMER_WINDOW "conversion_window"

static void add_outcome(kefu_shop_t *shop, const char *agent_id, int64_t first, bool converted,
                        int64_t now) {
  json_t *a = kefu_shop_get(shop, KEFU_ENT_AGENT, agent_id);
  if (!a)
    return;
  json_t *old = json_object_get(a, "outcomes"), *kept = json_array(), *o;
  size_t i;
  json_array_foreach(old, i, o) if (now - json_integer_value(json_array_get(o, 0)) <= KEPT_MS)
      json_array_append(kept, o);
  json_array_append_new(kept, json_pack("[I, i]", (json_int_t)first, converted ? 1 : 0));
  json_object_set_new(a, "outcomes", kept);
  kefu_shop_touch(shop, KEFU_ENT_AGENT, agent_id);
}

void kefu_conversion_routed(kefu_shop_t *shop, const char *buyer_id, json_t *buyer,
                            const char *agent_id, int64_t ts, kefu_emitter_t *out) {
  json_t *pairs = json_object_get(buyer, "conversion");
  if (!json_is_object(pairs)) {
    pairs = json_object();
    json_object_set_new(buyer, "conversion", pairs);
  }
  if (json_object_get(pairs, agent_id))
    return; /* the pair's first decision counts */
  json_object_set_new(pairs, agent_id, json_integer(ts));
  kefu_schedule(out, shop, ts + WINDOW_MS, TIMER_WINDOW, buyer_id,
                json_pack("{s:s, s:I}", "agent_id", agent_id, "first", (json_int_t)ts));
}

void kefu_conversion_paid(kefu_shop_t *shop, const char *buyer_id, int64_t ts) {
  json_t *buyer = kefu_shop_get(shop, KEFU_ENT_BUYER, buyer_id);
  json_t *pairs = json_object_get(buyer, "conversion"), *first;
  const char *agent_id;
  void *tmp;
  json_object_foreach_safe(pairs, tmp, agent_id, first) {
    int64_t f = json_integer_value(first);
    if (ts < f || ts - f > WINDOW_MS)
      continue;
    add_outcome(shop, agent_id, f, true, ts);
    json_object_del(pairs, agent_id);
    kefu_shop_touch(shop, KEFU_ENT_BUYER, buyer_id);
  }
}

bool kefu_conversion_timer(kefu_shop_t *shop, const kefu_timer_t *t) {
  if (strcmp(t->kind, TIMER_WINDOW) != 0)
    return false;
  json_t *buyer = kefu_shop_get(shop, KEFU_ENT_BUYER, t->buyer_id);
  json_t *pairs = json_object_get(buyer, "conversion");
  const char *agent_id = kefu_json_str(t->payload, "agent_id");
  int64_t first = kefu_json_int(t->payload, "first", -1);
  if (agent_id && kefu_json_int(pairs, agent_id, -2) == first) {
    add_outcome(shop, agent_id, first, false, t->deadline);
    json_object_del(pairs, agent_id);
    kefu_shop_touch(shop, KEFU_ENT_BUYER, t->buyer_id);
  }
  return true;
}

bool kefu_conversion_measured(const json_t *agent, int64_t now, double *rate) {
  json_t *o;
  size_t i;
  int n = 0, converted = 0;
  json_array_foreach(json_object_get(agent, "outcomes"), i, o) {
    if (now - json_integer_value(json_array_get(o, 0)) > KEPT_MS)
      continue;
    n++;
    converted += (int)json_integer_value(json_array_get(o, 1));
  }
  if (n < MIN_OUTCOMES)
    return false;
  *rate = (double)converted / (double)n;
  return true;
}
