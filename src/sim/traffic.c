/* The traffic generator (see traffic.h for what it makes and why).
 *
 * How a day is built:
 *   1. Shops are planned first: shop k's share of the buyers is (1/(k+1)) / H(n), its
 *      staff and buyer pool follow that share. Each gets one config record at the start
 *      (a fifth of them a second one mid-window), its agents a PROFILE and shifts of
 *      PRESENCE changes. The shifts are kept, so a conversation knows who is online.
 *   2. Then "journeys" are drawn until the record budget is spent: a shop by share, a
 *      buyer (regulars more often), a start time by the day curve of hour_weight[], and
 *      a kind: presale talk (some end in an order), a logistics inquiry about an order
 *      whose history is written backwards from the inquiry (paid days ago and not
 *      shipped, in transit, stalled, signed), an after-sale case, small talk, a
 *      "do you ship to ..." question answered with a deliverability query, or an order
 *      placed without any chat.
 *   3. Every record goes into one list with its ts and a sequence number; records at or
 *      after the window's end are dropped as they are made (an order's later life), and
 *      the list is sorted by (ts, sequence) at the end, so ties keep generation order
 *      whatever qsort does.
 *   4. Invalid records are copies of generated chat records with one defect each; they
 *      are added last, a fixed share of the valid ones.
 *
 * Event ids are "e<n>", n counting the kept records in generation order. */
#include "sim/traffic.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/topics.h"

#define SECOND INT64_C(1000)
#define MINUTE (60 * SECOND)
#define HOUR (60 * MINUTE)
#define DAY (24 * HOUR)

/* 2000-01-01T00:00:00Z: the earliest ts kefu accepts (SPEC §6); history goes back a week. */
#define TS_2000 INT64_C(946684800000)
#define HISTORY_MS (8 * DAY)

typedef struct weighted {
  const char *name;
  int weight;
} weighted_t;

typedef struct span {
  int64_t from, until; /* the agent is ONLINE in [from, until) */
} span_t;

typedef struct agent_plan {
  char id[16];
  span_t *online;
  int n, cap;
} agent_plan_t;

typedef struct shop_plan {
  char id[16];
  int index;
  double share; /* of the journeys */
  int nbuyers, nitems, nagents;
  agent_plan_t *agents;
  int utc_offset_min;
  bool bot_heavy;  /* bot priority or a bot group: the bot answers many buyers */
  bool auto_reply; /* the merchant greets every buyer with a canned auto-reply */
  double late;     /* share of human answers that take over three minutes */
  const char *couriers[3];
  int ncouriers;
} shop_plan_t;

typedef struct item {
  int64_t ts; /* INT64_MIN for courier-status records: they come first */
  long seq;
  kefu_topic_t topic;
  json_t *rec;
} item_t;

typedef struct gen {
  const kefu_traffic_opts_t *o;
  uint64_t rng;
  int64_t end; /* start_ts + duration_ms */
  item_t *items;
  size_t n, cap;
  long next_event, next_order;
  shop_plan_t *shops;
  int nshops; /* o->shops, plus the huge shop when there is one (the last) */
} gen_t;

/* ---------------------------------------------------------------- randomness */

/* splitmix64's output function: also used alone to derive stable per-buyer traits. */
static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

static uint64_t next_u64(gen_t *g) {
  return mix64(g->rng += UINT64_C(0x9E3779B97F4A7C15));
}

/* [0, 1) with 53 random bits. */
static double uniform(gen_t *g) {
  return (double)(next_u64(g) >> 11) / 9007199254740992.0;
}

static int below(gen_t *g, int n) {
  return n > 0 ? (int)(uniform(g) * n) : 0;
}

static bool chance(gen_t *g, double p) {
  return uniform(g) < p;
}

/* A duration or instant in [lo, hi). */
static int64_t between(gen_t *g, int64_t lo, int64_t hi) {
  return hi > lo ? lo + (int64_t)(uniform(g) * (double)(hi - lo)) : lo;
}

/* An index in [0, n) where low indices are much likelier: regular buyers, hot items. */
static int skewed(gen_t *g, int n) {
  double u = uniform(g);
  return (int)(u * u * n);
}

static const char *pick(gen_t *g, const char *const *items, int n) {
  return items[below(g, n)];
}

static const char *pick_weighted(gen_t *g, const weighted_t *w, int n) {
  int total = 0;
  for (int i = 0; i < n; i++)
    total += w[i].weight;
  int r = below(g, total);
  for (int i = 0; i < n; i++)
    if ((r -= w[i].weight) < 0)
      return w[i].name;
  return w[n - 1].name;
}

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---------------------------------------------------------------- domain tables */

/* Destination districts (adcode): Shenzhen Nanshan, Guangzhou Tianhe, Shanghai Pudong,
 * Beijing Chaoyang, Chengdu Wuhou, Hangzhou Xihu, Nanjing Gulou, Wuhan Wuchang,
 * Chongqing Yuzhong, Xi'an Yanta. */
static const weighted_t regions[] = {{"440305", 14}, {"440106", 12}, {"310115", 16}, {"110105", 14},
                                     {"510107", 8},  {"330106", 10}, {"320106", 7},  {"420106", 7},
                                     {"500103", 6},  {"610113", 6}};

static const weighted_t shop_couriers[] = {{"ZTO", 30},   {"YTO", 20},   {"YUNDA", 18},
                                           {"STO", 14},   {"JT", 10},    {"CHINA_POST", 4},
                                           {"DEPPON", 2}, {"SUNING", 1}, {"UC", 1}};

/* Tracking numbers look like the courier's: prefix and digit count. */
typedef struct tracking_format {
  const char *courier, *prefix;
  int digits;
} tracking_format_t;
static const tracking_format_t tracking_formats[] = {
    {"ZTO", "75", 12},    {"YTO", "YT", 13}, {"YUNDA", "43", 11},      {"STO", "77", 11},
    {"JT", "JT", 13},     {"EMS", "11", 11}, {"CHINA_POST", "98", 11}, {"DEPPON", "DPK", 12},
    {"SUNING", "SN", 12}, {"UC", "UC", 12}};

static const char *const intents_presale[] = {"PRESALE_SIZE", "PRESALE_PRICE", "PRESALE_STOCK",
                                              "PRESALE_COUPON"};
static const char *const intents_late[] = {
    "LOGISTICS_URGE_DELIVERY", "LOGISTICS_DELIVERY_TIME_INQUIRY", "SHIPPING_COURIER_TIMELINESS"};
static const char *const intents_transit[] = {
    "LOGISTICS_NOT_RECEIVED",  "LOGISTICS_TRACKING_NOT_UPDATED",  "LOGISTICS_URGE_DELIVERY",
    "LOGISTICS_DELIVERY_TIME", "LOGISTICS_NOT_DELIVERED_TO_DOOR", "LOGISTICS_DELIVERY_METHOD",
    "SHIPPING_ADDRESS_CONTROL"};
static const char *const intents_stalled[] = {"LOGISTICS_TRACKING_NOT_UPDATED",
                                              "LOGISTICS_NOT_RECEIVED", "LOGISTICS_URGE_DELIVERY"};
