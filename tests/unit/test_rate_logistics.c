/* The 3-minute response rate (RATE-1..8), the logistics three-party chat (LOGI-1..6) and
 * inquiry causes (INSIGHT-1, INSIGHT-2), driven through the pure rules. */
#include "rules/conversion.h"
#include "rules_fixture.h"

/* 2026-03-10 00:00 in China (+08:00) */
static const int64_t D0 = INT64_C(1773072000000);
#define MIN INT64_C(60000)

static size_t count_type(fx_t *f, const char *field_name, const char *value) {
  size_t n = 0, i;
  json_t *r;
  json_array_foreach(f->records, i, r) n +=
      field(r, field_name) && strcmp(field(r, field_name), value) == 0;
  return n;
}

static json_t *find(fx_t *f, const char *field_name, const char *value, size_t nth) {
  size_t i;
  json_t *r;
  json_array_foreach(f->records, i, r) if (field(r, field_name) &&
                                           strcmp(field(r, field_name), value) == 0 &&
                                           nth-- == 0) return r;
  return NULL;
}

static void staffed(fx_t *f, const char *cfg) {
  config(f, cfg);
  agent(f, "a1", 1, 50, "[]", "ONLINE");
}

/* A buyer with an agent session who writes at @p ts. */
static void ask(fx_t *f, const char *buyer, int64_t ts) {
  chat(f, ts - 1000, "CHAT_OPEN", buyer, "");
  chat(f, ts, "BUYER_MSG", buyer, "");
}

static void reply_at(fx_t *f, const char *buyer, int64_t ts) {
  chat(f, ts, "AGENT_MSG", buyer, "\"agent_id\":\"a1\",\"auto_reply\":false");
}

static void close_day(fx_t *f, int64_t day_start) {
  advance(f, day_start + 24 * HOUR + 5 * MIN + 1);
}

static json_t *report(fx_t *f, size_t nth) {
  return find(f, "type", "DAILY_REPORT", nth);
}

/* ------------------------------------------------------------------ RATE */

/* RATE-2 */
static void test_RATE_2_window_edges_local_time(void **state) {
  fx_t *f = *state;
  staffed(f, "");
  ask(f, "early", D0 + 8 * HOUR - 1); /* 07:59:59.999: not counted */
  ask(f, "first", D0 + 8 * HOUR);     /* 08:00:00.000: counted */
  ask(f, "last", D0 + 23 * HOUR - 1); /* 22:59:59.999: counted */
  ask(f, "late", D0 + 23 * HOUR);     /* 23:00:00.000: not counted */
  close_day(f, D0);
  assert_int_equal(count_type(f, "type", "RESPONSE_TIMEOUT"), 2);
  assert_int_equal(int_field(report(f, 0), "consultations", -1), 2);
}

/* RATE-2 */
static void test_RATE_2_utc_offset_other_than_china(void **state) {
  fx_t *f = *state;
  staffed(f, "\"utc_offset_minutes\":-300");   /* New York winter: 08:00 local = 13:00Z */
  int64_t midnight = D0 + 8 * HOUR + 5 * HOUR; /* 2026-03-10 00:00 at -05:00 */
  ask(f, "b1", midnight + 8 * HOUR - 1);
  ask(f, "b2", midnight + 8 * HOUR);
  close_day(f, midnight);
  json_t *r = report(f, 0);
  assert_string_equal(field(r, "day"), "2026-03-10");
  assert_int_equal(int_field(r, "consultations", -1), 1);
  assert_int_equal(int_field(r, "ts", 0), midnight + 24 * HOUR + 5 * MIN);
}

/* RATE-3 */
static void test_RATE_3_reply_at_180000_is_met_and_180001_times_out(void **state) {
  fx_t *f = *state;
  staffed(f, "");
  int64_t t = D0 + 10 * HOUR;
  ask(f, "met", t);
  reply_at(f, "met", t + 180000);
  ask(f, "late", t + HOUR);
  reply_at(f, "late", t + HOUR + 180001);
  assert_int_equal(count_type(f, "type", "RESPONSE_TIMEOUT"), 1);
  json_t *e = find(f, "type", "RESPONSE_TIMEOUT", 0);
  assert_string_equal(field(e, "buyer_id"), "late");
  assert_int_equal(int_field(e, "deadline", 0), t + HOUR + 180000);
  assert_int_equal(int_field(e, "waiting_since", 0), t + HOUR);
  assert_string_equal(field(e, "responder_kind"), "AGENT");
  assert_string_equal(field(e, "responder_id"), "a1");
  close_day(f, D0);
  assert_int_equal(int_field(report(f, 0), "effective", -1), 1);
}

