/* The Schema Registry client's parts that need no server (DECISIONS 57): the schema
 * table with the built-in ids unlisted, and the resolution check of a writer's schema
 * against kefu's reader schema. The HTTP side runs against the stand-in in
 * tests/integration/test_registry.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "io/registry.h"
#include "io/schemas.h"
#include "io/topics.h"

static char err[512];

/* Unlisted built-ins: their ids are free and not found, the readers stay, and an added
 * id neither becomes the reader nor the id kefu writes unless pinned. */
static void test_spec1_2_unlisted_builtin_ids_leave_the_wire(void **state) {
  (void)state;
  kefu_schemas_t *s = kefu_schemas_new(err, sizeof err);
  assert_non_null(s);
  avro_schema_t chat = kefu_schemas_current(s, KEFU_T_CHAT);
  const char *text = kefu_schemas_current_text(s, KEFU_T_CHAT);
  assert_non_null(kefu_schemas_by_id(s, 1, NULL));
  kefu_schemas_unlist(s);
  assert_null(kefu_schemas_by_id(s, 1, NULL));
  assert_int_equal(kefu_schemas_current_id(s, KEFU_T_CHAT), -1);
  assert_ptr_equal(kefu_schemas_current(s, KEFU_T_CHAT), chat);
  /* The registry may give id 1 to another topic's schema. */
  const char *cards = kefu_schemas_current_text(s, KEFU_T_SERVICE_CARDS);
  assert_int_equal(
      kefu_schemas_add(s, 1, KEFU_T_SERVICE_CARDS, cards, strlen(cards), err, sizeof err), 0);
  assert_int_equal(kefu_schemas_current_id(s, KEFU_T_SERVICE_CARDS), -1);
  assert_int_equal(kefu_schemas_set_current(s, KEFU_T_SERVICE_CARDS, 1), 0);
  assert_int_equal(kefu_schemas_current_id(s, KEFU_T_SERVICE_CARDS), 1);
  /* A writer's id of chat events: found, but kefu's reader stays. */
  assert_int_equal(kefu_schemas_add(s, 1000, KEFU_T_CHAT, text, strlen(text), err, sizeof err), 0);
  assert_non_null(kefu_schemas_by_id(s, 1000, NULL));
  assert_ptr_equal(kefu_schemas_current(s, KEFU_T_CHAT), chat);
  assert_int_equal(kefu_schemas_current_id(s, KEFU_T_CHAT), -1);
  kefu_schemas_destroy(s);
}

static avro_schema_t parse(const char *json) {
  avro_schema_t out = NULL;
  avro_schema_error_t e;
  assert_int_equal(avro_schema_from_json(json, (int32_t)strlen(json), &out, &e), 0);
  return out;
}

static int resolvable(const kefu_schemas_t *s, const char *writer, kefu_topic_t t) {
  avro_schema_t w = parse(writer);
  int rc = kefu_registry_resolvable(s, w, kefu_schemas_current(s, t), err, sizeof err);
  avro_schema_decref(w);
  return rc;
}

static void test_spec1_2_writer_schemas_resolve_by_avro_rules(void **state) {
  (void)state;
  kefu_schemas_t *s = kefu_schemas_new(err, sizeof err);
  assert_non_null(s);
  /* kefu's own schema resolves. */
  assert_int_equal(resolvable(s, kefu_schemas_current_text(s, KEFU_T_CHAT), KEFU_T_CHAT), 0);
  /* A field of another type. */
  assert_int_equal(resolvable(s,
                              "{\"type\":\"record\",\"name\":\"ChatEvent\",\"fields\":["
                              "{\"name\":\"event_id\",\"type\":\"int\"}]}",
                              KEFU_T_CHAT),
                   -1);
  assert_non_null(strstr(err, "event_id: the writer's int cannot be read as string"));
  /* A writer lacking a field kefu has no default for. */
  assert_int_equal(resolvable(s,
                              "{\"type\":\"record\",\"name\":\"ChatEvent\",\"fields\":["
                              "{\"name\":\"event_id\",\"type\":\"string\"}]}",
                              KEFU_T_CHAT),
                   -1);
  assert_non_null(strstr(err, "missing in the writer's schema, and no default"));
  /* Not a record at all. */
  assert_int_equal(resolvable(s, "\"string\"", KEFU_T_CHAT), -1);
  kefu_schemas_destroy(s);
}

/* Promotions and unions, on a small reader schema added to the table. */
static void test_spec1_2_promotions_and_unions(void **state) {
  (void)state;
  kefu_schemas_t *s = kefu_schemas_new(err, sizeof err);
  const char *reader = "{\"type\":\"record\",\"name\":\"R\",\"fields\":["
                       "{\"name\":\"n\",\"type\":\"double\"},"
                       "{\"name\":\"o\",\"type\":[\"null\",\"long\"],\"default\":null}]}";
  assert_int_equal(kefu_schemas_add(s, 5000, KEFU_T_DLQ, reader, strlen(reader), err, sizeof err),
                   0);
  assert_int_equal(kefu_schemas_set_current(s, KEFU_T_DLQ, 5000), 0);
  assert_int_equal(resolvable(s,
                              "{\"type\":\"record\",\"name\":\"R\",\"fields\":["
                              "{\"name\":\"n\",\"type\":\"int\"},"
                              "{\"name\":\"o\",\"type\":\"int\"}]}",
                              KEFU_T_DLQ),
                   0);
  assert_int_equal(resolvable(s,
                              "{\"type\":\"record\",\"name\":\"R\",\"fields\":["
                              "{\"name\":\"n\",\"type\":\"float\"},{\"name\":\"x\",\"type\":"
                              "\"string\"}]}",
                              KEFU_T_DLQ),
                   0); /* o defaults; x is skipped */
  assert_int_equal(resolvable(s,
                              "{\"type\":\"record\",\"name\":\"R\",\"fields\":["
                              "{\"name\":\"n\",\"type\":\"double\"},"
                              "{\"name\":\"o\",\"type\":[\"null\",\"string\"]}]}",
                              KEFU_T_DLQ),
                   -1);
  assert_non_null(strstr(err, "o: a branch of the writer's union (string) is not readable"));
  assert_int_equal(resolvable(s,
                              "{\"type\":\"record\",\"name\":\"R\",\"fields\":["
                              "{\"name\":\"n\",\"type\":\"string\"}]}",
                              KEFU_T_DLQ),
                   -1);
  kefu_schemas_destroy(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spec1_2_unlisted_builtin_ids_leave_the_wire),
      cmocka_unit_test(test_spec1_2_writer_schemas_resolve_by_avro_rules),
      cmocka_unit_test(test_spec1_2_promotions_and_unions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
