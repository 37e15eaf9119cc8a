/* The state codec (src/store/state_codec.c, docs/STATE.md): every record survives
 * encode -> decode -> encode with identical bytes and equal fields, fully populated and
 * empty; unknown fields are skipped; another version byte is refused; every truncation
 * and random corruption of a valid value is an error or a clean decode, never a crash
 * nor an overread (run it under ASan: scripts/build.sh --sanitize); and a typical buyer
 * is small. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/state_codec.h"

static char errstr[512];

/* ---- helpers ------------------------------------------------------------------ */

/* A copy of exactly @p n bytes, so that ASan sees any read past the end. */
static uint8_t *dup_bytes(const uint8_t *p, size_t n) {
  uint8_t *d = malloc(n ? n : 1);
  if (n)
    memcpy(d, p, n);
  return d;
}

static void assert_json_same(json_t *a, json_t *b) {
  if (!json_equal(a, b)) {
    char *x = json_dumps(a, JSON_SORT_KEYS), *y = json_dumps(b, JSON_SORT_KEYS);
    fprintf(stderr, "before: %s\nafter:  %s\n", x, y);
    free(x);
    free(y);
    fail_msg("decoded record differs");
  }
  json_decref(a);
  json_decref(b);
}

static void assert_same_bytes(const kefu_buf_t *a, const kefu_buf_t *b) {
  assert_int_equal(a->n, b->n);
  assert_memory_equal(a->p, b->p, a->n);
}

/* One record type behind a common interface, for the generic checks. */
typedef struct codec {
  const char *name;
  void (*encode)(kefu_buf_t *out, const void *rec);
  int (*decode)(const uint8_t *p, size_t n, void **out); /* fresh record */
  json_t *(*json)(const void *rec);
  void (*free)(void *rec);
} codec_t;

#define ENTITY_CODEC(T, name)                                                                      \
  static void enc_##name(kefu_buf_t *out, const void *r) {                                         \
    kefu_state_encode_##name(out, r);                                                              \
  }                                                                                                \
  static int dec_##name(const uint8_t *p, size_t n, void **out) {                                  \
    T *x = NULL;                                                                                   \
    int rc = kefu_state_decode_##name(p, n, "id-1", &x, errstr, sizeof errstr);                    \
    if (rc == 0)                                                                                   \
      assert_non_null(x);                                                                          \
    else                                                                                           \
      assert_null(x);                                                                              \
    *out = x;                                                                                      \
    return rc;                                                                                     \
  }                                                                                                \
  static json_t *json_##name(const void *r) {                                                      \
    return kefu_state_##name##_json(r);                                                            \
  }                                                                                                \
  static void free_##name(void *r) {                                                               \
    kefu_##name##_free(r);                                                                         \
  }                                                                                                \
  static const codec_t codec_##name = {#name, enc_##name, dec_##name, json_##name, free_##name};

ENTITY_CODEC(kefu_agent_t, agent)
ENTITY_CODEC(kefu_buyer_t, buyer)
ENTITY_CODEC(kefu_order_t, order)

static void config_free(void *r) {
  kefu_config_clear(r);
  free(r);
}
static void queue_free(void *r) {
  kefu_state_queue_clear(r);
  free(r);
}
static void rate_free(void *r) {
  kefu_state_rate_clear(r);
  free(r);
}
static void timers_free(void *r) {
  kefu_timers_clear(r);
  free(r);
}
static void timer_free(void *r) {
  kefu_timer_clear(r);
  free(r);
}

/* Shop records decode into an existing struct: the fresh one is that struct on the heap,
 * given content first so that replacing it is exercised. */
#define SHOP_CODEC(T, name, fname, init)                                                           \
  static void enc_##name(kefu_buf_t *out, const void *r) {                                         \
    kefu_state_encode_##name(out, r);                                                              \
  }                                                                                                \
  static int dec_##name(const uint8_t *p, size_t n, void **out) {                                  \
    T *x = calloc(1, sizeof *x);                                                                   \
    init;                                                                                          \
    int rc = kefu_state_decode_##name(p, n, x, errstr, sizeof errstr);                             \
    if (rc) {                                                                                      \
      fname(x);                                                                                    \
      x = NULL;                                                                                    \
    }                                                                                              \
    *out = x;                                                                                      \
    return rc;                                                                                     \
  }                                                                                                \
  static json_t *json_##name(const void *r) {                                                      \
    return kefu_state_##name##_json(r);                                                            \
  }                                                                                                \
  static const codec_t codec_##name = {#name, enc_##name, dec_##name, json_##name, fname};

SHOP_CODEC(kefu_shop_config_t, config, config_free, kefu_config_defaults(x))
SHOP_CODEC(kefu_queue_t, queue, queue_free,
           (x->v = calloc(1, sizeof *x->v), x->v[0].buyer_id = strdup("old"), x->n = 1))
SHOP_CODEC(kefu_rate_t, rate, rate_free, (x->days = calloc(2, sizeof *x->days), x->ndays = 2))
SHOP_CODEC(kefu_timers_t, timers, timers_free, kefu_timers_add(x, &(kefu_timer_t){.ref = "old"}))
SHOP_CODEC(kefu_timer_t, timer, timer_free, (x->ref = strdup("old")))