static const char *const intents_signed[] = {"LOGISTICS_SIGNED_NOT_RECEIVED",
                                             "LOGISTICS_NOT_DELIVERED_TO_DOOR"};
static const char *const intents_after_sale[] = {"AFTERSALE_RETURN", "AFTERSALE_REFUND",
                                                 "AFTERSALE_EXCHANGE"};

static const weighted_t after_sale_reasons[] = {{"DAMAGED", 25},      {"WRONG_ITEM", 15},
                                                {"MISSING_ITEM", 15}, {"OTHER", 30},
                                                {"NOT_RECEIVED", 10}, {"LOST", 5}};

/* Couriers whose logistics agent kefu can invite by default (LOGI-1c). */
static const char *const invitable_couriers[] = {"ZTO", "STO", "YUNDA", "YTO"};

/* Share of the buyers who start a conversation in each local hour: a quiet night, a
 * late-morning and a bigger evening peak. At most 10 (rejection sampling below). */
static const double hour_weight[24] = {2.0, 1.0, 0.5, 0.3, 0.2, 0.3, 0.6, 1.5, 3.5, 6.0,  8.0, 8.5,
                                       6.5, 7.0, 8.0, 8.0, 7.5, 7.0, 6.5, 7.5, 9.5, 10.0, 9.0, 5.0};

/* Routing groups a merchant might set up, in the priority order they would be listed. */
typedef struct group_template {
  const char *json;
  double p_busy, p_quiet; /* chance a busy / quiet shop has it */
} group_template_t;
static const group_template_t group_templates[] = {
    {"{\"group_id\": \"vip\", \"bot_enabled\": false, \"strategy\": \"CONVERSION\","
     " \"crowd_tags\": [\"vip\"]}",
     0.5, 0.2},
    {"{\"group_id\": \"logistics\", \"bot_enabled\": false, \"strategy\": \"EFFICIENCY\","
     " \"intents\": [\"LOGISTICS_NOT_RECEIVED\", \"LOGISTICS_TRACKING_NOT_UPDATED\","
     " \"LOGISTICS_URGE_DELIVERY\", \"LOGISTICS_SIGNED_NOT_RECEIVED\"],"
     " \"order_states\": [\"PAID_NOT_SHIPPED\", \"SHIPPED\"]}",
     0.5, 0.15},
    {"{\"group_id\": \"after-sale\", \"bot_enabled\": false, \"strategy\": \"EFFICIENCY\","
     " \"intents\": [\"AFTERSALE_RETURN\", \"AFTERSALE_REFUND\", \"AFTERSALE_EXCHANGE\"],"
     " \"order_states\": [\"AFTER_SALE\", \"COMPLETED\"]}",
     0.5, 0.2},
    {"{\"group_id\": \"presale\", \"bot_enabled\": false, \"strategy\": \"CONVERSION\","
     " \"intents\": [\"PRESALE_SIZE\", \"PRESALE_PRICE\", \"PRESALE_STOCK\"],"
     " \"order_states\": [\"NO_ACTIVE_ORDER\", \"UNPAID\"]}",
     0.5, 0.2},
    {"{\"group_id\": \"faq-bot\", \"bot_enabled\": true, \"strategy\": \"EFFICIENCY\","
     " \"item_ids\": [\"i1\", \"i2\"]}",
     0.3, 0.15},
    {"{\"group_id\": \"new-buyer-bot\", \"bot_enabled\": true, \"strategy\": \"EFFICIENCY\","
     " \"crowd_tags\": [\"new\"]}",
     0.15, 0.05},
    {"{\"group_id\": \"general\", \"bot_enabled\": false, \"strategy\": \"EFFICIENCY\"}", 0.6, 0.4},
};

/* Agent shifts in local time: early, late and middle. Nobody works 23:45-08:00. */
typedef struct shift {
  int64_t on_lo, on_hi, off_lo, off_hi;
} shift_t;
static const shift_t shifts[] = {
    {8 * HOUR, 9 * HOUR, 17 * HOUR, 18 * HOUR + 30 * MINUTE},
    {12 * HOUR + 30 * MINUTE, 14 * HOUR, 22 * HOUR + 30 * MINUTE, 23 * HOUR + 45 * MINUTE},
    {9 * HOUR, 10 * HOUR + 30 * MINUTE, 20 * HOUR, 21 * HOUR + 30 * MINUTE},
};

/* ---------------------------------------------------------------- records */

static void push(gen_t *g, int64_t ts, kefu_topic_t topic, json_t *rec) {
  if (g->n == g->cap) {
    g->cap = g->cap ? 2 * g->cap : 4096;
    g->items = realloc(g->items, g->cap * sizeof *g->items);
  }
  g->items[g->n] = (item_t){ts, (long)g->n, topic, rec};
  g->n++;
}

/* Keeps @p rec (stolen) with the next event id, unless it falls at or after the
 * window's end. Returns the event id's number, or -1 when the record was dropped. */
static long emit(gen_t *g, kefu_topic_t topic, json_t *rec) {
  char eid[32];
  int64_t ts = json_integer_value(json_object_get(rec, "ts"));
  if (ts >= g->end) {
    json_decref(rec);
    return -1;
  }
  long id = g->next_event++;
  snprintf(eid, sizeof eid, "e%ld", id);
  json_object_set_new(rec, "event_id", json_string(eid));
  push(g, ts, topic, rec);
  return id;
}

static json_t *event(const shop_plan_t *sp, int64_t ts, const char *type) {
  return json_pack("{s:s, s:I, s:s*}", "shop_id", sp->id, "ts", (json_int_t)ts, "type", type);
}

static int64_t local_ms_of_day(const shop_plan_t *sp, int64_t ts) {
  int64_t local = ts + (int64_t)sp->utc_offset_min * MINUTE;
  return ((local % DAY) + DAY) % DAY;
}

static int local_hour(const shop_plan_t *sp, int64_t ts) {
  return (int)(local_ms_of_day(sp, ts) / HOUR);
}

/* ---------------------------------------------------------------- shops and agents */

static json_t *shop_groups(gen_t *g, bool busy) {
  json_t *groups = json_array();
  bool human = false;
  for (int i = 0; i < COUNT(group_templates); i++) {
    const group_template_t *t = &group_templates[i];
    bool last = i == COUNT(group_templates) - 1;
    /* every shop with groups has a human one at the end, so agents have a home */
    if (chance(g, busy ? t->p_busy : t->p_quiet) || (last && json_array_size(groups) && !human)) {
      json_t *grp = json_loads(t->json, 0, NULL);
      human |= !json_is_true(json_object_get(grp, "bot_enabled"));
      json_array_append_new(groups, grp);
    }
  }
  return groups;
}

static void shop_couriers_pick(gen_t *g, shop_plan_t *sp) {
  sp->ncouriers = 0;
  int want = 2 + below(g, 2);
  for (int tries = 0; sp->ncouriers < want && tries < 20; tries++) {
    const char *c = pick_weighted(g, shop_couriers, COUNT(shop_couriers));
    bool dup = false;
    for (int i = 0; i < sp->ncouriers; i++)
      dup |= strcmp(sp->couriers[i], c) == 0;
    if (!dup)
      sp->couriers[sp->ncouriers++] = c;
  }
}

