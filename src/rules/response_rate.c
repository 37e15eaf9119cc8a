/* The 3-minute response rate, seed 002 (3分钟响应率): RATE-1..8.
 *
 * A consultation is (shop, local day, buyer, responder), the responder being whoever
 * holds the buyer's session once the message has been routed. A counted buyer message
 * (08:00-23:00 local, not in a three-party chat, the shop assessed) opens a wait unless
 * the consultation has one open; a bot message or a human's own reply ends all the
 * buyer's open waits; a wait not ended within 180 s times out (a timer) and makes its
 * consultation ineffective. When the watermark passes the next local midnight plus the
 * grace, the day closes: a DAILY_REPORT, and the penalty life cycle (VIOLATION,
 * PENALTY_REVOKED, ESCALATION).
 *
 * State: the buyer's open waits (`waits`), per day a shop-wide tally in the meta hash
 * (`day:<YYYY-MM-DD>`: consultations by key -> {kind, ok}, cause counts), the days still
 * open (`days`), and the penalty record (`penalty`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/enums.h"
#include "rules/response_rate.h"
#include "rules/routing.h"

#define DAY_MS INT64_C(86400000)
#define MINUTE_MS INT64_C(60000)
#define TIMER_WAIT "response_wait"
#define TIMER_DAY_CLOSE "day_close"

static const char *const penalty_order[] = {"TRAFFIC_DOWNWEIGHT", "LISTING_RESTRICTED",
                                            "MARKETING_RESTRICTED", "SHOP_SUPERVISED"};

/* ------------------------------------------------------------------ local time */

static int64_t offset_ms(const kefu_shop_t *shop) {
  return kefu_cfg_int(shop, "utc_offset_minutes") * MINUTE_MS;
}

static int64_t local_day(int64_t ts, int64_t off) {
  int64_t t = ts + off;
  return t >= 0 ? t / DAY_MS : (t - DAY_MS + 1) / DAY_MS;
}

static void day_name(int64_t day, char *out, size_t outlen) {
  time_t secs = (time_t)(day * 86400);
  struct tm tm;
  gmtime_r(&secs, &tm);
  strftime(out, outlen, "%Y-%m-%d", &tm);
}

/* RATE-2: [08:00, 23:00) local. */
static bool in_window(const kefu_shop_t *shop, int64_t ts) {
  int64_t minute = kefu_rules_local_minute(shop, ts);
  return minute >= 8 * 60 && minute < 23 * 60;
}

/* ------------------------------------------------------------------ shop-wide records */

static json_t *meta(kefu_shop_t *shop, const char *name, const char *init) {
  json_t *m = kefu_shop_get(shop, KEFU_ENT_META, name);
  if (!m) {
    m = json_loads(init, 0, NULL);
    json_object_set_new(shop->entities[KEFU_ENT_META], name, m);
  }
  kefu_shop_touch(shop, KEFU_ENT_META, name);
  return m;
}

static json_t *day_tally(kefu_shop_t *shop, const char *day) {
  char key[32];
  snprintf(key, sizeof key, "day:%s", day);
  return meta(shop, key, "{\"consultations\":{},\"causes\":{}}");
}

/* The day's close is scheduled once, with the offset in force when it is scheduled
 * (a later change of offset applies from the next day, SPEC §1.3). */
static void ensure_day_close(const kefu_rules_env_t *env, kefu_shop_t *shop, int64_t day,
                             int64_t off, kefu_emitter_t *out) {
  char name[16];
  json_t *days = meta(shop, "days", "{\"open\":{},\"closed_through\":null}");
  day_name(day, name, sizeof name);
  if (json_object_get(json_object_get(days, "open"), name))
    return;
  int64_t deadline = (day + 1) * DAY_MS - off + env->params->day_close_grace_ms;
  json_object_set_new(json_object_get(days, "open"), name, json_integer(deadline));
  kefu_schedule(
      out, shop, deadline, TIMER_DAY_CLOSE, NULL,
      json_pack("{s:s, s:I}", "day", name, "midnight", (json_int_t)((day + 1) * DAY_MS - off)));
}

/* A closed day is never reopened: what a late event would add to it is dropped. */
static bool day_closed(kefu_shop_t *shop, const char *day) {
  const char *through = kefu_json_str(kefu_shop_get(shop, KEFU_ENT_META, "days"), "closed_through");
  return through && strcmp(day, through) <= 0;
}

