/* The diff engine of `kefu replay --diff` (src/cli/diff.c, SPEC §7): records matched by
 * topic, shop_id and id (DLQ: source; no id: the whole JSON), duplicates in order, the
 * field counts and examples of the summary, the response-rate verdicts, load_dir and
 * the --diff-out lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/diff.h"

static json_t *js(const char *text) {
  json_error_t e;
  json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
  if (!v)
    fail_msg("bad test JSON %s: %s", text, e.text);
  return v;
}

static json_t *decision(const char *shop, const char *id, const char *agent) {
  return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:i, s:b}", "decision_id", id,
                   "cause_event_id", "e", "shop_id", shop, "ts", (json_int_t)1700000000000,
                   "buyer_id", "b1", "trigger", "CHAT_OPEN", "target", "AGENT", "agent_id", agent,
                   "step", "GROUP_MATCH", "candidates", 3, "assessment_exempt", 0);
}

static json_t *rate_record(const char *shop, const char *day, const char *type, int n, int eff,
                           int i) {
  char id[64];
  snprintf(id, sizeof id, "close-%s-%d-r%d", day, i / 3, i % 3);
  return json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:f}", "record_id", id, "shop_id", shop, "day",
                   day, "type", type, "consultations", n, "effective", eff, "rate",
                   n ? (double)eff / n : 0.0);
}

/* The summary and diff-out of @p d. */
typedef struct report {
  char *summary, *diff_out;
  size_t slen, dlen;
} report_t;

static report_t report_of(kefu_diff_t *d) {
  report_t r = {0};
  FILE *s = open_memstream(&r.summary, &r.slen), *o = open_memstream(&r.diff_out, &r.dlen);
  assert_int_equal(kefu_diff_report(d, s, o), 0);
  fclose(s);
  fclose(o);
  return r;
}

static void report_free(report_t *r) {
  free(r->summary);
  free(r->diff_out);
}

static void assert_has(const char *text, const char *want) {
  if (!strstr(text, want))
    fail_msg("missing \"%s\" in:\n%s", want, text);
}

static void assert_counts(kefu_diff_t *d, long rec, long rep, long same, long changed, long only0,
                          long only1) {
  kefu_diff_counts_t c = kefu_diff_total(d);
  assert_int_equal(c.recorded, rec);
  assert_int_equal(c.replayed, rep);
  assert_int_equal(c.unchanged, same);
  assert_int_equal(c.changed, changed);
  assert_int_equal(c.only_recorded, only0);
  assert_int_equal(c.only_replayed, only1);
}

static void assert_total_line(const char *summary, kefu_diff_t *d) {
  kefu_diff_counts_t c = kefu_diff_total(d);
  char want[256];
  snprintf(want, sizeof want,
           "\ntotal: recorded %ld, replayed %ld, unchanged %ld, changed %ld, only recorded %ld, "
           "only replayed %ld\n",
           c.recorded, c.replayed, c.unchanged, c.changed, c.only_recorded, c.only_replayed);
  assert_has(summary, want);
}

