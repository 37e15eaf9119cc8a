/* The schema table and the value codec (SPEC 1.2): every conformance record survives
 * JSON -> Avro -> JSON, the bytes are those of the Avro spec and of an avro-c writer
 * built by hand here, an older writer's record gets the current defaults, bad input of
 * any kind is an error and never a crash nor a huge allocation, and JSON prints in its
 * contract form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <avro.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/embedded.h"
#include "io/codec.h"
#include "io/schemas.h"
#include "io/topics.h"

typedef struct fixture {
  kefu_schemas_t *schemas;
  kefu_codec_t *codec;
  char *buf;
  size_t cap;
} fixture_t;

static char errstr[512];

/* ---- helpers ------------------------------------------------------------------ */

/* The conformance examples: $KEFU_SHARED_DIR, else ../shared beside the source root
 * (this file is <root>/tests/unit/test_codec.c), else /work/shared. */
static const char *shared_dir(void) {
  static char dir[4096];
  const char *env = getenv("KEFU_SHARED_DIR");
  const char *tail = "tests/unit/test_codec.c";
  size_t n = strlen(__FILE__), t = strlen(tail);
  struct stat st;

  if (env && *env)
    return env;
  if (n >= t && strcmp(&__FILE__[n - t], tail) == 0) {
    snprintf(dir, sizeof dir, "%.*s../shared", (int)(n - t), __FILE__);
    if (dir[0] == '/' && stat(dir, &st) == 0)
      return dir;
  }
  return "/work/shared";
}

static void pathf(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* snprintf that fails the test instead of truncating a path. */
static void pathf(char *out, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(out, n, fmt, ap);
  va_end(ap);
  if (len < 0 || (size_t)len >= n)
    fail_msg("path too long: %s", out);
}

static kefu_topic_t topic_of_file(const char *name) {
  char suffix[128];
  if (strncmp(name, "kefu.", 5) != 0 || strlen(name) < 11)
    return KEFU_TOPIC_NONE;
  snprintf(suffix, sizeof suffix, "%.*s", (int)(strlen(name) - 11), name + 5);
  for (int i = 0; i < KEFU_T__COUNT; i++)
    if (strcmp(kefu_topics[i].suffix, suffix) == 0)
      return (kefu_topic_t)i;
  return KEFU_TOPIC_NONE;
}

static avro_schema_t resolve(avro_schema_t s) {
  while (s && is_avro_link(s))
    s = avro_schema_link_target(s);
  return s;
}

/* Whether the decoded value @p d is what the original JSON @p o meant, under type @p s:
 * fields the original left out must hold the schema's default, numbers compare by
 * value (a double written as 1 reads back as 1.0). */
static int same(const kefu_schemas_t *sc, avro_schema_t s, const json_t *o, const json_t *d) {
  s = resolve(s);
  if (!d)
    return 0;
  if (is_avro_union(s)) {
    if (json_is_null(o))
      return json_is_null(d);
    for (size_t i = 0; i < avro_schema_union_size(s); i++) {
      avro_schema_t b = resolve(avro_schema_union_branch(s, (int)i));
      if (!is_avro_null(b))
        return same(sc, b, o, d);
    }
    return 0;
  }
  if (is_avro_record(s)) {
    for (size_t i = 0; i < avro_schema_record_size(s); i++) {
      const char *name = avro_schema_record_field_name(s, (int)i);
      const json_t *ov = json_object_get(o, name), *dv = json_object_get(d, name);
      const json_t *def = kefu_schemas_field_default(sc, s, i);
      if (!ov && !(def && json_equal((json_t *)def, (json_t *)dv)))
        return 0;
      if (ov && !same(sc, avro_schema_record_field_get_by_index(s, (int)i), ov, dv))
        return 0;
    }
    return json_object_size(d) == avro_schema_record_size(s);
  }
  if (is_avro_array(s)) {
    if (json_array_size(o) != json_array_size(d) || !json_is_array(d))
      return 0;
    for (size_t i = 0; i < json_array_size(o); i++)
      if (!same(sc, avro_schema_array_items(s), json_array_get(o, i), json_array_get(d, i)))
        return 0;
    return 1;
  }
  if (is_avro_double(s) || is_avro_float(s))
    return json_is_real(d) && json_number_value(o) == json_real_value(d);
  return json_equal((json_t *)o, (json_t *)d);
}

/* JSON line -> frame -> JSON, checked three ways; returns 1 per record. */
static int round_trip(fixture_t *f, kefu_topic_t topic, const char *line, const char *where) {
  json_error_t jerr;
  json_t *orig = json_loads(line, 0, &jerr), *back = NULL, *again = NULL;
  size_t len = 0, len2 = 0;
  char *copy = NULL, *buf2 = NULL;
  size_t cap2 = 0;

  if (!orig)
    fail_msg("%s: bad JSON: %s", where, jerr.text);
  if (kefu_codec_encode(f->codec, topic, orig, &f->buf, &f->cap, &len, errstr, sizeof errstr))
    fail_msg("%s: encode: %s", where, errstr);
  assert_int_equal(f->buf[0], 0);
  if (kefu_codec_decode(f->codec, topic, f->buf, len, &back, errstr, sizeof errstr))
    fail_msg("%s: decode: %s", where, errstr);
  if (!same(f->schemas, kefu_schemas_current(f->schemas, topic), orig, back))
    fail_msg("%s: decoded record differs: %s", where, json_dumps(back, JSON_SORT_KEYS));

  /* The decoded form encodes to the same bytes and prints as parseable JSON. */
  copy = malloc(len);
  memcpy(copy, f->buf, len);
  assert_int_equal(
      kefu_codec_encode(f->codec, topic, back, &buf2, &cap2, &len2, errstr, sizeof errstr), 0);
  assert_int_equal(len2, len);
  assert_memory_equal(buf2, copy, len);
  char *text = NULL;
  assert_true(kefu_json_dumps_record(back, &text) > 0);
  assert_non_null(again = json_loads(text, 0, &jerr));
  assert_true(same(f->schemas, kefu_schemas_current(f->schemas, topic), back, again));

  free(text);
  free(copy);
  free(buf2);
  json_decref(again);
  json_decref(back);
  json_decref(orig);
  return 1;
}

static int round_trip_file(fixture_t *f, kefu_topic_t topic, const char *path) {
  FILE *in = fopen(path, "r");
  char *line = NULL, where[4200];
  size_t cap = 0;
  int n = 0, lineno = 0;

  assert_non_null(in);
  while (getline(&line, &cap, in) > 0) {
    lineno++;
    if (line[strspn(line, " \t\r\n")] == '\0')
      continue;
    pathf(where, sizeof where, "%s:%d", path, lineno);
    n += round_trip(f, topic, line, where);
  }
  free(line);
  fclose(in);
  return n;
}

/* Every <case>/<sub>/<topic>.jsonl of every conformance case; returns records checked. */
static int round_trip_cases(fixture_t *f, const char *sub) {
  char dir[4200], path[4400];
  const char *root = shared_dir();
  pathf(dir, sizeof dir, "%s/conformance", root);
  DIR *cases = opendir(dir);
  struct dirent *c, *e;
  int n = 0;

  if (!cases) { /* a checkout without the shared examples: nothing to compare with */
    print_message("no conformance examples in %s (set KEFU_SHARED_DIR); skipped\n", dir);
    skip();
  }
  while ((c = readdir(cases))) {
    if (c->d_name[0] == '.')
      continue;
    pathf(dir, sizeof dir, "%s/conformance/%s/%s", root, c->d_name, sub);
    DIR *files = opendir(dir);
    while (files && (e = readdir(files))) {
      kefu_topic_t t = topic_of_file(e->d_name);
      if (t == KEFU_TOPIC_NONE)
        continue;
      pathf(path, sizeof path, "%s/%s", dir, e->d_name);
      n += round_trip_file(f, t, path);
    }
    if (files)
      closedir(files);
    if (strcmp(sub, "input") == 0) { /* the clock events are chat events too */
      pathf(path, sizeof path, "%s/conformance/%s/clock.jsonl", root, c->d_name);
      struct stat st;
      if (stat(path, &st) == 0)
        n += round_trip_file(f, KEFU_T_CHAT, path);
    }
  }
  closedir(cases);
  return n;
}

static json_t *parse(const char *text) {
  json_error_t jerr;
  json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
  if (!j)
    fail_msg("bad test JSON: %s: %s", text, jerr.text);
  return j;
}

/* Encodes @p text for @p topic into the fixture's buffer; returns the frame length or
 * -1 with the error in errstr. */
static long encode_text(fixture_t *f, kefu_topic_t topic, const char *text) {
  json_t *j = parse(text);
  size_t len = 0;
  int rc = kefu_codec_encode(f->codec, topic, j, &f->buf, &f->cap, &len, errstr, sizeof errstr);
  json_decref(j);
  return rc ? -1 : (long)len;
}

static void assert_encode_fails(fixture_t *f, kefu_topic_t topic, const char *text,
                                const char *expected_error) {
  if (encode_text(f, topic, text) >= 0)
    fail_msg("encoding %s should fail", text);
  if (strcmp(errstr, expected_error) != 0)
    fail_msg("error \"%s\", expected \"%s\"", errstr, expected_error);
}

static const char *SHOP_CONFIG =
    "{\"event_id\": \"e1\", \"shop_id\": \"s1\", \"ts\": 1773068400000, \"queue_enabled\": true,"
    " \"groups\": [{\"group_id\": \"g0\", \"bot_enabled\": true, \"crowd_tags\": [\"vip\"]},"
    "              {\"group_id\": \"g1\", \"strategy\": \"CONVERSION\","
    "               \"order_states\": [\"UNPAID\", \"AFTER_SALE\"]}]}";

static const char *DAILY_REPORT =
    "{\"record_id\": \"c-r0\", \"cause_event_id\": \"c\", \"shop_id\": \"s1\", \"ts\": 1,"
    " \"type\": \"DAILY_REPORT\", \"day\": \"2026-03-10\", \"consultations\": 3,"
    " \"effective\": 1, \"rate\": 0.3333333333333333, \"threshold\": 0.4,"
    " \"penalties\": [\"TRAFFIC_DOWNWEIGHT\"], \"effective_from\": null,"
    " \"consecutive_failed_days\": 1, \"consultations_by_bot\": 1,"
    " \"consultations_by_human\": 2, \"consultations_other\": 0, \"effective_by_bot\": 1,"
    " \"effective_by_human\": 0, \"effective_other\": 0,"
    " \"cause_counts\": {\"UNKNOWN\": 2, \"LOGISTICS_STALLED\": 1, \"ADDRESS_CHANGED\": 5}}";

/* ---- fixture ------------------------------------------------------------------ */

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  f->schemas = kefu_schemas_new(errstr, sizeof errstr);
  if (!f->schemas) {
    print_error("kefu_schemas_new: %s\n", errstr);
    free(f);
    return -1;
  }
  f->codec = kefu_codec_new(f->schemas);
  *state = f;
  return f->codec ? 0 : -1;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  kefu_codec_destroy(f->codec);
  kefu_schemas_destroy(f->schemas);
  free(f->buf);
  free(f);
  return 0;
}

