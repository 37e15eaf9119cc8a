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
 * State (rules/model.h): the buyer's open waits and its consultations of days not yet
 * closed (each with its ok flag); per open day of the shop (rate.days) the counts of
 * consultations and of effective ones by responder class, the cause counts of
 * INSIGHT-2 and the close deadline; the last closed day; the penalty record. A new
 * consultation counts one in both counts of its class; a wait timing out while its
 * consultation is still effective and its day open takes one from the effective count.
 * A buyer's consultations of closed days are never read again and are dropped the next
 * time the buyer changes (a day close does not visit the buyers). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/enums.h"
#include "rules/response_rate.h"

#define DAY_MS INT64_C(86400000)
#define MINUTE_MS INT64_C(60000)

/* Bit i of kefu_rate_t.penalties. */
static const char *const penalty_order[] = {"TRAFFIC_DOWNWEIGHT", "LISTING_RESTRICTED",
                                            "MARKETING_RESTRICTED", "SHOP_SUPERVISED"};
enum {
  PEN_TRAFFIC_DOWNWEIGHT = 1u << 0,
  PEN_LISTING_RESTRICTED = 1u << 1,
  PEN_MARKETING_RESTRICTED = 1u << 2,
  PEN_SHOP_SUPERVISED = 1u << 3,
};

/* ------------------------------------------------------------------ local time */

static int64_t offset_ms(const kefu_shop_t *shop) {
  return (int64_t)shop->config.utc_offset_minutes * MINUTE_MS;
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

/* ------------------------------------------------------------------ open days */

/* A closed day is never reopened: what a late event would add to it is dropped. */
static bool day_closed(const kefu_shop_t *shop, int64_t day) {
  return shop->rate.has_closed && day <= shop->rate.closed_through;
}

static int find_day(const kefu_shop_t *shop, int64_t day) {
  for (uint32_t i = 0; i < shop->rate.ndays; i++)
    if (shop->rate.days[i].day == day)
      return (int)i;
  return -1;
}

/* The day's close is scheduled once, with the offset in force when it is scheduled
 * (a later change of offset applies from the next day, SPEC §1.3). */
kefu_rate_day_t *kefu_rules_rate_day_open(const kefu_rules_env_t *env, kefu_shop_t *shop,
                                          int64_t ts, kefu_emitter_t *out) {
  int64_t off = offset_ms(shop), day = local_day(ts, off);
  if (day_closed(shop, day))
    return NULL;
  int i = find_day(shop, day);
  if (i >= 0)
    return &shop->rate.days[i];
  kefu_rate_t *r = &shop->rate;
  int64_t midnight = (day + 1) * DAY_MS - off,
          deadline = midnight + env->params->day_close_grace_ms;
  uint32_t at = 0;
  while (at < r->ndays && r->days[at].day < day) /* ascending */
    at++;
  r->days = realloc(r->days, (r->ndays + 1) * sizeof *r->days);
  memmove(&r->days[at + 1], &r->days[at], (r->ndays - at) * sizeof *r->days);
  r->ndays++;
  r->days[at] = (kefu_rate_day_t){.day = (int32_t)day, .close_deadline = deadline};
  r->changed = true;
  kefu_schedule(out, shop, NULL, deadline, KEFU_TIMER_DAY_CLOSE, midnight, day, 0, NULL);
  return &r->days[at];
}

/* Whether @p c has its place in the day's first-counted order. */
static bool in_order(const kefu_rate_day_t *d, kefu_cause_t c) {
  for (uint8_t i = 0; i < d->ncause_order; i++)
    if (d->cause_order[i] == (uint8_t)c)
      return true;
  return false;
}

void kefu_rules_rate_count_cause(kefu_shop_t *shop, kefu_rate_day_t *day, kefu_cause_t cause) {
  if (!in_order(day, cause) && day->ncause_order < KEFU_CAUSE__COUNT)
    day->cause_order[day->ncause_order++] = (uint8_t)cause;
  day->causes[cause]++;
  shop->rate.changed = true;
}

/* ------------------------------------------------------------------ responders */

typedef struct responder {
  kefu_target_t kind; /* AGENT, BOT, LEAVE_MESSAGE or QUEUE */
  const char *id;     /* agent id or leave-message target; NULL for BOT and QUEUE */
} responder_t;

static bool responder_of(const kefu_buyer_t *b, responder_t *r) {
  if (!b || !b->has_session || b->session.target == KEFU_TARGET_NONE)
    return false;
  const kefu_session_t *s = &b->session;
  r->kind = s->target;
  r->id = s->target == KEFU_TARGET_AGENT           ? s->agent_id
          : s->target == KEFU_TARGET_LEAVE_MESSAGE ? kefu_leave_target_names[s->leave_target]
                                                   : NULL;
  return true;
}

/* One responder: the same kind and id (an absent id is the empty one). */
static bool same_responder(kefu_target_t kind, const char *id, kefu_target_t kind2,
                           const char *id2) {
  return kind == kind2 && strcmp(id ? id : "", id2 ? id2 : "") == 0;
}

static int class_of(kefu_target_t kind) {
  return kind == KEFU_TARGET_BOT     ? KEFU_CLASS_BOT
         : kind == KEFU_TARGET_AGENT ? KEFU_CLASS_HUMAN
                                     : KEFU_CLASS_OTHER; /* leave-message and queue */
}

/* ------------------------------------------------------------------ a buyer's records */

static kefu_consultation_t *find_consultation(kefu_buyer_t *b, int64_t day, kefu_target_t kind,
                                              const char *id) {
  for (uint32_t i = 0; i < b->nconsultations; i++) {
    kefu_consultation_t *c = &b->consultations[i];
    if (c->day == day && same_responder(c->kind, c->id, kind, id))
      return c;
  }
  return NULL;
}

/* The buyer's consultations of closed days are counted in a report already: dropped. */
static void drop_closed(const kefu_shop_t *shop, kefu_buyer_t *b) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < b->nconsultations; i++) {
    if (day_closed(shop, b->consultations[i].day))
      free(b->consultations[i].id);
    else
      b->consultations[k++] = b->consultations[i];
  }
  b->nconsultations = k;
}