static json_t *shop_config(gen_t *g, shop_plan_t *sp, bool busy) {
  static const weighted_t leave[] = {
      {"MAIN_ACCOUNT", 70}, {"PROXY_ACCOUNT", 15}, {"MESSAGE_POOL", 15}};
  static const int exposures[] = {100, 100, 100, 50, 50, 0};
  json_t *groups = shop_groups(g, busy), *grp, *couriers = json_array();
  size_t i;
  bool bot_priority = chance(g, 0.08);
  sp->bot_heavy = bot_priority;
  json_array_foreach(groups, i, grp) sp->bot_heavy |=
      json_is_true(json_object_get(grp, "bot_enabled"));
  shop_couriers_pick(g, sp);
  for (int c = 0; c < sp->ncouriers; c++)
    json_array_append_new(couriers, json_string(sp->couriers[c]));
  return json_pack("{s:s, s:I, s:b, s:o, s:b, s:o, s:s, s:b, s:b, s:b, s:I, s:b, s:i, s:i}",
                   "shop_id", sp->id, "ts", (json_int_t)g->o->start_ts, "bot_priority",
                   bot_priority, "couriers", couriers, "exclusive_direct", chance(g, 0.25),
                   "groups", groups, "leave_message_target", pick_weighted(g, leave, COUNT(leave)),
                   "logistics_enabled", chance(g, 0.9), "merchant_invite_enabled", chance(g, 0.95),
                   "queue_enabled", chance(g, busy ? 0.5 : 0.15), "queue_max_wait_ms",
                   (json_int_t)(chance(g, 0.5) ? 10 * MINUTE : 5 * MINUTE),
                   "response_rate_assessed", chance(g, 0.97), "transfer_entry_exposure_pct",
                   exposures[below(g, COUNT(exposures))], "utc_offset_minutes", sp->utc_offset_min);
}

/* A fifth of the merchants change their settings during the day (the queue for the
 * evening peak, the transfer-entry test): a config record is always the whole config. */
static void shop_config_change(gen_t *g, const json_t *config) {
  const kefu_traffic_opts_t *o = g->o;
  json_t *c = json_deep_copy(config);
  int64_t ts = between(g, o->start_ts + o->duration_ms / 3, o->start_ts + 2 * o->duration_ms / 3);
  json_object_set_new(c, "ts", json_integer(ts));
  json_object_set_new(c, "queue_enabled", json_true());
  json_object_set_new(c, "transfer_entry_exposure_pct", json_integer(chance(g, 0.5) ? 100 : 50));
  json_object_del(c, "event_id");
  emit(g, KEFU_T_SHOP_CONFIG, c);
}

static void agent_profile(gen_t *g, shop_plan_t *sp, int a, const json_t *config) {
  static const weighted_t levels[] = {{"1", 15}, {"2", 30}, {"3", 30}, {"4", 17}, {"5", 8}};
  json_t *groups = json_array(), *humans = json_array(), *grp;
  size_t i;
  json_array_foreach(json_object_get(config, "groups"), i, grp) {
    if (!json_is_true(json_object_get(grp, "bot_enabled")))
      json_array_append(humans, json_object_get(grp, "group_id"));
  }
  size_t nh = json_array_size(humans);
  if (nh) {
    json_array_append(groups, json_array_get(humans, (size_t)a % nh));
    if (nh > 1 && chance(g, 0.3))
      json_array_append(groups, json_array_get(humans, ((size_t)a + 1) % nh));
  }
  json_decref(humans);
  json_t *r = event(sp, g->o->start_ts, "PROFILE");
  json_object_set_new(r, "agent_id", json_string(sp->agents[a].id));
  json_object_set_new(r, "level", json_integer(atoi(pick_weighted(g, levels, COUNT(levels)))));
  json_object_set_new(r, "capacity", json_integer(5 + below(g, 16)));
  json_object_set_new(r, "groups", groups);
  if (chance(g, 0.4)) /* some merchants fill in a conversion rate from their own books */
    json_object_set_new(r, "conversion_rate", json_real((5 + below(g, 31)) / 100.0));
  emit(g, KEFU_T_AGENT, r);
}

static void presence(gen_t *g, shop_plan_t *sp, const agent_plan_t *ap, int64_t ts,
                     const char *state) {
  json_t *r = event(sp, ts, "PRESENCE");
  json_object_set_new(r, "agent_id", json_string(ap->id));
  json_object_set_new(r, "presence", json_string(state));
  emit(g, KEFU_T_AGENT, r);
}

static void agent_online(agent_plan_t *ap, int64_t from, int64_t until) {
  if (until <= from)
    return;
  if (ap->n == ap->cap) {
    ap->cap = ap->cap ? 2 * ap->cap : 8;
    ap->online = realloc(ap->online, (size_t)ap->cap * sizeof *ap->online);
  }
  ap->online[ap->n++] = (span_t){from, until};
}

/* One shift on the local day starting at @p midnight: ONLINE, one or two breaks
 * (SUSPENDED, or a dropped connection: OFFLINE and back), OFFLINE at the end. */
static void agent_shift(gen_t *g, shop_plan_t *sp, agent_plan_t *ap, const shift_t *s,
                        int64_t midnight) {
  int64_t on = midnight + between(g, s->on_lo, s->on_hi);
  int64_t off = midnight + between(g, s->off_lo, s->off_hi);
  int breaks = 1 + below(g, 2);
  if (off <= g->o->start_ts || on >= g->end)
    return;
  if (on <= g->o->start_ts) /* already at work when the window opens: after the PROFILE */
    on = g->o->start_ts + SECOND;
  presence(g, sp, ap, on, "ONLINE");
  int64_t from = on;
  for (int b = 1; b <= breaks; b++) {
    int64_t start = on + (off - on) * b / (breaks + 1) + between(g, -20 * MINUTE, 20 * MINUTE);
    int64_t back = start + between(g, 10 * MINUTE, 40 * MINUTE);
    if (start <= from || back >= off)
      continue;
    presence(g, sp, ap, start, chance(g, 0.85) ? "SUSPENDED" : "OFFLINE");
    presence(g, sp, ap, back, "ONLINE");
    agent_online(ap, from, start);
    from = back;
  }
  presence(g, sp, ap, off, "OFFLINE");
  agent_online(ap, from, off);
}

static void agent_day(gen_t *g, shop_plan_t *sp, int a) {
  agent_plan_t *ap = &sp->agents[a];
  const shift_t *s = &shifts[a % COUNT(shifts)];
  int64_t first = g->o->start_ts - local_ms_of_day(sp, g->o->start_ts);
  for (int64_t midnight = first; midnight < g->end; midnight += DAY)
    agent_shift(g, sp, ap, s, midnight);
}

/* 专属客服: merchants with direct exclusive service bind a few regular buyers. */
static void exclusive_binds(gen_t *g, shop_plan_t *sp) {
  int n = 1 + below(g, 4);
  for (int b = 0; b < n && b < sp->nbuyers; b++) {
    char buyer[16];
    snprintf(buyer, sizeof buyer, "b%d", b);
    json_t *r = event(sp, g->o->start_ts, "EXCLUSIVE_BIND");
    json_object_set_new(r, "agent_id", json_string(sp->agents[below(g, sp->nagents)].id));
    json_object_set_new(r, "buyer_id", json_string(buyer));
    emit(g, KEFU_T_AGENT, r);
  }
}