/* ---- tests -------------------------------------------------------------------- */

/* The built-in table (schemas/ids.tsv): ids 1..11, one per topic with a schema. */
static void test_builtin_ids(void **state) {
  fixture_t *f = *state;
  kefu_topic_t owner;
  for (int i = 0; i < KEFU_T__COUNT; i++) {
    int32_t id = kefu_schemas_current_id(f->schemas, (kefu_topic_t)i);
    if (!kefu_topics[i].schema_file) {
      assert_int_equal(id, -1);
      assert_null(kefu_schemas_current(f->schemas, (kefu_topic_t)i));
      continue;
    }
    assert_int_equal(id, i + 1);
    assert_non_null(kefu_schemas_by_id(f->schemas, id, &owner));
    assert_int_equal(owner, i);
    assert_ptr_equal(kefu_schemas_current(f->schemas, (kefu_topic_t)i),
                     kefu_schemas_by_id(f->schemas, id, NULL));
    assert_non_null(strstr(kefu_schemas_text(f->schemas, id), "\"kefu.v1\""));
  }
  assert_null(kefu_schemas_by_id(f->schemas, 99, NULL));
  assert_null(kefu_schemas_text(f->schemas, 99));
}

/* SPEC 1.2: every input record of the conformance examples round-trips. */
static void test_conformance_inputs_round_trip(void **state) {
  int n = round_trip_cases(*state, "input");
  print_message("%d input records round-tripped\n", n);
  assert_true(n > 1000);
}

/* SPEC 3: every expected output record encodes with its topic's schema and round-trips. */
static void test_conformance_outputs_round_trip(void **state) {
  int n = round_trip_cases(*state, "expected");
  print_message("%d output records round-tripped\n", n);
  assert_true(n > 500);
}

/* SPEC 1.2 defaults: missing fields and JSON null for arrays. */
static void test_encode_fills_defaults(void **state) {
  fixture_t *f = *state;
  json_t *d = NULL;
  long len = encode_text(f, KEFU_T_SHOP_CONFIG, SHOP_CONFIG);
  assert_true(len > 0);
  assert_int_equal(kefu_codec_decode(f->codec, KEFU_T_SHOP_CONFIG, f->buf, (size_t)len, &d, errstr,
                                     sizeof errstr),
                   0);
  assert_int_equal(json_integer_value(json_object_get(d, "queue_max_wait_ms")), 600000);
  assert_int_equal(json_integer_value(json_object_get(d, "transfer_entry_exposure_pct")), 100);
  assert_int_equal(json_integer_value(json_object_get(d, "utc_offset_minutes")), 480);
  assert_true(json_is_true(json_object_get(d, "logistics_enabled")));
  assert_true(json_is_true(json_object_get(d, "merchant_invite_enabled")));
  assert_true(json_is_true(json_object_get(d, "response_rate_assessed")));
  assert_true(json_is_false(json_object_get(d, "bot_priority")));
  assert_string_equal(json_string_value(json_object_get(d, "leave_message_target")),
                      "MAIN_ACCOUNT");
  json_t *g0 = json_array_get(json_object_get(d, "groups"), 0);
  assert_string_equal(json_string_value(json_object_get(g0, "strategy")), "EFFICIENCY");
  assert_int_equal(json_array_size(json_object_get(g0, "item_ids")), 0);
  json_decref(d);

  /* JSON null for an array reads as [], for an optional field as absent. */
  len = encode_text(f, KEFU_T_CHAT,
                    "{\"event_id\": \"e\", \"shop_id\": \"s\", \"ts\": 5, \"type\": \"CHAT_OPEN\","
                    " \"buyer_id\": \"b\", \"crowd_tags\": null, \"intent\": null}");
  assert_true(len > 0);
  assert_int_equal(
      kefu_codec_decode(f->codec, KEFU_T_CHAT, f->buf, (size_t)len, &d, errstr, sizeof errstr), 0);
  assert_int_equal(json_array_size(json_object_get(d, "crowd_tags")), 0);
  assert_true(json_is_null(json_object_get(d, "intent")));
  assert_true(json_is_false(json_object_get(d, "auto_reply")));
  json_decref(d);

  /* Agent profile defaults (SPEC 2.3): level 1, capacity 20; doubles take integers. */
  len = encode_text(f, KEFU_T_AGENT,
                    "{\"event_id\": \"e\", \"shop_id\": \"s\", \"ts\": 5, \"type\": \"PROFILE\","
                    " \"agent_id\": \"a\", \"conversion_rate\": 1}");
  assert_true(len > 0);
  assert_int_equal(
      kefu_codec_decode(f->codec, KEFU_T_AGENT, f->buf, (size_t)len, &d, errstr, sizeof errstr), 0);
  assert_int_equal(json_integer_value(json_object_get(d, "level")), 1);
  assert_int_equal(json_integer_value(json_object_get(d, "capacity")), 20);
  assert_string_equal(json_string_value(json_object_get(d, "account_kind")), "SUB");
  assert_true(json_is_real(json_object_get(d, "conversion_rate")));
  assert_true(json_real_value(json_object_get(d, "conversion_rate")) == 1.0);
  json_decref(d);
}

