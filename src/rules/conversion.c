/* Each agent's measured conversion, INSIGHT-3: of the distinct (agent, buyer) pairs
 * routed to the agent in the last 30 local days whose 24 h window has ended or whose
 * buyer paid, the share whose buyer had a PAID order event in the shop within 24 h
 * (inclusive) after the pair's first decision. ROUTE-7 uses it once an agent has 20
 * such outcomes.
 *
 * A pair is open on the buyer (kefu_buyer_t.pairs: agent, first decision ts; in the
 * order they opened) until the buyer pays within the window (converted) or the
 * window's timer fires (not converted); its outcome then joins the agent's `outcomes`
 * (oldest first), kept 30 days. */
#include <stdlib.h>
#include <string.h>

#include "rules/conversion.h"

#define DAY_MS INT64_C(86400000)
#define WINDOW_MS DAY_MS
#define KEPT_MS (30 * DAY_MS)
#define MIN_OUTCOMES 20

static void add_outcome(kefu_shop_t *shop, const char *agent_id, int64_t first, bool converted,
                        int64_t now) {
  kefu_agent_t *a = kefu_shop_agent(shop, agent_id);
  if (!a)
    return;
  uint32_t k = 0;
  for (uint32_t i = 0; i < a->noutcomes; i++)
    if (now - a->outcomes[i].first <= KEPT_MS)
      a->outcomes[k++] = a->outcomes[i];
  a->outcomes = realloc(a->outcomes, (k + 1) * sizeof *a->outcomes);
  a->outcomes[k++] = (kefu_outcome_t){first, converted};
  a->noutcomes = k;
  kefu_agent_touch(a);
}

/* Removes the buyer's pair @p i, keeping the others' order. */
static void pair_remove(kefu_buyer_t *b, uint32_t i) {
  free(b->pairs[i].agent_id);
  memmove(&b->pairs[i], &b->pairs[i + 1], (b->npairs - i - 1) * sizeof *b->pairs);
  b->npairs--;
}

static int pair_find(const kefu_buyer_t *b, const char *agent_id) {
  for (uint32_t i = 0; i < b->npairs; i++)
    if (kefu_str_eq(b->pairs[i].agent_id, agent_id))
      return (int)i;
  return -1;
}

void kefu_conversion_routed(kefu_shop_t *shop, kefu_buyer_t *buyer, const char *agent_id,
                            int64_t ts, kefu_emitter_t *out) {
  if (pair_find(buyer, agent_id) >= 0)
    return; /* the pair's first decision counts */
  buyer->pairs = realloc(buyer->pairs, (buyer->npairs + 1) * sizeof *buyer->pairs);
  buyer->pairs[buyer->npairs++] = (kefu_pair_t){strdup(agent_id), ts};
  kefu_schedule(out, shop, buyer->id, ts + WINDOW_MS, KEFU_TIMER_CONVERSION_WINDOW, ts, 0, 0,
                agent_id);
}

void kefu_conversion_paid(kefu_shop_t *shop, const char *buyer_id, int64_t ts) {
  kefu_buyer_t *buyer = buyer_id ? kefu_shop_buyer(shop, buyer_id) : NULL;
  if (!buyer)
    return;
  /* Each converted pair's outcome goes to its own agent: the order of the pairs does
   * not change any agent's outcomes. */
  for (uint32_t i = 0; i < buyer->npairs;) {
    int64_t f = buyer->pairs[i].first;
    if (ts < f || ts - f > WINDOW_MS) {
      i++;
      continue;
    }
    add_outcome(shop, buyer->pairs[i].agent_id, f, true, ts);
    pair_remove(buyer, i);
    kefu_buyer_touch(shop, buyer);
  }
}

bool kefu_conversion_timer(kefu_shop_t *shop, const char *buyer_id, const kefu_timer_t *t) {
  if (t->kind != KEFU_TIMER_CONVERSION_WINDOW)
    return false;
  kefu_buyer_t *buyer = buyer_id ? kefu_shop_buyer(shop, buyer_id) : NULL;
  int i = buyer && t->ref ? pair_find(buyer, t->ref) : -1;
  if (i >= 0 && buyer->pairs[i].first == t->a) {
    add_outcome(shop, t->ref, t->a, false, t->deadline);
    pair_remove(buyer, (uint32_t)i);
    kefu_buyer_touch(shop, buyer);
  }
  return true;
}

bool kefu_conversion_measured(const kefu_agent_t *agent, int64_t now, double *rate) {
  int n = 0, converted = 0;
  for (uint32_t i = 0; i < agent->noutcomes; i++) {
    if (now - agent->outcomes[i].first > KEPT_MS)
      continue;
    n++;
    converted += agent->outcomes[i].converted ? 1 : 0;
  }
  if (n < MIN_OUTCOMES)
    return false;
  *rate = (double)converted / (double)n;
  return true;
}