static void add_consultation(kefu_buyer_t *b, int64_t day, const responder_t *r) {
  b->consultations = realloc(b->consultations, (b->nconsultations + 1) * sizeof *b->consultations);
  kefu_consultation_t *c = &b->consultations[b->nconsultations++];
  *c = (kefu_consultation_t){.day = (int32_t)day, .kind = r->kind, .ok = true};
  kefu_str_set(&c->id, r->id);
}

static void add_wait(kefu_buyer_t *b, int64_t day, const responder_t *r, int64_t opened) {
  b->waits = realloc(b->waits, (b->nwaits + 1) * sizeof *b->waits);
  kefu_wait_t *w = &b->waits[b->nwaits++];
  *w = (kefu_wait_t){.kind = r->kind, .opened = opened, .day = (int32_t)day};
  kefu_str_set(&w->id, r->id);
}

static void remove_wait(kefu_buyer_t *b, uint32_t i) {
  free(b->waits[i].id);
  memmove(&b->waits[i], &b->waits[i + 1], (b->nwaits - i - 1) * sizeof *b->waits);
  b->nwaits--;
}

/* ------------------------------------------------------------------ waits */

/* RATE-1..3: a counted BUYER_MSG, after routing. */
static void buyer_message(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_event_t *ev,
                          kefu_emitter_t *out) {
  kefu_buyer_t *b = kefu_shop_buyer(shop, ev->buyer_id);
  responder_t r;
  kefu_rate_day_t *d;
  if (!shop->config.response_rate_assessed || !in_window(shop, ev->ts) || !b ||
      kefu_rules_three_party(b) || !responder_of(b, &r) ||
      !(d = kefu_rules_rate_day_open(env, shop, ev->ts, out)))
    return;
  int64_t day = d->day;
  bool counted = find_consultation(b, day, r.kind, r.id) != NULL, waiting = false;
  for (uint32_t i = 0; i < b->nwaits && !waiting; i++)
    waiting =
        same_responder(b->waits[i].kind, b->waits[i].id, r.kind, r.id) && b->waits[i].day == day;
  if (counted && waiting)
    return;
  drop_closed(shop, b); /* the buyer changes below */
  kefu_buyer_touch(shop, b);
  if (!counted) {
    add_consultation(b, day, &r);
    d->consultations[class_of(r.kind)]++;
    d->effective[class_of(r.kind)]++;
    shop->rate.changed = true;
  }
  if (waiting)
    return;
  add_wait(b, day, &r, ev->ts);
  kefu_schedule(out, shop, ev->buyer_id, ev->ts + env->params->response_wait_ms,
                KEFU_TIMER_RESPONSE_WAIT, ev->ts, 0, (int32_t)r.kind, r.id);
}

/* RATE-3: any bot message, or a human's own reply, ends all the buyer's open waits. The
 * ones still open are met: a late one's timer fired before this event (SPEC §1.3). */
static void reply(kefu_shop_t *shop, const kefu_event_t *ev) {
  if (ev->type == KEFU_CHAT_AGENT_MSG && ev->chat.auto_reply)
    return;
  kefu_buyer_t *b = kefu_shop_buyer(shop, ev->buyer_id);
  if (!b || b->nwaits == 0)
    return;
  for (uint32_t i = 0; i < b->nwaits; i++)
    free(b->waits[i].id);
  free(b->waits);
  b->waits = NULL;
  b->nwaits = 0;
  drop_closed(shop, b);
  kefu_buyer_touch(shop, b);
}