static void test_identical_sets_are_unchanged(void **st) {
  (void)st;
  kefu_diff_t *d = kefu_diff_new();
  for (int side = 0; side < 2; side++) {
    kefu_diff_add(d, side, KEFU_T_ROUTING_DECISIONS, decision("s1", "e1-d0", "a1"));
    kefu_diff_add(d, side, KEFU_T_ROUTING_DECISIONS, decision("s2", "e1-d0", "a1"));
    kefu_diff_add(d, side, KEFU_T_DLQ,
                  js("{\"error\":\"bad\",\"source\":\"kefu.chat.events/0/7\",\"key\":\"s1\","
                     "\"value_base64\":\"AA==\"}"));
    kefu_diff_add(d, side, KEFU_T_INQUIRY_INSIGHTS, js("{\"cause\":\"x\"}")); /* no id */
  }
  /* Field order, integer or real, a missing field or null: all the same record. */
  kefu_diff_add(d, 0, KEFU_T_SERVICE_CARDS,
                js("{\"card_id\":\"e2-c0\",\"shop_id\":\"s1\",\"card\":\"TRANSFER_ENTRY\","
                   "\"queue_position\":null,\"n\":1.0,\"results\":[{\"a\":1,\"b\":null}]}"));
  kefu_diff_add(d, 1, KEFU_T_SERVICE_CARDS,
                js("{\"results\":[{\"a\":1.0}],\"n\":1,\"card\":\"TRANSFER_ENTRY\","
                   "\"shop_id\":\"s1\",\"card_id\":\"e2-c0\"}"));
  assert_counts(d, 5, 5, 5, 0, 0, 0);
  report_t r = report_of(d);
  assert_total_line(r.summary, d);
  assert_has(r.summary, "kefu.service.cards");
  assert_has(r.summary, "TRANSFER_ENTRY");
  assert_has(r.summary, "GROUP_MATCH"); /* a decision's kind is its step */
  assert_int_equal(r.dlen, 0);
  report_free(&r);
  kefu_diff_free(d);
}

/* Four decisions change agent; the replayed side comes in reverse order, and the examples
 * are still the first three in recorded order. */
static void test_changed_field_is_counted_with_examples(void **st) {
  (void)st;
  kefu_diff_t *d = kefu_diff_new();
  const char *ids[] = {"e1-d0", "e2-d0", "e3-d0", "e4-d0"};
  for (int i = 0; i < 4; i++)
    kefu_diff_add(d, 0, KEFU_T_ROUTING_DECISIONS, decision("s1", ids[i], "a1"));
  kefu_diff_add(d, 0, KEFU_T_ROUTING_DECISIONS, decision("s1", "e5-d0", "a1"));
  kefu_diff_add(d, 1, KEFU_T_ROUTING_DECISIONS, decision("s1", "e5-d0", "a1"));
  for (int i = 3; i >= 0; i--)
    kefu_diff_add(d, 1, KEFU_T_ROUTING_DECISIONS, decision("s1", ids[i], "a2"));
  assert_counts(d, 5, 5, 1, 4, 0, 0);
  report_t r = report_of(d);
  assert_has(r.summary, "kefu.routing.decisions GROUP_MATCH: 4 changed\n  agent_id: 4\n"
                        "    e1-d0 (s1): \"a1\" → \"a2\"\n"
                        "    e2-d0 (s1): \"a1\" → \"a2\"\n"
                        "    e3-d0 (s1): \"a1\" → \"a2\"\n");
  assert_null(strstr(r.summary, "e4-d0"));
  assert_total_line(r.summary, d);
  report_free(&r);
  kefu_diff_free(d);
}

static void test_long_values_are_cut(void **st) {
  (void)st;
  kefu_diff_t *d = kefu_diff_new();
  char long_text[200];
  memset(long_text, 'x', sizeof long_text - 1);
  long_text[sizeof long_text - 1] = '\0';
  json_t *a = decision("s1", "e1-d0", "a1"), *b = decision("s1", "e1-d0", "a1");
  json_object_set_new(b, "explain", json_string(long_text));
  kefu_diff_add(d, 0, KEFU_T_ROUTING_DECISIONS, a);
  kefu_diff_add(d, 1, KEFU_T_ROUTING_DECISIONS, b);
  report_t r = report_of(d);
  assert_has(r.summary, "  explain: 1\n    e1-d0 (s1): null → \"xxxx");
  const char *line = strstr(r.summary, "null → ");
  assert_true(strchr(line, '\n') - line < 80);
  assert_has(line, "…\n");
  report_free(&r);
  kefu_diff_free(d);
}