/* encode -> decode -> encode: identical bytes, equal fields (through the JSON view, which
 * shows every field). Returns the encoded size. */
static size_t round_trip(const codec_t *c, const void *rec) {
  kefu_buf_t a = {0}, b = {0};
  void *d = NULL;
  c->encode(&a, rec);
  assert_true(a.n >= 1);
  assert_int_equal(a.p[0], KEFU_STATE_VERSION);
  uint8_t *copy = dup_bytes(a.p, a.n);
  if (c->decode(copy, a.n, &d) != 0)
    fail_msg("%s: %s", c->name, errstr);
  free(copy);
  c->encode(&b, d);
  assert_same_bytes(&a, &b);
  assert_json_same(c->json(rec), c->json(d));
  /* Encoding appends: a second value after the first is the same bytes again. */
  c->encode(&b, d);
  assert_int_equal(b.n, 2 * a.n);
  assert_memory_equal(b.p + a.n, a.p, a.n);
  kefu_buf_reset(&b);
  assert_int_equal(b.n, 0);
  c->free(d);
  size_t n = a.n;
  kefu_buf_free(&a);
  kefu_buf_free(&b);
  return n;
}

/* Decoding @p p[0..n) must not crash nor overread; what decodes must encode and show. */
static int try_decode(const codec_t *c, const uint8_t *p, size_t n) {
  void *d = NULL;
  uint8_t *copy = dup_bytes(p, n);
  errstr[0] = '\0';
  int rc = c->decode(copy, n, &d);
  free(copy);
  if (rc == 0) {
    kefu_buf_t b = {0};
    c->encode(&b, d);
    json_decref(c->json(d));
    kefu_buf_free(&b);
    c->free(d);
  } else {
    assert_int_equal(rc, -1);
    assert_true(errstr[0] != '\0');
  }
  return rc;
}

/* Every prefix, every single-byte change to a few values, and random multi-byte
 * corruption. */
static void hostile(const codec_t *c, const void *rec) {
  kefu_buf_t a = {0};
  c->encode(&a, rec);
  size_t stride = a.n > 4096 ? a.n / 2048 + 1 : 1; /* big values: a sample of positions */
  for (size_t n = 0; n < a.n; n += (n + 512 < a.n ? stride : 1))
    try_decode(c, a.p, n);
  assert_int_equal(try_decode(c, a.p, a.n), 0);
  uint8_t *m = malloc(a.n);
  static const uint8_t values[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0x02, 0x0a, 0x12};
  for (size_t i = 0; i < a.n; i += stride)
    for (size_t v = 0; v < sizeof values; v++) {
      memcpy(m, a.p, a.n);
      m[i] = values[v];
      try_decode(c, m, a.n);
    }
  for (int iter = 0; iter < 1500; iter++) {
    memcpy(m, a.p, a.n);
    int flips = 1 + (int)(rnd() % 4);
    for (int k = 0; k < flips; k++)
      m[rnd() % a.n] ^= (uint8_t)(1u << (rnd() % 8));
    size_t n = a.n - (size_t)(rnd() % 3 == 0 ? rnd() % a.n : 0);
    try_decode(c, m, n);
  }
  free(m);
  kefu_buf_free(&a);
}

/* A value of an unused field number of each wire type, appended: skipped. */
static void unknown_fields(const codec_t *c, const void *rec) {
  kefu_buf_t a = {0}, b = {0};
  void *d = NULL;
  c->encode(&a, rec);
  uint8_t *p = malloc(a.n + 32);
  memcpy(p, a.p, a.n);
  size_t n = a.n;
  static const uint8_t extra[] = {0xa0, 0x06, 0xac, 0x02, /* field 100, varint 300 */
                                  0xa9, 0x06, 0xf0, 0xf1, 0xf2,
                                  0xf3, 0xf4, 0xf5, 0xf6, 0xf7, /* field 101, 8 bytes */
                                  0xb2, 0x06, 5};               /* field 102, 5 bytes: */
  memcpy(p + n, extra, sizeof extra);
  n += sizeof extra;
  memcpy(p + n, "\x01\x02\xff\x00z", 5);
  n += 5;
  if (c->decode(p, n, &d))
    fail_msg("%s with unknown fields: %s", c->name, errstr);
  c->encode(&b, d);
  assert_same_bytes(&a, &b); /* unknown fields are not kept */
  c->free(d);
  free(p);
  kefu_buf_free(&a);
  kefu_buf_free(&b);
}

static void wrong_version(const codec_t *c, const void *rec) {
  kefu_buf_t a = {0};
  void *d = NULL;
  c->encode(&a, rec);
  a.p[0] = 2;
  assert_int_equal(c->decode(a.p, a.n, &d), -1);
  assert_non_null(strstr(errstr, "version 2"));
  a.p[0] = 0;
  assert_int_equal(c->decode(a.p, a.n, &d), -1);
  assert_int_equal(c->decode(a.p, 0, &d), -1);
  assert_non_null(strstr(errstr, "empty"));
  assert_int_equal(c->decode(NULL, 0, &d), -1);
  kefu_buf_free(&a);
}

static void check_all(const codec_t *c, const void *rec) {
  round_trip(c, rec);
  unknown_fields(c, rec);
  wrong_version(c, rec);
  hostile(c, rec);
}