void kefu_rules_response_rate(const kefu_rules_env_t *env, kefu_shop_t *shop,
                              const kefu_event_t *ev, kefu_emitter_t *out) {
  if (ev->source != KEFU_SRC_CHAT || !ev->buyer_id)
    return;
  if (ev->type == KEFU_CHAT_BUYER_MSG)
    buyer_message(env, shop, ev, out);
  else if (ev->type == KEFU_CHAT_BOT_MSG || ev->type == KEFU_CHAT_AGENT_MSG)
    reply(shop, ev);
}

/* RATE-3: the wait's 180 s passed unanswered. */
static void wait_timeout(kefu_shop_t *shop, const char *buyer_id, const kefu_timer_t *t,
                         kefu_emitter_t *out) {
  kefu_buyer_t *b = buyer_id ? kefu_shop_buyer(shop, buyer_id) : NULL;
  kefu_target_t kind = (kefu_target_t)t->ref_kind;
  for (uint32_t i = 0; b && i < b->nwaits; i++) {
    kefu_wait_t *w = &b->waits[i];
    if (!same_responder(w->kind, w->id, kind, t->ref) || w->opened != t->a)
      continue;
    if (!day_closed(shop, w->day)) {
      kefu_consultation_t *c = find_consultation(b, w->day, w->kind, w->id);
      int d = find_day(shop, w->day);
      if (c && c->ok) {
        c->ok = false;
        if (d >= 0)
          shop->rate.days[d].effective[class_of(c->kind)]--;
        shop->rate.changed = true;
      }
    }
    kefu_record_t rec;
    kefu_record_init(&rec);
    kefu_record_str(&rec, "type", "RESPONSE_TIMEOUT");
    kefu_record_str(&rec, "shop_id", shop->id);
    kefu_record_str(&rec, "buyer_id", buyer_id);
    kefu_record_str(&rec, "responder_kind", kefu_target_names[w->kind]);
    kefu_record_str(&rec, "responder_id", w->id);
    kefu_record_int(&rec, "waiting_since", t->a);
    kefu_record_int(&rec, "deadline", t->deadline);
    kefu_record_int(&rec, "ts", t->deadline);
    kefu_emit(out, KEFU_REC_RESPONSE_EVENT, &rec);
    remove_wait(b, i);
    drop_closed(shop, b);
    kefu_buyer_touch(shop, b);
    return;
  }
}

/* ------------------------------------------------------------------ day close */

typedef struct tally {
  json_int_t n, ok, n_bot, ok_bot, n_human, ok_human, n_other, ok_other;
} tally_t;

static tally_t count(const kefu_rate_day_t *d) {
  tally_t t = {
      .n_bot = d->consultations[KEFU_CLASS_BOT],
      .ok_bot = d->effective[KEFU_CLASS_BOT],
      .n_human = d->consultations[KEFU_CLASS_HUMAN],
      .ok_human = d->effective[KEFU_CLASS_HUMAN],
      .n_other = d->consultations[KEFU_CLASS_OTHER],
      .ok_other = d->effective[KEFU_CLASS_OTHER],
  };
  t.n = t.n_bot + t.n_human + t.n_other;
  t.ok = t.ok_bot + t.ok_human + t.ok_other;
  return t;
}

/* The day's cause counts, in the order the causes were first counted (a count whose
 * order is unknown, as in a state written without it, follows in enum order). */
static json_t *causes_json(const kefu_rate_day_t *d) {
  json_t *o = json_object();
  for (uint8_t i = 0; i < d->ncause_order; i++) {
    kefu_cause_t c = (kefu_cause_t)d->cause_order[i];
    if (c < KEFU_CAUSE__COUNT && d->causes[c] > 0)
      json_object_set_new(o, kefu_cause_names[c], json_integer(d->causes[c]));
  }
  for (int c = 0; c < KEFU_CAUSE__COUNT; c++)
    if (d->causes[c] > 0 && !in_order(d, (kefu_cause_t)c))
      json_object_set_new(o, kefu_cause_names[c], json_integer(d->causes[c]));
  return o;
}

static json_t *penalties_json(uint32_t set) {
  json_t *out = json_array();
  for (int i = 0; i < 4; i++)
    if (set & (1u << i))
      json_array_append_new(out, json_string(penalty_order[i]));
  return out;
}