/* RATE-3 */
static void test_RATE_3_auto_replies_end_nothing_and_bots_do(void **state) {
  fx_t *f = *state;
  staffed(f, "\"bot_priority\":true");
  int64_t t = D0 + 10 * HOUR;
  ask(f, "b1", t); /* with the bot */
  chat(f, t + 1000, "AGENT_MSG", "b1", "\"agent_id\":\"a1\",\"auto_reply\":true");
  advance(f, t + 180001);
  assert_int_equal(count_type(f, "type", "RESPONSE_TIMEOUT"), 1);
  assert_string_equal(field(last(f), "responder_kind"), "BOT");
  ask(f, "b2", t + HOUR);
  chat(f, t + HOUR + 5000, "BOT_MSG", "b2", "");
  close_day(f, D0);
  json_t *r = report(f, 0);
  assert_int_equal(int_field(r, "consultations_by_bot", -1), 2);
  assert_int_equal(int_field(r, "effective_by_bot", -1), 1);
}

/* RATE-1: two agents for one buyer on one day are two consultations; a wait opened once
 * per consultation; RATE-4: effective only when all its waits were met. */
/* RATE-1, RATE-4 */
static void test_RATE_1_4_consultations_per_responder(void **state) {
  fx_t *f = *state;
  staffed(f, "\"exclusive_direct\":true");
  agent(f, "a2", 1, 50, "[]", "ONLINE");
  int64_t t = D0 + 10 * HOUR;
  ev(f, KEFU_T_AGENT,
     "{\"ts\":%lld,\"type\":\"EXCLUSIVE_BIND\",\"agent_id\":\"a1\",\"buyer_id\":\"b1\"}",
     (long long)t - 2000);
  ask(f, "b1", t);
  chat(f, t + 1000, "BUYER_MSG", "b1", ""); /* the consultation has a wait open */
  reply_at(f, "b1", t + 2000);
  chat(f, t + 3000, "SESSION_CLOSE", "b1", "");
  presence(f, t + 4000, "a1", "OFFLINE");
  ask(f, "b1", t + 10 * MIN); /* now with a2 */
  advance(f, t + 20 * MIN);   /* unanswered */
  close_day(f, D0);
  json_t *r = report(f, 0);
  assert_int_equal(int_field(r, "consultations", -1), 2);
  assert_int_equal(int_field(r, "effective", -1), 1);
  assert_int_equal(int_field(r, "consultations_by_human", -1), 2);
}

/* RATE-1, RATE-3: a transfer from the bot to a human in the middle of a wait: the
 * human's reply ends the open wait (whoever the responder), and the next message is a
 * new consultation with the agent. */
static void test_RATE_1_3_transfer_mid_wait(void **state) {
  fx_t *f = *state;
  staffed(f, "\"bot_priority\":true");
  int64_t t = D0 + 10 * HOUR;
  ask(f, "b1", t); /* with the bot: wait (b1, BOT) */
  chat(f, t + 30000, "TRANSFER_CLICK", "b1", "");
  assert_string_equal(field(last(f), "target"), "AGENT");
  reply_at(f, "b1", t + 60000); /* ends the bot consultation's wait: met */
  chat(f, t + 90000, "BUYER_MSG", "b1", "");
  advance(f, t + 90000 + 180001);
  close_day(f, D0);
  json_t *r = report(f, 0);
  assert_int_equal(int_field(r, "consultations", -1), 2);
  assert_int_equal(int_field(r, "effective_by_bot", -1), 1);
  assert_int_equal(int_field(r, "effective_by_human", -1), 0); /* its wait timed out */
  assert_string_equal(field(find(f, "type", "RESPONSE_TIMEOUT", 0), "responder_kind"), "AGENT");
}

/* RATE-5, SPEC §1.3: an event older than the watermark is applied, but a closed day stays
 * closed: a late message of a closed day opens no wait and adds to no report. */