/* ---- records ------------------------------------------------------------------ */

#define T0 INT64_C(1773102914123) /* 2026-03-10, ms */

static kefu_timer_t timer_of(int64_t deadline, kefu_timer_kind_t kind, int64_t a, const char *ref) {
  return (kefu_timer_t){.deadline = deadline,
                        .order = {.ts = T0 + 17, .rank = 2, .offset = 123456, .n = 1},
                        .kind = kind,
                        .a = a,
                        .b = 0,
                        .ref_kind = ref ? 1 : 0,
                        .ref = (char *)ref};
}

static kefu_agent_t *full_agent(void) {
  kefu_agent_t *a = calloc(1, sizeof *a);
  a->id = strdup("id-1");
  a->presence = KEFU_PRESENCE_SUSPENDED;
  a->level = 5;
  a->capacity = -3;
  kefu_strv_push(&a->groups, "g1");
  kefu_strv_push(&a->groups, "g2");
  kefu_strv_push(&a->groups, "");
  a->account_kind = 2;
  a->has_conversion_rate = true;
  a->conversion_rate = 0.1 + 0.2;
  a->load = 7;
  a->noutcomes = 200; /* packed body > 128 bytes: a two-byte length */
  a->outcomes = calloc(a->noutcomes, sizeof *a->outcomes);
  for (uint32_t i = 0; i < a->noutcomes; i++)
    a->outcomes[i] = (kefu_outcome_t){T0 + (int64_t)i * 60000 - (i == 5 ? T0 * 2 : 0), i % 3 == 0};
  a->outcomes[7].first = INT64_MIN;
  a->outcomes[8].first = INT64_MAX;
  return a;
}

static kefu_agent_t *empty_agent(void) { /* kefu_shop_agent_add's defaults */
  kefu_agent_t *a = calloc(1, sizeof *a);
  a->id = strdup("id-1");
  a->presence = KEFU_PRESENCE_OFFLINE;
  a->level = 1;
  a->capacity = 20;
  return a;
}

static kefu_order_t *full_order(void) {
  kefu_order_t *o = calloc(1, sizeof *o);
  o->id = strdup("id-1");
  o->buyer_id = strdup("b1");
  o->status = KEFU_ORDER_CREATED; /* 0: written, the default is KEFU_STATUS_NONE */
  o->after_sale = KEFU_AFTER_SALE_OTHER;
  o->npackages = 2;
  o->packages = calloc(2, sizeof *o->packages);
  o->packages[0] = (kefu_package_t){strdup("SF123456789"), strdup("SF")};
  o->packages[1] = (kefu_package_t){NULL, strdup("YTO")};
  o->region_code = strdup("310115");
  kefu_strv_push(&o->item_ids, "i1");
  kefu_strv_push(&o->item_ids, "i2");
  o->has_amount = true;
  o->amount_cents = 0;
  o->address_changed = true;
  o->signed_ = true;
  o->paid_ts = T0 - 86400000;
  o->shipped_ts = T0;
  o->scan_ts = -1;
  o->updated_ts = T0 + 5;
  return o;
}

static kefu_order_t *empty_order(void) {
  kefu_order_t *o = calloc(1, sizeof *o);
  o->id = strdup("id-1");
  o->status = KEFU_STATUS_NONE;
  return o;
}

static kefu_buyer_t *empty_buyer(void) {
  kefu_buyer_t *b = calloc(1, sizeof *b);
  b->id = strdup("id-1");
  return b;
}

/* The typical buyer: an open session with an agent, one contact, one wait, one
 * consultation, one pair and three timers (idle, response wait, conversion window). */
static kefu_buyer_t *typical_buyer(void) {
  kefu_buyer_t *b = empty_buyer();
  int64_t t = T0;
  b->ncontacts = 1;
  b->contacts = calloc(1, sizeof *b->contacts);
  b->contacts[0] = (kefu_contact_t){strdup("a12"), t};
  b->has_session = true;
  b->session.target = KEFU_TARGET_AGENT;
  kefu_str_set(&b->session.agent_id, "a12");
  b->session.opened = t;
  b->session.activity = t + 42137;
  b->session.idle_timer = t + 42137 + 1800000;
  b->session.first_reply = KEFU_REPLY_AGENT;
  b->nwaits = 1;
  b->waits = calloc(1, sizeof *b->waits);
  b->waits[0] = (kefu_wait_t){KEFU_TARGET_AGENT, strdup("a12"), t + 42137, 20522};
  b->nconsultations = 1;
  b->consultations = calloc(1, sizeof *b->consultations);
  b->consultations[0] = (kefu_consultation_t){20522, KEFU_TARGET_AGENT, strdup("a12"), true};
  b->npairs = 1;
  b->pairs = calloc(1, sizeof *b->pairs);
  b->pairs[0] = (kefu_pair_t){strdup("a12"), t};
  b->timers = calloc(1, sizeof *b->timers);
  kefu_timer_t idle = timer_of(t + 42137 + 1800000, KEFU_TIMER_SESSION_IDLE, 0, NULL);
  kefu_timer_t wait = timer_of(t + 42137 + 180000, KEFU_TIMER_RESPONSE_WAIT, t + 42137, "a12");
  kefu_timer_t conv = timer_of(t + 86400000, KEFU_TIMER_CONVERSION_WINDOW, t, "a12");
  idle.order = (kefu_timer_order_t){t + 42137, 0, 981234, 0};
  wait.order = (kefu_timer_order_t){t + 42137, 0, 981234, 1};
  conv.order = (kefu_timer_order_t){t, 0, 975001, 0};
  kefu_timers_add(b->timers, &idle);
  kefu_timers_add(b->timers, &wait);
  kefu_timers_add(b->timers, &conv);
  return b;
}