static void test_only_on_one_side(void **st) {
  (void)st;
  kefu_diff_t *d = kefu_diff_new();
  kefu_diff_add(d, 0, KEFU_T_ROUTING_DECISIONS, decision("s1", "e1-d0", "a1"));
  kefu_diff_add(d, 0, KEFU_T_ROUTING_DECISIONS, decision("s1", "e2-d0", "a1"));
  kefu_diff_add(d, 1, KEFU_T_ROUTING_DECISIONS, decision("s1", "e1-d0", "a1"));
  kefu_diff_add(d, 1, KEFU_T_ROUTING_DECISIONS, decision("s2", "e2-d0", "a1")); /* other shop */
  kefu_diff_add(d, 1, KEFU_T_SERVICE_CARDS,
                js("{\"card_id\":\"e1-c0\",\"shop_id\":\"s1\",\"card\":\"QUEUE_NOTICE\"}"));
  assert_counts(d, 2, 3, 1, 0, 1, 2);
  report_t r = report_of(d);
  assert_total_line(r.summary, d);
  /* Per topic by name: decisions before cards; only recorded before only replayed. */
  const char *card = strstr(r.diff_out, "\"e1-c0\"");
  const char *gone = strstr(r.diff_out, "\"only_recorded\"");
  const char *added = strstr(r.diff_out, "\"only_replayed\",\"replayed\":{\"decision_id\"");
  assert_non_null(card);
  assert_non_null(gone);
  assert_non_null(added);
  assert_true(gone < added && added < card);
  report_t again = report_of(d); /* a report changes nothing */
  assert_string_equal(again.summary, r.summary);
  assert_string_equal(again.diff_out, r.diff_out);
  report_free(&again);
  report_free(&r);
  kefu_diff_free(d);
}

/* Records sharing a key match in their order: a DLQ source seen twice, an invitation's
 * life cycle under one id (its type is part of its key). */
static void test_duplicate_keys_match_in_order(void **st) {
  (void)st;
  kefu_diff_t *d = kefu_diff_new();
  const char *dlq = "{\"error\":\"%s\",\"source\":\"kefu.chat.events/0/7\",\"key\":\"s1\","
                    "\"value_base64\":\"\"}";
  const char *errs[2][2] = {{"first", "second"}, {"first", "third"}};
  for (int side = 0; side < 2; side++)
    for (int i = 0; i < 2; i++) {
      char text[256];
      snprintf(text, sizeof text, dlq, errs[side][i]);
      kefu_diff_add(d, side, KEFU_T_DLQ, js(text));
    }
  const char *inv = "{\"invitation_id\":\"e1-i0\",\"shop_id\":\"s1\",\"type\":\"%s\"}";
  const char *life[2][3] = {{"INVITATION_SENT", "THREE_PARTY_STARTED", "THREE_PARTY_ENDED"},
                            {"INVITATION_SENT", "INVITATION_EXPIRED", NULL}};
  for (int side = 0; side < 2; side++)
    for (int i = 0; i < 3 && life[side][i]; i++) {
      char text[256];
      snprintf(text, sizeof text, inv, life[side][i]);
      kefu_diff_add(d, side, KEFU_T_LOGISTICS_INVITATIONS, js(text));
    }
  assert_counts(d, 5, 4, 2, 1, 2, 1);
  report_t r = report_of(d);
  assert_has(r.summary, "kefu.dlq -: 1 changed\n  error: 1\n"
                        "    kefu.chat.events/0/7: \"second\" → \"third\"\n");
  assert_has(r.diff_out, "\"key\":{\"shop_id\":\"s1\",\"id\":\"e1-i0\",\"type\":"
                         "\"INVITATION_EXPIRED\"},\"change\":\"only_replayed\"");
  report_free(&r);
  kefu_diff_free(d);
}