static void test_RATE_5_late_event_does_not_reopen_a_closed_day(void **state) {
  fx_t *f = *state;
  staffed(f, "");
  ask(f, "b1", D0 + 10 * HOUR);
  reply_at(f, "b1", D0 + 10 * HOUR + 1000);
  close_day(f, D0);
  assert_int_equal(count_type(f, "type", "DAILY_REPORT"), 1);
  chat(f, D0 + 11 * HOUR, "BUYER_MSG", "b1", ""); /* late: its day is closed */
  advance(f, D0 + 11 * HOUR + 180001);
  ask(f, "b2", D0 + 24 * HOUR + 10 * HOUR); /* the next day */
  reply_at(f, "b2", D0 + 24 * HOUR + 10 * HOUR + 1000);
  close_day(f, D0 + 24 * HOUR);
  assert_int_equal(count_type(f, "type", "RESPONSE_TIMEOUT"), 0);
  assert_int_equal(count_type(f, "type", "DAILY_REPORT"), 2);
  assert_string_equal(field(report(f, 1), "day"), "2026-03-11");
  assert_int_equal(int_field(report(f, 0), "consultations", 0), 1);
}

/* RATE-1: buyers on leave-message are consultations of the leave-message target
 * (consultations_other), their waits time out unless a reply comes. */
static void test_RATE_1_leave_message_consultations(void **state) {
  fx_t *f = *state;
  config(f, "\"leave_message_target\":\"MESSAGE_POOL\"");
  int64_t t = D0 + 10 * HOUR;
  ask(f, "b1", t); /* nobody online: LEAVE_MESSAGE */
  advance(f, t + 180001);
  json_t *e = find(f, "type", "RESPONSE_TIMEOUT", 0);
  assert_string_equal(field(e, "responder_kind"), "LEAVE_MESSAGE");
  assert_string_equal(field(e, "responder_id"), "MESSAGE_POOL");
  close_day(f, D0);
  assert_int_equal(int_field(report(f, 0), "consultations_other", -1), 1);
  assert_string_equal(field(find(f, "type", "VIOLATION", 0), "day"), "2026-03-10");
}

/* RATE-5..8 over seven days: fail, fail, fail (escalation once), a quiet day, pass
 * (revoke all four), fail (a new streak), pass (revoke two). */
/* RATE-5, RATE-6, RATE-7, RATE-8 */
static void test_RATE_5_6_7_8_penalty_life_cycle(void **state) {
  fx_t *f = *state;
  staffed(f, "");
  for (int day = 0; day < 3; day++) {
    ask(f, "b1", D0 + day * 24 * HOUR + 10 * HOUR); /* never answered: rate 0 */
    close_day(f, D0 + day * 24 * HOUR);
  }
  assert_int_equal(count_type(f, "type", "VIOLATION"), 3);
  assert_int_equal(count_type(f, "type", "ESCALATION"), 1);
  json_t *esc = find(f, "type", "ESCALATION", 0);
  assert_int_equal(int_field(esc, "consecutive_failed_days", 0), 3);
  assert_int_equal(int_field(esc, "effective_from", 0), D0 + 3 * 24 * HOUR);
  assert_int_equal(json_array_size(json_object_get(report(f, 2), "penalties")), 4);
  /* day 4: no consultations: no report at all, nothing revoked */
  close_day(f, D0 + 3 * 24 * HOUR);
  assert_int_equal(count_type(f, "type", "DAILY_REPORT"), 3);
  /* day 5: 2 of 5 effective = 0.40: not below the threshold (exact compare) */
  int64_t d5 = D0 + 4 * 24 * HOUR + 10 * HOUR;
  const char *buyers[] = {"c1", "c2", "c3", "c4", "c5"};
  for (int i = 0; i < 5; i++) {
    ask(f, buyers[i], d5 + i * HOUR);
    if (i < 2)
      reply_at(f, buyers[i], d5 + i * HOUR + 1000);
  }
  close_day(f, D0 + 4 * 24 * HOUR);
  json_t *rev = find(f, "type", "PENALTY_REVOKED", 0);
  assert_non_null(rev);
  assert_int_equal(json_array_size(json_object_get(rev, "penalties")), 4);
  assert_int_equal(int_field(rev, "consecutive_failed_days", -1), 0);
  json_t *r5 = report(f, 3);
  assert_true(json_real_value(json_object_get(r5, "rate")) == 0.4);
  assert_int_equal(json_array_size(json_object_get(r5, "penalties")), 0);
  /* day 6: a failed day starts a new streak (VIOLATION, no escalation); day 7 passes and
   * revokes it again */
  ask(f, "d6", D0 + 5 * 24 * HOUR + 10 * HOUR);
  close_day(f, D0 + 5 * 24 * HOUR);
  assert_int_equal(count_type(f, "type", "VIOLATION"), 4);
  assert_int_equal(count_type(f, "type", "ESCALATION"), 1);
  assert_int_equal(int_field(find(f, "type", "VIOLATION", 3), "consecutive_failed_days", 0), 1);
  ask(f, "d7", D0 + 6 * 24 * HOUR + 10 * HOUR);
  reply_at(f, "d7", D0 + 6 * 24 * HOUR + 10 * HOUR + 1000);
  close_day(f, D0 + 6 * 24 * HOUR);
  json_t *rev2 = find(f, "type", "PENALTY_REVOKED", 1);
  assert_non_null(rev2);
  assert_int_equal(json_array_size(json_object_get(rev2, "penalties")), 2);
  assert_string_equal(field(rev2, "day"), "2026-03-16");
}

