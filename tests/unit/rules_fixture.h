/* A shop driven through the pure rules with plain events, as the engine would drive it
 * (timers fire before the event that makes them due): shared by the rule tests. Events
 * are written as JSON, validated and converted by the engine's own code
 * (engine/event.c); every record the rules emit is encoded with the real Avro codec, so
 * a misspelled field, step or enum symbol fails the test that emitted it. */
#ifndef KEFU_TESTS_RULES_FIXTURE_H
#define KEFU_TESTS_RULES_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/event.h"
#include "io/codec.h"
#include "io/schemas.h"
#include "rules/routing.h"

#define HOUR INT64_C(3600000)
static const int64_t T0 = INT64_C(1773068400000);

/* A scheduled timer as the engine keeps it: its owner and the timer. */
typedef struct fx_timer {
  char buyer[KEFU_ID_MAX + 1]; /* "" for a shop-wide timer */
  kefu_timer_t t;
} fx_timer_t;

typedef struct fx {
  kefu_rule_params_t params;
  kefu_courier_table_t couriers;
  kefu_rules_env_t env;
  kefu_shop_t *shop;
  fx_timer_t *timers; /* pending, unordered */
  size_t ntimers;
  json_t *records; /* every record emitted, in order */
  kefu_schemas_t *schemas;
  kefu_codec_t *codec;
  int seq;
} fx_t;

/* The shop config every test starts from (shop_config.avsc's defaults). */
static const char fx_defaults[] =
    "{\"bot_priority\":false,\"exclusive_direct\":false,\"leave_message_target\":\"MAIN_"
    "ACCOUNT\","
    "\"queue_enabled\":false,\"queue_max_wait_ms\":600000,\"logistics_enabled\":true,"
    "\"merchant_invite_enabled\":true,\"couriers\":[],\"transfer_entry_exposure_pct\":100,"
    "\"response_rate_assessed\":true,\"utc_offset_minutes\":480,\"groups\":[]}";

static inline int setup(void **state) {
  static fx_t f;
  char err[256];
  memset(&f, 0, sizeof f);
  f.params = (kefu_rule_params_t){.threshold = 0.4,
                                  .escalate_after = 3,
                                  .session_idle_ms = 15 * 60000,
                                  .invitation_expiry_ms = 10 * 60000,
                                  .response_wait_ms = 180000,
                                  .day_close_grace_ms = 5 * 60000};
  kefu_courier_table_init(&f.couriers);
  f.env = (kefu_rules_env_t){&f.params, &f.couriers};
  f.shop = kefu_shop_new("s1");
  f.records = json_array();
  if (!(f.schemas = kefu_schemas_new(err, sizeof err)) || !(f.codec = kefu_codec_new(f.schemas)))
    fail_msg("schemas: %s", err);
  *state = &f;
  return 0;
}

static inline int teardown(void **state) {
  fx_t *f = *state;
  kefu_shop_destroy(f->shop);
  kefu_courier_table_clear(&f->couriers);
  for (size_t i = 0; i < f->ntimers; i++)
    kefu_timer_clear(&f->timers[i].t);
  free(f->timers);
  json_decref(f->records);
  kefu_codec_destroy(f->codec);
  kefu_schemas_destroy(f->schemas);
  return 0;
}

static inline void fx_on_timer(void *arg, kefu_shop_t *shop, const char *buyer_id,
                               const kefu_timer_t *t) {
  fx_t *f = arg;
  (void)shop;
  f->timers = realloc(f->timers, (f->ntimers + 1) * sizeof *f->timers);
  fx_timer_t *e = &f->timers[f->ntimers++];
  snprintf(e->buyer, sizeof e->buyer, "%s", buyer_id ? buyer_id : "");
  kefu_timer_copy(&e->t, t);
}

static inline void fx_emitter(fx_t *f, kefu_emitter_t *em, const char *cause, int64_t ts) {
  kefu_emitter_init(em, cause);
  em->cause_ts = ts;
  em->on_timer = fx_on_timer;
  em->on_timer_arg = f;
}

/* Moves the emitted records to f->records (as JSON), each first encoded with the real
 * codec, from the flat record as the engine encodes it and from its JSON form: both
 * must give the same bytes. */
static inline void collect(fx_t *f, kefu_emitter_t *em) {
  char *buf = NULL, *jbuf = NULL, err[512];
  size_t cap = 0, jcap = 0, len, jlen;
  for (size_t i = 0; i < em->n; i++) {
    kefu_topic_t t = kefu_topic_by_suffix(kefu_record_kinds[em->records[i].kind].topic_suffix);
    json_t *rec = kefu_record_to_json(&em->records[i].rec);
    if (kefu_codec_encode_record(f->codec, t, &em->records[i].rec, &buf, &cap, &len, err,
                                 sizeof err)) {
      char *text = json_dumps(rec, JSON_COMPACT);
      fail_msg("record does not encode as %s: %s\n%s", kefu_topics[t].suffix, err, text);
    }
    if (kefu_codec_encode(f->codec, t, rec, &jbuf, &jcap, &jlen, err, sizeof err) || jlen != len ||
        memcmp(buf, jbuf, len) != 0) {
      char *text = json_dumps(rec, JSON_COMPACT);
      fail_msg("a %s record encodes differently from its JSON form:\n%s", kefu_topics[t].suffix,
               text);
    }
    json_array_append_new(f->records, rec);
  }
  free(buf);
  free(jbuf);
  kefu_emitter_clear(em);
}

