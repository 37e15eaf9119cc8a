/* The binary fast path (engine/event_decode.c) against the slow path (kefu_codec_decode +
 * kefu_event_from_json): random valid and invalid records of the four keyed input topics,
 * encoded with the real codec, must give the same accept/reject decision, the same DLQ
 * reason and the same typed event field by field; every truncation and random mutation
 * of their frames, and random bytes, must be rejected by both or give the same result,
 * and never crash or over-read (run it under valgrind/ASan to see the latter). Also the
 * time per record of each path on a typical chat event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/enums.h"
#include "engine/event.h"
#include "io/codec.h"
#include "io/schemas.h"
#include "io/topics.h"

/* KEFU_TEST_QUICK=1 (scripts/memcheck.sh: valgrind runs these 20-50 times slower):
 * a hundredth of the iterations. */
static int scaled(int n) {
  const char *q = getenv("KEFU_TEST_QUICK");
  return q && *q && *q != '0' ? (n + 99) / 100 : n;
}

#define NOW INT64_C(1773068400000)

static kefu_schemas_t *schemas;
static kefu_codec_t *codec;
static int32_t fast_id[4];
static uint64_t rng = 88172645463325252ull;

static uint32_t rnd(uint32_t n) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng % n);
}

static int setup(void **state) {
  char err[256];
  (void)state;
  schemas = kefu_schemas_new(err, sizeof err);
  if (!schemas)
    return -1;
  codec = kefu_codec_new(schemas);
  for (int t = 0; t < 4; t++)
    fast_id[t] = kefu_event_fast_id(schemas, (kefu_topic_t)t);
  return codec ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  kefu_codec_destroy(codec);
  kefu_schemas_destroy(schemas);
  return 0;
}

/* ---------------------------------------------------------------- random records */

static json_t *rstr(void) {
  static const char *const pool[] = {"b1",  "a-1.x_2", "o.9",       "s1", "g1", "vip",
                                     "ZTO", "",        "has space", "é",  "44", "440305"};
  switch (rnd(16)) {
  case 0: return json_stringn("a\0b", 3);
  case 1: return json_string("x234567890123456789012345678901234567890123456789012345678901234");
  case 2: return json_string("x2345678901234567890123456789012345678901234567890123456");
  case 3: return json_string("x23456789012345678901234567890123456789012345678901234567");
  default: return json_string(pool[rnd(sizeof pool / sizeof *pool)]);
  }
}

/* Mostly a valid id, sometimes anything of the pool. */
static json_t *rid(const char *good) {
  return rnd(6) ? json_string(good) : rstr();
}

static void maybe(json_t *o, const char *name, json_t *v) {
  if (rnd(3))
    json_object_set_new(o, name, v);
  else
    json_decref(v);
}

static json_t *rstrv(void) {
  json_t *a = json_array();
  for (uint32_t i = rnd(4); i > 0; i--)
    json_array_append_new(a, rnd(3) ? json_string(i & 1 ? "i1" : "vip") : rstr());
  return a;
}

static json_t *rregion(void) {
  static const char *const pool[] = {"44", "4403", "440305", "44030", "ab", "", "4403050"};
  return json_string(pool[rnd(7)]);
}

static json_t *rpick(const char *const *names) {
  int n = 0;
  while (names[n])
    n++;
  return json_string(names[rnd((uint32_t)n)]);
}

static void common(json_t *o, const char **key) {
  json_object_set_new(o, "event_id", rid("e-1.x_2"));
  json_object_set_new(o, "shop_id", rid("s1"));
  static const int64_t ts[] = {
      NOW, NOW - 1000, 946684800000, 946684799999, NOW + 86400000, NOW + 86400001, -5};
  json_object_set_new(o, "ts", json_integer(rnd(3) ? NOW : ts[rnd(7)]));
  *key = rnd(12) ? json_string_value(json_object_get(o, "shop_id")) : "other";
}

