/* Routing, seed 001 (分流): ROUTE-1..11, and transfer to human, seed 003 (转人工): XFER-1..3.
 *
 * A routing decision runs five steps in order; the first that decides wins:
 *   1 no agent ONLINE             -> LEAVE_MESSAGE              (NO_AGENT_ONLINE)
 *   2 recent contacts (72 h)      -> that agent / a same-group agent (RECENT_CONTACT_*)
 *   3 exclusive agent, direct on  -> that agent                 (EXCLUSIVE_AGENT)
 *   4 shop bot priority           -> BOT                        (SHOP_BOT_PRIORITY)
 *   5 group matching              -> BOT or a human by strategy (GROUP_BOT / GROUP_*)
 * and, when step 5 finds no eligible human, ROUTE-8's queue / fallback / leave-message.
 * A transfer click (XFER-2) and a queue release (ROUTE-11) skip the bot steps.
 *
 * The human is drawn reproducibly (ROUTE-7): eligible agents sorted by id, weights
 * summed in that order as doubles, u = (murmur2("cause|buyer|n") & 0x7fffffff) / 2^31.
 * The pool is read from the shop's ONLINE index, already in id order, so a draw costs
 * O(ONLINE agents) whatever the shop's staff (docs/DECISIONS.md 47).
 *
 * Every decision carries `explain`, a trace an analyst can read (docs/ROUTING.md gives
 * its grammar): steps passed over and why, the groups left after each matching
 * dimension, the pool with its weights, u and the pick. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/enums.h"
#include "common/murmur2.h"
#include "rules/conversion.h"
#include "rules/routing.h"

#define HOUR_MS INT64_C(3600000)
#define CONTACT_MAX_AGE (72 * HOUR_MS)
#define CONTACT_RECENT (24 * HOUR_MS)

/* ROUTE-6's order states, indexes in kefu_order_state_names. */
#define ORDER_STATE_ENUM_(n) STATE_##n,
enum { KEFU_ORDER_STATES(ORDER_STATE_ENUM_) STATE__COUNT };

/* ------------------------------------------------------------------ small helpers */

/* A list of borrowed pointers, on the stack until it outgrows it. Never copied. */
#define VEC_INLINE 32
typedef struct vec {
  const void **v;
  uint32_t n, cap;
  const void *inl[VEC_INLINE];
} vec_t;

static void vec_init(vec_t *l) {
  l->v = l->inl;
  l->n = 0;
  l->cap = VEC_INLINE;
}

static void vec_push(vec_t *l, const void *p) {
  if (l->n == l->cap) {
    const void **v = malloc(2 * l->cap * sizeof *v);
    memcpy(v, l->v, l->n * sizeof *v);
    if (l->v != l->inl)
      free(l->v);
    l->v = v;
    l->cap *= 2;
  }
  l->v[l->n++] = p;
}

static void vec_free(vec_t *l) {
  if (l->v != l->inl)
    free(l->v);
  vec_init(l);
}

/* Whether the list of strings @p l holds @p s. */
static bool ids_have(const vec_t *l, const char *s) {
  for (uint32_t i = 0; i < l->n; i++)
    if (kefu_str_eq(l->v[i], s))
      return true;
  return false;
}