bool kefu_rules_rate_day_open(const kefu_rules_env_t *env, kefu_shop_t *shop, int64_t ts,
                              kefu_emitter_t *out, char *day, size_t daylen) {
  int64_t off = offset_ms(shop), d = local_day(ts, off);
  day_name(d, day, daylen);
  if (day_closed(shop, day))
    return false;
  ensure_day_close(env, shop, d, off, out);
  return true;
}

/* ------------------------------------------------------------------ waits */

typedef struct responder {
  const char *kind; /* AGENT, BOT, LEAVE_MESSAGE or QUEUE */
  const char *id;   /* agent id or leave-message target; NULL for BOT and QUEUE */
  char key[KEFU_ID_MAX + 8];
} responder_t;

static bool responder_of(const json_t *buyer, responder_t *r) {
  json_t *s = json_object_get(buyer, "session");
  if (!json_is_object(s))
    return false;
  r->kind = kefu_json_str(s, "target");
  r->id = kefu_str_eq(r->kind, "AGENT")           ? kefu_json_str(s, "agent_id")
          : kefu_str_eq(r->kind, "LEAVE_MESSAGE") ? kefu_json_str(s, "leave_target")
                                                  : NULL;
  snprintf(r->key, sizeof r->key, "%s:%s", r->kind ? r->kind : "?", r->id ? r->id : "");
  return r->kind != NULL;
}

static json_t *waits_of(json_t *buyer) {
  json_t *w = json_object_get(buyer, "waits");
  if (!json_is_array(w)) {
    w = json_array();
    json_object_set_new(buyer, "waits", w);
  }
  return w;
}

/* RATE-1..3: a counted BUYER_MSG, after routing. */
static void buyer_message(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_event_t *ev,
                          json_t *buyer, kefu_emitter_t *out) {
  responder_t r;
  char day[16], key[2 * KEFU_ID_MAX + 16];
  if (!kefu_cfg_bool(shop, "response_rate_assessed") || !in_window(shop, ev->ts) ||
      kefu_rules_buyer_three_party(buyer) || !responder_of(buyer, &r) ||
      !kefu_rules_rate_day_open(env, shop, ev->ts, out, day, sizeof day))
    return;
  json_t *consultations = json_object_get(day_tally(shop, day), "consultations");
  snprintf(key, sizeof key, "%s|%s", ev->buyer_id, r.key);
  if (!json_object_get(consultations, key))
    json_object_set_new(consultations, key, json_pack("{s:s, s:b}", "kind", r.kind, "ok", 1));
  json_t *waits = waits_of(buyer), *w;
  size_t i;
  json_array_foreach(waits, i, w) if (kefu_str_eq(kefu_json_str(w, "responder"), r.key) &&
                                      kefu_str_eq(kefu_json_str(w, "day"), day)) return;
  json_array_append_new(waits,
                        json_pack("{s:s, s:s, s:s?, s:I, s:s}", "responder", r.key, "kind", r.kind,
                                  "id", r.id, "opened", (json_int_t)ev->ts, "day", day));
  kefu_shop_touch(shop, KEFU_ENT_BUYER, ev->buyer_id);
  kefu_schedule(out, shop, ev->ts + env->params->response_wait_ms, TIMER_WAIT, ev->buyer_id,
                json_pack("{s:s, s:I}", "responder", r.key, "opened", (json_int_t)ev->ts));
}

/* RATE-3: any bot message, or a human's own reply, ends all the buyer's open waits. The
 * ones still open are met: a late one's timer fired before this event (SPEC §1.3). */
static void reply(kefu_shop_t *shop, const kefu_event_t *ev, json_t *buyer) {
  json_t *waits = json_object_get(buyer, "waits");
  if (ev->type == KEFU_CHAT_AGENT_MSG && json_is_true(json_object_get(ev->rec, "auto_reply")))
    return;
  if (json_array_size(waits) == 0)
    return;
  json_array_clear(waits);
  kefu_shop_touch(shop, KEFU_ENT_BUYER, ev->buyer_id);
}