static void shop_plan(gen_t *g, shop_plan_t *sp, int k, double zipf_total) {
  const kefu_traffic_opts_t *o = g->o;
  double total_agents = (double)o->agents_per_shop * o->shops;
  double total_buyers = (double)o->buyers_per_shop * o->shops;
  sp->index = k;
  snprintf(sp->id, sizeof sp->id, "shop%02d", k);
  sp->share = 1.0 / (k + 1) / zipf_total;
  sp->nagents = (int)fmin(500, fmax(2, round(total_agents * sp->share)));
  sp->nbuyers = (int)fmin(1e6, fmax(10, round(total_buyers * sp->share)));
  sp->nitems = 8 + below(g, 25);
  sp->utc_offset_min = 480;
  sp->auto_reply = chance(g, 0.4);
  /* Most merchants answer in time; every sixth from shop02 is slow enough to fail the
   * 3-minute rate, so that even a small demo shows what a violation looks like. */
  sp->late = k % 6 == 2 ? 0.6 : 0.1;
  sp->agents =
      calloc(sp->nagents > 0 && sp->nagents < 100000 ? (size_t)sp->nagents : 1, sizeof *sp->agents);
  for (int a = 0; a < sp->nagents; a++)
    snprintf(sp->agents[a].id, sizeof sp->agents[a].id, "a%d", a);
}

/* The huge shop of o->huge_agents (see traffic.h): planned like the others, then sized
 * by the options instead of by a share of the totals. */
static void huge_shop_plan(gen_t *g, shop_plan_t *sp) {
  const kefu_traffic_opts_t *o = g->o;
  sp->index = o->shops;
  snprintf(sp->id, sizeof sp->id, "huge");
  sp->share = o->huge_share;
  sp->nagents = o->huge_agents;
  sp->nbuyers = o->huge_buyers;
  sp->nitems = 8 + below(g, 25);
  sp->utc_offset_min = 480;
  sp->auto_reply = chance(g, 0.4);
  sp->late = 0.1;
  sp->agents = calloc(sp->nagents > 0 && sp->nagents <= 100000 ? (size_t)sp->nagents : 1,
                      sizeof *sp->agents);
  for (int a = 0; a < sp->nagents; a++)
    snprintf(sp->agents[a].id, sizeof sp->agents[a].id, "a%d", a);
}

static void shops_setup(gen_t *g) {
  const kefu_traffic_opts_t *o = g->o;
  double zipf_total = 0;
  for (int k = 0; k < o->shops; k++)
    zipf_total += 1.0 / (k + 1);
  /* options are checked before this (1..10000 shops); the bound also tells the compiler */
  size_t nshops = o->shops > 0 && o->shops <= 10000 ? (size_t)o->shops : 1;
  g->nshops = (int)nshops + (o->huge_agents > 0);
  g->shops = calloc((size_t)g->nshops, sizeof *g->shops);
  for (int k = 0; k < g->nshops; k++) {
    shop_plan_t *sp = &g->shops[k];
    if (k < o->shops)
      shop_plan(g, sp, k, zipf_total);
    else
      huge_shop_plan(g, sp);
    json_t *config = shop_config(g, sp, sp->share >= 0.05);
    emit(g, KEFU_T_SHOP_CONFIG, json_incref(config));
    if (chance(g, 0.2))
      shop_config_change(g, config);
    for (int a = 0; a < sp->nagents; a++)
      agent_profile(g, sp, a, config);
    if (json_is_true(json_object_get(config, "exclusive_direct")))
      exclusive_binds(g, sp);
    for (int a = 0; a < sp->nagents; a++)
      agent_day(g, sp, a);
    json_decref(config);
  }
}

/* An agent of the shop online at @p ts (by the shifts planned), or NULL. */
static const char *online_agent(gen_t *g, const shop_plan_t *sp, int64_t ts) {
  int start = below(g, sp->nagents);
  for (int i = 0; i < sp->nagents; i++) {
    const agent_plan_t *ap = &sp->agents[(start + i) % sp->nagents];
    for (int s = 0; s < ap->n; s++)
      if (ap->online[s].from <= ts && ts < ap->online[s].until)
        return ap->id;
  }
  return NULL;
}

/* ---------------------------------------------------------------- orders */

typedef struct order {
  char id[24], buyer[16], region[8], item[16];
  int npackages;
  char courier[2][16], tracking[2][32];
} order_t;

/* The steps of an order's life, in the order they happen. */
typedef enum order_step {
  OS_CREATED,
  OS_PAID,
  OS_ADDRESS_CHANGED,
  OS_PARTIALLY_SHIPPED,
  OS_SHIPPED,
  OS_SCAN_1,
  OS_SCAN_2,
  OS_SCAN_3,
  OS_SIGNED,
  OS_AFTER_SALE_OPENED,
  OS_AFTER_SALE_CLOSED,
  OS_COMPLETED,
  OS_CLOSED,
  OS__COUNT
} order_step_t;

static const char *const order_step_types[OS__COUNT] = {"CREATED",
                                                        "PAID",
                                                        "ADDRESS_CHANGED",
                                                        "PARTIALLY_SHIPPED",
                                                        "SHIPPED",
                                                        "LOGISTICS_UPDATE",
                                                        "LOGISTICS_UPDATE",
                                                        "LOGISTICS_UPDATE",
                                                        "SIGNED",
                                                        "AFTER_SALE_OPENED",
                                                        "AFTER_SALE_CLOSED",
                                                        "COMPLETED",
                                                        "CLOSED"};

typedef struct order_plan {
  int64_t at[OS__COUNT]; /* 0: the step does not happen */
  const char *after_sale_reason;
  const char *new_region;
} order_plan_t;

/* Where the order stands when the buyer asks about it. */
typedef enum order_stage {
  STAGE_PAID_LATE, /* paid more than two days ago, not shipped */
  STAGE_IN_TRANSIT,
  STAGE_STALLED, /* shipped nearly four days ago, no scan for three */
  STAGE_SIGNED,
  STAGE_AFTER_SALE,
} order_stage_t;

static void tracking_number(gen_t *g, const char *courier, char *out, size_t outlen) {
  const tracking_format_t *f = &tracking_formats[0];
  for (int i = 0; i < COUNT(tracking_formats); i++)
    if (strcmp(tracking_formats[i].courier, courier) == 0)
      f = &tracking_formats[i];
  size_t n = (size_t)snprintf(out, outlen, "%s", f->prefix);
  for (int d = 0; d < f->digits && n + 1 < outlen; d++)
    out[n++] = (char)('0' + below(g, 10));
  out[n] = '\0';
}