/* ------------------------------------------------------------------ LOGI, INSIGHT */

static void shipped(fx_t *f, const char *buyer, const char *order, int64_t ts,
                    const char *packages) {
  ev(f, KEFU_T_ORDER,
     "{\"ts\":%lld,\"type\":\"SHIPPED\",\"buyer_id\":\"%s\",\"order_id\":\"%s\","
     "\"region_code\":\"440305\",\"packages\":%s}",
     (long long)ts, buyer, order, packages);
}

static const char *ZTO = "[{\"tracking_no\":\"t1\",\"courier\":\"ZTO\"}]";

static size_t urge(fx_t *f, const char *buyer, int64_t ts, const char *extra) {
  char fields[256];
  snprintf(fields, sizeof fields, "\"intent\":\"LOGISTICS_URGE_DELIVERY\"%s", extra);
  return chat(f, ts, "BUYER_MSG", buyer, fields);
}

/* LOGI-1 */
static void test_LOGI_1_service_hours_edges(void **state) {
  fx_t *f = *state;
  staffed(f, "");
  shipped(f, "b1", "o1", D0, ZTO);
  chat(f, D0 + 8 * HOUR, "CHAT_OPEN", "b1", "");
  const int64_t at[] = {9 * HOUR - 1, 9 * HOUR, 21 * HOUR - 1, 21 * HOUR};
  const char *want[] = {"LOGI-1a", NULL, NULL, "LOGI-1a"};
  for (int i = 0; i < 4; i++) {
    size_t before = json_array_size(f->records);
    urge(f, "b1", D0 + at[i], "");
    json_t *r = NULL;
    for (size_t k = before; k < json_array_size(f->records); k++)
      if (field(json_array_get(f->records, k), "initiator"))
        r = json_array_get(f->records, k);
    assert_non_null(r);
    if (want[i])
      assert_string_equal(field(r, "skip_rule"), want[i]);
    else
      assert_string_equal(field(r, "type"), "INVITATION_SENT");
    /* let a sent invitation expire so the next message is judged afresh */
    advance(f, D0 + at[i] + 11 * MIN);
  }
}

/* LOGI-1 */
static void test_LOGI_1c_qualifying_order(void **state) {
  fx_t *f = *state;
  staffed(f, "");
  int64_t t = D0 + 10 * HOUR;
  shipped(
      f, "b1", "two", t - 3 * HOUR,
      "[{\"tracking_no\":\"a\",\"courier\":\"ZTO\"},{\"tracking_no\":\"b\",\"courier\":\"ZTO\"}]");
  shipped(f, "b1", "sf", t - 2 * HOUR, "[{\"tracking_no\":\"s\",\"courier\":\"SF\"}]");
  chat(f, t - 1000, "CHAT_OPEN", "b1", "");
  urge(f, "b1", t, "");
  assert_string_equal(field(last(f), "skip_rule"), "LOGI-1c");
  shipped(f, "b1", "old", t - 5 * HOUR, ZTO);
  shipped(f, "b1", "new", t - 1 * HOUR, "[{\"tracking_no\":\"n\",\"courier\":\"YTO\"}]");
  urge(f, "b1", t + 1000, "");
  json_t *sent = find(f, "type", "INVITATION_SENT", 0);
  assert_string_equal(field(sent, "order_id"), "new"); /* most recently shipped */
  assert_string_equal(field(sent, "courier"), "YTO");
  /* a named order that does not qualify: no fallback */
  chat(f, t + 2000, "SESSION_CLOSE", "b1", "");
  chat(f, t + 3000, "CHAT_OPEN", "b1", "");
  urge(f, "b1", t + 4000, ",\"order_id\":\"two\"");
  assert_string_equal(field(last(f), "skip_rule"), "LOGI-1c");
  assert_string_equal(field(last(f), "order_id"), "two");
}