static void emit_record(kefu_shop_t *shop, const kefu_rules_env_t *env, const char *type,
                        const char *day, const tally_t *t, json_t *causes, json_t *penalties,
                        json_t *effective_from, json_int_t streak, int64_t ts,
                        kefu_emitter_t *out) {
  kefu_record_t rec;
  kefu_record_init(&rec);
  kefu_record_str(&rec, "type", type);
  kefu_record_str(&rec, "shop_id", shop->id);
  kefu_record_str(&rec, "day", day);
  kefu_record_int(&rec, "consultations", t->n);
  kefu_record_int(&rec, "effective", t->ok);
  if (t->n)
    kefu_record_real(&rec, "rate", (double)t->ok / (double)t->n);
  else
    kefu_record_null(&rec, "rate");
  kefu_record_real(&rec, "threshold", env->params->threshold);
  kefu_record_json(&rec, "penalties", penalties);
  kefu_record_json(&rec, "effective_from", effective_from);
  kefu_record_int(&rec, "consecutive_failed_days", streak);
  kefu_record_int(&rec, "consultations_by_bot", t->n_bot);
  kefu_record_int(&rec, "consultations_by_human", t->n_human);
  kefu_record_int(&rec, "consultations_other", t->n_other);
  kefu_record_int(&rec, "effective_by_bot", t->ok_bot);
  kefu_record_int(&rec, "effective_by_human", t->ok_human);
  kefu_record_int(&rec, "effective_other", t->ok_other);
  kefu_record_json(&rec, "cause_counts", json_incref(causes));
  kefu_record_int(&rec, "ts", ts);
  kefu_emit(out, KEFU_REC_RATE_RECORD, &rec);
}

/* RATE-5..8 */
static void day_close(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_timer_t *t,
                      kefu_emitter_t *out) {
  kefu_rate_t *r = &shop->rate;
  int64_t dayno = t->b;
  char day[16];
  day_name(dayno, day, sizeof day);
  if (!day_closed(shop, dayno)) {
    r->has_closed = true;
    r->closed_through = (int32_t)dayno;
  }
  r->changed = true;
  int i = find_day(shop, dayno);
  if (i < 0)
    return;
  kefu_rate_day_t d = r->days[i];
  memmove(&r->days[i], &r->days[i + 1], (r->ndays - (uint32_t)i - 1) * sizeof *r->days);
  r->ndays--;

  tally_t tl = count(&d);
  json_int_t streak = r->streak;
  json_t *causes = causes_json(&d);
  if (tl.n == 0 && json_object_size(causes) == 0) {
    json_decref(causes);
    return;
  }
  json_t *from = json_integer(t->a);
  if (tl.n == 0) { /* RATE-5: cause counts only; RATE-7: such days count for nothing */
    emit_record(shop, env, "DAILY_REPORT", day, &tl, causes, penalties_json(r->penalties),
                json_null(), streak, t->deadline, out);
    goto done;
  }
  json_int_t thr = (json_int_t)(env->params->threshold * 10000.0 + 0.5);
  bool failed = tl.ok * 10000 < thr * tl.n; /* RATE-6, exact */
  if (failed) {
    bool escalate = ++streak >= env->params->escalate_after && !r->escalated;
    r->penalties |= PEN_TRAFFIC_DOWNWEIGHT | PEN_LISTING_RESTRICTED;
    if (escalate) {
      r->penalties |= PEN_MARKETING_RESTRICTED | PEN_SHOP_SUPERVISED;
      r->escalated = true;
    }
    r->streak = (int32_t)streak;
    emit_record(shop, env, "DAILY_REPORT", day, &tl, causes, penalties_json(r->penalties),
                json_null(), streak, t->deadline, out);
    emit_record(shop, env, "VIOLATION", day, &tl, causes,
                json_pack("[s, s]", "TRAFFIC_DOWNWEIGHT", "LISTING_RESTRICTED"), json_incref(from),
                streak, t->deadline, out);
    if (escalate)
      emit_record(shop, env, "ESCALATION", day, &tl, causes,
                  json_pack("[s, s]", "MARKETING_RESTRICTED", "SHOP_SUPERVISED"), json_incref(from),
                  streak, t->deadline, out);
    goto done;
  }
  uint32_t lifted = r->penalties;
  r->penalties = 0;
  r->streak = 0;
  r->escalated = false;
  emit_record(shop, env, "DAILY_REPORT", day, &tl, causes, json_array(), json_null(), 0,
              t->deadline, out);
  if (lifted) /* RATE-7 */
    emit_record(shop, env, "PENALTY_REVOKED", day, &tl, causes, penalties_json(lifted),
                json_incref(from), 0, t->deadline, out);
done:
  json_decref(from);
  json_decref(causes);
}

bool kefu_rules_rate_timer(const kefu_rules_env_t *env, kefu_shop_t *shop, const char *buyer_id,
                           const kefu_timer_t *t, kefu_emitter_t *out) {
  if (t->kind == KEFU_TIMER_RESPONSE_WAIT)
    wait_timeout(shop, buyer_id, t, out);
  else if (t->kind == KEFU_TIMER_DAY_CLOSE)
    day_close(env, shop, t, out);
  else
    return false;
  return true;
}