static kefu_buyer_t *full_buyer(void) {
  kefu_buyer_t *b = typical_buyer();
  char longtext[300];
  memset(longtext, 'x', sizeof longtext - 1);
  longtext[sizeof longtext - 1] = '\0';
  kefu_strv_push(&b->orders, "o1");
  kefu_strv_push(&b->orders, "o2");
  kefu_str_set(&b->last_order, "o2");
  b->last_order_ts = INT64_MIN;
  kefu_str_set(&b->exclusive_agent, "a1");
  kefu_strv_push(&b->attrs.crowd_tags, "VIP");
  kefu_strv_push(&b->attrs.crowd_tags, "新客"); /* UTF-8 */
  kefu_str_set(&b->attrs.item_id, "i1");
  kefu_str_set(&b->attrs.intent, "LOGISTICS_URGE_DELIVERY");
  kefu_str_set(&b->attrs.order_id, "o2");
  kefu_session_t *s = &b->session;
  s->target = KEFU_TARGET_QUEUE;
  s->leave_target = 2;
  s->queued_since = INT64_MAX;
  s->via_transfer = s->entry_card = s->transferred = s->three_party = s->declined = true;
  s->first_reply = KEFU_REPLY_AUTO;
  s->invitation = (kefu_invitation_t){
      KEFU_INVITATION_ACTIVE, true,        strdup("g1-i0"), strdup("o1"), strdup("ZTO"),
      strdup(longtext),       strdup("a2")};
  kefu_wait_t w = {KEFU_TARGET_LEAVE_MESSAGE, strdup("MAIN_ACCOUNT"), -5, -1};
  b->waits = realloc(b->waits, 2 * sizeof *b->waits);
  b->waits[b->nwaits++] = w;
  b->contacts = realloc(b->contacts, 2 * sizeof *b->contacts);
  b->contacts[b->ncontacts++] = (kefu_contact_t){NULL, 0};
  kefu_timer_t day = timer_of(T0 + 3600000, KEFU_TIMER_DAY_CLOSE, T0 - 1000, NULL);
  day.b = 20522;
  day.ref_kind = -7;
  day.order.rank = -1;
  day.order.n = INT32_MAX;
  day.order.offset = INT64_MIN;
  kefu_timers_add(b->timers, &day);
  kefu_timer_t none = {.kind = KEFU_TIMER_NONE, .ref = ""};
  kefu_timers_add(b->timers, &none);
  return b;
}

static kefu_shop_config_t *full_config(void) {
  kefu_shop_config_t *c = calloc(1, sizeof *c);
  c->bot_priority = c->exclusive_direct = c->queue_enabled = true;
  c->leave_message_target = 2;
  c->queue_max_wait_ms = 0;
  c->logistics_enabled = c->merchant_invite_enabled = c->response_rate_assessed = false;
  kefu_strv_push(&c->couriers, "ZTO");
  kefu_strv_push(&c->couriers, "SF");
  c->transfer_entry_exposure_pct = 0;
  c->utc_offset_minutes = -720;
  c->ngroups = 3;
  c->groups = calloc(3, sizeof *c->groups);
  c->groups[0] = (kefu_group_t){
      .group_id = strdup("g1"), .bot_enabled = true, .strategy = 1, .order_states = 0x3f};
  kefu_strv_push(&c->groups[0].crowd_tags, "VIP");
  kefu_strv_push(&c->groups[0].intents, "PRESALE");
  c->groups[1] = (kefu_group_t){.group_id = strdup("g2")};
  for (int i = 0; i < 300; i++) { /* a group of > 16 KiB: a three-byte length */
    char id[65];
    snprintf(id, sizeof id, "item-%059d", i);
    kefu_strv_push(&c->groups[1].item_ids, id);
  }
  c->groups[2] = (kefu_group_t){0};
  return c;
}

static kefu_shop_config_t *default_config(void) {
  kefu_shop_config_t *c = calloc(1, sizeof *c);
  kefu_config_defaults(c);
  return c;
}

static kefu_queue_t *full_queue(void) {
  kefu_queue_t *q = calloc(1, sizeof *q);
  q->n = 3;
  q->v = calloc(3, sizeof *q->v);
  q->v[0] = (kefu_queued_t){strdup("b1"), T0};
  q->v[1] = (kefu_queued_t){strdup("b2"), T0 + 1000};
  q->v[2] = (kefu_queued_t){NULL, 0};
  return q;
}