static void test_encode_rejects_bad_records(void **state) {
  fixture_t *f = *state;
  const char *head = "\"event_id\": \"e\", \"shop_id\": \"s\", \"ts\": 5";
  char text[512];

  assert_encode_fails(f, KEFU_T_SHOP_CONFIG,
                      "{\"event_id\": \"e\", \"shop_id\": \"s\", \"ts\": 5, \"groups\":"
                      " [{\"group_id\": \"a\"}, {\"group_id\": \"b\", \"strategy\": \"FOO\"}]}",
                      "groups[1].strategy: unknown symbol FOO");
  snprintf(text, sizeof text, "{%s, \"type\": \"BUYER_MSG\", \"colour\": 1}", head);
  assert_encode_fails(f, KEFU_T_CHAT, text, "unknown field colour");
  assert_encode_fails(f, KEFU_T_SHOP_CONFIG,
                      "{\"event_id\": \"e\", \"shop_id\": \"s\", \"ts\": 5, \"groups\":"
                      " [{\"group_id\": \"a\", \"colour\": 1}]}",
                      "unknown field groups[0].colour");
  assert_encode_fails(f, KEFU_T_CHAT,
                      "{\"event_id\": \"e\", \"shop_id\": \"s\", \"type\": \"BOT_MSG\"}",
                      "ts: missing required field");
  snprintf(text, sizeof text,
           "{%s, \"type\": \"PROFILE\", \"agent_id\": \"a\", \"capacity\": 4294967296}", head);
  assert_encode_fails(f, KEFU_T_AGENT, text, "capacity: 4294967296 is out of the int range");
  snprintf(text, sizeof text, "{%s, \"type\": \"PROFILE\", \"agent_id\": \"a\", \"level\": \"2\"}",
           head);
  assert_encode_fails(f, KEFU_T_AGENT, text, "level: expected int, got string");
  assert_encode_fails(
      f, KEFU_T_CHAT,
      "{\"event_id\": \"e\", \"shop_id\": \"s\", \"ts\": 1.5, \"type\": \"BOT_MSG\"}",
      "ts: expected long, got real");
  assert_encode_fails(f, KEFU_T_CHAT,
                      "{\"event_id\": null, \"shop_id\": \"s\", \"ts\": 1, \"type\": \"BOT_MSG\"}",
                      "event_id: null for a required field");
  snprintf(text, sizeof text, "{%s, \"type\": \"NOT_A_TYPE\"}", head);
  assert_encode_fails(f, KEFU_T_CHAT, text, "type: unknown symbol NOT_A_TYPE");
  snprintf(text, sizeof text, "{%s, \"type\": \"BUYER_MSG\", \"buyer_id\": 7}", head);
  assert_encode_fails(f, KEFU_T_CHAT, text,
                      "buyer_id: no branch of the union takes a JSON integer");
  assert_encode_fails(f, KEFU_T_CHAT, "[1, 2]", "a record must be a JSON object, got array");
  assert_encode_fails(f, KEFU_T_DLQ, "{}", "topic kefu.dlq has no schema");
}

/* Encodes the flat record @p r and its JSON form (kefu_record_to_json): the same result,
 * the same bytes or the same error. Returns the flat path's rc; clears @p r. */
static int encode_both(fixture_t *f, kefu_topic_t topic, kefu_record_t *r, char *err,
                       size_t errlen) {
  json_t *j = kefu_record_to_json(r);
  char jerr[256], *jbuf = NULL;
  size_t len = 0, jlen = 0, jcap = 0;
  int rc = kefu_codec_encode_record(f->codec, topic, r, &f->buf, &f->cap, &len, err, errlen);
  int jrc = kefu_codec_encode(f->codec, topic, j, &jbuf, &jcap, &jlen, jerr, sizeof jerr);
  assert_int_equal(rc, jrc);
  if (rc == 0) {
    assert_int_equal(len, jlen);
    assert_memory_equal(f->buf, jbuf, len);
  } else {
    assert_string_equal(err, jerr);
  }
  free(jbuf);
  json_decref(j);
  kefu_record_clear(r);
  return rc;
}

/* A flat record (how the engine encodes what the rules emit) encodes exactly as its
 * JSON form: bytes, defaults, union branches and every error. */
static void test_flat_record_encodes_as_its_json(void **state) {
  fixture_t *f = *state;
  kefu_record_t r;
  char err[256];

  kefu_record_init(&r);
  kefu_record_str(&r, "decision_id", "c-d0");
  kefu_record_str(&r, "cause_event_id", "c");
  kefu_record_str(&r, "shop_id", "s1");
  kefu_record_int(&r, "ts", 1773068400000);
  kefu_record_str(&r, "buyer_id", "b1");
  kefu_record_str(&r, "trigger", "CHAT_OPEN");
  kefu_record_str(&r, "target", "AGENT");
  kefu_record_str(&r, "agent_id", "a1");
  kefu_record_str(&r, "group_id", NULL);
  kefu_record_int(&r, "queue_position", 3);
  kefu_record_str(&r, "step", "NO_AGENT_ONLINE");
  kefu_record_int(&r, "candidates", 2);
  kefu_record_bool(&r, "assessment_exempt", true);
  kefu_record_str(&r, "explain", "x\xe4\xb8\xad");
  kefu_record_str(&r, "agent_id", "a2"); /* replaces, as json_object_set does */
  assert_int_equal(encode_both(f, KEFU_T_ROUTING_DECISIONS, &r, err, sizeof err), 0);

  kefu_record_init(&r); /* doubles from integers and reals, nested JSON, defaults */
  kefu_record_str(&r, "record_id", "c-r0");
  kefu_record_str(&r, "cause_event_id", "c");
  kefu_record_str(&r, "shop_id", "s1");
  kefu_record_int(&r, "ts", 1);
  kefu_record_str(&r, "type", "DAILY_REPORT");
  kefu_record_str(&r, "day", "2026-03-10");
  kefu_record_int(&r, "consultations", 3);
  kefu_record_int(&r, "effective", 1);
  kefu_record_real(&r, "rate", 1.0 / 3.0);
  kefu_record_int(&r, "threshold", 1);
  kefu_record_json(&r, "penalties", json_pack("[s]", "TRAFFIC_DOWNWEIGHT"));
  kefu_record_json(&r, "effective_from", json_null());
  const char *counts[] = {"consecutive_failed_days", "consultations_by_bot",
                          "consultations_by_human",  "consultations_other",
                          "effective_by_bot",        "effective_by_human",
                          "effective_other"};
  for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
    kefu_record_int(&r, counts[i], (int64_t)i);
  kefu_record_json(&r, "cause_counts", json_pack("{s:i, s:i}", "UNKNOWN", 2, "ADDRESS_CHANGED", 5));
  assert_int_equal(encode_both(f, KEFU_T_RESPONSE_VIOLATIONS, &r, err, sizeof err), 0);

  kefu_record_init(&r);
  kefu_record_str(&r, "shop_id", "s1");
  kefu_record_int(&r, "colour", 1);
  assert_int_equal(encode_both(f, KEFU_T_ROUTING_DECISIONS, &r, err, sizeof err), -1);
  assert_string_equal(err, "unknown field colour");

  const struct {
    const char *field, *error;
    kefu_field_kind_t kind;
  } bad[] = {
      {"trigger", "trigger: unknown symbol NOPE", KEFU_FIELD_STR},
      {"candidates", "candidates: 4294967296 is out of the int range", KEFU_FIELD_INT},
      {"candidates", "candidates: expected int, got string", KEFU_FIELD_STR},
      {"ts", "ts: expected long, got real", KEFU_FIELD_REAL},
      {"shop_id", "shop_id: null for a required field", KEFU_FIELD_NULL},
      {"agent_id", "agent_id: no branch of the union takes a JSON integer", KEFU_FIELD_INT},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    kefu_record_init(&r);
    kefu_record_str(&r, "decision_id", "c-d0");
    kefu_record_str(&r, "cause_event_id", "c");
    kefu_record_str(&r, "shop_id", "s1");
    kefu_record_int(&r, "ts", 1);
    kefu_record_str(&r, "buyer_id", "b1");
    kefu_record_str(&r, "trigger", "CHAT_OPEN");
    kefu_record_str(&r, "target", "BOT");
    kefu_record_str(&r, "step", "NO_AGENT_ONLINE");
    kefu_record_int(&r, "candidates", 0);
    switch (bad[i].kind) {
    case KEFU_FIELD_STR: kefu_record_str(&r, bad[i].field, "NOPE"); break;
    case KEFU_FIELD_INT: kefu_record_int(&r, bad[i].field, INT64_C(4294967296)); break;
    case KEFU_FIELD_REAL: kefu_record_real(&r, bad[i].field, 1.5); break;
    default: kefu_record_null(&r, bad[i].field); break;
    }
    assert_int_equal(encode_both(f, KEFU_T_ROUTING_DECISIONS, &r, err, sizeof err), -1);
    assert_string_equal(err, bad[i].error);
  }

  kefu_record_init(&r); /* a missing required field */
  kefu_record_str(&r, "shop_id", "s1");
  assert_int_equal(encode_both(f, KEFU_T_ROUTING_DECISIONS, &r, err, sizeof err), -1);
  assert_string_equal(err, "decision_id: missing required field");
}