/* The earliest pending timer due before @p ts, removed from the pending list; -1: none. */
static inline int fx_pop_due(fx_t *f, int64_t ts, fx_timer_t *out) {
  size_t best = f->ntimers;
  for (size_t i = 0; i < f->ntimers; i++)
    if (f->timers[i].t.deadline < ts &&
        (best == f->ntimers || kefu_timer_cmp(&f->timers[i].t, &f->timers[best].t) < 0))
      best = i;
  if (best == f->ntimers)
    return -1;
  *out = f->timers[best];
  f->timers[best] = f->timers[--f->ntimers];
  return 0;
}

/* Fires every timer due before @p ts, as the engine would: the timer leaves its owner's
 * pending timers, then its rule runs. */
static inline void advance(fx_t *f, int64_t ts) {
  fx_timer_t due;
  while (fx_pop_due(f, ts, &due) == 0) {
    kefu_emitter_t em;
    const char *buyer = due.buyer[0] ? due.buyer : NULL;
    kefu_timers_t *owner = kefu_shop_timers_of(f->shop, buyer);
    if (!kefu_timers_remove(owner, &due.t))
      fail_msg("a fired timer was not among its owner's pending timers");
    fx_emitter(f, &em, "timer", due.t.deadline);
    kefu_rules_fire(&f->env, f->shop, buyer, &due.t, &em);
    collect(f, &em);
    kefu_timer_clear(&due.t);
  }
}

/* Applies one event given as JSON text (printf-style); returns the number of records. */
static inline size_t ev(fx_t *f, kefu_topic_t topic, const char *fmt, ...) {
  char json[2048], id[32];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(json, sizeof json, fmt, ap);
  va_end(ap);
  json_t *rec = json_loads(json, 0, NULL);
  if (!rec)
    fail_msg("bad test JSON: %s", json);
  snprintf(id, sizeof id, "e%d", f->seq++);
  json_object_set_new(rec, "event_id", json_string(id));
  json_object_set_new(rec, "shop_id", json_string("s1"));
  kefu_event_t e;
  char err[256];
  if (kefu_event_from_json(&e, topic, rec, "s1", 2, T0 + 400 * 24 * HOUR, err, sizeof err))
    fail_msg("invalid test event %s: %s", json, err);
  advance(f, e.ts);
  size_t before = json_array_size(f->records);
  kefu_emitter_t em;
  fx_emitter(f, &em, e.event_id, e.ts);
  kefu_rules_apply(&f->env, f->shop, &e, &em);
  collect(f, &em);
  kefu_event_clear(&e);
  json_decref(rec);
  return json_array_size(f->records) - before;
}

static inline json_t *last(fx_t *f) {
  return json_array_get(f->records, json_array_size(f->records) - 1);
}

/* A whole config record, as the codec would decode it: the defaults with @p fields over
 * them ("\"k\":v,..." or ""). */
static inline void config(fx_t *f, const char *fields) {
  char text[1024];
  snprintf(text, sizeof text, "{%s}", fields);
  json_t *rec = json_loads(fx_defaults, 0, NULL), *over = json_loads(text, 0, NULL);
  if (!over)
    fail_msg("bad config fields: %s", fields);
  json_object_update(rec, over);
  json_object_set_new(rec, "ts", json_integer(T0));
  char *json = json_dumps(rec, JSON_COMPACT);
  ev(f, KEFU_T_SHOP_CONFIG, "%s", json);
  free(json);
  json_decref(rec);
  json_decref(over);
}

static inline void agent(fx_t *f, const char *id, int level, int capacity, const char *groups,
                         const char *presence) {
  ev(f, KEFU_T_AGENT,
     "{\"ts\":%lld,\"type\":\"PROFILE\",\"agent_id\":\"%s\",\"level\":%d,\"capacity\":%d,"
     "\"groups\":%s}",
     (long long)T0, id, level, capacity, groups);
  ev(f, KEFU_T_AGENT, "{\"ts\":%lld,\"type\":\"PRESENCE\",\"agent_id\":\"%s\",\"presence\":\"%s\"}",
     (long long)T0, id, presence);
}

static inline void presence(fx_t *f, int64_t ts, const char *id, const char *p) {
  ev(f, KEFU_T_AGENT, "{\"ts\":%lld,\"type\":\"PRESENCE\",\"agent_id\":\"%s\",\"presence\":\"%s\"}",
     (long long)ts, id, p);
}

static inline size_t chat(fx_t *f, int64_t ts, const char *type, const char *buyer,
                          const char *extra) {
  return ev(f, KEFU_T_CHAT, "{\"ts\":%lld,\"type\":\"%s\",\"buyer_id\":\"%s\"%s%s}", (long long)ts,
            type, buyer, *extra ? "," : "", extra);
}

static const char *field(const json_t *rec, const char *name) {
  return json_string_value(json_object_get(rec, name));
}

static inline int64_t int_field(const json_t *rec, const char *name, int64_t dflt) {
  json_t *v = json_object_get(rec, name);
  return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static inline void assert_decision(const json_t *d, const char *target, const char *step,
                                   const char *agent_id) {
  if (!d || strcmp(field(d, "step") ? field(d, "step") : "", step) != 0 ||
      strcmp(field(d, "target"), target) != 0 ||
      (agent_id && (!field(d, "agent_id") || strcmp(field(d, "agent_id"), agent_id) != 0)))
    fail_msg("wanted %s/%s/%s, got %s", target, step, agent_id ? agent_id : "-",
             d ? json_dumps(d, JSON_COMPACT) : "nothing");
}

static inline int64_t load_of(fx_t *f, const char *agent_id) {
  kefu_agent_t *a = kefu_shop_agent(f->shop, agent_id);
  return a ? a->load : 0;
}

#endif