static kefu_rate_t *full_rate(void) {
  kefu_rate_t *r = calloc(1, sizeof *r);
  r->ndays = 2;
  r->days = calloc(2, sizeof *r->days);
  r->days[0] =
      (kefu_rate_day_t){.day = 20522,
                        .close_deadline = T0 + 3600000,
                        .consultations = {1, 2, 3},
                        .effective = {0, 2, 0},
                        .causes = {3, 0, 0, 0, 0, 0, 0, 9},
                        .cause_order = {KEFU_CAUSE_UNKNOWN, KEFU_CAUSE_NOT_SHIPPED_ON_TIME},
                        .ncause_order = 2};
  r->days[1] = (kefu_rate_day_t){.day = 20523, .causes = {INT64_MIN, INT64_MAX}};
  r->has_closed = true;
  r->closed_through = 0;
  r->penalties = 0x5;
  r->streak = 3;
  r->escalated = true;
  return r;
}

static kefu_timers_t *full_timers(void) {
  kefu_timers_t *t = calloc(1, sizeof *t);
  for (int i = 0; i < 5; i++) {
    kefu_timer_t x = timer_of(T0 + i * 86400000, KEFU_TIMER_DAY_CLOSE, T0 + i, NULL);
    x.b = 20522 + i;
    kefu_timers_add(t, &x);
  }
  return t;
}

static kefu_timer_t *full_timer(void) {
  kefu_timer_t *t = calloc(1, sizeof *t);
  kefu_timer_t x = timer_of(T0 + 1, KEFU_TIMER_INVITATION_EXPIRY, -T0, "g1-i0");
  x.b = -2;
  kefu_timer_copy(t, &x);
  return t;
}

/* ---- tests -------------------------------------------------------------------- */

#define CHECK(codec, make, freefn)                                                                 \
  do {                                                                                             \
    void *rec_ = make();                                                                           \
    check_all(&codec, rec_);                                                                       \
    freefn(rec_);                                                                                  \
  } while (0)

static void test_agent(void **state) {
  (void)state;
  CHECK(codec_agent, full_agent, kefu_agent_free);
  CHECK(codec_agent, empty_agent, kefu_agent_free);
  kefu_agent_t *a = empty_agent();
  kefu_buf_t b = {0};
  kefu_state_encode_agent(&b, a);
  assert_int_equal(b.n, 1); /* defaults only: the version byte */
  kefu_agent_t *d;
  assert_int_equal(kefu_state_decode_agent(b.p, b.n, "a9", &d, errstr, sizeof errstr), 0);
  assert_string_equal(d->id, "a9");
  assert_int_equal(d->level, 1);
  assert_int_equal(d->capacity, 20);
  assert_int_equal(d->presence, KEFU_PRESENCE_OFFLINE);
  kefu_agent_free(d);
  kefu_agent_free(a);
  a = calloc(1, sizeof *a); /* all zero: level and capacity 0 are written */
  a->id = strdup("id-1");
  check_all(&codec_agent, a);
  kefu_agent_free(a);
  kefu_buf_free(&b);
}

static void test_order(void **state) {
  (void)state;
  CHECK(codec_order, full_order, kefu_order_free);
  CHECK(codec_order, empty_order, kefu_order_free);
  kefu_order_t *o = empty_order(), *d;
  kefu_buf_t b = {0};
  kefu_state_encode_order(&b, o);
  assert_int_equal(b.n, 1);
  assert_int_equal(kefu_state_decode_order(b.p, b.n, "o1", &d, errstr, sizeof errstr), 0);
  assert_int_equal(d->status, KEFU_STATUS_NONE);
  assert_int_equal(d->after_sale, KEFU_AFTER_SALE_NONE);
  kefu_order_free(d);
  kefu_order_free(o);
  o = full_order();
  kefu_buf_reset(&b);
  kefu_state_encode_order(&b, o);
  assert_int_equal(kefu_state_decode_order(b.p, b.n, "o1", &d, errstr, sizeof errstr), 0);
  assert_int_equal(d->status, KEFU_ORDER_CREATED);
  assert_int_equal(d->scan_ts, -1);
  assert_int_equal(d->paid_ts, T0 - 86400000);
  assert_true(d->has_amount);
  assert_int_equal(d->amount_cents, 0);
  assert_null(d->packages[1].tracking_no);
  assert_string_equal(d->packages[1].courier, "YTO");
  kefu_order_free(d);
  kefu_order_free(o);
  kefu_buf_free(&b);
}

static void test_buyer(void **state) {
  (void)state;
  CHECK(codec_buyer, full_buyer, kefu_buyer_free);
  CHECK(codec_buyer, typical_buyer, kefu_buyer_free);
  CHECK(codec_buyer, empty_buyer, kefu_buyer_free);
  kefu_buyer_t *b = full_buyer(), *d;
  kefu_buf_t buf = {0};
  kefu_state_encode_buyer(&buf, b);
  assert_int_equal(kefu_state_decode_buyer(buf.p, buf.n, "b7", &d, errstr, sizeof errstr), 0);
  assert_string_equal(d->id, "b7");
  assert_true(d->has_session);
  assert_int_equal(d->session.queued_since, INT64_MAX);
  assert_int_equal(d->last_order_ts, INT64_MIN);
  assert_int_equal(d->session.invitation.state, KEFU_INVITATION_ACTIVE);
  assert_int_equal(strlen(d->session.invitation.tracking_no), 299);
  assert_int_equal(d->timers->n, 5);
  assert_int_equal(kefu_timer_cmp(&d->timers->v[3], &b->timers->v[3]), 0);
  assert_int_equal(d->timers->v[3].order.offset, INT64_MIN);
  assert_string_equal(d->timers->v[4].ref, "");
  assert_null(d->contacts[1].agent_id);
  kefu_buyer_free(d);
  kefu_buyer_free(b);
  /* An empty buyer: no session, no timers list. */
  b = empty_buyer();
  kefu_buf_reset(&buf);
  kefu_state_encode_buyer(&buf, b);
  assert_int_equal(buf.n, 1);
  assert_int_equal(kefu_state_decode_buyer(buf.p, buf.n, "b7", &d, errstr, sizeof errstr), 0);
  assert_false(d->has_session);
  assert_null(d->timers);
  kefu_buyer_free(d);
  /* An open session with nothing set is still a session. */
  b->has_session = true;
  kefu_buf_reset(&buf);
  kefu_state_encode_buyer(&buf, b);
  assert_int_equal(kefu_state_decode_buyer(buf.p, buf.n, "b7", &d, errstr, sizeof errstr), 0);
  assert_true(d->has_session);
  kefu_buyer_free(d);
  kefu_buyer_free(b);
  kefu_buf_free(&buf);
}