static void order_new(gen_t *g, const shop_plan_t *sp, const char *buyer, const char *item,
                      order_t *o) {
  memset(o, 0, sizeof *o);
  snprintf(o->id, sizeof o->id, "o%07ld", ++g->next_order);
  snprintf(o->buyer, sizeof o->buyer, "%s", buyer);
  snprintf(o->item, sizeof o->item, "%s", item);
  snprintf(o->region, sizeof o->region, "%s", pick_weighted(g, regions, COUNT(regions)));
  o->npackages = chance(g, 0.15) ? 2 : 1;
  for (int p = 0; p < o->npackages; p++) {
    double u = uniform(g);
    const char *c = u < 0.93 ? sp->couriers[below(g, sp->ncouriers)] : u < 0.97 ? "EMS" : "DEPPON";
    snprintf(o->courier[p], sizeof o->courier[p], "%s", c);
    tracking_number(g, c, o->tracking[p], sizeof o->tracking[p]);
  }
}

static json_t *packages(const order_t *o, int n) {
  json_t *a = json_array();
  for (int p = 0; p < n; p++)
    json_array_append_new(
        a, json_pack("{s:s, s:s}", "tracking_no", o->tracking[p], "courier", o->courier[p]));
  return a;
}

static void order_emit(gen_t *g, const shop_plan_t *sp, order_t *o, const order_plan_t *p) {
  for (int s = 0; s < OS__COUNT; s++) {
    if (!p->at[s])
      continue;
    if (s == OS_ADDRESS_CHANGED) /* the buyer moved the parcel to another address */
      snprintf(o->region, sizeof o->region, "%s", p->new_region);
    json_t *r = event(sp, p->at[s], order_step_types[s]);
    json_object_set_new(r, "buyer_id", json_string(o->buyer));
    json_object_set_new(r, "order_id", json_string(o->id));
    json_object_set_new(r, "region_code", json_string(o->region));
    if (s == OS_CREATED)
      json_object_set_new(r, "item_ids", json_pack("[s]", o->item));
    else if (s == OS_PAID)
      json_object_set_new(r, "amount_cents", json_integer(990 + 100 * below(g, 600)));
    else if (s == OS_PARTIALLY_SHIPPED)
      json_object_set_new(r, "packages", packages(o, 1));
    else if (s == OS_SHIPPED)
      json_object_set_new(r, "packages", packages(o, o->npackages));
    else if (s == OS_AFTER_SALE_OPENED)
      json_object_set_new(r, "after_sale_reason", json_string(p->after_sale_reason));
    emit(g, KEFU_T_ORDER, r);
  }
}

/* From shipment on: scans every 6-18 h, signed within a day of the last, confirmed
 * (交易成功) one to five days later. A second package leaves a few hours after the first. */
static void plan_shipping(gen_t *g, const order_t *o, order_plan_t *p, int64_t shipped) {
  int64_t paid = p->at[OS_PAID];
  if (chance(g, 0.06) && shipped - paid > 30 * MINUTE) {
    p->at[OS_ADDRESS_CHANGED] = between(g, paid + 10 * MINUTE, shipped - 10 * MINUTE);
    p->new_region = pick_weighted(g, regions, COUNT(regions));
  }
  if (o->npackages == 2) {
    p->at[OS_PARTIALLY_SHIPPED] = shipped;
    shipped += between(g, HOUR, 10 * HOUR);
  }
  p->at[OS_SHIPPED] = shipped;
  int64_t t = shipped;
  for (int s = OS_SCAN_1; s <= OS_SCAN_3; s++)
    p->at[s] = (t += between(g, 6 * HOUR, 18 * HOUR));
  p->at[OS_SIGNED] = t + between(g, 2 * HOUR, 20 * HOUR);
  p->at[OS_COMPLETED] = p->at[OS_SIGNED] + between(g, DAY, 5 * DAY);
}

/* A purchase at @p t: most are paid within minutes; the rest stay unpaid or close. */
static void plan_purchase(gen_t *g, const order_t *o, order_plan_t *p, int64_t t) {
  memset(p, 0, sizeof *p);
  p->at[OS_CREATED] = t;
  if (!chance(g, 0.88)) {
    if (chance(g, 0.5))
      p->at[OS_CLOSED] = t + between(g, HOUR, 6 * HOUR);
    return;
  }
  p->at[OS_PAID] = t + between(g, MINUTE, 15 * MINUTE);
  int64_t wait =
      chance(g, 0.08) ? between(g, 50 * HOUR, 70 * HOUR) : between(g, 2 * HOUR, 36 * HOUR);
  plan_shipping(g, o, p, p->at[OS_PAID] + wait);
}

static void clear_scans_from(order_plan_t *p, int64_t limit) {
  for (int s = OS_SCAN_1; s <= OS_SCAN_3; s++)
    if (p->at[s] >= limit)
      p->at[s] = 0;
}

/* An order's history written backwards from an inquiry at @p t, so that it stands at
 * @p stage then; its life goes on after the inquiry. */
static void plan_before(gen_t *g, const order_t *o, order_plan_t *p, order_stage_t stage,
                        int64_t t) {
  int64_t shipped = 0;
  memset(p, 0, sizeof *p);
  switch (stage) {
  case STAGE_PAID_LATE:
    p->at[OS_PAID] = t - between(g, 49 * HOUR, 80 * HOUR);
    plan_shipping(g, o, p, t + between(g, HOUR, 12 * HOUR));
    break;
  case STAGE_IN_TRANSIT: shipped = t - between(g, 3 * HOUR, 60 * HOUR); break;
  case STAGE_STALLED: shipped = t - between(g, 95 * HOUR, 120 * HOUR); break;
  case STAGE_SIGNED: shipped = t - between(g, 30 * HOUR, 90 * HOUR); break;
  case STAGE_AFTER_SALE: shipped = t - between(g, 3 * DAY, 6 * DAY); break;
  }
  if (shipped) {
    p->at[OS_PAID] = shipped - between(g, 2 * HOUR, 30 * HOUR);
    plan_shipping(g, o, p, shipped);
  }
  if (stage == STAGE_STALLED) { /* one scan, then nothing until it finally arrives */
    clear_scans_from(p, p->at[OS_SCAN_2]);
    p->at[OS_SIGNED] = t + between(g, 6 * HOUR, 30 * HOUR);
    p->at[OS_COMPLETED] = p->at[OS_SIGNED] + between(g, DAY, 5 * DAY);
  } else if (stage == STAGE_SIGNED) {
    p->at[OS_SIGNED] = t - between(g, HOUR, 20 * HOUR);
    if (p->at[OS_SIGNED] <= p->at[OS_SHIPPED])
      p->at[OS_SIGNED] = p->at[OS_SHIPPED] + HOUR;
    clear_scans_from(p, p->at[OS_SIGNED]);
    p->at[OS_COMPLETED] = p->at[OS_SIGNED] + between(g, DAY, 5 * DAY);
  } else if (stage == STAGE_AFTER_SALE) {
    p->at[OS_SIGNED] = p->at[OS_SHIPPED] + between(g, 20 * HOUR, 50 * HOUR);
    clear_scans_from(p, p->at[OS_SIGNED]);
    p->at[OS_COMPLETED] = 0;
    p->at[OS_AFTER_SALE_OPENED] = t - between(g, MINUTE, 30 * MINUTE);
    p->at[OS_AFTER_SALE_CLOSED] = t + between(g, 3 * HOUR, 40 * HOUR);
    p->after_sale_reason = pick_weighted(g, after_sale_reasons, COUNT(after_sale_reasons));
  }
  p->at[OS_CREATED] = p->at[OS_PAID] - between(g, MINUTE, 20 * MINUTE);
}