/* Maps are written in key order, so equal records give equal bytes (SPEC 1.2). */
static void test_map_key_order(void **state) {
  fixture_t *f = *state;
  const char *reordered =
      "{\"cause_counts\": {\"LOGISTICS_STALLED\": 1, \"ADDRESS_CHANGED\": 5, \"UNKNOWN\": 2},"
      " \"record_id\": \"c-r0\", \"cause_event_id\": \"c\", \"shop_id\": \"s1\", \"ts\": 1,"
      " \"type\": \"DAILY_REPORT\", \"day\": \"2026-03-10\", \"consultations\": 3,"
      " \"effective\": 1, \"rate\": 0.3333333333333333, \"threshold\": 0.4,"
      " \"penalties\": [\"TRAFFIC_DOWNWEIGHT\"], \"effective_from\": null,"
      " \"consecutive_failed_days\": 1, \"consultations_by_bot\": 1,"
      " \"consultations_by_human\": 2, \"consultations_other\": 0, \"effective_by_bot\": 1,"
      " \"effective_by_human\": 0, \"effective_other\": 0}";
  long len = encode_text(f, KEFU_T_RESPONSE_VIOLATIONS, DAILY_REPORT);
  assert_true(len > 0);
  char *first = malloc((size_t)len);
  memcpy(first, f->buf, (size_t)len);
  assert_int_equal(encode_text(f, KEFU_T_RESPONSE_VIOLATIONS, reordered), len);
  assert_memory_equal(first, f->buf, (size_t)len);

  json_t *d = NULL;
  char *text = NULL;
  assert_int_equal(kefu_codec_decode(f->codec, KEFU_T_RESPONSE_VIOLATIONS, f->buf, (size_t)len, &d,
                                     errstr, sizeof errstr),
                   0);
  assert_true(kefu_json_dumps_record(json_object_get(d, "cause_counts"), &text) > 0);
  assert_string_equal(text, "{\"ADDRESS_CHANGED\":5,\"LOGISTICS_STALLED\":1,\"UNKNOWN\":2}");
  free(text);
  free(first);
  json_decref(d);
}

static void assert_decode_fails(fixture_t *f, kefu_topic_t topic, const void *buf, size_t len,
                                const char *expected_error) {
  json_t *out = (json_t *)1;
  assert_int_equal(kefu_codec_decode(f->codec, topic, buf, len, &out, errstr, sizeof errstr), -1);
  assert_null(out);
  if (expected_error && strcmp(errstr, expected_error) != 0)
    fail_msg("error \"%s\", expected \"%s\"", errstr, expected_error);
}

/* SPEC 6: bad framing and unknown ids are errors with a reason (they go to the DLQ). */
static void test_decode_bad_framing(void **state) {
  fixture_t *f = *state;
  const uint8_t magic7[] = {7, 0, 0, 0, 1, 2, 'e', 0};
  const uint8_t unknown[] = {0, 0, 0, 0, 99, 2, 'e'};
  const uint8_t other[] = {0, 0, 0, 0, 4, 2, 'e'};

  assert_decode_fails(f, KEFU_T_CHAT, "", 0, "bad framing: 0 bytes, need at least 5");
  assert_decode_fails(f, KEFU_T_CHAT, "\0\0\0\1", 4, "bad framing: 4 bytes, need at least 5");
  assert_decode_fails(f, KEFU_T_CHAT, NULL, 0, "bad framing: 0 bytes, need at least 5");
  assert_decode_fails(f, KEFU_T_CHAT, magic7, sizeof magic7, "bad framing: magic byte 0x07");
  assert_decode_fails(f, KEFU_T_CHAT, unknown, sizeof unknown, "unknown schema id 99");
  assert_decode_fails(f, KEFU_T_CHAT, other, sizeof other,
                      "schema id 4 belongs to topic kefu.shop.config");
}

