#include "sim/traffic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/topics.h"

#define MINUTE INT64_C(60000)
#define HOUR (60 * MINUTE)

typedef struct gen {
  const kefu_traffic_opts_t *o;
  uint64_t state;
  json_t *out;
  long next_id;
} gen_t;

/* splitmix64: small, fast, and the same sequence everywhere. */
static uint64_t next_u64(gen_t *g) {
  uint64_t z = (g->state += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

static double uniform(gen_t *g) {
  return (double)(next_u64(g) >> 11) / 9007199254740992.0;
}
static int below(gen_t *g, int n) {
  return (int)(uniform(g) * n);
}
static bool chance(gen_t *g, double p) {
  return uniform(g) < p;
}

static const char *pick(gen_t *g, const char *const *items, int n) {
  return items[below(g, n)];
}

static const char *const couriers[] = {"ZTO", "STO", "YUNDA", "YTO", "JT", "EMS", "CHINA_POST"};
static const char *const regions[] = {"440305", "440106", "310115", "110105", "510107", "330106"};
static const char *const crowds[] = {"new", "old", "vip", "student"};
static const char *const intents[] = {"PRESALE_SIZE",
                                      "AFTERSALE_RETURN",
                                      "LOGISTICS_NOT_RECEIVED",
                                      "LOGISTICS_URGE_DELIVERY",
                                      "LOGISTICS_DELIVERY_TIME",
                                      "PRICE_QUESTION"};
static const char *const states[] = {"NO_ACTIVE_ORDER", "UNPAID",    "PAID_NOT_SHIPPED",
                                     "SHIPPED",         "COMPLETED", "AFTER_SALE"};

static void emit(gen_t *g, kefu_topic_t topic, json_t *rec) {
  char id[32];
  if (topic != KEFU_T_COURIER_STATUS) {
    snprintf(id, sizeof id, "e%ld", g->next_id++);
    json_object_set_new(rec, "event_id", json_string(id));
  }
  json_array_append_new(g->out, json_pack("[i, o]", (int)topic, rec));
}

static json_t *base(const char *shop, int64_t ts, const char *type) {
  json_t *r = json_pack("{s:s, s:I}", "shop_id", shop, "ts", (json_int_t)ts);
  if (type)
    json_object_set_new(r, "type", json_string(type));
  return r;
}

static json_t *string_sample(gen_t *g, const char *const *items, int n, int max) {
  json_t *a = json_array();
  for (int i = 0; i < n && (int)json_array_size(a) < max; i++)
    if (chance(g, 0.35))
      json_array_append_new(a, json_string(items[i]));
  return a;
}

static void shop_config(gen_t *g, const char *shop, int64_t ts) {
  json_t *groups = json_array();
  int ngroups = below(g, 4);
  for (int i = 0; i < ngroups; i++) {
    char gid[16], item[16];
    snprintf(gid, sizeof gid, "g%d", i);
    snprintf(item, sizeof item, "i%d", below(g, 5));
    json_t *grp = json_pack("{s:s, s:b, s:s}", "group_id", gid, "bot_enabled", chance(g, 0.25),
                            "strategy", chance(g, 0.3) ? "CONVERSION" : "EFFICIENCY");
    if (chance(g, 0.4))
      json_object_set_new(grp, "crowd_tags", string_sample(g, crowds, 4, 2));
    if (chance(g, 0.5))
      json_object_set_new(grp, "item_ids", json_pack("[s]", item));
    if (chance(g, 0.3))
      json_object_set_new(grp, "order_states", string_sample(g, states, 6, 3));
    json_array_append_new(groups, grp);
  }
  json_t *r = base(shop, ts, NULL);
  json_object_set_new(r, "groups", groups);
  json_object_set_new(r, "bot_priority", json_boolean(chance(g, 0.15)));
  json_object_set_new(r, "exclusive_direct", json_boolean(chance(g, 0.3)));
  json_object_set_new(r, "queue_enabled", json_boolean(chance(g, 0.3)));
  json_object_set_new(r, "queue_max_wait_ms", json_integer(5 * MINUTE));
  json_object_set_new(r, "transfer_entry_exposure_pct", json_integer(below(g, 101)));
  const char *first = pick(g, couriers, 4);
  json_object_set_new(r, "couriers",
                      strcmp(first, "ZTO") == 0 ? json_pack("[s]", "ZTO")
                                                : json_pack("[s, s]", first, "ZTO"));
  emit(g, KEFU_T_SHOP_CONFIG, r);
}

static void agents(gen_t *g, const char *shop, int n, int ngroups) {
  const kefu_traffic_opts_t *o = g->o;
  static const char *const presences[] = {"ONLINE", "ONLINE", "ONLINE", "SUSPENDED", "OFFLINE"};
  for (int a = 0; a < n; a++) {
    char id[16], grp[16];
    snprintf(id, sizeof id, "a%d", a);
    snprintf(grp, sizeof grp, "g%d", ngroups ? below(g, ngroups) : 0);
    json_t *p = base(shop, o->start_ts, "PROFILE");
    json_object_set_new(p, "agent_id", json_string(id));
    json_object_set_new(p, "level", json_integer(1 + below(g, 5)));
    json_object_set_new(p, "capacity", json_integer(2 + below(g, 6)));
    json_object_set_new(p, "groups", ngroups ? json_pack("[s]", grp) : json_array());
    emit(g, KEFU_T_AGENT, p);
    /* presence through the day: a change every one to four hours */
    for (int64_t ts = o->start_ts + 1000; ts < o->start_ts + o->duration_ms;
         ts += HOUR + below(g, (int)(3 * HOUR))) {
      json_t *r = base(shop, ts, "PRESENCE");
      json_object_set_new(r, "agent_id", json_string(id));
      json_object_set_new(r, "presence",
                          json_string(ts == o->start_ts + 1000 ? "ONLINE" : pick(g, presences, 5)));
      emit(g, KEFU_T_AGENT, r);
    }
  }
}

static void order_life(gen_t *g, const char *shop, const char *buyer, int n, int64_t ts) {
  char oid[48], tn[64];
  snprintf(oid, sizeof oid, "o%s-%d", buyer, n);
  snprintf(tn, sizeof tn, "%s-p0", oid);
  const char *region = pick(g, regions, 6);
  static const char *const steps[] = {"CREATED",          "PAID",   "SHIPPED",
                                      "LOGISTICS_UPDATE", "SIGNED", "COMPLETED"};
  int last = 1 + below(g, 6);
  for (int s = 0; s < last; s++, ts += 20 * MINUTE + below(g, (int)(3 * HOUR))) {
    json_t *r = base(shop, ts, steps[s]);
    json_object_set_new(r, "buyer_id", json_string(buyer));
    json_object_set_new(r, "order_id", json_string(oid));
    json_object_set_new(r, "region_code", json_string(region));
    if (s == 0)
      json_object_set_new(r, "item_ids", json_pack("[s]", "i1"));
    if (s == 1)
      json_object_set_new(r, "amount_cents", json_integer(1000 + below(g, 50000)));
    if (s == 2)
      json_object_set_new(
          r, "packages",
          json_pack("[{s:s, s:s}]", "tracking_no", tn, "courier", pick(g, couriers, 7)));
    emit(g, KEFU_T_ORDER, r);
  }
}

static void chat(gen_t *g, const char *shop, const char *buyer, int64_t ts, const char *type,
                 json_t *extra) {
  json_t *r = base(shop, ts, type);
  json_object_set_new(r, "buyer_id", json_string(buyer));
  if (extra)
    json_object_update(r, extra);
  json_decref(extra);
  emit(g, KEFU_T_CHAT, r);
}

/* One conversation: open, a few rounds of message and reply, maybe a transfer click,
 * usually a close. Most replies come within three minutes; some do not. */
static int64_t conversation(gen_t *g, const char *shop, const char *buyer, int agents, int64_t ts) {
  char item[16], agent[16];
  snprintf(item, sizeof item, "i%d", below(g, 5));
  chat(g, shop, buyer, ts, "CHAT_OPEN",
       json_pack("{s:o, s:s}", "crowd_tags", string_sample(g, crowds, 4, 1), "item_id", item));
  int rounds = 1 + below(g, 4);
  for (int r = 0; r < rounds; r++) {
    ts += 5000 + below(g, 60000);
    json_t *msg = json_object();
    if (chance(g, 0.4))
      json_object_set_new(msg, "intent", json_string(pick(g, intents, 6)));
    chat(g, shop, buyer, ts, "BUYER_MSG", msg);
    ts += chance(g, 0.85) ? 2000 + below(g, 170000) : 181000 + below(g, 300000);
    snprintf(agent, sizeof agent, "a%d", below(g, agents));
    if (chance(g, 0.3))
      chat(g, shop, buyer, ts, "BOT_MSG", NULL);
    else
      chat(g, shop, buyer, ts, "AGENT_MSG",
           json_pack("{s:s, s:b}", "agent_id", agent, "auto_reply", chance(g, 0.1)));
    if (chance(g, 0.08))
      chat(g, shop, buyer, ts + 3000, "TRANSFER_CLICK", NULL);
  }
  if (chance(g, 0.05))
    chat(g, shop, buyer, ts + 1000, "DELIVERABILITY_QUERY",
         json_pack("{s:s, s:s, s:b}", "agent_id", "a0", "region_code", pick(g, regions, 6),
                   "list_undeliverable", chance(g, 0.5)));
  if (chance(g, 0.8))
    chat(g, shop, buyer, ts + 30000 + below(g, 300000), "SESSION_CLOSE", NULL);
  return ts;
}

static void bad_record(gen_t *g, const char *shop, int64_t ts) {
  /* a buyer id with a space: valid Avro, invalid for kefu (SPEC §1.2) */
  chat(g, shop, "bad buyer", ts, "BUYER_MSG", NULL);
}

static void courier_status(gen_t *g) {
  int64_t from = g->o->start_ts - 24 * HOUR;
  emit(g, KEFU_T_COURIER_STATUS,
       json_pack("{s:s, s:s, s:b, s:s, s:I}", "courier", "ZTO", "region_code", "44", "deliverable",
                 0, "reason", "TEMPORARY_CONTROL", "valid_from", (json_int_t)from));
  emit(g, KEFU_T_COURIER_STATUS,
       json_pack("{s:s, s:s, s:b, s:n, s:I}", "courier", "ZTO", "region_code", "4403",
                 "deliverable", 1, "reason", "valid_from", (json_int_t)from));
  emit(g, KEFU_T_COURIER_STATUS,
       json_pack("{s:s, s:s, s:b, s:s, s:I}", "courier", "YTO", "region_code", "440106",
                 "deliverable", 0, "reason", "EPIDEMIC", "valid_from", (json_int_t)from));
}

/* By ts, then by generation order (each item carries its index while sorting), so the
 * order does not depend on the qsort implementation. */
static int by_ts(const void *a, const void *b) {
  const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
  json_int_t tx = json_integer_value(json_object_get(json_array_get(x, 1), "ts"));
  json_int_t ty = json_integer_value(json_object_get(json_array_get(y, 1), "ts"));
  if (tx != ty)
    return tx < ty ? -1 : 1;
  json_int_t ix = json_integer_value(json_array_get(x, 2)),
             iy = json_integer_value(json_array_get(y, 2));
  return ix < iy ? -1 : ix > iy;
}

static void sort_by_ts(json_t *out, size_t from) {
  size_t n = json_array_size(out) - from;
  json_t **items = malloc((n ? n : 1) * sizeof *items);
  for (size_t i = 0; i < n; i++) {
    items[i] = json_incref(json_array_get(out, from + i));
    json_array_append_new(items[i], json_integer((json_int_t)i));
  }
  qsort(items, n, sizeof *items, by_ts);
  for (size_t i = 0; i < n; i++) {
    json_array_remove(items[i], 2);
    json_array_set_new(out, from + i, items[i]);
  }
  free(items);
}

void kefu_traffic_defaults(kefu_traffic_opts_t *o) {
  *o = (kefu_traffic_opts_t){.seed = 1,
                             .shops = 20,
                             .agents_per_shop = 4,
                             .buyers_per_shop = 200,
                             .start_ts = INT64_C(1773014400000),
                             .duration_ms = 24 * HOUR,
                             .events = 20000,
                             .bad_fraction = 0.001};
}

void kefu_traffic_generate(const kefu_traffic_opts_t *o, json_t *out) {
  gen_t g = {o, o->seed, out, 0};
  char shop[32], buyer[32];
  courier_status(&g);
  size_t first_keyed = json_array_size(out);
  double total_weight = 0;
  for (int s = 0; s < o->shops; s++) {
    total_weight += 1.0 / (s + 1);
    snprintf(shop, sizeof shop, "shop%d", s);
    shop_config(&g, shop, o->start_ts);
    agents(&g, shop, o->agents_per_shop, 3);
  }
  for (long n = 0; (int)json_array_size(out) < o->events; n++) {
    /* Zipf-like: shop s is chosen with weight 1/(s+1) */
    double u = uniform(&g) * total_weight, acc = 0;
    int s = 0;
    for (; s < o->shops - 1; s++) {
      acc += 1.0 / (s + 1);
      if (u < acc)
        break;
    }
    snprintf(shop, sizeof shop, "shop%d", s);
    snprintf(buyer, sizeof buyer, "b%d", below(&g, o->buyers_per_shop));
    int64_t ts = o->start_ts + (int64_t)(uniform(&g) * (double)(o->duration_ms - HOUR));
    if (chance(&g, 0.3))
      order_life(&g, shop, buyer, (int)n, ts - 2 * HOUR);
    conversation(&g, shop, buyer, o->agents_per_shop, ts);
    if (chance(&g, o->bad_fraction * 8)) /* a conversation is about eight records */
      bad_record(&g, shop, ts);
  }
  sort_by_ts(out, first_keyed);
}