static json_t *gen(kefu_topic_t t, const char **key) {
  json_t *o = json_object();
  common(o, key);
  switch (t) {
  case KEFU_T_CHAT:
    json_object_set_new(o, "type", rpick(kefu_chat_type_names));
    maybe(o, "buyer_id", rid("b1"));
    maybe(o, "agent_id", rid("a1"));
    maybe(o, "item_id", rid("i1"));
    maybe(o, "order_id", rid("o1"));
    maybe(o, "crowd_tags", rstrv());
    maybe(o, "intent", rstr());
    maybe(o, "auto_reply", json_boolean(rnd(2)));
    maybe(o, "invitation_id", rid("inv1"));
    maybe(o, "accepted", json_boolean(rnd(2)));
    maybe(o, "region_code", rregion());
    maybe(o, "couriers", rstrv());
    maybe(o, "list_undeliverable", json_boolean(rnd(2)));
    break;
  case KEFU_T_ORDER: {
    static const int64_t amounts[] = {0, 100, INT64_C(1000000000000000), INT64_C(1000000000000001),
                                      -1};
    json_object_set_new(o, "type", rpick(kefu_order_type_names));
    json_object_set_new(o, "buyer_id", rid("b1"));
    json_object_set_new(o, "order_id", rid("o1"));
    json_t *pk = json_array();
    for (uint32_t i = rnd(3); i > 0; i--)
      json_array_append_new(pk, json_pack("{s:o,s:o}", "tracking_no", rstr(), "courier", rstr()));
    maybe(o, "packages", pk);
    maybe(o, "region_code", rregion());
    maybe(o, "item_ids", rstrv());
    maybe(o, "amount_cents", json_integer(amounts[rnd(5)]));
    maybe(o, "after_sale_reason", rstr());
    break;
  }
  case KEFU_T_AGENT: {
    static const int levels[] = {1, 3, 5, 0, 6, -1}, caps[] = {0, 20, 100000, 100001, -1};
    static const double rates[] = {0, 0.5, 1, 1.5, -0.1};
    json_object_set_new(o, "type", rpick(kefu_agent_type_names));
    json_object_set_new(o, "agent_id", rid("a1"));
    maybe(o, "presence", rpick(kefu_presence_names));
    maybe(o, "level", json_integer(levels[rnd(6)]));
    maybe(o, "groups", rstrv());
    maybe(o, "capacity", json_integer(caps[rnd(5)]));
    maybe(o, "account_kind", rpick(kefu_account_kind_names));
    maybe(o, "conversion_rate", json_real(rates[rnd(5)]));
    maybe(o, "buyer_id", rid("b1"));
    break;
  }
  default: {
    static const int pct[] = {0, 50, 100, -1, 101}, utc[] = {480, -720, 840, -721, 841};
    static const int64_t waits[] = {600000, 0, INT64_C(2592000000), INT64_C(2592000001), -1};
    maybe(o, "bot_priority", json_boolean(rnd(2)));
    maybe(o, "exclusive_direct", json_boolean(rnd(2)));
    maybe(o, "leave_message_target", rpick(kefu_leave_target_names));
    maybe(o, "queue_enabled", json_boolean(rnd(2)));
    maybe(o, "queue_max_wait_ms", json_integer(waits[rnd(5)]));
    maybe(o, "logistics_enabled", json_boolean(rnd(2)));
    maybe(o, "merchant_invite_enabled", json_boolean(rnd(2)));
    maybe(o, "couriers", rstrv());
    maybe(o, "transfer_entry_exposure_pct", json_integer(pct[rnd(5)]));
    maybe(o, "response_rate_assessed", json_boolean(rnd(2)));
    maybe(o, "utc_offset_minutes", json_integer(utc[rnd(5)]));
    json_t *gs = json_array();
    for (uint32_t i = rnd(4); i > 0; i--) {
      json_t *g = json_object();
      json_object_set_new(g, "group_id", rid("g1"));
      maybe(g, "bot_enabled", json_boolean(rnd(2)));
      maybe(g, "strategy", rpick(kefu_strategy_names));
      maybe(g, "crowd_tags", rstrv());
      maybe(g, "item_ids", rstrv());
      maybe(g, "intents", rstrv());
      json_t *st = json_array();
      for (uint32_t k = rnd(4); k > 0; k--)
        json_array_append_new(st, rpick(kefu_order_state_names));
      maybe(g, "order_states", st);
      json_array_append_new(gs, g);
    }
    maybe(o, "groups", gs);
    break;
  }
  }
  return o;
}

/* ---------------------------------------------------------------- comparing */

static char what[4096]; /* the record, for failure messages */

static void str_eq(const char *field, const char *a, const char *b) {
  if (!a != !b || (a && strcmp(a, b) != 0))
    fail_msg("%s: slow '%s', fast '%s' in %s", field, a ? a : "(null)", b ? b : "(null)", what);
}