/* Every strict prefix of a valid frame fails, and so does one more byte. */
static void test_decode_truncated_and_trailing(void **state) {
  fixture_t *f = *state;
  long len = encode_text(f, KEFU_T_SHOP_CONFIG, SHOP_CONFIG);
  assert_true(len > 20);
  len = len > 20 ? len : 20; /* for -O3's bounds analysis: assert_true may return */
  char *frame = malloc((size_t)len + 1);
  memcpy(frame, f->buf, (size_t)len);
  for (long n = 0; n < len; n++)
    assert_decode_fails(f, KEFU_T_SHOP_CONFIG, frame, (size_t)n, NULL);
  assert_decode_fails(f, KEFU_T_SHOP_CONFIG, frame, 5, "avro: truncated at event_id");
  frame[len] = 0;
  assert_decode_fails(f, KEFU_T_SHOP_CONFIG, frame, (size_t)len + 1, "avro: 1 trailing bytes");
  free(frame);

  /* Wire-level nonsense is named precisely. */
  const uint8_t huge_string[] = {0, 0, 0, 0, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f};
  assert_decode_fails(f, KEFU_T_CHAT, huge_string, sizeof huge_string,
                      "avro: length 2147483647 exceeds the 0 bytes left at event_id");
  const uint8_t bad_utf8[] = {0, 0, 0, 0, 1, 2, 0xff};
  assert_decode_fails(f, KEFU_T_CHAT, bad_utf8, sizeof bad_utf8,
                      "avro: string is not UTF-8 at event_id");
  const uint8_t bad_enum[] = {0, 0, 0, 0, 1, 2, 'e', 2, 's', 2, 0x40};
  assert_decode_fails(f, KEFU_T_CHAT, bad_enum, sizeof bad_enum,
                      "avro: enum index 32 out of range at type");
  const uint8_t long_varint[] = {0,    0,    0,    0,    1,    2,    'e',  2,    's', 0xff,
                                 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
  assert_decode_fails(f, KEFU_T_CHAT, long_varint, sizeof long_varint,
                      "avro: varint longer than 64 bits at ts");
}

/* ---- kefu's bytes against the Avro spec and a plain avro-c writer ------------- */

/* SPEC 1.2: the frame of a small record, worked out by hand from the Avro spec: zigzag
 * varints, strings as length + UTF-8 bytes, enums and union branches as indexes. */
static void test_bytes_match_avro_spec(void **state) {
  fixture_t *f = *state;
  const char *json = "{\"response_event_id\": \"a\", \"cause_event_id\": \"b\", \"shop_id\": \"s\","
                     " \"ts\": 1, \"type\": \"RESPONSE_TIMEOUT\", \"buyer_id\": \"\xe4\xb8\xad\","
                     " \"responder_kind\": \"BOT\", \"responder_id\": null,"
                     " \"waiting_since\": -1, \"deadline\": 64}";
  int32_t id = kefu_schemas_current_id(f->schemas, KEFU_T_RESPONSE_EVENTS);
  // clang-format off
  const uint8_t frame[] = {0, 0, 0, 0, (uint8_t)id, /* magic byte, schema id */
                           2, 'a', 2, 'b', 2, 's',   /* three strings of 1 byte */
                           2,                        /* ts 1 */
                           0,                        /* type: symbol 0 */
                           6, 0xe4, 0xb8, 0xad,      /* buyer_id: 3 bytes of UTF-8 */
                           2,                        /* responder_kind: symbol 1 */
                           0,                        /* responder_id: branch 0, null */
                           1,                        /* waiting_since -1 */
                           0x80, 1};                 /* deadline 64 */
  // clang-format on
  json_t *orig = parse(json), *d = NULL;

  assert_true(id > 0 && id < 256);
  assert_int_equal(encode_text(f, KEFU_T_RESPONSE_EVENTS, json), (long)sizeof frame);
  assert_memory_equal(f->buf, frame, sizeof frame);
  assert_int_equal(kefu_codec_decode(f->codec, KEFU_T_RESPONSE_EVENTS, frame, sizeof frame, &d,
                                     errstr, sizeof errstr),
                   0);
  assert_true(json_equal(orig, d));
  json_decref(d);
  json_decref(orig);
}

/* A record built by hand with avro-c's generic values, fields found by name, as any
 * avro-c program would (nothing of kefu's codec is used). */
typedef struct hand_record {
  avro_value_iface_t *iface;
  avro_value_t value;
} hand_record_t;

static void hand_new(hand_record_t *h, avro_schema_t schema) {
  assert_non_null(h->iface = avro_generic_class_from_schema(schema));
  assert_int_equal(avro_generic_value_new(h->iface, &h->value), 0);
}

static void hand_free(hand_record_t *h) {
  avro_value_decref(&h->value);
  avro_value_iface_decref(h->iface);
}

static avro_value_t field_of(avro_value_t *rec, const char *name) {
  avro_value_t v;
  if (avro_value_get_by_name(rec, name, &v, NULL))
    fail_msg("no field %s: %s", name, avro_strerror());
  return v;
}

static void set_string(avro_value_t *rec, const char *name, const char *s) {
  avro_value_t v = field_of(rec, name);
  assert_int_equal(avro_value_set_string(&v, s), 0);
}

static void set_int(avro_value_t *rec, const char *name, int64_t n) {
  avro_value_t v = field_of(rec, name);
  if (avro_value_get_type(&v) == AVRO_INT64)
    assert_int_equal(avro_value_set_long(&v, n), 0);
  else
    assert_int_equal(avro_value_set_int(&v, (int32_t)n), 0);
}

static void set_bool(avro_value_t *rec, const char *name, int b) {
  avro_value_t v = field_of(rec, name);
  assert_int_equal(avro_value_set_boolean(&v, b), 0);
}

static void set_symbol(avro_value_t *v, const char *symbol) {
  int i = avro_schema_enum_get_by_name(avro_value_get_schema(v), symbol);
  assert_true(i >= 0);
  assert_int_equal(avro_value_set_enum(v, i), 0);
}

static void set_enum(avro_value_t *rec, const char *name, const char *symbol) {
  avro_value_t v = field_of(rec, name);
  set_symbol(&v, symbol);
}

/* Appends @p n strings (or enum symbols) to the array field @p name. */
static void set_array(avro_value_t *rec, const char *name, const char *const *items, size_t n) {
  avro_value_t v = field_of(rec, name), item;
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(avro_value_append(&v, &item, NULL), 0);
    if (avro_value_get_type(&item) == AVRO_ENUM)
      set_symbol(&item, items[i]);
    else
      assert_int_equal(avro_value_set_string(&item, items[i]), 0);
  }
}

/* The union field @p name of type ["null", X]: its branch @p branch, to be set. */
static avro_value_t set_branch(avro_value_t *rec, const char *name, int branch) {
  avro_value_t v = field_of(rec, name), b;
  assert_int_equal(avro_value_set_branch(&v, branch, &b), 0);
  if (branch == 0)
    assert_int_equal(avro_value_set_null(&b), 0);
  return b;
}

/* kefu's frame for @p json is the avro-c writer's bytes of @p v behind the header, and
 * kefu reads those bytes back to @p json (with the schema's defaults). */
static void assert_same_bytes(fixture_t *f, kefu_topic_t topic, const char *json, avro_value_t *v) {
  char out[2048];
  int32_t id = kefu_schemas_current_id(f->schemas, topic);
  avro_writer_t w =
      avro_writer_memory(out + KEFU_CODEC_HEADER_LEN, (int64_t)sizeof out - KEFU_CODEC_HEADER_LEN);
  json_t *orig = parse(json), *d = NULL;

  assert_non_null(w);
  assert_int_equal(avro_value_write(w, v), 0);
  size_t len = KEFU_CODEC_HEADER_LEN + (size_t)avro_writer_tell(w);
  avro_writer_free(w);
  out[0] = 0;
  for (int i = 0; i < 4; i++)
    out[1 + i] = (char)((uint32_t)id >> (24 - 8 * i));
  assert_int_equal(encode_text(f, topic, json), (long)len);
  assert_memory_equal(f->buf, out, len);
  assert_int_equal(kefu_codec_decode(f->codec, topic, out, len, &d, errstr, sizeof errstr), 0);
  assert_true(same(f->schemas, kefu_schemas_current(f->schemas, topic), orig, d));
  json_decref(d);
  json_decref(orig);
}

/* SPEC 1.2: a daily report (enum array, optional double and long, map in key order)
 * and a shop config whose defaults the hand-built record spells out (SPEC 2.4). */