static void test_typical_buyer_is_small(void **state) {
  (void)state;
  kefu_buyer_t *b = typical_buyer();
  kefu_buf_t buf = {0};
  kefu_state_encode_buyer(&buf, b);
  printf("typical buyer (session, 1 contact, 1 wait, 1 consultation, 1 pair, 3 timers): %zu "
         "bytes\n",
         buf.n);
  assert_true(buf.n < 200);
  kefu_buf_free(&buf);
  kefu_buyer_free(b);
}

static void test_config(void **state) {
  (void)state;
  CHECK(codec_config, full_config, config_free);
  CHECK(codec_config, default_config, config_free);
  kefu_shop_config_t *c = default_config();
  kefu_buf_t b = {0};
  kefu_state_encode_config(&b, c);
  assert_int_equal(b.n, 1); /* the defaults are not written */
  config_free(c);
  /* Options left out decode as the defaults. */
  kefu_shop_config_t d = {0};
  const uint8_t v[] = {1, 2 << 3, 1}; /* bot_priority true */
  assert_int_equal(kefu_state_decode_config(v, sizeof v, &d, errstr, sizeof errstr), 0);
  assert_true(d.bot_priority);
  assert_int_equal(d.queue_max_wait_ms, 600000);
  assert_true(d.logistics_enabled);
  assert_int_equal(d.utc_offset_minutes, 480);
  kefu_config_clear(&d);
  kefu_buf_free(&b);
}

static void test_shop_records(void **state) {
  (void)state;
  CHECK(codec_queue, full_queue, queue_free);
  CHECK(codec_rate, full_rate, rate_free);
  CHECK(codec_timers, full_timers, timers_free);
  CHECK(codec_timer, full_timer, timer_free);
  void *e;
  e = calloc(1, sizeof(kefu_queue_t));
  check_all(&codec_queue, e);
  queue_free(e);
  e = calloc(1, sizeof(kefu_rate_t));
  check_all(&codec_rate, e);
  rate_free(e);
  e = calloc(1, sizeof(kefu_timers_t));
  check_all(&codec_timers, e);
  timers_free(e);
  e = calloc(1, sizeof(kefu_timer_t));
  check_all(&codec_timer, e);
  timer_free(e);
  /* A decode error leaves the target as it was. */
  kefu_queue_t q = {0};
  q.v = calloc(1, sizeof *q.v);
  q.v[0].buyer_id = strdup("keep");
  q.n = 1;
  const uint8_t bad[] = {1, 2 << 3 | 2, 9};
  assert_int_equal(kefu_state_decode_queue(bad, sizeof bad, &q, errstr, sizeof errstr), -1);
  assert_int_equal(q.n, 1);
  assert_string_equal(q.v[0].buyer_id, "keep");
  kefu_state_queue_clear(&q);
  /* The timers of a rate day's packed counts: extra entries (a newer kefu's) ignored. */
  kefu_rate_t r = {0};
  const uint8_t day[] = {1, 2 << 3 | 2, 6, 3 << 3 | 2, 4, 2, 4, 6, 8};
  assert_int_equal(kefu_state_decode_rate(day, sizeof day, &r, errstr, sizeof errstr), 0);
  assert_int_equal(r.ndays, 1);
  assert_int_equal(r.days[0].consultations[0], 1);
  assert_int_equal(r.days[0].consultations[2], 3);
  kefu_state_rate_clear(&r);
  /* A day's cause order: decoded as written; out of range or repeated causes refused. */
  kefu_rate_t *full = full_rate();
  kefu_buf_t b = {0};
  kefu_state_encode_rate(&b, full);
  assert_int_equal(kefu_state_decode_rate(b.p, b.n, &r, errstr, sizeof errstr), 0);
  assert_int_equal(r.days[0].ncause_order, 2);
  assert_int_equal(r.days[0].cause_order[0], KEFU_CAUSE_UNKNOWN);
  assert_int_equal(r.days[0].cause_order[1], KEFU_CAUSE_NOT_SHIPPED_ON_TIME);
  assert_int_equal(r.days[1].ncause_order, 0);
  kefu_state_rate_clear(&r);
  rate_free(full);
  kefu_buf_free(&b);
  const uint8_t twice[] = {1, 2 << 3 | 2, 4, 6 << 3 | 2, 2, 7, 7};
  assert_int_equal(kefu_state_decode_rate(twice, sizeof twice, &r, errstr, sizeof errstr), -1);
  assert_non_null(strstr(errstr, "listed twice"));
  const uint8_t range[] = {1, 2 << 3 | 2, 3, 6 << 3 | 2, 1, KEFU_CAUSE__COUNT};
  assert_int_equal(kefu_state_decode_rate(range, sizeof range, &r, errstr, sizeof errstr), -1);
  assert_non_null(strstr(errstr, "out of range"));
}