/* LOGI-2, LOGI-4, LOGI-5, LOGI-6 */
static void test_LOGI_2_4_5_6_invitation_life_cycle(void **state) {
  fx_t *f = *state;
  staffed(f, "");
  int64_t t = D0 + 10 * HOUR;
  shipped(f, "b1", "o1", t - HOUR, ZTO);
  chat(f, t - 1000, "CHAT_OPEN", "b1", "");
  urge(f, "b1", t, "");
  json_t *sent = find(f, "type", "INVITATION_SENT", 0);
  char id[64];
  snprintf(id, sizeof id, "%s", field(sent, "invitation_id"));
  assert_non_null(find(f, "card", "LOGISTICS_INVITATION", 0));
  /* LOGI-2: a second logistics message while pending: nothing */
  urge(f, "b1", t + 1000, "");
  assert_int_equal(
      count_type(f, "type", "INVITATION_SENT") + count_type(f, "type", "INVITATION_SKIPPED"), 1);
  reply_at(f, "b1", t + 1500); /* the waits so far are met */
  /* LOGI-4: accepted -> three-party */
  char consent[128];
  snprintf(consent, sizeof consent, "\"invitation_id\":\"%s\",\"accepted\":true", id);
  chat(f, t + 2000, "LOGISTICS_CONSENT", "b1", consent);
  assert_string_equal(field(last(f), "type"), "THREE_PARTY_STARTED");
  assert_true(json_is_true(json_object_get(last(f), "assessment_exempt")));
  /* LOGI-5: a message in the chat opens no wait and is exempt */
  size_t timeouts = count_type(f, "type", "RESPONSE_TIMEOUT");
  urge(f, "b1", t + 3000, "");
  advance(f, t + 3000 + 180001);
  assert_int_equal(count_type(f, "type", "RESPONSE_TIMEOUT"), timeouts);
  assert_true(json_is_true(
      json_object_get(find(f, "intent", "LOGISTICS_URGE_DELIVERY", 2), "assessment_exempt")));
  /* LOGI-6: the session's end ends it and asks for the evaluation, same id */
  chat(f, t + 4 * MIN, "SESSION_CLOSE", "b1", "");
  assert_string_equal(field(json_array_get(f->records, json_array_size(f->records) - 2), "type"),
                      "THREE_PARTY_ENDED");
  assert_string_equal(field(last(f), "type"), "EVALUATION_REQUESTED");
  assert_string_equal(field(last(f), "invitation_id"), id);
  /* consent after the end: nothing */
  assert_int_equal(chat(f, t + 5 * MIN, "LOGISTICS_CONSENT", "b1", consent), 0);
}

/* LOGI-2, LOGI-4 */
static void test_LOGI_2_4_expiry_and_decline(void **state) {
  fx_t *f = *state;
  staffed(f, "");
  int64_t t = D0 + 10 * HOUR;
  shipped(f, "b1", "o1", t - HOUR, ZTO);
  chat(f, t - 1000, "CHAT_OPEN", "b1", "");
  urge(f, "b1", t, "");
  char id[64], consent[128];
  snprintf(id, sizeof id, "%s", field(find(f, "type", "INVITATION_SENT", 0), "invitation_id"));
  advance(f, t + 10 * MIN + 1);
  assert_string_equal(field(last(f), "type"), "INVITATION_EXPIRED");
  assert_int_equal(int_field(last(f), "ts", 0), t + 10 * MIN);
  snprintf(consent, sizeof consent, "\"invitation_id\":\"%s\",\"accepted\":true", id);
  assert_int_equal(chat(f, t + 11 * MIN, "LOGISTICS_CONSENT", "b1", consent), 0); /* expired */
  /* declined: asking again in the same session invites nobody; a new session does */
  urge(f, "b1", t + 12 * MIN, "");
  snprintf(id, sizeof id, "%s", field(find(f, "type", "INVITATION_SENT", 1), "invitation_id"));
  snprintf(consent, sizeof consent, "\"invitation_id\":\"%s\",\"accepted\":false", id);
  chat(f, t + 13 * MIN, "LOGISTICS_CONSENT", "b1", consent);
  assert_string_equal(field(last(f), "type"), "INVITATION_DECLINED");
  assert_int_equal(urge(f, "b1", t + 14 * MIN, ""), 1); /* the insight only */
  chat(f, t + 15 * MIN, "SESSION_CLOSE", "b1", "");
  chat(f, t + 16 * MIN, "CHAT_OPEN", "b1", "");
  urge(f, "b1", t + 17 * MIN, "");
  assert_int_equal(count_type(f, "type", "INVITATION_SENT"), 3);
}