void kefu_rules_response_rate(const kefu_rules_env_t *env, kefu_shop_t *shop,
                              const kefu_event_t *ev, kefu_emitter_t *out) {
  if (!ev->buyer_id)
    return;
  json_t *buyer = kefu_rules_buyer(shop, ev->buyer_id);
  if (ev->type == KEFU_CHAT_BUYER_MSG)
    buyer_message(env, shop, ev, buyer, out);
  else if (ev->type == KEFU_CHAT_BOT_MSG || ev->type == KEFU_CHAT_AGENT_MSG)
    reply(shop, ev, buyer);
}

/* RATE-3: the wait's 180 s passed unanswered. */
static void wait_timeout(kefu_shop_t *shop, const kefu_timer_t *t, kefu_emitter_t *out) {
  json_t *buyer = kefu_shop_get(shop, KEFU_ENT_BUYER, t->buyer_id), *w;
  const char *responder = kefu_json_str(t->payload, "responder");
  int64_t opened = kefu_json_int(t->payload, "opened", -1);
  size_t i;
  char key[2 * KEFU_ID_MAX + 16];
  json_array_foreach(json_object_get(buyer, "waits"), i, w) {
    if (!kefu_str_eq(kefu_json_str(w, "responder"), responder) ||
        kefu_json_int(w, "opened", -2) != opened)
      continue;
    const char *day = kefu_json_str(w, "day");
    snprintf(key, sizeof key, "%s|%s", t->buyer_id, responder);
    if (!day_closed(shop, day))
      json_object_set_new(
          json_object_get(json_object_get(day_tally(shop, day), "consultations"), key), "ok",
          json_false());
    kefu_emit(out, KEFU_T_RESPONSE_EVENTS, 'e', "response_event_id",
              json_pack("{s:s, s:s, s:s, s:s, s:s?, s:I, s:I, s:I}", "type", "RESPONSE_TIMEOUT",
                        "shop_id", shop->id, "buyer_id", t->buyer_id, "responder_kind",
                        kefu_json_str(w, "kind"), "responder_id", kefu_json_str(w, "id"),
                        "waiting_since", (json_int_t)opened, "deadline", (json_int_t)t->deadline,
                        "ts", (json_int_t)t->deadline));
    json_array_remove(json_object_get(buyer, "waits"), i);
    kefu_shop_touch(shop, KEFU_ENT_BUYER, t->buyer_id);
    return;
  }
}

/* ------------------------------------------------------------------ day close */

typedef struct tally {
  json_int_t n, ok, n_bot, ok_bot, n_human, ok_human, n_other, ok_other;
} tally_t;

static tally_t count(const json_t *consultations) {
  tally_t t = {0};
  const char *key;
  json_t *c;
  json_object_foreach((json_t *)consultations, key, c) {
    const char *kind = kefu_json_str(c, "kind");
    bool ok = json_is_true(json_object_get(c, "ok"));
    t.n++;
    t.ok += ok;
    if (kefu_str_eq(kind, "BOT")) {
      t.n_bot++;
      t.ok_bot += ok;
    } else if (kefu_str_eq(kind, "AGENT")) {
      t.n_human++;
      t.ok_human += ok;
    } else { /* leave-message and queue */
      t.n_other++;
      t.ok_other += ok;
    }
  }
  return t;
}

static json_t *penalties_json(const json_t *set) {
  json_t *out = json_array();
  for (int i = 0; i < 4; i++)
    if (json_is_true(json_object_get(set, penalty_order[i])))
      json_array_append_new(out, json_string(penalty_order[i]));
  return out;
}

static void emit_record(kefu_shop_t *shop, const kefu_rules_env_t *env, const char *type,
                        const char *day, const tally_t *t, json_t *causes, json_t *penalties,
                        json_t *effective_from, json_int_t streak, int64_t ts,
                        kefu_emitter_t *out) {
  json_t *rec = json_pack(
      "{s:s, s:s, s:s, s:I, s:I, s:o, s:f, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:O, s:I}",
      "type", type, "shop_id", shop->id, "day", day, "consultations", t->n, "effective", t->ok,
      "rate", t->n ? json_real((double)t->ok / (double)t->n) : json_null(), "threshold",
      env->params->threshold, "penalties", penalties, "effective_from", effective_from,
      "consecutive_failed_days", streak, "consultations_by_bot", t->n_bot, "consultations_by_human",
      t->n_human, "consultations_other", t->n_other, "effective_by_bot", t->ok_bot,
      "effective_by_human", t->ok_human, "effective_other", t->ok_other, "cause_counts", causes,
      "ts", (json_int_t)ts);
  kefu_emit(out, KEFU_T_RESPONSE_VIOLATIONS, 'r', "record_id", rec);
}