static void test_verdicts_of_hand_made_records(void **st) {
  (void)st;
  kefu_diff_t *d = kefu_diff_new();
  kefu_topic_t t = KEFU_T_RESPONSE_VIOLATIONS;
  /* s1: compliant when recorded, violating on two days when replayed (threshold up);
   * s2: violating on 11-01 when recorded only; s3: violating on both sides. */
  kefu_diff_add(d, 0, t, rate_record("s1", "2026-11-01", "DAILY_REPORT", 10, 4, 0));
  kefu_diff_add(d, 0, t, rate_record("s1", "2026-11-02", "DAILY_REPORT", 10, 4, 3));
  kefu_diff_add(d, 0, t, rate_record("s2", "2026-11-01", "DAILY_REPORT", 10, 3, 0));
  kefu_diff_add(d, 0, t, rate_record("s2", "2026-11-01", "VIOLATION", 10, 3, 1));
  kefu_diff_add(d, 0, t, rate_record("s3", "2026-11-01", "VIOLATION", 10, 1, 1));
  kefu_diff_add(d, 1, t, rate_record("s1", "2026-11-01", "DAILY_REPORT", 10, 4, 0));
  kefu_diff_add(d, 1, t, rate_record("s1", "2026-11-01", "VIOLATION", 10, 4, 1));
  kefu_diff_add(d, 1, t, rate_record("s1", "2026-11-02", "DAILY_REPORT", 10, 4, 3));
  kefu_diff_add(d, 1, t, rate_record("s1", "2026-11-02", "VIOLATION", 10, 4, 4));
  kefu_diff_add(d, 1, t, rate_record("s2", "2026-11-01", "DAILY_REPORT", 10, 3, 0));
  kefu_diff_add(d, 1, t, rate_record("s2", "2026-11-01", "PENALTY_REVOKED", 10, 3, 1));
  kefu_diff_add(d, 1, t, rate_record("s3", "2026-11-01", "VIOLATION", 10, 1, 1));
  long v0, v1, dn, dl, sn, sl;
  kefu_diff_verdicts(d, &v0, &v1, &dn, &dl, &sn, &sl);
  assert_int_equal(v0, 2);
  assert_int_equal(v1, 3);
  assert_int_equal(dn, 2);
  assert_int_equal(dl, 1);
  assert_int_equal(sn, 1);
  assert_int_equal(sl, 1);
  report_t r = report_of(d);
  assert_has(r.summary, "verdict: VIOLATION 2 → 3; 1 shop newly penalised: s1; "
                        "1 shop no longer penalised: s2\n");
  assert_has(r.summary, "verdict: days newly violating: 2; days no longer violating: 1\n");
  assert_has(r.summary, "verdict: shops newly penalised: 1; shops no longer penalised: 1\n");
  /* Rate records match by (shop, day, type): s2's VIOLATION is only recorded, its
   * PENALTY_REVOKED and s1's two VIOLATIONs only replayed, the rest unchanged. */
  kefu_diff_counts_t c = kefu_diff_total(d);
  assert_int_equal(c.unchanged, 4);
  assert_int_equal(c.changed, 0);
  assert_int_equal(c.only_recorded, 1);
  assert_int_equal(c.only_replayed, 3);
  report_free(&r);
  /* A record_id renumbered (another shop's new record of the same cause before it) is
   * the same record with a changed field. */
  kefu_diff_t *d2 = kefu_diff_new();
  kefu_diff_add(d2, 0, t, rate_record("s4", "2026-11-01", "DAILY_REPORT", 10, 9, 1));
  kefu_diff_add(d2, 1, t, rate_record("s4", "2026-11-01", "DAILY_REPORT", 10, 9, 2));
  c = kefu_diff_total(d2);
  assert_int_equal(c.changed, 1);
  assert_int_equal(c.only_recorded + c.only_replayed, 0);
  r = report_of(d2);
  assert_has(r.summary,
             "kefu.response.violations DAILY_REPORT: 1 changed\n  record_id: 1\n"
             "    2026-11-01 (s4): \"close-2026-11-01-0-r1\" → \"close-2026-11-01-0-r2\"");
  report_free(&r);
  kefu_diff_free(d2);
  kefu_diff_free(d);
}