static void test_bytes_match_plain_avro_c_writer(void **state) {
  fixture_t *f = *state;
  hand_record_t h;
  avro_value_t *r = &h.value, counts, count, groups, group, rate;
  static const char *const penalties[] = {"TRAFFIC_DOWNWEIGHT"}, *const vip[] = {"vip"};
  static const char *const states[] = {"UNPAID", "AFTER_SALE"};
  static const struct {
    const char *name;
    int64_t n;
  } ints[] = {{"ts", 1},
              {"consultations", 3},
              {"effective", 1},
              {"consecutive_failed_days", 1},
              {"consultations_by_bot", 1},
              {"consultations_by_human", 2},
              {"consultations_other", 0},
              {"effective_by_bot", 1},
              {"effective_by_human", 0},
              {"effective_other", 0}};

  hand_new(&h, kefu_schemas_current(f->schemas, KEFU_T_RESPONSE_VIOLATIONS));
  set_string(r, "record_id", "c-r0");
  set_string(r, "cause_event_id", "c");
  set_string(r, "shop_id", "s1");
  set_string(r, "day", "2026-03-10");
  set_enum(r, "type", "DAILY_REPORT");
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
    set_int(r, ints[i].name, ints[i].n);
  rate = set_branch(r, "rate", 1);
  assert_int_equal(avro_value_set_double(&rate, 0.3333333333333333), 0);
  rate = field_of(r, "threshold");
  assert_int_equal(avro_value_set_double(&rate, 0.4), 0);
  set_array(r, "penalties", penalties, 1);
  set_branch(r, "effective_from", 0);
  counts = field_of(r, "cause_counts");
  assert_int_equal(avro_value_add(&counts, "ADDRESS_CHANGED", &count, NULL, NULL), 0);
  assert_int_equal(avro_value_set_long(&count, 5), 0);
  assert_int_equal(avro_value_add(&counts, "LOGISTICS_STALLED", &count, NULL, NULL), 0);
  assert_int_equal(avro_value_set_long(&count, 1), 0);
  assert_int_equal(avro_value_add(&counts, "UNKNOWN", &count, NULL, NULL), 0);
  assert_int_equal(avro_value_set_long(&count, 2), 0);
  assert_same_bytes(f, KEFU_T_RESPONSE_VIOLATIONS, DAILY_REPORT, r);
  hand_free(&h);

  hand_new(&h, kefu_schemas_current(f->schemas, KEFU_T_SHOP_CONFIG));
  set_string(r, "event_id", "e1");
  set_string(r, "shop_id", "s1");
  set_int(r, "ts", 1773068400000);
  set_bool(r, "bot_priority", 0);
  set_bool(r, "exclusive_direct", 0);
  set_enum(r, "leave_message_target", "MAIN_ACCOUNT");
  set_bool(r, "queue_enabled", 1);
  set_int(r, "queue_max_wait_ms", 600000);
  set_bool(r, "logistics_enabled", 1);
  set_bool(r, "merchant_invite_enabled", 1);
  set_int(r, "transfer_entry_exposure_pct", 100);
  set_bool(r, "response_rate_assessed", 1);
  set_int(r, "utc_offset_minutes", 480);
  groups = field_of(r, "groups");
  assert_int_equal(avro_value_append(&groups, &group, NULL), 0);
  set_string(&group, "group_id", "g0");
  set_bool(&group, "bot_enabled", 1);
  set_enum(&group, "strategy", "EFFICIENCY");
  set_array(&group, "crowd_tags", vip, 1);
  assert_int_equal(avro_value_append(&groups, &group, NULL), 0);
  set_string(&group, "group_id", "g1");
  set_bool(&group, "bot_enabled", 0);
  set_enum(&group, "strategy", "CONVERSION");
  set_array(&group, "order_states", states, 2);
  assert_same_bytes(f, KEFU_T_SHOP_CONFIG, SHOP_CONFIG, r);
  hand_free(&h);
}

/* Of repeated map keys the last wins, as in Java; where avro-c would merge the values
 * (arrays and maps) instead, a repeated key is an error. */
static void test_repeated_map_keys(void **state) {
  fixture_t *f = *state;
  const char *record = "{\"type\": \"record\", \"name\": \"M\", \"fields\": [{\"name\": \"m\","
                       " \"type\": {\"type\": \"map\", \"values\": {\"type\": \"array\","
                       " \"items\": \"int\"}}}]}";
  const uint8_t twice[] = {0, 0, 0, 0, 70, 4, 2, 'k', 2, 2, 0, 2, 'k', 2, 4, 0, 0};
  const uint8_t distinct[] = {0, 0, 0, 0, 70, 4, 2, 'k', 2, 2, 0, 2, 'j', 2, 4, 0, 0};
  json_t *d = NULL;
  char *text = NULL;

  /* cause_counts {"A": 1, "B": 2} with the key B renamed A on the wire. */
  const char *daily =
      "{\"record_id\": \"r\", \"cause_event_id\": \"c\", \"shop_id\": \"s\","
      " \"ts\": 1, \"type\": \"DAILY_REPORT\", \"day\": \"d\", \"consultations\": 0,"
      " \"effective\": 0, \"threshold\": 0.4, \"consecutive_failed_days\": 0,"
      " \"consultations_by_bot\": 0, \"consultations_by_human\": 0,"
      " \"consultations_other\": 0, \"effective_by_bot\": 0,"
      " \"effective_by_human\": 0, \"effective_other\": 0,"
      " \"cause_counts\": {\"A\": 1, \"B\": 2}}";
  long len = encode_text(f, KEFU_T_RESPONSE_VIOLATIONS, daily);
  assert_true(len > 8);
  assert_memory_equal(f->buf + len - 7,
                      "\x02"
                      "A"
                      "\x02\x02"
                      "B"
                      "\x04\x00",
                      7);
  f->buf[len - 3] = 'A';
  assert_int_equal(kefu_codec_decode(f->codec, KEFU_T_RESPONSE_VIOLATIONS, f->buf, (size_t)len, &d,
                                     errstr, sizeof errstr),
                   0);
  assert_true(kefu_json_dumps_record(json_object_get(d, "cause_counts"), &text) > 0);
  assert_string_equal(text, "{\"A\":2}");
  free(text);
  json_decref(d);

  assert_int_equal(kefu_schemas_add(f->schemas, 70, KEFU_T_COURIER_STATUS, record, strlen(record),
                                    errstr, sizeof errstr),
                   0);
  assert_decode_fails(f, KEFU_T_COURIER_STATUS, twice, sizeof twice,
                      "avro: map key k repeated at m");
  assert_int_equal(kefu_codec_decode(f->codec, KEFU_T_COURIER_STATUS, distinct, sizeof distinct, &d,
                                     errstr, sizeof errstr),
                   0);
  assert_true(kefu_json_dumps_record(d, &text) > 0);
  assert_string_equal(text, "{\"m\":{\"j\":[2],\"k\":[1]}}");
  free(text);
  json_decref(d);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void) { /* xorshift64*: reproducible across runs */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}

/* Decodes @p buf; whatever it holds, the codec answers, and what it accepts re-encodes
 * and decodes to the same JSON. Returns whether it was accepted. */
static int fuzz_one(fixture_t *f, kefu_topic_t topic, const uint8_t *buf, size_t len) {
  json_t *out = NULL, *again = NULL;
  char *text = NULL, *re = NULL;
  size_t recap = 0, relen = 0;
  if (kefu_codec_decode(f->codec, topic, buf, len, &out, errstr, sizeof errstr)) {
    assert_null(out);
    assert_true(errstr[0] != '\0');
    return 0;
  }
  assert_true(json_is_object(out));
  assert_true(kefu_json_dumps_record(out, &text) > 0);
  assert_int_equal(
      kefu_codec_encode(f->codec, topic, out, &re, &recap, &relen, errstr, sizeof errstr), 0);
  assert_int_equal(kefu_codec_decode(f->codec, topic, re, relen, &again, errstr, sizeof errstr), 0);
  assert_true(json_equal(out, again));
  free(text);
  free(re);
  json_decref(again);
  json_decref(out);
  return 1;
}

/* avro-c's allocations while the fuzz test runs (avro-c takes one allocator for the
 * whole process): the largest request, and the requests refused for being absurd; no
 * frame of a few hundred bytes has a reason to ask for a megabyte. */
#define ABSURD_ALLOCATION ((size_t)1 << 20)

typedef struct alloc_watch {
  struct avro_allocator_state prev;
  size_t largest, refused;
} alloc_watch_t;

static void *watching_allocator(void *user_data, void *ptr, size_t osize, size_t nsize) {
  alloc_watch_t *w = user_data;
  if (nsize > w->largest)
    w->largest = nsize;
  if (nsize > ABSURD_ALLOCATION) {
    w->refused++;
    return NULL;
  }
  return w->prev.alloc(w->prev.user_data, ptr, osize, nsize);
}

/* Lengths and counts a hostile writer would send: 2^31-1, -1, a 10-byte varint, 2^33
 * and 2^28-1 (as zigzag varints). */
