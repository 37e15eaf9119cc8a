/* A shop driven through the pure rules with plain events, as the engine would drive it
 * (timers fire before the event that makes them due): shared by the rule tests. */
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

#include "rules/routing.h"

#define HOUR INT64_C(3600000)
static const int64_t T0 = INT64_C(1773068400000);

typedef struct fx {
  kefu_rule_params_t params;
  kefu_courier_table_t couriers;
  json_t *defaults;
  kefu_rules_env_t env;
  kefu_shop_t *shop;
  kefu_timer_queue_t timers;
  json_t *records; /* every record emitted, in order */
  int seq;
} fx_t;

static inline int setup(void **state) {
  static fx_t f;
  memset(&f, 0, sizeof f);
  f.params = (kefu_rule_params_t){.threshold = 0.4,
                                  .escalate_after = 3,
                                  .session_idle_ms = 15 * 60000,
                                  .invitation_expiry_ms = 10 * 60000,
                                  .response_wait_ms = 180000,
                                  .day_close_grace_ms = 5 * 60000};
  kefu_courier_table_init(&f.couriers);
  f.defaults = json_loads(
      "{\"bot_priority\":false,\"exclusive_direct\":false,\"leave_message_target\":\"MAIN_"
      "ACCOUNT\","
      "\"queue_enabled\":false,\"queue_max_wait_ms\":600000,\"logistics_enabled\":true,"
      "\"merchant_invite_enabled\":true,\"couriers\":[],\"transfer_entry_exposure_pct\":100,"
      "\"response_rate_assessed\":true,\"utc_offset_minutes\":480,\"groups\":[]}",
      0, NULL);
  f.env = (kefu_rules_env_t){&f.params, &f.couriers, f.defaults};
  f.shop = kefu_shop_new("s1", f.defaults);
  f.records = json_array();
  *state = &f;
  return 0;
}

static inline int teardown(void **state) {
  fx_t *f = *state;
  kefu_shop_destroy(f->shop);
  kefu_courier_table_clear(&f->couriers);
  kefu_timer_queue_clear(&f->timers);
  json_decref(f->defaults);
  json_decref(f->records);
  return 0;
}

static inline void collect(fx_t *f, kefu_emitter_t *em) {
  size_t i;
  json_t *r;
  json_array_foreach(em->records, i, r) json_array_append(f->records, json_array_get(r, 1));
  kefu_emitter_clear(em);
}

/* Fires every timer due before @p ts, as the engine would. */
static inline void advance(fx_t *f, int64_t ts) {
  kefu_timer_t *t;
  while ((t = kefu_timer_queue_pop_due(&f->timers, ts, NULL, NULL))) {
    kefu_emitter_t em;
    kefu_emitter_init(&em, "timer");
    em.timers = &f->timers;
    kefu_rules_fire(&f->env, f->shop, t, &em);
    collect(f, &em);
    kefu_timer_free(t);
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
  kefu_emitter_init(&em, e.event_id);
  em.cause_ts = e.ts;
  em.timers = &f->timers;
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
  json_t *rec = json_deep_copy(f->defaults), *over = json_loads(text, 0, NULL);
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
  return kefu_json_str(rec, name);
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
  return kefu_json_int(kefu_shop_get(f->shop, KEFU_ENT_AGENT, agent_id), "load", 0);
}

#endif