static void explain_add(kefu_route_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void explain_add(kefu_route_t *r, const char *fmt, ...) {
  va_list ap;
  size_t used = strlen(r->explain);
  if (used + 1 >= sizeof r->explain)
    return;
  if (used)
    r->explain[used++] = ';', r->explain[used] = '\0';
  va_start(ap, fmt);
  vsnprintf(r->explain + used, sizeof r->explain - used, fmt, ap);
  va_end(ap);
}

static void explain_cat(kefu_route_t *r, const char *s) {
  strncat(r->explain, s, sizeof r->explain - strlen(r->explain) - 1);
}

kefu_presence_t kefu_agent_presence(const kefu_agent_t *agent) {
  return agent ? agent->presence : KEFU_PRESENCE_OFFLINE;
}

static bool agent_online(const kefu_agent_t *a) {
  return kefu_agent_presence(a) == KEFU_PRESENCE_ONLINE;
}

static kefu_agent_t *agent_of(const kefu_shop_t *shop, const char *id) {
  return id ? kefu_shop_agent(shop, id) : NULL;
}

/* The agent whose slot the buyer's own session holds, or NULL. */
static const kefu_agent_t *own_agent(const kefu_route_ctx_t *c) {
  const kefu_session_t *s = c->session;
  return s && s->target == KEFU_TARGET_AGENT ? agent_of(c->shop, s->agent_id) : NULL;
}

/* Free slots of @p agent, not counting the buyer's own session with it (@p own, ROUTE-7). */
static int64_t free_slots(const kefu_agent_t *agent, const kefu_agent_t *own) {
  return (int64_t)agent->capacity - agent->load + (agent == own);
}

static bool agent_in_groups(const kefu_agent_t *agent, const vec_t *group_ids) {
  for (uint32_t i = 0; i < agent->groups.n; i++)
    if (ids_have(group_ids, agent->groups.v[i]))
      return true;
  return false;
}

/* ------------------------------------------------------------------ the draw (ROUTE-7) */

typedef struct candidate {
  const char *agent_id;
  double weight;
} candidate_t;

/* INSIGHT-3's measured rate once it has 20 outcomes, else PROFILE's, else 0.1. */
static double conversion_of(const kefu_agent_t *agent, int64_t now) {
  double v;
  if (!kefu_conversion_measured(agent, now, &v))
    v = agent->has_conversion_rate ? agent->conversion_rate : 0.1;
  return v < 0.01 ? 0.01 : v;
}

static double weight_of(const kefu_agent_t *agent, int64_t free, bool conversion, int64_t now) {
  double level = (double)agent->level;
  return conversion ? level * conversion_of(agent, now) : level * (double)free;
}

#define POOL_INLINE 64
typedef struct pool {
  candidate_t *v;
  size_t n, cap;
  candidate_t inl[POOL_INLINE];
} pool_t;

/* Group ids as bits of the shop config's groups (bit i: config group i), so that a pool
 * asks each agent one AND instead of comparing strings; ids outside the config's first
 * 64 groups are compared as strings. */
#define GROUP_BITS 64

static uint64_t config_bits(const kefu_shop_config_t *cfg, const char *id, bool *other) {
  uint64_t bits = 0;
  for (uint32_t i = 0; i < cfg->ngroups && i < GROUP_BITS; i++)
    if (kefu_str_eq(cfg->groups[i].group_id, id))
      bits |= UINT64_C(1) << i;
  if (!bits && id)
    *other = true;
  return bits;
}

/* The agent's cached bits (kefu_agent_t.group_bits), computed when the agent's groups or
 * the shop's config changed since. */
static void agent_bits(const kefu_shop_t *shop, kefu_agent_t *a) {
  if (a->group_gen == shop->config_gen)
    return;
  a->group_bits = 0;
  a->group_other = false;
  for (uint32_t k = 0; k < a->groups.n; k++)
    a->group_bits |= config_bits(&shop->config, a->groups.v[k], &a->group_other);
  a->group_gen = shop->config_gen;
}

/* Eligible agents (ONLINE, a free slot) in @p group_ids (NULL: any group), sorted by id:
 * one pass over the shop's ONLINE index, which is in that order already. An agent is
 * in the groups when a config group names both, or, for groups outside the config, by
 * comparing the names. */
static void pool_of(const kefu_route_ctx_t *c, const vec_t *group_ids, bool conversion, pool_t *p) {
  const kefu_online_t *online = &c->shop->online;
  uint64_t want = 0;
  bool want_other = false;
  const kefu_agent_t *own = own_agent(c);
  for (uint32_t k = 0; group_ids && k < group_ids->n; k++)
    want |= config_bits(&c->shop->config, group_ids->v[k], &want_other);
  p->v = p->inl;
  p->n = 0;
  p->cap = POOL_INLINE;
  for (uint32_t i = 0; i < online->n; i++) {
    kefu_agent_t *a = online->v[i];
    if (group_ids) {
      agent_bits(c->shop, a);
      if (!(a->group_bits & want) &&
          !(a->group_other && want_other && agent_in_groups(a, group_ids)))
        continue;
    }
    int64_t slots = free_slots(a, own);
    if (slots <= 0)
      continue;
    if (p->n == p->cap) {
      candidate_t *nv = malloc(2 * p->cap * sizeof *nv);
      memcpy(nv, p->v, p->n * sizeof *nv);
      if (p->v != p->inl)
        free(p->v);
      p->v = nv;
      p->cap *= 2;
    }
    p->v[p->n++] = (candidate_t){a->id, weight_of(a, slots, conversion, c->ts)};
  }
}

static void pool_free(pool_t *p) {
  if (p->v != p->inl)
    free(p->v);
}

#define ENTRY_MAX 63

/* One pool entry of the trace, `[,]id:weight`, the weight as "%.17g" prints it; an
 * integral weight (every EFFICIENCY weight) is written without printf. Returns its
 * length; @p out has room for any id and weight. */
static size_t pool_entry(char out[128], bool first, const char *agent_id, double weight) {
  size_t n = 0, id_len = strlen(agent_id);
  if (!first)
    out[n++] = ',';
  memcpy(out + n, agent_id, id_len);
  n += id_len;
  out[n++] = ':';
  if (weight >= 0 && weight < 1e15 && weight == floor(weight)) {
    char digits[24];
    size_t k = 0;
    uint64_t v = (uint64_t)weight;
    do
      digits[k++] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    while (k > 0)
      out[n++] = digits[--k];
    out[n] = '\0';
    return n;
  }
  int k = snprintf(out + n, 128 - n, "%.17g", weight);
  return n + (k > 0 ? (size_t)k : 0);
}

/* Picks from @p pool (sorted by id) the first agent whose cumulative weight exceeds
 * u x total, u from the cause's next draw. */
static const char *draw(kefu_route_ctx_t *c, kefu_route_t *r, const candidate_t *pool, size_t n) {
  char seed[256];
  double total = 0, acc = 0;
  int len = snprintf(seed, sizeof seed, "%s|%s|%d", c->out->cause_event_id, c->buyer->id,
                     c->out->draws++);
  uint32_t h = (uint32_t)kefu_murmur2(seed, (size_t)len) & 0x7fffffffu;
  double u = (double)h / 2147483648.0;
  char entry[128];
  for (size_t i = 0; i < n; i++)
    total += pool[i].weight;
  explain_add(r, "pool[");
  /* The trace is cut at its size: entries past it would not show, so they are not
   * formatted (a big shop's pool is longer than the trace). */
  size_t used = strlen(r->explain), room = sizeof r->explain - 1;
  for (size_t i = 0; i < n && used < room; i++) {
    size_t len = pool_entry(entry, i == 0, pool[i].agent_id, pool[i].weight);
    if (len > ENTRY_MAX) /* an entry is cut at 63 bytes, as it always was */
      len = ENTRY_MAX;
    if (len > room - used)
      len = room - used;
    memcpy(r->explain + used, entry, len);
    r->explain[used += len] = '\0';
  }
  explain_cat(r, "]");
  for (size_t i = 0; i < n; i++) {
    acc += pool[i].weight;
    if (acc > u * total || i == n - 1) {
      explain_add(r, "u=%.6f>pick=%s", u, pool[i].agent_id);
      return pool[i].agent_id;
    }
  }
  return NULL;
}

static bool choose_human(kefu_route_ctx_t *c, kefu_route_t *r, const vec_t *group_ids,
                         bool conversion) {
  pool_t pool;
  pool_of(c, group_ids, conversion, &pool);
  size_t n = pool.n;
  if (n > 0) {
    snprintf(r->agent_id, sizeof r->agent_id, "%s", draw(c, r, pool.v, n));
    r->target = KEFU_TARGET_AGENT;
    r->candidates = (int)n;
  }
  pool_free(&pool);
  return n > 0;
}

/* ------------------------------------------------------------------ the steps */

bool kefu_shop_any_agent_online(const kefu_shop_t *shop) {
  return shop->online.n > 0;
}

static void decide_agent(kefu_route_t *r, const char *agent_id, const char *step) {
  r->target = KEFU_TARGET_AGENT;
  snprintf(r->agent_id, sizeof r->agent_id, "%s", agent_id);
  r->step = step;
  r->candidates = 1;
}

/* ROUTE-3: a contact counts while at most 72 h old. */
static bool contact_live(const kefu_route_ctx_t *c, const kefu_contact_t *ct) {
  return c->ts - ct->ts <= CONTACT_MAX_AGE;
}

/* ROUTE-3 c: an ONLINE agent with a free slot from the groups of the suspended live
 * contacts' agents, by the strategy of the first such group in config order. */
static bool same_group(kefu_route_ctx_t *c, kefu_route_t *r) {
  const kefu_shop_config_t *cfg = &c->shop->config;
  vec_t groups;
  vec_init(&groups);
  for (uint32_t i = 0; i < c->buyer->ncontacts; i++) {
    const kefu_contact_t *ct = &c->buyer->contacts[i];
    if (!contact_live(c, ct))
      continue;
    const kefu_agent_t *a = agent_of(c->shop, ct->agent_id);
    if (!a || a->presence != KEFU_PRESENCE_SUSPENDED)
      continue;
    for (uint32_t k = 0; k < a->groups.n; k++)
      if (!ids_have(&groups, a->groups.v[k]))
        vec_push(&groups, a->groups.v[k]);
  }
  bool decided = false;
  if (groups.n > 0) {
    bool conversion = false;
    const char *group_id = groups.v[0];
    for (uint32_t i = 0; i < cfg->ngroups; i++) {
      if (ids_have(&groups, cfg->groups[i].group_id)) {
        group_id = cfg->groups[i].group_id;
        conversion = cfg->groups[i].strategy == 1; /* CONVERSION */
        break;
      }
    }
    explain_add(r, "s2c:groups(%zu)", (size_t)groups.n);
    if (choose_human(c, r, &groups, conversion)) {
      r->step = "RECENT_CONTACT_SAME_GROUP";
      snprintf(r->group_id, sizeof r->group_id, "%s", group_id);
      decided = true;
    }
  }
  vec_free(&groups);
  return decided;
}

/* ROUTE-3: contacts newest first, at most 72 h old. */
static bool recent_contact(kefu_route_ctx_t *c, kefu_route_t *r) {
  const kefu_contact_t *first = NULL;
  size_t live = 0;
  for (uint32_t i = 0; i < c->buyer->ncontacts; i++)
    if (contact_live(c, &c->buyer->contacts[i]) && live++ == 0)
      first = &c->buyer->contacts[i];
  if (live == 0) {
    explain_add(r, "s2:none");
    return false;
  }
  kefu_presence_t presence = kefu_agent_presence(agent_of(c->shop, first->agent_id));
  if (c->ts - first->ts <= CONTACT_RECENT &&
      (presence == KEFU_PRESENCE_ONLINE || presence == KEFU_PRESENCE_SUSPENDED)) {
    decide_agent(r, first->agent_id, "RECENT_CONTACT_24H");
    return true;
  }
  for (uint32_t i = 0; i < c->buyer->ncontacts; i++) {
    const kefu_contact_t *ct = &c->buyer->contacts[i];
    if (contact_live(c, ct) && agent_online(agent_of(c->shop, ct->agent_id))) {
      decide_agent(r, ct->agent_id, "RECENT_CONTACT_72H");
      return true;
    }
  }
  if (same_group(c, r))
    return true;
  explain_add(r, "s2:passed(%zu)", live);
  return false;
}

static bool exclusive_agent(kefu_route_ctx_t *c, kefu_route_t *r) {
  const char *id = c->buyer->exclusive_agent;
  bool direct = c->shop->config.exclusive_direct;
  if (id && direct && agent_online(agent_of(c->shop, id))) {
    decide_agent(r, id, "EXCLUSIVE_AGENT");
    return true;
  }
  explain_add(r, "s3:%s", !id ? "none" : !direct ? "direct-off" : "not-online");
  return false;
}

/* The buyer's order state (ROUTE-6): of the routing order if it is this buyer's, else
 * of the most recently updated order. */
int kefu_buyer_order_state(const kefu_shop_t *shop, const kefu_buyer_t *buyer) {
  const char *order_id = buyer->attrs.order_id;
  const kefu_order_t *o = order_id ? kefu_shop_order(shop, order_id) : NULL;
  if (!o || !kefu_str_eq(o->buyer_id, buyer->id))
    o = buyer->last_order ? kefu_shop_order(shop, buyer->last_order) : NULL;
  if (!o)
    return STATE_NO_ACTIVE_ORDER;
  if (o->after_sale != KEFU_AFTER_SALE_NONE)
    return STATE_AFTER_SALE;
  switch (o->status) {
  case KEFU_ORDER_CREATED: return STATE_UNPAID;
  case KEFU_ORDER_PAID: return STATE_PAID_NOT_SHIPPED;
  case KEFU_ORDER_SHIPPED:
  case KEFU_ORDER_PARTIALLY_SHIPPED:
  case KEFU_ORDER_SIGNED: return STATE_SHIPPED;
  case KEFU_ORDER_COMPLETED: return STATE_COMPLETED;
  default: return STATE_NO_ACTIVE_ORDER;
  }
}

/* ROUTE-6's matching dimensions, in order: crowd > product > intent > order state. */
typedef enum dimension { DIM_CROWD, DIM_ITEM, DIM_INTENT, DIM_STATE } dimension_t;

/* Whether group @p g binds one of the buyer's values of dimension @p d. */
static bool group_binds(const kefu_group_t *g, dimension_t d, const kefu_attrs_t *attrs,
                        int state) {
  switch (d) {
  case DIM_CROWD:
    for (uint32_t k = 0; k < attrs->crowd_tags.n; k++)
      if (kefu_strv_has(&g->crowd_tags, attrs->crowd_tags.v[k]))
        return true;
    return false;
  case DIM_ITEM: return attrs->item_id && kefu_strv_has(&g->item_ids, attrs->item_id);
  case DIM_INTENT: return attrs->intent && kefu_strv_has(&g->intents, attrs->intent);
  case DIM_STATE: return (g->order_states >> state) & 1u;
  }
  return false;
}

static const char *group_name(const kefu_group_t *g) {
  return g->group_id ? g->group_id : "(null)";
}

/* Keeps the groups of @p set that bind one of the buyer's values of @p d, if any does. */
static void match_dimension(vec_t *set, dimension_t d, const kefu_attrs_t *attrs, int state,
                            const char *label, kefu_route_t *r) {
  uint32_t kept = 0;
  for (uint32_t i = 0; i < set->n; i++)
    kept += group_binds(set->v[i], d, attrs, state);
  if (kept == 0) {
    explain_add(r, "%s=", label);
    return;
  }
  char buf[64];
  explain_add(r, "%s[", label);
  kept = 0;
  for (uint32_t i = 0; i < set->n; i++) {
    if (!group_binds(set->v[i], d, attrs, state))
      continue;
    snprintf(buf, sizeof buf, "%s%s", kept ? "," : "", group_name(set->v[i]));
    explain_cat(r, buf);
    set->v[kept++] = set->v[i];
  }
  set->n = kept;
  explain_cat(r, "]");
}

/* ROUTE-6 dimension by dimension, from the config's groups in order. */
static void matched_groups(kefu_route_ctx_t *c, kefu_route_t *r, vec_t *set) {
  const kefu_shop_config_t *cfg = &c->shop->config;
  const kefu_attrs_t *attrs = &c->buyer->attrs;
  int state = kefu_buyer_order_state(c->shop, c->buyer);
  for (uint32_t i = 0; i < cfg->ngroups; i++)
    vec_push(set, &cfg->groups[i]);
  match_dimension(set, DIM_CROWD, attrs, state, "crowd", r);
  match_dimension(set, DIM_ITEM, attrs, state, "item", r);
  match_dimension(set, DIM_INTENT, attrs, state, "intent", r);
  match_dimension(set, DIM_STATE, attrs, state, "state", r);
}

/* ROUTE-6 and ROUTE-7; false when no eligible human (ROUTE-8 follows). */
static bool group_step(kefu_route_ctx_t *c, kefu_route_t *r, bool skip_bot) {
  vec_t set, human;
  vec_init(&set);
  vec_init(&human);
  matched_groups(c, r, &set);
  bool decided = false;
  if (c->shop->config.ngroups == 0) {
    explain_add(r, "s5:no-groups");
    decided = choose_human(c, r, NULL, false);
    if (decided)
      r->step = "GROUP_EFFICIENCY";
    goto done;
  }
  if (skip_bot) { /* XFER-2: bot groups leave the set */
    uint32_t kept = 0;
    for (uint32_t i = 0; i < set.n; i++)
      if (!((const kefu_group_t *)set.v[i])->bot_enabled)
        set.v[kept++] = set.v[i];
    set.n = kept;
    if (set.n == 0) {
      explain_add(r, "s5:only-bot-groups");
      goto done;
    }
  }
  const kefu_group_t *first = set.v[0];
  snprintf(r->group_id, sizeof r->group_id, "%s", group_name(first));
  if (first->bot_enabled) {
    r->target = KEFU_TARGET_BOT;
    r->step = "GROUP_BOT";
    decided = true;
    goto done;
  }
  for (uint32_t i = 0; i < set.n; i++) {
    const kefu_group_t *g = set.v[i];
    if (!g->bot_enabled)
      vec_push(&human, g->group_id);
  }
  bool conversion = first->strategy == 1; /* CONVERSION */
  decided = choose_human(c, r, &human, conversion);
  if (decided)
    r->step = conversion ? "GROUP_CONVERSION" : "GROUP_EFFICIENCY";
  else
    r->group_id[0] = '\0';
done:
  vec_free(&set);
  vec_free(&human);
  return decided;
}

/* ROUTE-8 */
static void no_eligible_human(kefu_route_ctx_t *c, kefu_route_t *r) {
  if (c->shop->config.queue_enabled) {
    r->target = KEFU_TARGET_QUEUE;
    r->step = "QUEUED";
    r->candidates = 0;
    return;
  }
  explain_add(r, "s8:fallback");
  if (choose_human(c, r, NULL, false)) {
    r->step = "FALLBACK_ANY_AGENT";
    return;
  }
  r->target = KEFU_TARGET_LEAVE_MESSAGE;
  r->step = "NO_CAPACITY";
  r->candidates = 0;
}

void kefu_route(kefu_route_ctx_t *c, kefu_route_t *r) {
  memset(r, 0, sizeof *r);
  if (!kefu_shop_any_agent_online(c->shop)) {
    r->target = KEFU_TARGET_LEAVE_MESSAGE;
    r->step = "NO_AGENT_ONLINE";
    explain_add(r, "s1:no-agent-online");
    return;
  }
  if (recent_contact(c, r) || exclusive_agent(c, r))
    return;
  if (!c->skip_bot && c->shop->config.bot_priority) {
    r->target = KEFU_TARGET_BOT;
    r->step = "SHOP_BOT_PRIORITY";
    return;
  }
  explain_add(r, c->skip_bot ? "s4:skipped" : "s4:off");
  if (group_step(c, r, c->skip_bot))
    return;
  no_eligible_human(c, r);
}