/* RATE-5..8 */
static void day_close(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_timer_t *t,
                      kefu_emitter_t *out) {
  const char *day = kefu_json_str(t->payload, "day");
  char key[32];
  snprintf(key, sizeof key, "day:%s", day);
  json_t *tallyj = kefu_shop_get(shop, KEFU_ENT_META, key);
  json_t *days = meta(shop, "days", "{\"open\":{},\"closed_through\":null}");
  json_object_del(json_object_get(days, "open"), day);
  if (!day_closed(shop, day))
    json_object_set_new(days, "closed_through", json_string(day));
  if (!tallyj)
    return;
  tally_t tl = count(json_object_get(tallyj, "consultations"));
  json_t *causes = json_object_get(tallyj, "causes");
  json_t *pen = meta(shop, "penalty", "{\"in_force\":{},\"streak\":0,\"escalated\":false}");
  json_t *in_force = json_object_get(pen, "in_force");
  json_int_t streak = kefu_json_int(pen, "streak", 0);
  json_t *from = json_integer(kefu_json_int(t->payload, "midnight", 0));
  if (tl.n == 0 && json_object_size(causes) == 0)
    goto done;
  if (tl.n == 0) { /* RATE-5: cause counts only; RATE-7: such days count for nothing */
    emit_record(shop, env, "DAILY_REPORT", day, &tl, causes, penalties_json(in_force), json_null(),
                streak, t->deadline, out);
    goto done;
  }
  json_int_t thr = (json_int_t)(env->params->threshold * 10000.0 + 0.5);
  bool failed = tl.ok * 10000 < thr * tl.n; /* RATE-6, exact */
  if (failed) {
    bool escalate =
        ++streak >= env->params->escalate_after && !json_is_true(json_object_get(pen, "escalated"));
    json_object_set_new(in_force, "TRAFFIC_DOWNWEIGHT", json_true());
    json_object_set_new(in_force, "LISTING_RESTRICTED", json_true());
    if (escalate) {
      json_object_set_new(in_force, "MARKETING_RESTRICTED", json_true());
      json_object_set_new(in_force, "SHOP_SUPERVISED", json_true());
      json_object_set_new(pen, "escalated", json_true());
    }
    json_object_set_new(pen, "streak", json_integer(streak));
    emit_record(shop, env, "DAILY_REPORT", day, &tl, causes, penalties_json(in_force), json_null(),
                streak, t->deadline, out);
    emit_record(shop, env, "VIOLATION", day, &tl, causes,
                json_pack("[s, s]", "TRAFFIC_DOWNWEIGHT", "LISTING_RESTRICTED"), json_incref(from),
                streak, t->deadline, out);
    if (escalate)
      emit_record(shop, env, "ESCALATION", day, &tl, causes,
                  json_pack("[s, s]", "MARKETING_RESTRICTED", "SHOP_SUPERVISED"), json_incref(from),
                  streak, t->deadline, out);
    goto done;
  }
  json_t *lifted = penalties_json(in_force);
  json_object_clear(in_force);
  json_object_set_new(pen, "streak", json_integer(0));
  json_object_set_new(pen, "escalated", json_false());
  emit_record(shop, env, "DAILY_REPORT", day, &tl, causes, json_array(), json_null(), 0,
              t->deadline, out);
  if (json_array_size(lifted)) /* RATE-7 */
    emit_record(shop, env, "PENALTY_REVOKED", day, &tl, causes, lifted, json_incref(from), 0,
                t->deadline, out);
  else
    json_decref(lifted);
done:
  json_decref(from);
  json_object_set_new(shop->entities[KEFU_ENT_META], key, json_null());
  kefu_shop_touch(shop, KEFU_ENT_META, key);
}

bool kefu_rules_rate_timer(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_timer_t *t,
                           kefu_emitter_t *out) {
  if (strcmp(t->kind, TIMER_WAIT) == 0)
    wait_timeout(shop, t, out);
  else if (strcmp(t->kind, TIMER_DAY_CLOSE) == 0)
    day_close(env, shop, t, out);
  else
    return false;
  return true;
}

json_t *kefu_rules_rate_causes(kefu_shop_t *shop, const char *day) {
  return json_object_get(day_tally(shop, day), "causes");
}