/* LOGI-3 */
static void test_LOGI_3_merchant_invites(void **state) {
  fx_t *f = *state;
  staffed(f, "\"merchant_invite_enabled\":false");
  int64_t t = D0 + 10 * HOUR;
  shipped(f, "b1", "o1", t - HOUR, ZTO);
  chat(f, t - 1000, "CHAT_OPEN", "b1", "");
  chat(f, t, "MERCHANT_INVITE_LOGISTICS", "b1", "\"agent_id\":\"a1\"");
  assert_string_equal(field(last(f), "skip_rule"), "LOGI-3");
  staffed(f, "\"logistics_enabled\":false"); /* 1b is not required of a merchant */
  chat(f, t + 1000, "MERCHANT_INVITE_LOGISTICS", "b1", "\"agent_id\":\"a1\"");
  assert_string_equal(field(find(f, "type", "INVITATION_SENT", 0), "initiator"), "MERCHANT");
  chat(f, t + 2000, "MERCHANT_INVITE_LOGISTICS", "b1", "\"agent_id\":\"a1\"");
  assert_string_equal(field(last(f), "skip_rule"), "LOGI-1d");
}

/* INSIGHT-1, INSIGHT-2 */
static void test_INSIGHT_1_2_causes_and_daily_counts(void **state) {
  fx_t *f = *state;
  staffed(f, "");
  int64_t t = D0 + 10 * HOUR;
  ev(f, KEFU_T_ORDER, "{\"ts\":%lld,\"type\":\"PAID\",\"buyer_id\":\"p\",\"order_id\":\"op\"}",
     (long long)(t - 49 * HOUR));
  shipped(
      f, "s", "os", t - 73 * HOUR,
      "[{\"tracking_no\":\"x\",\"courier\":\"ZTO\"},{\"tracking_no\":\"y\",\"courier\":\"ZTO\"}]");
  ev(f, KEFU_T_ORDER, "{\"ts\":%lld,\"type\":\"SIGNED\",\"buyer_id\":\"g\",\"order_id\":\"og\"}",
     (long long)(t - HOUR));
  /* in an order that is neither the causes' enum order nor their byte order */
  const char *buyers[] = {"nobody", "g", "p", "s"};
  const char *causes[] = {"UNKNOWN", "SIGNED_NOT_RECEIVED", "NOT_SHIPPED_ON_TIME",
                          "LOGISTICS_STALLED"};
  for (int i = 0; i < 4; i++) {
    chat(f, t + i * MIN, "CHAT_OPEN", buyers[i], "");
    urge(f, buyers[i], t + i * MIN + 1, "");
    json_t *ins = find(f, "intent", "LOGISTICS_URGE_DELIVERY", (size_t)i);
    assert_string_equal(field(ins, "cause"), causes[i]);
  }
  assert_string_equal(field(find(f, "cause", "NOT_SHIPPED_ON_TIME", 0), "factor"), "MERCHANT");
  assert_string_equal(field(find(f, "cause", "LOGISTICS_STALLED", 0), "factor"), "LOGISTICS");
  close_day(f, D0);
  json_t *counts = json_object_get(report(f, 0), "cause_counts");
  assert_int_equal(json_object_size(counts), 4);
  assert_int_equal(int_field(counts, "UNKNOWN", 0), 1);
  /* in the order the causes were first counted that day, as the JSON tally listed them */
  const char *key;
  json_t *v;
  int k = 0;
  json_object_foreach(counts, key, v) assert_string_equal(key, causes[k++]);
}

