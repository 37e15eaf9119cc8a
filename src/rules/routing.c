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
#define CONTACTS_KEPT 16

/* ------------------------------------------------------------------ small helpers */

static bool array_has(const json_t *arr, const char *s) {
  size_t i;
  json_t *v;
  json_array_foreach(arr, i, v) if (kefu_str_eq(json_string_value(v), s)) return true;
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

const char *kefu_agent_presence(const json_t *agent) {
  const char *p = kefu_json_str(agent, "presence");
  return p ? p : "OFFLINE";
}

static bool agent_online(const json_t *a) {
  return kefu_str_eq(kefu_agent_presence(a), "ONLINE");
}

/* Free slots of @p agent, not counting the buyer's own session with it (ROUTE-7). */
static int64_t free_slots(const json_t *agent, const char *agent_id, const json_t *session) {
  int64_t load = kefu_json_int(agent, "load", 0);
  if (session && kefu_str_eq(kefu_json_str(session, "target"), "AGENT") &&
      kefu_str_eq(kefu_json_str(session, "agent_id"), agent_id))
    load--;
  return kefu_json_int(agent, "capacity", 20) - load;
}

static bool agent_in_groups(const json_t *agent, const json_t *group_ids) {
  size_t i;
  json_t *g;
  json_array_foreach(json_object_get(agent, "groups"), i,
                     g) if (array_has(group_ids, json_string_value(g))) return true;
  return false;
}

/* ------------------------------------------------------------------ the draw (ROUTE-7) */

typedef struct candidate {
  const char *agent_id;
  double weight;
} candidate_t;

static int by_agent_id(const void *a, const void *b) {
  return strcmp(((const candidate_t *)a)->agent_id, ((const candidate_t *)b)->agent_id);
}

/* INSIGHT-3's measured rate once it has 20 outcomes, else PROFILE's, else 0.1. */
static double conversion_of(const json_t *agent, int64_t now) {
  double v;
  if (!kefu_conversion_measured(agent, now, &v)) {
    json_t *c = json_object_get(agent, "conversion_rate");
    v = json_is_number(c) ? json_number_value(c) : 0.1;
  }
  return v < 0.01 ? 0.01 : v;
}

static double weight_of(const json_t *agent, int64_t free, bool conversion, int64_t now) {
  double level = (double)kefu_json_int(agent, "level", 1);
  return conversion ? level * conversion_of(agent, now) : level * (double)free;
}

/* Eligible agents (ONLINE, a free slot) that @p filter keeps; NULL filter keeps all. */
static size_t pool_of(const kefu_route_ctx_t *c, const json_t *group_ids, bool conversion,
                      candidate_t **out) {
  const char *id;
  json_t *a;
  size_t n = 0;
  *out = calloc(json_object_size(c->shop->entities[KEFU_ENT_AGENT]) + 1, sizeof **out);
  json_object_foreach(c->shop->entities[KEFU_ENT_AGENT], id, a) {
    if (!json_is_object(a) || !agent_online(a))
      continue;
    int64_t free = free_slots(a, id, c->session);
    if (free <= 0 || (group_ids && !agent_in_groups(a, group_ids)))
      continue;
    (*out)[n++] = (candidate_t){id, weight_of(a, free, conversion, c->ts)};
  }
  qsort(*out, n, sizeof **out, by_agent_id);
  return n;
}

/* Picks from @p pool (sorted by id) the first agent whose cumulative weight exceeds
 * u x total, u from the cause's next draw. */
static const char *draw(kefu_route_ctx_t *c, kefu_route_t *r, candidate_t *pool, size_t n) {
  char seed[256];
  double total = 0, acc = 0;
  int len =
      snprintf(seed, sizeof seed, "%s|%s|%d", c->out->cause_event_id, c->buyer_id, c->out->draws++);
  uint32_t h = (uint32_t)kefu_murmur2(seed, (size_t)len) & 0x7fffffffu;
  double u = (double)h / 2147483648.0;
  char buf[64];
  for (size_t i = 0; i < n; i++)
    total += pool[i].weight;
  explain_add(r, "pool[");
  for (size_t i = 0; i < n; i++) {
    snprintf(buf, sizeof buf, "%s%s:%.17g", i ? "," : "", pool[i].agent_id, pool[i].weight);
    strncat(r->explain, buf, sizeof r->explain - strlen(r->explain) - 1);
  }
  strncat(r->explain, "]", sizeof r->explain - strlen(r->explain) - 1);
  for (size_t i = 0; i < n; i++) {
    acc += pool[i].weight;
    if (acc > u * total || i == n - 1) {
      explain_add(r, "u=%.6f>pick=%s", u, pool[i].agent_id);
      return pool[i].agent_id;
    }
  }
  return NULL;
}

static bool choose_human(kefu_route_ctx_t *c, kefu_route_t *r, const json_t *group_ids,
                         bool conversion) {
  candidate_t *pool;
  size_t n = pool_of(c, group_ids, conversion, &pool);
  if (n > 0) {
    snprintf(r->agent_id, sizeof r->agent_id, "%s", draw(c, r, pool, n));
    r->target = KEFU_TARGET_AGENT;
    r->candidates = (int)n;
  }
  free(pool);
  return n > 0;
}

/* ------------------------------------------------------------------ the steps */

bool kefu_shop_any_agent_online(const kefu_shop_t *shop) {
  const char *id;
  json_t *a;
  json_object_foreach(shop->entities[KEFU_ENT_AGENT], id,
                      a) if (json_is_object(a) && agent_online(a)) return true;
  return false;
}

static void decide_agent(kefu_route_t *r, const char *agent_id, const char *step) {
  r->target = KEFU_TARGET_AGENT;
  snprintf(r->agent_id, sizeof r->agent_id, "%s", agent_id);
  r->step = step;
  r->candidates = 1;
}

/* ROUTE-3 c: an ONLINE agent with a free slot from the groups of the suspended contacts'
 * agents, by the strategy of the first such group in config order. */
static bool same_group(kefu_route_ctx_t *c, kefu_route_t *r, const json_t *contacts) {
  json_t *groups = json_array(), *ct, *g;
  size_t i, k;
  json_array_foreach(contacts, i, ct) {
    json_t *a = kefu_shop_get(c->shop, KEFU_ENT_AGENT, kefu_json_str(ct, "agent_id"));
    if (!a || !kefu_str_eq(kefu_agent_presence(a), "SUSPENDED"))
      continue;
    json_array_foreach(json_object_get(a, "groups"), k,
                       g) if (!array_has(groups, json_string_value(g)))
        json_array_append(groups, g);
  }
  bool decided = false;
  if (json_array_size(groups) > 0) {
    const char *strategy = "EFFICIENCY", *group_id = json_string_value(json_array_get(groups, 0));
    json_array_foreach(kefu_cfg_get(c->shop, "groups"), i, g) {
      if (array_has(groups, kefu_json_str(g, "group_id"))) {
        group_id = kefu_json_str(g, "group_id");
        strategy = kefu_json_str(g, "strategy");
        break;
      }
    }
    explain_add(r, "s2c:groups(%zu)", json_array_size(groups));
    if (choose_human(c, r, groups, kefu_str_eq(strategy, "CONVERSION"))) {
      r->step = "RECENT_CONTACT_SAME_GROUP";
      snprintf(r->group_id, sizeof r->group_id, "%s", group_id);
      decided = true;
    }
  }
  json_decref(groups);
  return decided;
}

/* ROUTE-3: contacts newest first, at most 72 h old. */
static bool recent_contact(kefu_route_ctx_t *c, kefu_route_t *r) {
  json_t *contacts = json_object_get(c->buyer, "contacts"), *ct, *live = json_array();
  size_t i;
  bool decided = false;
  json_array_foreach(contacts, i, ct) if (c->ts - kefu_json_int(ct, "ts", 0) <= CONTACT_MAX_AGE)
      json_array_append(live, ct);
  if (json_array_size(live) == 0) {
    explain_add(r, "s2:none");
    goto done;
  }
  ct = json_array_get(live, 0);
  json_t *a = kefu_shop_get(c->shop, KEFU_ENT_AGENT, kefu_json_str(ct, "agent_id"));
  const char *presence = a ? kefu_agent_presence(a) : "OFFLINE";
  if (c->ts - kefu_json_int(ct, "ts", 0) <= CONTACT_RECENT &&
      (kefu_str_eq(presence, "ONLINE") || kefu_str_eq(presence, "SUSPENDED"))) {
    decide_agent(r, kefu_json_str(ct, "agent_id"), "RECENT_CONTACT_24H");
    decided = true;
    goto done;
  }
  json_array_foreach(live, i, ct) {
    a = kefu_shop_get(c->shop, KEFU_ENT_AGENT, kefu_json_str(ct, "agent_id"));
    if (a && agent_online(a)) {
      decide_agent(r, kefu_json_str(ct, "agent_id"), "RECENT_CONTACT_72H");
      decided = true;
      goto done;
    }
  }
  decided = same_group(c, r, live);
  if (!decided)
    explain_add(r, "s2:passed(%zu)", json_array_size(live));
done:
  json_decref(live);
  return decided;
}

static bool exclusive_agent(kefu_route_ctx_t *c, kefu_route_t *r) {
  const char *id = kefu_json_str(c->buyer, "exclusive_agent");
  json_t *a = kefu_shop_get(c->shop, KEFU_ENT_AGENT, id);
  if (id && kefu_cfg_bool(c->shop, "exclusive_direct") && a && agent_online(a)) {
    decide_agent(r, id, "EXCLUSIVE_AGENT");
    return true;
  }
  explain_add(r, "s3:%s",
              !id                                           ? "none"
              : !kefu_cfg_bool(c->shop, "exclusive_direct") ? "direct-off"
                                                            : "not-online");
  return false;
}

/* The buyer's order state (ROUTE-6): of the routing order if it is this buyer's, else
 * of the most recently updated order. */
const char *kefu_buyer_order_state(kefu_shop_t *shop, const json_t *buyer, const char *buyer_id) {
  const char *order_id = kefu_json_str(json_object_get(buyer, "attrs"), "order_id");
  json_t *o = kefu_shop_get(shop, KEFU_ENT_ORDER, order_id);
  if (!o || !kefu_str_eq(kefu_json_str(o, "buyer_id"), buyer_id))
    o = kefu_shop_get(shop, KEFU_ENT_ORDER, kefu_json_str(buyer, "last_order"));
  if (!o)
    return "NO_ACTIVE_ORDER";
  if (!json_is_null(json_object_get(o, "after_sale")) && json_object_get(o, "after_sale"))
    return "AFTER_SALE";
  const char *s = kefu_json_str(o, "status");
  if (kefu_str_eq(s, "CREATED"))
    return "UNPAID";
  if (kefu_str_eq(s, "PAID"))
    return "PAID_NOT_SHIPPED";
  if (kefu_str_eq(s, "SHIPPED") || kefu_str_eq(s, "PARTIALLY_SHIPPED") || kefu_str_eq(s, "SIGNED"))
    return "SHIPPED";
  if (kefu_str_eq(s, "COMPLETED"))
    return "COMPLETED";
  return "NO_ACTIVE_ORDER";
}

/* Keeps the groups of @p set that bind one of @p values in @p field, if any does. */
static json_t *match_dimension(json_t *set, const char *field, const json_t *values,
                               const char *label, kefu_route_t *r) {
  json_t *kept = json_array(), *g, *v;
  size_t i, k;
  json_array_foreach(set, i, g) {
    bool hit = false;
    json_array_foreach(values, k, v) hit |=
        array_has(json_object_get(g, field), json_string_value(v));
    if (hit)
      json_array_append(kept, g);
  }
  if (json_array_size(kept) == 0) {
    json_decref(kept);
    explain_add(r, "%s=", label);
    return set;
  }
  char buf[64];
  explain_add(r, "%s[", label);
  json_array_foreach(kept, i, g) {
    snprintf(buf, sizeof buf, "%s%s", i ? "," : "", kefu_json_str(g, "group_id"));
    strncat(r->explain, buf, sizeof r->explain - strlen(r->explain) - 1);
  }
  strncat(r->explain, "]", sizeof r->explain - strlen(r->explain) - 1);
  json_decref(set);
  return kept;
}

static json_t *single(const char *s) {
  return s ? json_pack("[s]", s) : json_array();
}

/* ROUTE-6 dimension by dimension: crowd > product > intent > order state. */
static json_t *matched_groups(kefu_route_ctx_t *c, kefu_route_t *r) {
  json_t *attrs = json_object_get(c->buyer, "attrs");
  json_t *set = json_deep_copy(kefu_cfg_get(c->shop, "groups"));
  json_t *item = single(kefu_json_str(attrs, "item_id"));
  json_t *intent = single(kefu_json_str(attrs, "intent"));
  json_t *state = single(kefu_buyer_order_state(c->shop, c->buyer, c->buyer_id));
  json_t *crowd = json_is_array(json_object_get(attrs, "crowd_tags"))
                      ? json_incref(json_object_get(attrs, "crowd_tags"))
                      : json_array();
  set = match_dimension(set, "crowd_tags", crowd, "crowd", r);
  json_decref(crowd);
  set = match_dimension(set, "item_ids", item, "item", r);
  set = match_dimension(set, "intents", intent, "intent", r);
  set = match_dimension(set, "order_states", state, "state", r);
  json_decref(item);
  json_decref(intent);
  json_decref(state);
  return set;
}

/* ROUTE-6 and ROUTE-7; false when no eligible human (ROUTE-8 follows). */
static bool group_step(kefu_route_ctx_t *c, kefu_route_t *r, bool skip_bot) {
  json_t *set = matched_groups(c, r), *g, *human = json_array();
  size_t i;
  bool decided = false;
  if (json_array_size(kefu_cfg_get(c->shop, "groups")) == 0) {
    explain_add(r, "s5:no-groups");
    decided = choose_human(c, r, NULL, false);
    if (decided)
      r->step = "GROUP_EFFICIENCY";
    goto done;
  }
  if (skip_bot) { /* XFER-2: bot groups leave the set */
    json_t *kept = json_array();
    json_array_foreach(set, i, g) if (!json_is_true(json_object_get(g, "bot_enabled")))
        json_array_append(kept, g);
    json_decref(set);
    set = kept;
    if (json_array_size(set) == 0) {
      explain_add(r, "s5:only-bot-groups");
      goto done;
    }
  }
  json_t *first = json_array_get(set, 0);
  snprintf(r->group_id, sizeof r->group_id, "%s", kefu_json_str(first, "group_id"));
  if (json_is_true(json_object_get(first, "bot_enabled"))) {
    r->target = KEFU_TARGET_BOT;
    r->step = "GROUP_BOT";
    decided = true;
    goto done;
  }
  json_array_foreach(set, i, g) if (!json_is_true(json_object_get(g, "bot_enabled")))
      json_array_append_new(human, json_string(kefu_json_str(g, "group_id")));
  bool conversion = kefu_str_eq(kefu_json_str(first, "strategy"), "CONVERSION");
  decided = choose_human(c, r, human, conversion);
  if (decided)
    r->step = conversion ? "GROUP_CONVERSION" : "GROUP_EFFICIENCY";
  else
    r->group_id[0] = '\0';
done:
  json_decref(set);
  json_decref(human);
  return decided;
}

/* ROUTE-8 */
static void no_eligible_human(kefu_route_ctx_t *c, kefu_route_t *r) {
  if (kefu_cfg_bool(c->shop, "queue_enabled")) {
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
  if (!c->skip_bot && kefu_cfg_bool(c->shop, "bot_priority")) {
    r->target = KEFU_TARGET_BOT;
    r->step = "SHOP_BOT_PRIORITY";
    return;
  }
  explain_add(r, c->skip_bot ? "s4:skipped" : "s4:off");
  if (group_step(c, r, c->skip_bot))
    return;
  no_eligible_human(c, r);
}