/* Thirty shops over a week of DAILY_REPORTs, judged at threshold 0.4 (recorded) and 0.5
 * (replayed) as RATE-6 does: the verdict counts equal what the rates alone say. */
static void test_verdicts_follow_daily_report_rates(void **st) {
  (void)st;
  kefu_diff_t *d = kefu_diff_new();
  const int thresholds[2] = {4000, 5000}; /* × 10000 */
  long want_days[2] = {0, 0}, want_shops[2] = {0, 0}, want_v[2] = {0, 0};
  unsigned seed = 7;
  for (int s = 0; s < 30; s++) {
    char shop[16];
    snprintf(shop, sizeof shop, "shop%02d", s);
    int newly = 0, no_longer = 0;
    for (int day = 1; day <= 7; day++) {
      char date[16];
      snprintf(date, sizeof date, "2026-11-%02d", day);
      seed = seed * 1103515245u + 12345u;
      int n = 20, eff = (int)((seed >> 16) % 21);
      int fails[2];
      for (int side = 0; side < 2; side++) {
        fails[side] = (long)eff * 10000 < (long)thresholds[side] * n;
        want_v[side] += fails[side];
        kefu_diff_add(d, side, KEFU_T_RESPONSE_VIOLATIONS,
                      rate_record(shop, date, "DAILY_REPORT", n, eff, 0));
        if (fails[side])
          kefu_diff_add(d, side, KEFU_T_RESPONSE_VIOLATIONS,
                        rate_record(shop, date, "VIOLATION", n, eff, 1));
      }
      newly |= fails[1] && !fails[0];
      no_longer |= fails[0] && !fails[1];
      want_days[0] += fails[1] && !fails[0];
      want_days[1] += fails[0] && !fails[1];
    }
    want_shops[0] += newly;
    want_shops[1] += no_longer;
  }
  long v0, v1, dn, dl, sn, sl;
  kefu_diff_verdicts(d, &v0, &v1, &dn, &dl, &sn, &sl);
  assert_int_equal(v0, want_v[0]);
  assert_int_equal(v1, want_v[1]);
  assert_int_equal(dn, want_days[0]);
  assert_int_equal(dl, 0);
  assert_int_equal(sn, want_shops[0]);
  assert_int_equal(sl, 0);
  assert_true(dn > 0 && sn > 10);
  report_t r = report_of(d);
  char want[128];
  snprintf(want, sizeof want, "verdict: days newly violating: %ld; days no longer violating: 0\n",
           want_days[0]);
  assert_has(r.summary, want);
  assert_has(r.summary, ", … (first 10); 0 shops no longer penalised\n");
  report_free(&r);
  kefu_diff_free(d);
}

static char *temp_dir(void) {
  char *dir = strdup("/tmp/kefu-test-diff-XXXXXX");
  assert_non_null(mkdtemp(dir));
  return dir;
}