/* ---------------------------------------------------------------- conversations */

typedef enum responder {
  RESP_NONE, /* nobody online and no bot: the buyer leaves a message */
  RESP_BOT,
  RESP_AGENT,
} responder_t;

typedef struct talk {
  gen_t *g;
  shop_plan_t *sp;
  char buyer[16];
  int buyer_index;
  int64_t t;          /* the conversation's clock */
  const char *item;   /* on CHAT_OPEN, or NULL */
  const char *intent; /* what the buyer asks about, or NULL */
  const order_t *order;
  order_stage_t stage; /* of order, when there is one */
  int rounds;
  responder_t who;
  const char *agent;
  bool query_order, query_region, invite;
} talk_t;

static bool invitable(const talk_t *tk) {
  const order_t *o = tk->order;
  int hour = local_hour(tk->sp, tk->t);
  if (!o || tk->stage != STAGE_IN_TRANSIT || o->npackages != 1 || hour < 9 || hour >= 21)
    return false;
  for (int i = 0; i < COUNT(invitable_couriers); i++)
    if (strcmp(o->courier[0], invitable_couriers[i]) == 0)
      return true;
  return false;
}

static long say(talk_t *tk, int64_t ts, const char *type, json_t *extra) {
  json_t *r = event(tk->sp, ts, type);
  json_object_set_new(r, "buyer_id", json_string(tk->buyer));
  if (extra)
    json_object_update_new(r, extra);
  return emit(tk->g, KEFU_T_CHAT, r);
}

/* A buyer's crowd tags are a trait of the buyer: the same in every conversation. */
static json_t *buyer_tags(const talk_t *tk) {
  uint64_t h = mix64(tk->g->o->seed ^ ((uint64_t)tk->sp->index << 32) ^ (uint64_t)tk->buyer_index);
  int r = (int)(h % 100);
  if (r < 8)
    return json_pack("[s, s]", "vip", "old");
  if (r < 30)
    return json_pack("[s]", "old");
  if (r < 60)
    return json_pack("[s]", "new");
  if (r < 66)
    return json_pack("[s]", "student");
  return json_array();
}

/* How long a human takes to answer: mostly within a minute and a half, some close to
 * the three minutes, and the shop's share too late. */
static int64_t human_delay(gen_t *g, const shop_plan_t *sp) {
  double u = uniform(g);
  if (u < sp->late)
    return between(g, 181 * SECOND, 12 * MINUTE);
  if (u < sp->late + (1 - sp->late) * 0.8)
    return between(g, 4 * SECOND, 90 * SECOND);
  return between(g, 90 * SECOND, 178 * SECOND);
}

static void talk_open(talk_t *tk) {
  gen_t *g = tk->g;
  json_t *extra = json_pack("{s:o, s:s*, s:s*, s:s*}", "crowd_tags", buyer_tags(tk), "item_id",
                            tk->item, "intent", tk->intent && chance(g, 0.25) ? tk->intent : NULL,
                            "order_id", tk->order && chance(g, 0.4) ? tk->order->id : NULL);
  say(tk, tk->t, "CHAT_OPEN", extra);
  tk->agent = online_agent(g, tk->sp, tk->t);
  if (tk->sp->bot_heavy && (!tk->agent || chance(g, 0.55)))
    tk->who = RESP_BOT;
  else
    tk->who = tk->agent ? RESP_AGENT : RESP_NONE;
  if (tk->sp->auto_reply) /* the canned greeting goes out under some agent's account */
    say(tk, tk->t += between(g, SECOND, 3 * SECOND), "AGENT_MSG",
        json_pack("{s:s, s:b}", "agent_id", tk->agent ? tk->agent : tk->sp->agents[0].id,
                  "auto_reply", 1));
}

static void talk_reply(talk_t *tk) {
  gen_t *g = tk->g;
  if (tk->who == RESP_BOT)
    say(tk, tk->t += between(g, SECOND, 4 * SECOND), "BOT_MSG", NULL);
  else if (tk->who == RESP_AGENT)
    say(tk, tk->t += human_delay(g, tk->sp), "AGENT_MSG",
        json_pack("{s:s, s:b}", "agent_id", tk->agent, "auto_reply", 0));
}

/* 转人工: a buyer unhappy with the bot asks for a human, who answers if one is online. */
static void talk_transfer(talk_t *tk) {
  gen_t *g = tk->g;
  say(tk, tk->t += between(g, 5 * SECOND, 40 * SECOND), "TRANSFER_CLICK", NULL);
  const char *agent = online_agent(g, tk->sp, tk->t);
  if (agent) {
    tk->agent = agent;
    tk->who = RESP_AGENT;
    talk_reply(tk);
  }
}

/* The buyer answers the logistics invitation card @p invitation_id ("<cause>-i0"). */
static void talk_consent(talk_t *tk, long cause) {
  gen_t *g = tk->g;
  char invitation[48];
  bool accepted = chance(g, 0.7);
  snprintf(invitation, sizeof invitation, "e%ld-i0", cause);
  say(tk, tk->t += between(g, 10 * SECOND, 90 * SECOND), "LOGISTICS_CONSENT",
      json_pack("{s:s, s:b}", "invitation_id", invitation, "accepted", accepted));
  for (int m = accepted ? 1 + below(g, 3) : 0; m > 0; m--)
    say(tk, tk->t += between(g, MINUTE, 5 * MINUTE), "LOGISTICS_MSG", NULL);
}

static void talk_round(talk_t *tk, int r) {
  gen_t *g = tk->g;
  tk->t += r == 0 ? between(g, 3 * SECOND, 40 * SECOND) : between(g, 8 * SECOND, 2 * MINUTE);
  const char *intent = r == 0 || chance(g, 0.25) ? tk->intent : NULL;
  const char *order = tk->order && chance(g, r == 0 ? 0.7 : 0.1) ? tk->order->id : NULL;
  long msg =
      say(tk, tk->t, "BUYER_MSG", json_pack("{s:s*, s:s*}", "intent", intent, "order_id", order));
  if (chance(g, 0.2)) /* a second line before anyone answers */
    say(tk, tk->t += between(g, 3 * SECOND, 25 * SECOND), "BUYER_MSG", NULL);
  talk_reply(tk);
  if (r == 0 && tk->who == RESP_BOT && chance(g, 0.25))
    talk_transfer(tk);
  /* LOGI-1: the platform may have invited the courier's agent on this message */
  if (r == 0 && msg >= 0 && tk->who == RESP_AGENT && invitable(tk) && chance(g, 0.5))
    talk_consent(tk, msg);
}

static void talk_query(talk_t *tk) {
  gen_t *g = tk->g;
  json_t *q = json_pack("{s:s}", "agent_id", tk->agent);
  if (tk->query_order) /* now and then a mistyped order number */
    json_object_set_new(q, "order_id", json_string(chance(g, 0.05) ? "o9999999" : tk->order->id));
  else {
    json_object_set_new(q, "region_code", json_string(pick_weighted(g, regions, COUNT(regions))));
    if (chance(g, 0.3)) { /* the agent names couriers, now and then one kefu cannot check */
      const char *other = chance(g, 0.2) ? "EMS" : tk->sp->couriers[1];
      json_object_set_new(q, "couriers", json_pack("[s, s]", tk->sp->couriers[0], other));
    }
    json_object_set_new(q, "list_undeliverable", json_boolean(chance(g, 0.35)));
  }
  say(tk, tk->t += between(g, 10 * SECOND, 60 * SECOND), "DELIVERABILITY_QUERY", q);
}