/* INSIGHT-2: a day's cause counts whose first-counted order a stored state lacks are
 * still reported (after the ordered ones, in the causes' own order). */
static void test_INSIGHT_2_counts_without_their_order(void **state) {
  fx_t *f = *state;
  staffed(f, "");
  int64_t t = D0 + 10 * HOUR;
  ev(f, KEFU_T_ORDER, "{\"ts\":%lld,\"type\":\"SIGNED\",\"buyer_id\":\"g\",\"order_id\":\"og\"}",
     (long long)(t - HOUR));
  chat(f, t, "CHAT_OPEN", "nobody", "");
  urge(f, "nobody", t + 1, "");
  chat(f, t + MIN, "CHAT_OPEN", "g", "");
  urge(f, "g", t + MIN + 1, "");
  assert_int_equal(f->shop->rate.ndays, 1);
  f->shop->rate.days[0].ncause_order = 1; /* UNKNOWN's place only */
  close_day(f, D0);
  json_t *counts = json_object_get(report(f, 0), "cause_counts");
  assert_int_equal(json_object_size(counts), 2);
  const char *want[] = {"UNKNOWN", "SIGNED_NOT_RECEIVED"}, *key;
  json_t *v;
  int k = 0;
  json_object_foreach(counts, key, v) assert_string_equal(key, want[k++]);
}

/* INSIGHT-3: an agent's measured conversion replaces PROFILE's once it has 20 outcomes;
 * a pair converts when its buyer pays within 24 h (inclusive) of the first decision. */
static void test_INSIGHT_3_measured_conversion_feeds_routing(void **state) {
  fx_t *f = *state;
  staffed(f, "\"groups\":[{\"group_id\":\"g\",\"strategy\":\"CONVERSION\"}]");
  ev(f, KEFU_T_AGENT,
     "{\"ts\":%lld,\"type\":\"PROFILE\",\"agent_id\":\"a1\",\"groups\":[\"g\"],"
     "\"capacity\":100,\"conversion_rate\":0.9}",
     (long long)T0);
  char buyer[16], order[16];
  int64_t t = D0 + 9 * HOUR;
  for (int i = 0; i < 20; i++) {
    snprintf(buyer, sizeof buyer, "b%d", i);
    chat(f, t + i * MIN, "CHAT_OPEN", buyer, "");
    if (i < 5) { /* five pay: 24 h after the decision exactly still counts */
      snprintf(order, sizeof order, "o%d", i);
      ev(f, KEFU_T_ORDER, "{\"ts\":%lld,\"type\":\"PAID\",\"buyer_id\":\"%s\",\"order_id\":\"%s\"}",
         (long long)(t + i * MIN + 24 * HOUR), buyer, order);
    }
  }
  advance(f, t + 2 * 24 * HOUR); /* every window has ended */
  double rate = 0;
  const kefu_agent_t *a1 = kefu_shop_agent(f->shop, "a1");
  assert_non_null(a1);
  assert_true(kefu_conversion_measured(a1, t + 2 * 24 * HOUR, &rate));
  assert_true(rate == 0.25);
  chat(f, t + 2 * 24 * HOUR, "CHAT_OPEN", "new", "");
  /* the draw's weight is level x 0.25 now, no longer PROFILE's 0.9 */
  assert_non_null(strstr(field(last(f), "explain"), "a1:0.25"));
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_RATE_2_window_edges_local_time),
      T(test_RATE_2_utc_offset_other_than_china),
      T(test_RATE_3_reply_at_180000_is_met_and_180001_times_out),
      T(test_RATE_3_auto_replies_end_nothing_and_bots_do),
      T(test_RATE_1_4_consultations_per_responder),
      T(test_RATE_1_3_transfer_mid_wait),
      T(test_RATE_1_leave_message_consultations),
      T(test_RATE_5_late_event_does_not_reopen_a_closed_day),
      T(test_RATE_5_6_7_8_penalty_life_cycle),
      T(test_LOGI_1_service_hours_edges),
      T(test_LOGI_1c_qualifying_order),
      T(test_LOGI_2_4_5_6_invitation_life_cycle),
      T(test_LOGI_2_4_expiry_and_decline),
      T(test_LOGI_3_merchant_invites),
      T(test_INSIGHT_1_2_causes_and_daily_counts),
      T(test_INSIGHT_2_counts_without_their_order),
      T(test_INSIGHT_3_measured_conversion_feeds_routing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