static const uint8_t HOSTILE[][11] = {
    {5, 0xfe, 0xff, 0xff, 0xff, 0x0f},
    {1, 0x01},
    {10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
    {5, 0x80, 0x80, 0x80, 0x80, 0x40},
    {4, 0xfe, 0xff, 0xff, 0xff},
};

/* Fills @p buf with round @p round's test case for the fuzz test; returns its length
 * and its topic in @p *topic. */
static size_t fuzz_case(int round, const uint8_t seed[2][1024], const size_t seed_len[2],
                        const kefu_topic_t seed_topics[2], uint8_t buf[1100], kefu_topic_t *topic) {
  size_t len = rng() % 200;
  int s = (int)(rng() % 2);
  *topic = (kefu_topic_t)(rng() % KEFU_T_DLQ);
  for (size_t i = 0; i < len; i++)
    buf[i] = (uint8_t)rng();
  switch (round % 4) {
  case 0: /* noise */ return len;
  case 1: /* a valid header for the topic, then noise */
    memcpy(buf, "\0\0\0\0", 4);
    buf[4] = (uint8_t)(*topic + 1);
    return len < 5 ? 5 : len;
  case 2: /* a valid record with a few bytes changed, cut or extended */
    *topic = seed_topics[s];
    memcpy(buf, seed[s], seed_len[s]);
    len = seed_len[s];
    for (int k = 0, edits = 1 + (int)(rng() % 4); k < edits; k++)
      buf[5 + rng() % (len - 5)] = (uint8_t)rng();
    if (rng() % 4 == 0)
      return 5 + rng() % (len - 4);
    return rng() % 4 == 0 ? len + rng() % 8 : len;
  default: { /* a valid record with a hostile length or count put in somewhere */
    const uint8_t *h = HOSTILE[rng() % (sizeof HOSTILE / sizeof HOSTILE[0])];
    size_t at = 5 + rng() % (seed_len[s] - 5);
    *topic = seed_topics[s];
    memcpy(buf, seed[s], at);
    memcpy(buf + at, h + 1, h[0]);
    size_t skip = rng() % 2 ? h[0] : 0; /* over the old bytes, or in between them */
    if (at + skip > seed_len[s])
      skip = seed_len[s] - at;
    memcpy(buf + at + h[0], seed[s] + at + skip, seed_len[s] - at - skip);
    return seed_len[s] + h[0] - skip;
  }
  }
}

/* SPEC 6, "never crash": 10,000 random and mutated buffers (KEFU_FUZZ_ROUNDS=N for
 * more) are answered, and never make avro-c ask for an absurd amount of memory. Run it
 * under -DKEFU_SANITIZE=ON to catch what does not crash outright. */
static void test_decode_random_bytes(void **state) {
  fixture_t *f = *state;
  const char *seeds[] = {SHOP_CONFIG, DAILY_REPORT};
  const kefu_topic_t seed_topics[] = {KEFU_T_SHOP_CONFIG, KEFU_T_RESPONSE_VIOLATIONS};
  uint8_t seed[2][1024], buf[1100];
  size_t seed_len[2];
  int accepted = 0;
  static alloc_watch_t watch; /* static: avro-c keeps it even if an assertion jumps out */

  watch = (alloc_watch_t){.prev = AVRO_CURRENT_ALLOCATOR};

  for (int i = 0; i < 2; i++) {
    long n = encode_text(f, seed_topics[i], seeds[i]);
    assert_true(n > 0 && (size_t)n <= sizeof seed[i]);
    n = n > 0 && (size_t)n <= sizeof seed[i] ? n : 0; /* for -O3: assert_true may return */
    memcpy(seed[i], f->buf, (size_t)n);
    seed_len[i] = (size_t)n;
  }
  const char *env = getenv("KEFU_FUZZ_ROUNDS"); /* more for a longer local run */
  int rounds = env && atoi(env) > 0 ? atoi(env) : 10000;
  avro_set_allocator(watching_allocator, &watch);
  for (int round = 0; round < rounds; round++) {
    kefu_topic_t topic;
    size_t len = fuzz_case(round, (const uint8_t(*)[1024])seed, seed_len, seed_topics, buf, &topic);
    accepted += fuzz_one(f, topic, buf, len);
  }
  avro_set_allocator(watch.prev.alloc, watch.prev.user_data);
  print_message("%d of %d random buffers decoded; avro-c's largest allocation %zu bytes\n",
                accepted, rounds, watch.largest);
  assert_int_equal(watch.refused, 0);
  assert_true(watch.largest <= ABSURD_ALLOCATION);
}

/* A reduced shop.config schema standing for an older version of it. */
static const char *OLD_SHOP_CONFIG =
    "{\"type\": \"record\", \"name\": \"ShopConfig\", \"namespace\": \"kefu.v1\", \"fields\": ["
    " {\"name\": \"event_id\", \"type\": \"string\"},"
    " {\"name\": \"shop_id\", \"type\": \"string\"},"
    " {\"name\": \"ts\", \"type\": \"long\"},"
    " {\"name\": \"queue_enabled\", \"type\": \"boolean\", \"default\": false},"
    " {\"name\": \"retired\", \"type\": \"int\", \"default\": 0},"
    " {\"name\": \"groups\", \"type\": {\"type\": \"array\", \"items\": {\"type\": \"record\","
    "   \"name\": \"Group\", \"fields\": [{\"name\": \"group_id\", \"type\": \"string\"}]}},"
    "  \"default\": []}]}";

/* SPEC 1.2: decode with the writer's schema, take the current defaults for fields the
 * writer lacks, nested records included; kefu writes with the newest id. */
static void test_older_writer_gets_current_defaults(void **state) {
  fixture_t *f = *state;
  const kefu_embedded_t *cur = kefu_embedded_find("schemas/shop_config.avsc");
  json_t *d = NULL;

  assert_non_null(cur);
  assert_int_equal(kefu_schemas_add(f->schemas, 100, KEFU_T_SHOP_CONFIG, OLD_SHOP_CONFIG,
                                    strlen(OLD_SHOP_CONFIG), errstr, sizeof errstr),
                   0);
  assert_int_equal(kefu_schemas_current_id(f->schemas, KEFU_T_SHOP_CONFIG), 100);
  long len = encode_text(f, KEFU_T_SHOP_CONFIG,
                         "{\"event_id\": \"e\", \"shop_id\": \"s\", \"ts\": 7, \"retired\": 3,"
                         " \"queue_enabled\": true, \"groups\": [{\"group_id\": \"g\"}]}");
  assert_true(len > 0);
  assert_int_equal(f->buf[4], 100);

  /* A newer version arrives (as a registry would add it): it becomes current. */
  assert_int_equal(kefu_schemas_add(f->schemas, 101, KEFU_T_SHOP_CONFIG, cur->data, cur->len,
                                    errstr, sizeof errstr),
                   0);
  assert_int_equal(kefu_schemas_current_id(f->schemas, KEFU_T_SHOP_CONFIG), 101);
  assert_int_equal(kefu_codec_decode(f->codec, KEFU_T_SHOP_CONFIG, f->buf, (size_t)len, &d, errstr,
                                     sizeof errstr),
                   0);
  assert_true(json_is_true(json_object_get(d, "queue_enabled")));
  assert_int_equal(json_integer_value(json_object_get(d, "retired")), 3);
  assert_int_equal(json_integer_value(json_object_get(d, "queue_max_wait_ms")), 600000);
  assert_int_equal(json_integer_value(json_object_get(d, "utc_offset_minutes")), 480);
  assert_true(json_is_true(json_object_get(d, "logistics_enabled")));
  assert_string_equal(json_string_value(json_object_get(d, "leave_message_target")),
                      "MAIN_ACCOUNT");
  json_t *g = json_array_get(json_object_get(d, "groups"), 0);
  assert_string_equal(json_string_value(json_object_get(g, "group_id")), "g");
  assert_string_equal(json_string_value(json_object_get(g, "strategy")), "EFFICIENCY");
  assert_true(json_is_false(json_object_get(g, "bot_enabled")));
  assert_int_equal(json_array_size(json_object_get(g, "order_states")), 0);
  json_decref(d);

  /* Pinning the id kefu writes (a registry's id for kefu's own schema). */
  assert_int_equal(kefu_schemas_set_current(f->schemas, KEFU_T_SHOP_CONFIG, 4), 0);
  assert_int_equal(kefu_schemas_current_id(f->schemas, KEFU_T_SHOP_CONFIG), 4);
  assert_int_equal(kefu_schemas_set_current(f->schemas, KEFU_T_SHOP_CONFIG, 1), -1);
  assert_int_equal(kefu_schemas_set_current(f->schemas, KEFU_T_SHOP_CONFIG, 555), -1);
}

/* A writer lacking a field that has no default in the current schema is an error. */
static void test_older_writer_without_required_field(void **state) {
  fixture_t *f = *state;
  const char *old = "{\"type\": \"record\", \"name\": \"CourierStatus\", \"fields\": ["
                    " {\"name\": \"courier\", \"type\": \"string\"}]}";
  const uint8_t frame[] = {0, 0, 0, 0, 50, 6, 'Z', 'T', 'O'};
  assert_int_equal(kefu_schemas_add(f->schemas, 50, KEFU_T_COURIER_STATUS, old, strlen(old), errstr,
                                    sizeof errstr),
                   0);
  assert_int_equal(kefu_schemas_set_current(f->schemas, KEFU_T_COURIER_STATUS, 5), 0);
  assert_decode_fails(f, KEFU_T_COURIER_STATUS, frame, sizeof frame,
                      "avro: writer's schema lacks field region_code, which has no default");
}

static void test_schemas_add_rejects_bad_schemas(void **state) {
  fixture_t *f = *state;
  const char *not_record = "\"string\"";
  const char *bad_default = "{\"type\": \"record\", \"name\": \"X\", \"fields\": ["
                            " {\"name\": \"n\", \"type\": \"int\", \"default\": \"x\"}]}";
  const char *bad_enum_default =
      "{\"type\": \"record\", \"name\": \"X\", \"fields\": [{\"name\": \"e\", \"type\":"
      " {\"type\": \"enum\", \"name\": \"E\", \"symbols\": [\"A\"]}, \"default\": \"B\"}]}";
  const kefu_embedded_t *chat = kefu_embedded_find("schemas/chat_event.avsc");

  assert_int_equal(kefu_schemas_add(f->schemas, 60, KEFU_T_CHAT, "{", 1, errstr, sizeof errstr),
                   -1);
  assert_int_equal(kefu_schemas_add(f->schemas, 60, KEFU_T_CHAT, not_record, strlen(not_record),
                                    errstr, sizeof errstr),
                   -1);
  assert_string_equal(errstr, "schema id 60: not a record");
  assert_int_equal(kefu_schemas_add(f->schemas, 60, KEFU_T_CHAT, bad_default, strlen(bad_default),
                                    errstr, sizeof errstr),
                   -1);
  assert_string_equal(errstr, "schema id 60: record X: default of field n does not fit its type");
  assert_int_equal(kefu_schemas_add(f->schemas, 60, KEFU_T_CHAT, bad_enum_default,
                                    strlen(bad_enum_default), errstr, sizeof errstr),
                   -1);
  /* The same id again: a no-op with the same text, an error with another. */
  assert_int_equal(
      kefu_schemas_add(f->schemas, 1, KEFU_T_CHAT, chat->data, chat->len, errstr, sizeof errstr),
      0);
  assert_int_equal(
      kefu_schemas_add(f->schemas, 1, KEFU_T_ORDER, chat->data, chat->len, errstr, sizeof errstr),
      -1);
  assert_string_equal(errstr, "schema id 1 is already taken (topic kefu.chat.events)");
  assert_int_equal(kefu_schemas_current_id(f->schemas, KEFU_T_CHAT), 1);
  assert_null(kefu_schemas_by_id(f->schemas, 60, NULL));
}

static void assert_dumps(const char *json, const char *expected) {
  json_t *j = parse(json);
  char *text = NULL;
  assert_int_equal(kefu_json_dumps_record(j, &text), (int)strlen(expected));
  assert_string_equal(text, expected);
  free(text);
  json_decref(j);
}

/* SPEC 1.2: compact JSON, insertion order, shortest round-trip doubles. */
static void test_json_printing(void **state) {
  (void)state;
  assert_dumps("{\"b\": 1, \"a\": \"x\", \"c\": [true, false, null]}",
               "{\"b\":1,\"a\":\"x\",\"c\":[true,false,null]}");
  assert_dumps("[0.4, 0.0, -0.0, 1.0, 0.1, 2.5e-07, 1e+300, 0.30000000000000004, 123456789.125]",
               "[0.4,0.0,-0.0,1.0,0.1,2.5e-07,1e+300,0.30000000000000004,123456789.125]");
  assert_dumps("[0.3333333333333333, 1.7976931348623157e308, 5e-324]",
               "[0.3333333333333333,1.7976931348623157e+308,5e-324]");
  /* Python's repr() layout: positional from 1e-4 up to 1e16. */
  assert_dumps("[1e16, 1.5e16, 1e15, 0.0001, 0.00001, 123.0, -42.5, 9007199254740993.0]",
               "[1e+16,1.5e+16,1000000000000000.0,0.0001,1e-05,123.0,-42.5,9007199254740992.0]");
  assert_dumps("[\"q\\\"b\\\\s\\n\\t\\u0001/é中\"]", "[\"q\\\"b\\\\s\\n\\t\\u0001/é中\"]");
  assert_dumps("{}", "{}");
  assert_dumps("-9223372036854775807", "-9223372036854775807");

  /* The reusable-buffer form grows one buffer across calls. */
  char *buf = NULL;
  size_t cap = 0;
  json_t *j = parse("{\"k\": \"v\"}");
  assert_int_equal(kefu_json_dumpb_record(j, &buf, &cap), 9);
  assert_int_equal(kefu_json_dumpb_record(j, &buf, &cap), 9);
  assert_string_equal(buf, "{\"k\":\"v\"}");
  free(buf);
  json_decref(j);
}

/* A decoded record prints with the schema's field order and contract values. */
static void test_decoded_record_prints_in_schema_order(void **state) {
  fixture_t *f = *state;
  const char *line =
      "{\"type\": \"RESPONSE_TIMEOUT\", \"buyer_id\": \"b2\", \"cause_event_id\":"
      " \"g-96\", \"deadline\": 1773126703000, \"responder_id\": null,"
      " \"responder_kind\": \"BOT\", \"response_event_id\": \"g-96-e0\","
      " \"shop_id\": \"s0\", \"ts\": 1773126703000, \"waiting_since\": 1773126523000}";
  json_t *d = NULL;
  char *text = NULL;
  long len = encode_text(f, KEFU_T_RESPONSE_EVENTS, line);
  assert_true(len > 0);
  assert_int_equal(kefu_codec_decode(f->codec, KEFU_T_RESPONSE_EVENTS, f->buf, (size_t)len, &d,
                                     errstr, sizeof errstr),
                   0);
  assert_true(kefu_json_dumps_record(d, &text) > 0);
  assert_string_equal(text, "{\"response_event_id\":\"g-96-e0\",\"cause_event_id\":\"g-96\","
                            "\"shop_id\":\"s0\",\"ts\":1773126703000,\"type\":\"RESPONSE_TIMEOUT\","
                            "\"buyer_id\":\"b2\",\"responder_kind\":\"BOT\",\"responder_id\":null,"
                            "\"waiting_since\":1773126523000,\"deadline\":1773126703000}");
  free(text);
  json_decref(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_builtin_ids, setup, teardown),
      cmocka_unit_test_setup_teardown(test_conformance_inputs_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_conformance_outputs_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_encode_fills_defaults, setup, teardown),
      cmocka_unit_test_setup_teardown(test_encode_rejects_bad_records, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flat_record_encodes_as_its_json, setup, teardown),
      cmocka_unit_test_setup_teardown(test_map_key_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_decode_bad_framing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_decode_truncated_and_trailing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bytes_match_avro_spec, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bytes_match_plain_avro_c_writer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_repeated_map_keys, setup, teardown),
      cmocka_unit_test_setup_teardown(test_decode_random_bytes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_older_writer_gets_current_defaults, setup, teardown),
      cmocka_unit_test_setup_teardown(test_older_writer_without_required_field, setup, teardown),
      cmocka_unit_test_setup_teardown(test_schemas_add_rejects_bad_schemas, setup, teardown),
      cmocka_unit_test(test_json_printing),
      cmocka_unit_test_setup_teardown(test_decoded_record_prints_in_schema_order, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