static void strv_eq(const char *field, const kefu_strv_t *a, const kefu_strv_t *b) {
  if (a->n != b->n)
    fail_msg("%s: %u vs %u items in %s", field, a->n, b->n, what);
  for (uint32_t i = 0; i < a->n; i++)
    str_eq(field, a->v[i], b->v[i]);
}

#define NUM_EQ(f)                                                                                  \
  do {                                                                                             \
    if (a->f != b->f)                                                                              \
      fail_msg("%s: slow %g, fast %g in %s", #f, (double)a->f, (double)b->f, what);                \
  } while (0)

static void event_eq(const kefu_event_t *a, const kefu_event_t *b) {
  NUM_EQ(source);
  NUM_EQ(type);
  str_eq("event_id", a->event_id, b->event_id);
  str_eq("shop_id", a->shop_id, b->shop_id);
  NUM_EQ(ts);
  str_eq("buyer_id", a->buyer_id, b->buyer_id);
  str_eq("agent_id", a->agent_id, b->agent_id);
  str_eq("order_id", a->order_id, b->order_id);
  str_eq("item_id", a->chat.item_id, b->chat.item_id);
  str_eq("intent", a->chat.intent, b->chat.intent);
  str_eq("invitation_id", a->chat.invitation_id, b->chat.invitation_id);
  str_eq("chat.region_code", a->chat.region_code, b->chat.region_code);
  strv_eq("crowd_tags", &a->chat.crowd_tags, &b->chat.crowd_tags);
  strv_eq("chat.couriers", &a->chat.couriers, &b->chat.couriers);
  NUM_EQ(chat.auto_reply);
  NUM_EQ(chat.accepted);
  NUM_EQ(chat.list_undeliverable);
  NUM_EQ(order.npackages);
  for (uint32_t i = 0; i < a->order.npackages; i++) {
    str_eq("tracking_no", a->order.packages[i].tracking_no, b->order.packages[i].tracking_no);
    str_eq("courier", a->order.packages[i].courier, b->order.packages[i].courier);
  }
  str_eq("order.region_code", a->order.region_code, b->order.region_code);
  strv_eq("order.item_ids", &a->order.item_ids, &b->order.item_ids);
  NUM_EQ(order.has_amount);
  NUM_EQ(order.amount_cents);
  str_eq("after_sale_reason", a->order.after_sale_reason, b->order.after_sale_reason);
  NUM_EQ(agent.has_presence);
  NUM_EQ(agent.presence);
  NUM_EQ(agent.level);
  NUM_EQ(agent.capacity);
  strv_eq("agent.groups", &a->agent.groups, &b->agent.groups);
  NUM_EQ(agent.account_kind);
  NUM_EQ(agent.has_conversion_rate);
  NUM_EQ(agent.conversion_rate);
  NUM_EQ(config_reset);
  const kefu_shop_config_t *x = &a->config, *y = &b->config;
  if (x->bot_priority != y->bot_priority || x->exclusive_direct != y->exclusive_direct ||
      x->leave_message_target != y->leave_message_target || x->queue_enabled != y->queue_enabled ||
      x->queue_max_wait_ms != y->queue_max_wait_ms ||
      x->logistics_enabled != y->logistics_enabled ||
      x->merchant_invite_enabled != y->merchant_invite_enabled ||
      x->transfer_entry_exposure_pct != y->transfer_entry_exposure_pct ||
      x->response_rate_assessed != y->response_rate_assessed ||
      x->utc_offset_minutes != y->utc_offset_minutes || x->ngroups != y->ngroups)
    fail_msg("config differs in %s", what);
  strv_eq("config.couriers", &x->couriers, &y->couriers);
  for (uint32_t i = 0; i < x->ngroups; i++) {
    const kefu_group_t *g = &x->groups[i], *h = &y->groups[i];
    str_eq("group_id", g->group_id, h->group_id);
    if (g->bot_enabled != h->bot_enabled || g->strategy != h->strategy ||
        g->order_states != h->order_states)
      fail_msg("group %u differs in %s", i, what);
    strv_eq("groups.crowd_tags", &g->crowd_tags, &h->crowd_tags);
    strv_eq("groups.item_ids", &g->item_ids, &h->item_ids);
    strv_eq("groups.intents", &g->intents, &h->intents);
  }
}

typedef struct counts {
  size_t accepted, rejected, decode_errors, fast_skipped;
} counts_t;

/* Both paths on one frame; @p must_apply: the fast path must not decline it. */
static void compare(kefu_topic_t t, const uint8_t *buf, size_t len, const char *key,
                    bool must_apply, counts_t *n) {
  char e_slow[256] = "", e_fast[256] = "";
  kefu_event_t slow, fast;
  json_t *rec = NULL;
  int rs, rf;
  memset(&slow, 0, sizeof slow);
  if (kefu_codec_decode(codec, t, buf, len, &rec, e_slow, sizeof e_slow))
    rs = -2; /* a decode error */
  else
    rs = kefu_event_from_json(&slow, t, rec, key, strlen(key), NOW, e_slow, sizeof e_slow);
  json_decref(rec);
  rf = kefu_event_decode(&fast, t, fast_id[t], buf, len, key, strlen(key), NOW, e_fast,
                         sizeof e_fast);
  if (rf == 1) {
    if (must_apply)
      fail_msg("fast path declined %s", what);
    n->fast_skipped++;
    kefu_event_clear(&slow);
    return;
  }
  if (rs == -2) {
    if (rf != -1 || strncmp(e_fast, "avro: ", 6) != 0)
      fail_msg("slow: decode error '%s'; fast: rc %d '%s' in %s", e_slow, rf, e_fast, what);
    n->decode_errors++;
  } else if (rs != rf || strcmp(e_slow, e_fast) != 0) {
    fail_msg("slow: rc %d '%s'; fast: rc %d '%s' in %s", rs, e_slow, rf, e_fast, what);
  } else if (rs == 0) {
    event_eq(&slow, &fast);
    n->accepted++;
  } else {
    n->rejected++;
  }
  kefu_event_clear(&slow);
  kefu_event_clear(&fast);
}

static void set_what(const json_t *rec, kefu_topic_t t) {
  char *s = json_dumps(rec, JSON_COMPACT);
  snprintf(what, sizeof what, "%s %s", kefu_topic_name(t), s ? s : "?");
  free(s);
}

/* ---------------------------------------------------------------- tests */

static void test_fast_ids(void **state) {
  (void)state;
  for (int t = 0; t < 4; t++)
    assert_int_equal(fast_id[t], kefu_schemas_current_id(schemas, (kefu_topic_t)t));
  assert_int_equal(kefu_event_fast_id(schemas, KEFU_T_COURIER_STATUS), -1);
}

static void test_random_records(void **state) {
  char *buf = NULL, err[256];
  size_t cap = 0, len;
  counts_t n[4] = {0};
  (void)state;
  for (int i = 0; i < scaled(40000); i++) {
    kefu_topic_t t = (kefu_topic_t)(i % 4);
    const char *key;
    json_t *rec = gen(t, &key);
    char keybuf[80];
    snprintf(keybuf, sizeof keybuf, "%s", key); /* key may point into rec */
    set_what(rec, t);
    if (kefu_codec_encode(codec, t, rec, &buf, &cap, &len, err, sizeof err))
      fail_msg("encode: %s: %s", err, what);
    compare(t, (const uint8_t *)buf, len, keybuf, true, &n[t]);
    json_decref(rec);
  }
  for (int t = 0; t < 4; t++) {
    print_message("%s: %zu accepted, %zu rejected\n", kefu_topic_name((kefu_topic_t)t),
                  n[t].accepted, n[t].rejected);
    /* both outcomes well represented (a fortieth of the records each, at least) */
    assert_true(n[t].accepted > (size_t)scaled(1000) && n[t].rejected > (size_t)scaled(1000));
  }
  free(buf);
}

/* Every prefix and many mutations of valid frames; random bytes after a good header. */
static void test_damaged_frames(void **state) {
  char *buf = NULL, err[256];
  uint8_t copy[4096];
  size_t cap = 0, len;
  counts_t n = {0};
  (void)state;
  for (int i = 0; i < scaled(4000); i++) {
    kefu_topic_t t = (kefu_topic_t)(i % 4);
    const char *key;
    char keybuf[80];
    json_t *rec = gen(t, &key);
    snprintf(keybuf, sizeof keybuf, "%s", key);
    set_what(rec, t);
    assert_int_equal(kefu_codec_encode(codec, t, rec, &buf, &cap, &len, err, sizeof err), 0);
    json_decref(rec);
    if (len + 1 > sizeof copy)
      continue;
    for (size_t k = 0; k < len; k++) { /* truncations, each in a buffer of its own size */
      uint8_t *p = malloc(k ? k : 1);
      memcpy(p, buf, k);
      compare(t, p, k, keybuf, k >= 5, &n);
      free(p);
    }
    for (int m = 0; m < 20; m++) { /* mutations after the header */
      memcpy(copy, buf, len);
      for (int f = 1 + (int)rnd(3); f > 0; f--)
        copy[5 + rnd((uint32_t)(len - 5))] = (uint8_t)rnd(256);
      compare(t, copy, len, keybuf, true, &n);
    }
    memcpy(copy, buf, len); /* trailing bytes */
    copy[len] = 0;
    compare(t, copy, len + 1, keybuf, true, &n);
    copy[0] = 1; /* other framing or schema ids go to the slow path */
    assert_int_equal(kefu_event_decode(&(kefu_event_t){0}, t, fast_id[t], copy, len, keybuf,
                                       strlen(keybuf), NOW, err, sizeof err),
                     1);
    copy[0] = 0;
    copy[4] = (uint8_t)(copy[4] + 1);
    assert_int_equal(kefu_event_decode(&(kefu_event_t){0}, t, fast_id[t], copy, len, keybuf,
                                       strlen(keybuf), NOW, err, sizeof err),
                     1);
  }
  for (int i = 0; i < scaled(200000); i++) { /* random bytes */
    kefu_topic_t t = (kefu_topic_t)(i % 4);
    size_t l = 5 + rnd(64);
    copy[0] = copy[1] = copy[2] = copy[3] = 0;
    copy[4] = (uint8_t)fast_id[t];
    for (size_t k = 5; k < l; k++)
      copy[k] = (uint8_t)(rnd(4) ? rnd(256) : rnd(4));
    snprintf(what, sizeof what, "random bytes, topic %d", (int)t);
    uint8_t *p = malloc(l);
    memcpy(p, copy, l);
    compare(t, p, l, "s1", true, &n);
    free(p);
  }
  print_message("damaged: %zu accepted, %zu rejected, %zu decode errors, %zu declined\n",
                n.accepted, n.rejected, n.decode_errors, n.fast_skipped);
  free(buf);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Time per record of both paths on a typical chat event (BUYER_MSG with an order and an
 * intent). Reported, not asserted beyond "the fast path is faster". */
static void test_bench(void **state) {
  const int N = scaled(200000);
  char *buf = NULL, err[256];
  size_t cap = 0, len;
  (void)state;
  json_t *rec = json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:[s,s]}", "event_id", "c-000123",
                          "shop_id", "shop-0042", "ts", (json_int_t)NOW, "type", "BUYER_MSG",
                          "buyer_id", "buyer-000981", "order_id", "ord-7734", "intent",
                          "LOGISTICS_NOT_RECEIVED", "crowd_tags", "vip", "new");
  assert_int_equal(kefu_codec_encode(codec, KEFU_T_CHAT, rec, &buf, &cap, &len, err, sizeof err),
                   0);
  json_decref(rec);
  double t0 = now_s();
  for (int i = 0; i < N; i++) {
    kefu_event_t ev;
    json_t *r = NULL;
    assert_int_equal(kefu_codec_decode(codec, KEFU_T_CHAT, buf, len, &r, err, sizeof err), 0);
    assert_int_equal(
        kefu_event_from_json(&ev, KEFU_T_CHAT, r, "shop-0042", 9, NOW, err, sizeof err), 0);
    kefu_event_clear(&ev);
    json_decref(r);
  }
  double t1 = now_s();
  for (int i = 0; i < N; i++) {
    kefu_event_t ev;
    assert_int_equal(kefu_event_decode(&ev, KEFU_T_CHAT, fast_id[KEFU_T_CHAT], buf, len,
                                       "shop-0042", 9, NOW, err, sizeof err),
                     0);
    kefu_event_clear(&ev);
  }
  double t2 = now_s();
  double slow = (t1 - t0) / N * 1e6, fast = (t2 - t1) / N * 1e6;
  print_message("chat event, %zu bytes: slow path %.3f us/record, fast path %.3f us/record "
                "(%.1fx)\n",
                len, slow, fast, slow / fast);
  assert_true(fast < slow);
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fast_ids),
      cmocka_unit_test(test_random_records),
      cmocka_unit_test(test_damaged_frames),
      cmocka_unit_test(test_bench),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