/* A shop's pending due buckets (meta `due`): ascending, delta-coded from the first. */
static void test_due(void **state) {
  (void)state;
  const int64_t v[] = {-3, 0, 29546000, 29546001, 29547000};
  kefu_buf_t b = {0};
  int64_t *got = NULL;
  uint32_t n = 0;
  kefu_state_encode_due(&b, v, 5);
  assert_int_equal(kefu_state_decode_due(b.p, b.n, &got, &n, errstr, sizeof errstr), 0);
  assert_int_equal(n, 5);
  for (uint32_t i = 0; i < n; i++)
    assert_int_equal(got[i], v[i]);
  free(got);
  for (size_t k = 0; k < b.n; k++) { /* every prefix: refused, or a shorter list */
    got = NULL;
    n = 0;
    if (kefu_state_decode_due(b.p, k, &got, &n, errstr, sizeof errstr) == 0)
      assert_true(n >= 1 && n < 5);
    free(got);
  }
  kefu_buf_free(&b);
  const uint8_t down[] = {1, 1 << 3, 20, 2 << 3, 1}; /* base 10, then a step of -1 */
  assert_int_equal(kefu_state_decode_due(down, sizeof down, &got, &n, errstr, sizeof errstr), -1);
  assert_non_null(strstr(errstr, "not ascending"));
  const uint8_t other[] = {2, 1 << 3, 20};
  assert_int_equal(kefu_state_decode_due(other, sizeof other, &got, &n, errstr, sizeof errstr), -1);
  assert_non_null(strstr(errstr, "unknown format version"));
}

/* Hand-made values: what an operator's edit or another program might leave. */
static void test_bad_values(void **state) {
  (void)state;
  kefu_buyer_t *b;
  kefu_agent_t *a;
  kefu_order_t *o;
#define BAD_BUYER(msg, ...)                                                                        \
  do {                                                                                             \
    const uint8_t v_[] = {__VA_ARGS__};                                                            \
    assert_int_equal(kefu_state_decode_buyer(v_, sizeof v_, "b1", &b, errstr, sizeof errstr), -1); \
    assert_null(b);                                                                                \
    if (!strstr(errstr, msg))                                                                      \
      fail_msg("expected '%s' in '%s'", msg, errstr);                                              \
  } while (0)
  BAD_BUYER("truncated varint", 1, 0x80);
  BAD_BUYER("length 200 exceeds", 1, 3 << 3 | 2, 0xc8, 0x01, 'a');
  BAD_BUYER("unknown wire type 5", 1, 3 << 3 | 5, 0, 0, 0, 0);
  BAD_BUYER("wire type 0, expected 2", 1, 3 << 3, 1);
  BAD_BUYER("bad field number 0", 1, 0, 1);
  BAD_BUYER("varint overflows", 1, 4 << 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x7f);
  BAD_BUYER("NUL byte", 1, 3 << 3 | 2, 2, 'a', 0);
  BAD_BUYER("unknown format version 7", 7);
  BAD_BUYER("buyer.session: byte 3: field 1: enum value 9", 1, 8 << 3 | 2, 2, 1 << 3, 9);
  BAD_BUYER("buyer.session.invitation", 1, 8 << 3 | 2, 3, 14 << 3 | 2, 1, 0x80);
  BAD_BUYER("timer", 1, 12 << 3 | 2, 2, 7 << 3, KEFU_TIMER__COUNT);
  BAD_BUYER("boolean 2", 1, 8 << 3 | 2, 2, 8 << 3, 2);
  BAD_BUYER("truncated 8-byte", 1, 9 << 3 | 1, 1, 2, 3);
  {
    uint8_t v[1 + 2 + 65];
    v[0] = 1;
    v[1] = 3 << 3 | 2; /* last_order: an id of 65 bytes */
    v[2] = 65;
    memset(v + 3, 'a', 65);
    assert_int_equal(kefu_state_decode_buyer(v, sizeof v, "b1", &b, errstr, sizeof errstr), -1);
    assert_non_null(strstr(errstr, "at most 64"));
    v[2] = 64; /* 64 is fine */
    assert_int_equal(kefu_state_decode_buyer(v, sizeof v - 1, "b1", &b, errstr, sizeof errstr), 0);
    assert_int_equal(strlen(b->last_order), 64);
    kefu_buyer_free(b);
  }
  /* The id is checked too. */
  const uint8_t one[] = {1};
  assert_int_equal(kefu_state_decode_buyer(one, 1, "", &b, errstr, sizeof errstr), -1);
  char longid[80];
  memset(longid, 'x', sizeof longid - 1);
  longid[sizeof longid - 1] = '\0';
  assert_int_equal(kefu_state_decode_agent(one, 1, longid, &a, errstr, sizeof errstr), -1);
  assert_null(a);
  /* Out-of-range values of other records. */
  const uint8_t status[] = {1, 3 << 3, 2 * KEFU_ORDER__COUNT}; /* zigzag of COUNT */
  assert_int_equal(kefu_state_decode_order(status, sizeof status, "o1", &o, errstr, sizeof errstr),
                   -1);
  const uint8_t level[] = {1, 3 << 3, 0xff, 0xff, 0xff, 0xff, 0x1f}; /* beyond int32 */
  assert_int_equal(kefu_state_decode_agent(level, sizeof level, "a1", &a, errstr, sizeof errstr),
                   -1);
  assert_non_null(strstr(errstr, "32 bits"));
  const uint8_t outc[] = {1, 10 << 3 | 2, 1, 4}; /* an outcome without its converted flag */
  assert_int_equal(kefu_state_decode_agent(outc, sizeof outc, "a1", &a, errstr, sizeof errstr), -1);
  kefu_shop_config_t c = {0};
  const uint8_t states[] = {1, 13 << 3 | 2, 2, 7 << 3, 0x40}; /* order_states bit 6 */
  assert_int_equal(kefu_state_decode_config(states, sizeof states, &c, errstr, sizeof errstr), -1);
  /* A repeated singular field: the last one wins, nothing leaks. */
  const uint8_t twice[] = {1, 3 << 3 | 2, 1, 'x', 3 << 3 | 2, 1, 'y'};
  assert_int_equal(kefu_state_decode_buyer(twice, sizeof twice, "b1", &b, errstr, sizeof errstr),
                   0);
  assert_string_equal(b->last_order, "y");
  kefu_buyer_free(b);
  /* An unknown field inside a nested message (a contact) is skipped too. */
  const uint8_t nested[] = {1, 7 << 3 | 2, 7, 1 << 3 | 2, 2, 'a', '1', 15 << 3, 0x80, 0x01};
  assert_int_equal(kefu_state_decode_buyer(nested, sizeof nested, "b1", &b, errstr, sizeof errstr),
                   0);
  assert_int_equal(b->ncontacts, 1);
  assert_string_equal(b->contacts[0].agent_id, "a1");
  kefu_buyer_free(b);
}