static void write_file(const char *dir, const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void remove_dir(char *dir, const char *const *names) {
  char path[512];
  for (; *names; names++) {
    snprintf(path, sizeof path, "%s/%s", dir, *names);
    unlink(path);
  }
  rmdir(dir);
  free(dir);
}

static void test_load_dir_reads_topics_and_names_a_bad_line(void **st) {
  (void)st;
  static const char *const files[] = {"kefu.routing.decisions.jsonl", "kefu.dlq.jsonl",
                                      "notes.jsonl", "readme.txt", NULL};
  char *dir = temp_dir();
  write_file(dir, files[0],
             "{\"decision_id\":\"e1-d0\",\"shop_id\":\"s1\",\"step\":\"GROUP_MATCH\"}\n"
             "\n"
             "{\"decision_id\":\"e2-d0\",\"shop_id\":\"s1\",\"step\":\"GROUP_MATCH\"}\n");
  write_file(dir, files[1], "{\"error\":\"x\",\"source\":\"kefu.chat.events/0/1\"}\n[1,2]\n");
  write_file(dir, files[2], "not json at all\n");
  write_file(dir, files[3], "not json at all\n");
  kefu_diff_t *d = kefu_diff_new();
  char err[256] = "";
  assert_int_equal(kefu_diff_load_dir(d, 0, dir, err, sizeof err), 0);
  assert_int_equal(kefu_diff_load_dir(d, 1, dir, err, sizeof err), 0);
  assert_counts(d, 4, 4, 4, 0, 0, 0);

  write_file(dir, files[0],
             "{\"decision_id\":\"e1-d0\",\"shop_id\":\"s1\"}\n\n{\"decision_id\": \"e2-d0\",\n");
  assert_int_equal(kefu_diff_load_dir(d, 1, dir, err, sizeof err), -1);
  assert_has(err, "/kefu.routing.decisions.jsonl:3: ");
  assert_int_equal(kefu_diff_load_dir(d, 1, "/nonexistent/kefu-diff", err, sizeof err), -1);
  assert_has(err, "/nonexistent/kefu-diff: ");
  kefu_diff_free(d);
  remove_dir(dir, files);
}

static void assert_diff_line(const json_t *line) {
  const char *change = json_string_value(json_object_get(line, "change"));
  assert_non_null(change);
  assert_non_null(json_string_value(json_object_get(line, "topic")));
  assert_non_null(json_string_value(json_object_get(line, "kind")));
  json_t *key = json_object_get(line, "key");
  assert_true(json_is_object(key));
  assert_non_null(json_object_get(key, "shop_id"));
  assert_non_null(json_object_get(key, "id"));
  if (strcmp(change, "changed") == 0) {
    json_t *fields = json_object_get(line, "fields"), *f;
    const char *name;
    assert_true(json_object_size(fields) > 0);
    json_object_foreach(fields, name, f) {
      assert_non_null(json_object_get(f, "recorded"));
      assert_non_null(json_object_get(f, "replayed"));
    }
  } else {
    const char *side = strcmp(change, "only_recorded") == 0 ? "recorded" : "replayed";
    assert_true(strcmp(change, "only_recorded") == 0 || strcmp(change, "only_replayed") == 0);
    assert_non_null(json_object_get(line, side));
    assert_null(json_object_get(line, "fields"));
  }
}

static void test_diff_out_lines_are_json(void **st) {
  (void)st;
  kefu_diff_t *d = kefu_diff_new();
  kefu_diff_add(d, 0, KEFU_T_ROUTING_DECISIONS, decision("s1", "e1-d0", "a1"));
  kefu_diff_add(d, 1, KEFU_T_ROUTING_DECISIONS, decision("s1", "e1-d0", "a2"));
  kefu_diff_add(d, 0, KEFU_T_ROUTING_DECISIONS, decision("s1", "e2-d0", "a1"));
  kefu_diff_add(d, 1, KEFU_T_SERVICE_CARDS, js("{\"card_id\":\"e1-c0\",\"shop_id\":\"s1\"}"));
  kefu_diff_add(d, 1, KEFU_T_INQUIRY_INSIGHTS, js("{\"cause\":\"LATE\"}"));
  report_t r = report_of(d);
  int lines = 0, changed = 0;
  for (char *p = r.diff_out, *nl; (nl = strchr(p, '\n')); p = nl + 1, lines++) {
    json_error_t e;
    json_t *line = json_loadb(p, (size_t)(nl - p), 0, &e);
    if (!line)
      fail_msg("diff-out line %d is not JSON: %s", lines + 1, e.text);
    assert_diff_line(line);
    if (strcmp(json_string_value(json_object_get(line, "change")), "changed") == 0) {
      json_t *agent = json_object_get(json_object_get(line, "fields"), "agent_id");
      assert_string_equal(json_string_value(json_object_get(agent, "recorded")), "a1");
      assert_string_equal(json_string_value(json_object_get(agent, "replayed")), "a2");
      assert_int_equal(json_object_size(json_object_get(line, "fields")), 1);
      changed++;
    }
    json_decref(line);
  }
  assert_int_equal(lines, 4);
  assert_int_equal(changed, 1);
  report_free(&r);
  kefu_diff_free(d);
}

/* Non-object values, missing or non-string ids and shops, bad sides and topics: no
 * crash, and what has no key matches by its whole JSON. */
static void test_odd_json_matches_whole(void **st) {
  (void)st;
  kefu_diff_t *d = kefu_diff_new();
  const char *odd[] = {"[1,2]",
                       "42",
                       "null",
                       "\"text\"",
                       "{}",
                       "{\"decision_id\":7,\"shop_id\":\"s1\"}",
                       "{\"decision_id\":\"e1-d0\"}",
                       "{\"decision_id\":\"\",\"shop_id\":\"s1\",\"type\":[1]}",
                       "{\"type\":\"VIOLATION\",\"shop_id\":3}"};
  size_t n = sizeof odd / sizeof *odd;
  for (int side = 0; side < 2; side++)
    for (size_t i = 0; i < n; i++)
      kefu_diff_add(d, side, i % 2 ? KEFU_T_RESPONSE_VIOLATIONS : KEFU_T_ROUTING_DECISIONS,
                    js(odd[i]));
  kefu_diff_add(d, 0, KEFU_T_ROUTING_DECISIONS, js("[3]"));
  kefu_diff_add(d, 2, KEFU_T_ROUTING_DECISIONS, js("{}"));
  kefu_diff_add(d, 0, KEFU_T__COUNT, js("{}"));
  kefu_diff_add(d, 0, KEFU_T_DLQ, NULL);
  assert_counts(d, (long)n + 1, (long)n, (long)n, 0, 1, 0);
  report_t r = report_of(d);
  assert_has(r.diff_out, "\"key\":{\"shop_id\":null,\"id\":null},\"change\":\"only_recorded\","
                         "\"recorded\":[3]}");
  report_free(&r);
  kefu_diff_free(d);
}

/* Kinds come from the records: odd input naming hundreds of kinds, or long ones, gets
 * one row for the rest. */
static void test_many_kinds_share_a_row(void **st) {
  (void)st;
  kefu_diff_t *d = kefu_diff_new();
  for (int i = 0; i < 300; i++) {
    char text[128];
    snprintf(text, sizeof text, "{\"card_id\":\"e%d-c0\",\"shop_id\":\"s1\",\"card\":\"K%03d\"}", i,
             i);
    kefu_diff_add(d, 0, KEFU_T_SERVICE_CARDS, js(text));
  }
  report_t r = report_of(d);
  assert_has(r.summary, "K099 ");
  assert_null(strstr(r.summary, "K100 "));
  assert_has(r.summary, "(other kinds)       200         0");
  int rows = 0;
  for (const char *p = r.summary; (p = strstr(p, "kefu.service.cards")); p++)
    rows++;
  assert_int_equal(rows, 101);
  report_free(&r);
  kefu_diff_free(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_identical_sets_are_unchanged),
      cmocka_unit_test(test_changed_field_is_counted_with_examples),
      cmocka_unit_test(test_long_values_are_cut),
      cmocka_unit_test(test_only_on_one_side),
      cmocka_unit_test(test_duplicate_keys_match_in_order),
      cmocka_unit_test(test_verdicts_of_hand_made_records),
      cmocka_unit_test(test_verdicts_follow_daily_report_rates),
      cmocka_unit_test(test_load_dir_reads_topics_and_names_a_bad_line),
      cmocka_unit_test(test_diff_out_lines_are_json),
      cmocka_unit_test(test_odd_json_matches_whole),
      cmocka_unit_test(test_many_kinds_share_a_row),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