static void talk_invite(talk_t *tk) {
  gen_t *g = tk->g;
  long invite = say(tk, tk->t += between(g, 20 * SECOND, 90 * SECOND), "MERCHANT_INVITE_LOGISTICS",
                    json_pack("{s:s, s:s}", "agent_id", tk->agent, "order_id", tk->order->id));
  if (invite >= 0)
    talk_consent(tk, invite);
}

static void talk(talk_t *tk) {
  gen_t *g = tk->g;
  talk_open(tk);
  for (int r = 0; r < tk->rounds; r++)
    talk_round(tk, r);
  if (tk->who == RESP_AGENT && (tk->query_region || (tk->query_order && tk->order)))
    talk_query(tk);
  if (tk->who == RESP_AGENT && tk->invite && tk->order && tk->order->npackages == 1)
    talk_invite(tk);
  if (chance(g, 0.75)) /* the rest are closed by the idle timeout */
    say(tk, tk->t += between(g, 30 * SECOND, 8 * MINUTE), "SESSION_CLOSE", NULL);
}

static void talk_init(talk_t *tk, gen_t *g, shop_plan_t *sp, int buyer, int64_t t) {
  memset(tk, 0, sizeof *tk);
  tk->g = g;
  tk->sp = sp;
  tk->buyer_index = buyer;
  snprintf(tk->buyer, sizeof tk->buyer, "b%d", buyer);
  tk->t = t;
  tk->rounds = 1 + below(g, 3);
}

/* ---------------------------------------------------------------- journeys */

/* One of the shop's items, the best sellers most often. */
static const char *shop_item(gen_t *g, const shop_plan_t *sp, char *out, size_t outlen) {
  snprintf(out, outlen, "i%d", 1 + skewed(g, sp->nitems));
  return out;
}

static void journey_presale(gen_t *g, shop_plan_t *sp, int buyer, int64_t t) {
  talk_t tk;
  char item[16];
  talk_init(&tk, g, sp, buyer, t);
  tk.item = shop_item(g, sp, item, sizeof item);
  tk.intent = chance(g, 0.7) ? pick(g, intents_presale, COUNT(intents_presale)) : NULL;
  tk.rounds = 1 + below(g, 4);
  talk(&tk);
  if (chance(g, 0.35)) {
    order_t o;
    order_plan_t p;
    order_new(g, sp, tk.buyer, item, &o);
    plan_purchase(g, &o, &p, tk.t + between(g, 2 * MINUTE, 20 * MINUTE));
    order_emit(g, sp, &o, &p);
  }
}

static void journey_order_talk(gen_t *g, shop_plan_t *sp, int buyer, int64_t t,
                               order_stage_t stage) {
  static const char *const *by_stage[] = {intents_late, intents_transit, intents_stalled,
                                          intents_signed, intents_after_sale};
  static const int by_stage_n[] = {COUNT(intents_late), COUNT(intents_transit),
                                   COUNT(intents_stalled), COUNT(intents_signed),
                                   COUNT(intents_after_sale)};
  talk_t tk;
  order_t o;
  order_plan_t p;
  char item[16];
  talk_init(&tk, g, sp, buyer, t);
  order_new(g, sp, tk.buyer, shop_item(g, sp, item, sizeof item), &o);
  plan_before(g, &o, &p, stage, t);
  order_emit(g, sp, &o, &p);
  tk.order = &o;
  tk.stage = stage;
  tk.item = chance(g, 0.5) ? o.item : NULL;
  tk.intent = pick(g, by_stage[stage], by_stage_n[stage]);
  if (stage == STAGE_AFTER_SALE && (strcmp(p.after_sale_reason, "NOT_RECEIVED") == 0 ||
                                    strcmp(p.after_sale_reason, "LOST") == 0))
    tk.intent = "LOGISTICS_NOT_RECEIVED";
  tk.query_order = chance(g, 0.12);
  tk.invite = stage == STAGE_IN_TRANSIT && chance(g, 0.08);
  talk(&tk);
}

static void journey_inquiry(gen_t *g, shop_plan_t *sp, int buyer, int64_t t) {
  static const weighted_t stages[] = {
      {"late", 12}, {"transit", 45}, {"stalled", 13}, {"signed", 15}};
  const char *s = pick_weighted(g, stages, COUNT(stages));
  order_stage_t stage = s[0] == 'l'   ? STAGE_PAID_LATE
                        : s[0] == 't' ? STAGE_IN_TRANSIT
                        : s[1] == 't' ? STAGE_STALLED
                                      : STAGE_SIGNED;
  journey_order_talk(g, sp, buyer, t, stage);
}

static void journey_small_talk(gen_t *g, shop_plan_t *sp, int buyer, int64_t t) {
  talk_t tk;
  char item[16];
  talk_init(&tk, g, sp, buyer, t);
  tk.item = chance(g, 0.4) ? shop_item(g, sp, item, sizeof item) : NULL;
  tk.rounds = 1 + below(g, 2);
  talk(&tk);
}

/* "Do you ship to ...?" — the agent checks with a deliverability query by region. */
static void journey_address(gen_t *g, shop_plan_t *sp, int buyer, int64_t t) {
  talk_t tk;
  talk_init(&tk, g, sp, buyer, t);
  tk.intent = "SHIPPING_ADDRESS_CONTROL";
  tk.query_region = true;
  talk(&tk);
}

static void journey_silent_order(gen_t *g, shop_plan_t *sp, int buyer, int64_t t) {
  order_t o;
  order_plan_t p;
  char name[16], item[16];
  snprintf(name, sizeof name, "b%d", buyer);
  order_new(g, sp, name, shop_item(g, sp, item, sizeof item), &o);
  plan_purchase(g, &o, &p, t);
  order_emit(g, sp, &o, &p);
}

static shop_plan_t *pick_shop(gen_t *g) {
  if (g->o->huge_agents > 0 && chance(g, g->o->huge_share))
    return &g->shops[g->o->shops];
  double u = uniform(g), acc = 0;
  for (int k = 0; k < g->o->shops - 1; k++)
    if (u < (acc += g->shops[k].share))
      return &g->shops[k];
  return &g->shops[g->o->shops - 1];
}

/* A start time in the window, following the day curve of the shop's local hours
 * (rejection sampling), and early enough that the conversation fits. */
static int64_t day_time(gen_t *g, const shop_plan_t *sp) {
  int64_t lo = g->o->start_ts, hi = g->end - 10 * MINUTE;
  for (;;) {
    int64_t t = between(g, lo, hi > lo ? hi : lo + 1);
    if (uniform(g) * 10.0 < hour_weight[local_hour(sp, t)])
      return t;
  }
}