static void test_json_views(void **state) {
  (void)state;
  kefu_buyer_t *b = full_buyer();
  json_t *j = kefu_state_buyer_json(b);
  json_t *s = json_object_get(j, "session");
  assert_string_equal(json_string_value(json_object_get(s, "target")), "QUEUE");
  assert_string_equal(json_string_value(json_object_get(s, "first_reply")), "AUTO");
  assert_string_equal(json_string_value(json_object_get(s, "leave_target")), "MESSAGE_POOL");
  assert_string_equal(json_string_value(json_object_get(json_object_get(s, "invitation"), "state")),
                      "ACTIVE");
  json_t *t = json_array_get(json_object_get(j, "timers"), 2);
  assert_string_equal(json_string_value(json_object_get(t, "kind")), "conversion_window");
  json_decref(j);
  kefu_buyer_free(b);
  kefu_order_t *o = full_order();
  j = kefu_state_order_json(o);
  assert_string_equal(json_string_value(json_object_get(j, "status")), "CREATED");
  assert_string_equal(json_string_value(json_object_get(j, "after_sale")), "OTHER");
  json_decref(j);
  kefu_order_free(o);
  o = empty_order();
  j = kefu_state_order_json(o);
  assert_true(json_is_null(json_object_get(j, "status")));
  json_decref(j);
  kefu_order_free(o);
  kefu_agent_t *a = full_agent();
  j = kefu_state_agent_json(a);
  assert_string_equal(json_string_value(json_object_get(j, "presence")), "SUSPENDED");
  assert_string_equal(json_string_value(json_object_get(j, "account_kind")), "PROXY");
  json_decref(j);
  kefu_agent_free(a);
  kefu_shop_config_t *c = full_config();
  j = kefu_state_config_json(c);
  json_t *g = json_array_get(json_object_get(j, "groups"), 0);
  assert_int_equal(json_array_size(json_object_get(g, "order_states")), 6);
  assert_string_equal(json_string_value(json_object_get(g, "strategy")), "CONVERSION");
  json_decref(j);
  config_free(c);
  kefu_rate_t *r = full_rate();
  j = kefu_state_rate_json(r);
  json_t *d = json_array_get(json_object_get(j, "days"), 0);
  assert_string_equal(json_string_value(json_object_get(d, "date")), "2026-03-10");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(d, "causes"), "UNKNOWN")), 9);
  json_t *order = json_object_get(d, "cause_order");
  assert_int_equal(json_array_size(order), 2);
  assert_string_equal(json_string_value(json_array_get(order, 0)), "UNKNOWN");
  json_decref(j);
  rate_free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_agent),      cmocka_unit_test(test_order),
      cmocka_unit_test(test_buyer),      cmocka_unit_test(test_typical_buyer_is_small),
      cmocka_unit_test(test_config),     cmocka_unit_test(test_shop_records),
      cmocka_unit_test(test_bad_values), cmocka_unit_test(test_json_views),
      cmocka_unit_test(test_due),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