static void journey(gen_t *g) {
  shop_plan_t *sp = pick_shop(g);
  int64_t t = day_time(g, sp);
  int buyer = skewed(g, sp->nbuyers);
  double u = uniform(g);
  if (u < 0.36)
    journey_presale(g, sp, buyer, t);
  else if (u < 0.58)
    journey_inquiry(g, sp, buyer, t);
  else if (u < 0.66)
    journey_order_talk(g, sp, buyer, t, STAGE_AFTER_SALE);
  else if (u < 0.78)
    journey_small_talk(g, sp, buyer, t);
  else if (u < 0.82)
    journey_address(g, sp, buyer, t);
  else
    journey_silent_order(g, sp, buyer, t);
}

/* ---------------------------------------------------------------- the rest */

/* A handful of courier-status records (SPEC §2.5): ZTO under control in Guangdong
 * except Shenzhen, YTO stopped in Guangzhou Tianhe, a few hours of JT control in
 * Shanghai, YUNDA in Chengdu after a flood, an STO outlet in Beijing reopening. */
static void courier_status(gen_t *g) {
  int64_t s = g->o->start_ts;
  static const struct {
    const char *courier, *region, *reason;
    int64_t from, until; /* relative to the window's start; until 0: open */
  } rows[] = {
      {"ZTO", "44", "TEMPORARY_CONTROL", -DAY, 0},
      {"ZTO", "4403", NULL, -DAY, 0},
      {"YTO", "440106", "EPIDEMIC", -DAY, 0},
      {"JT", "31", "TEMPORARY_CONTROL", 4 * HOUR, 10 * HOUR},
      {"YUNDA", "510107", "NATURAL_DISASTER", 6 * HOUR, 0},
      {"STO", "110105", "OUTLET_CLOSED", -2 * DAY, 2 * HOUR},
  };
  for (int i = 0; i < COUNT(rows); i++) {
    json_t *r = json_pack("{s:s, s:s, s:b, s:s?, s:I}", "courier", rows[i].courier, "region_code",
                          rows[i].region, "deliverable", rows[i].reason == NULL, "reason",
                          rows[i].reason, "valid_from", (json_int_t)(s + rows[i].from));
    if (rows[i].until)
      json_object_set_new(r, "valid_until", json_integer(s + rows[i].until));
    push(g, INT64_MIN, KEFU_T_COURIER_STATUS, r);
  }
}

/* One defect per copy, each a reason SPEC §6 sends to the DLQ: a buyer id with a space,
 * an event id over 56 characters, a ts before 2000, an AGENT_MSG without its agent, and
 * an order id that tries to leave its Redis key. */
static void bad_record(gen_t *g, int kind) {
  const item_t *src = NULL;
  for (int tries = 0; tries < 1000 && !src; tries++) {
    const item_t *it = &g->items[below(g, (int)g->n)];
    if (it->topic == KEFU_T_CHAT)
      src = it;
  }
  if (!src)
    return;
  json_t *r = json_deep_copy(src->rec);
  char buf[96];
  snprintf(buf, sizeof buf, "e%ld", g->next_event++);
  json_object_set_new(r, "event_id", json_string(buf));
  switch (kind % 5) {
  case 0:
    snprintf(buf, sizeof buf, "%s x", json_string_value(json_object_get(r, "buyer_id")));
    json_object_set_new(r, "buyer_id", json_string(buf));
    break;
  case 1:
    snprintf(buf, sizeof buf, "e%ld-%s", g->next_event - 1,
             "resent-by-a-client-that-appends-its-own-retry-suffix");
    json_object_set_new(r, "event_id", json_string(buf));
    break;
  case 2: json_object_set_new(r, "ts", json_integer(TS_2000 - SECOND)); break;
  case 3:
    json_object_set_new(r, "type", json_string("AGENT_MSG"));
    json_object_del(r, "agent_id");
    break;
  default: json_object_set_new(r, "order_id", json_string("../../orders")); break;
  }
  push(g, json_integer_value(json_object_get(r, "ts")), KEFU_T_CHAT, r);
}

static int by_ts(const void *a, const void *b) {
  const item_t *x = a, *y = b;
  if (x->ts != y->ts)
    return x->ts < y->ts ? -1 : 1;
  return (x->seq > y->seq) - (x->seq < y->seq);
}

static int check_opts(const kefu_traffic_opts_t *o, char *errstr, size_t errlen) {
  const char *bad = o->shops < 1 || o->shops > 10000                         ? "shops (1..10000)"
                    : o->buyers_per_shop < 1 || o->buyers_per_shop > 1000000 ? "buyers per shop"
                    : o->agents_per_shop < 1 || o->agents_per_shop > 500     ? "agents per shop"
                    : o->duration_ms < HOUR || o->duration_ms > 366 * DAY    ? "duration"
                    : o->start_ts < TS_2000 + HISTORY_MS                     ? "start"
                    : o->events < 1                                          ? "events"
                    : !(o->bad_fraction >= 0 && o->bad_fraction <= 0.5)      ? "bad fraction"
                    : o->huge_agents < 0 || o->huge_agents > 100000          ? "huge shop agents"
                    : o->huge_agents > 0 && (o->huge_buyers < 10 || o->huge_buyers > 10000000)
                        ? "huge shop buyers"
                    : o->huge_agents > 0 && !(o->huge_share >= 0 && o->huge_share <= 1)
                        ? "huge shop share"
                        : NULL;
  if (bad)
    snprintf(errstr, errlen, "traffic: %s out of range", bad);
  return bad ? -1 : 0;
}

static void gen_free(gen_t *g) {
  for (int k = 0; g->shops && k < g->nshops; k++) {
    for (int a = 0; a < g->shops[k].nagents; a++)
      free(g->shops[k].agents[a].online);
    free(g->shops[k].agents);
  }
  free(g->shops);
  free(g->items);
}

void kefu_traffic_defaults(kefu_traffic_opts_t *o) {
  *o = (kefu_traffic_opts_t){.seed = 1,
                             .shops = 20,
                             .buyers_per_shop = 200,
                             .agents_per_shop = 4,
                             .start_ts = INT64_C(1773014400000),
                             .duration_ms = DAY,
                             .events = 20000,
                             .bad_fraction = 0.001};
}

int kefu_traffic_generate(const kefu_traffic_opts_t *o, json_t *out, char *errstr, size_t errlen) {
  if (check_opts(o, errstr, errlen))
    return -1;
  gen_t g = {.o = o, .rng = mix64(o->seed), .end = o->start_ts + o->duration_ms};
  courier_status(&g);
  shops_setup(&g);
  /* With a huge shop, events counts what comes after the shops' setup, so that runs with
   * different staff sizes get the same amount of conversation and order traffic. */
  size_t budget = (size_t)o->events + (o->huge_agents > 0 ? g.n : 0);
  while (g.n < budget)
    journey(&g);
  size_t valid = g.n;
  long bad = lround(o->bad_fraction * (double)valid);
  if (bad == 0 && o->bad_fraction > 0)
    bad = 1;
  for (long b = 0; b < bad; b++)
    bad_record(&g, (int)b);
  qsort(g.items, g.n, sizeof *g.items, by_ts);
  for (size_t i = 0; i < g.n; i++)
    json_array_append_new(out, json_pack("[i, o]", (int)g.items[i].topic, g.items[i].rec));
  int n = (int)g.n;
  gen_free(&g);
  return n;
}
