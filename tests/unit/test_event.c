/* Input validation (SPEC §1.2 ids, §6 bad input): every reason a record goes to the DLQ. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/event.h"

static const int64_t NOW = INT64_C(1773068400000);

typedef struct bad_case {
  kefu_topic_t topic;
  const char *json;
  const char *key;
  const char *reason; /* a substring of the DLQ reason */
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {KEFU_T_CHAT,
     "{\"event_id\":\"e "
     "1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"BOT_MSG\",\"buyer_id\":\"b\"}",
     "s1", "event_id"},
    {KEFU_T_CHAT,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1}\",\"ts\":1773068400000,\"type\":\"BOT_MSG\",\"buyer_"
     "id\":\"b\"}",
     "s1}", "shop_id"},
    {KEFU_T_CHAT,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":946684799999,\"type\":\"BOT_MSG\",\"buyer_"
     "id\":\"b\"}",
     "s1", "ts"},
    {KEFU_T_CHAT,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773154800001,\"type\":\"BOT_MSG\",\"buyer_"
     "id\":\"b\"}",
     "s1", "ts"},
    {KEFU_T_CHAT,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"BOT_MSG\",\"buyer_"
     "id\":\"b\"}",
     "s2", "key"},
    {KEFU_T_CHAT,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"BOT_MSG\"}", "s1",
     "buyer_id"},
    {KEFU_T_CHAT,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"AGENT_MSG\",\"buyer_"
     "id\":\"b\"}",
     "s1", "agent_id"},
    {KEFU_T_CHAT,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"LOGISTICS_CONSENT\","
     "\"buyer_id\":\"b\"}",
     "s1", "invitation_id"},
    {KEFU_T_CHAT,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"DELIVERABILITY_"
     "QUERY\",\"agent_id\":\"a\"}",
     "s1", "order_id or region_code"},
    {KEFU_T_CHAT,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"DELIVERABILITY_"
     "QUERY\",\"agent_id\":\"a\",\"region_code\":\"44030\"}",
     "s1", "region_code"},
    {KEFU_T_CHAT,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"BUYER_MSG\",\"buyer_"
     "id\":\"b\",\"order_id\":\"o:1\"}",
     "s1", "order_id"},
    {KEFU_T_CHAT,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"NOPE\",\"buyer_id\":"
     "\"b\"}",
     "s1", "type"},
    {KEFU_T_ORDER,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"PAID\",\"buyer_id\":"
     "\"b\"}",
     "s1", "order_id"},
    {KEFU_T_ORDER,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"PAID\",\"buyer_id\":"
     "\"b\",\"order_id\":\"o\",\"region_code\":\"4403\"}",
     "s1", "region_code"},
    {KEFU_T_ORDER,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"PAID\",\"buyer_id\":"
     "\"b\",\"order_id\":\"o\",\"item_ids\":[\"i 1\"]}",
     "s1", "item_ids"},
    {KEFU_T_AGENT,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"PROFILE\",\"agent_"
     "id\":\"a\",\"level\":6}",
     "s1", "level"},
    {KEFU_T_AGENT,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"PROFILE\",\"agent_"
     "id\":\"a\",\"conversion_rate\":1.5}",
     "s1", "conversion_rate"},
    {KEFU_T_AGENT,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"PRESENCE\",\"agent_"
     "id\":\"a\"}",
     "s1", "presence"},
    {KEFU_T_AGENT,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"EXCLUSIVE_BIND\","
     "\"agent_id\":\"a\"}",
     "s1", "buyer_id"},
    {KEFU_T_SHOP_CONFIG,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"groups\":[{\"group_id\":\"g "
     "1\"}]}",
     "s1", "group_id"},
    {KEFU_T_SHOP_CONFIG,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"groups\":[],\"transfer_entry_"
     "exposure_pct\":101}",
     "s1", "transfer_entry_exposure_pct"},
    {KEFU_T_SHOP_CONFIG,
     "{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"groups\":[],\"utc_offset_"
     "minutes\":900}",
     "s1", "utc_offset_minutes"},
};

static void test_bad_input_is_rejected_with_its_reason(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
    const bad_case_t *c = &bad_cases[i];
    json_t *rec = json_loads(c->json, 0, NULL);
    kefu_event_t ev;
    char err[256] = "";
    assert_non_null(rec);
    int rc = kefu_event_from_json(&ev, c->topic, rec, c->key, strlen(c->key), NOW, err, sizeof err);
    if (rc != -1 || !strstr(err, c->reason))
      fail_msg("case %zu: rc %d, reason '%s', wanted '%s'", i, rc, err, c->reason);
    json_decref(rec);
  }
}

static void test_valid_event_fields_are_lifted(void **state) {
  (void)state;
  json_t *rec = json_loads("{\"event_id\":\"e-1.x_2\",\"shop_id\":\"s1\",\"ts\":1773068400000,"
                           "\"type\":\"AGENT_MSG\",\"buyer_id\":\"b1\",\"agent_id\":\"a1\"}",
                           0, NULL);
  kefu_event_t ev;
  char err[256];
  assert_int_equal(kefu_event_from_json(&ev, KEFU_T_CHAT, rec, "s1", 2, NOW, err, sizeof err), 0);
  assert_string_equal(ev.buyer_id, "b1");
  assert_string_equal(ev.agent_id, "a1");
  assert_null(ev.order_id);
  assert_int_equal(ev.ts, 1773068400000);
  kefu_event_clear(&ev);
  json_decref(rec);
}

static void test_ids_at_their_length_limits(void **state) {
  (void)state;
  char json[512], id56[57], id57[58];
  memset(id56, 'e', 56);
  id56[56] = '\0';
  memset(id57, 'e', 57);
  id57[57] = '\0';
  kefu_event_t ev;
  char err[256];
  snprintf(json, sizeof json,
           "{\"event_id\":\"%s\",\"shop_id\":\"s\",\"ts\":1773068400000,\"type\":\"BOT_MSG\","
           "\"buyer_id\":\"b\"}",
           id56);
  json_t *rec = json_loads(json, 0, NULL);
  assert_int_equal(kefu_event_from_json(&ev, KEFU_T_CHAT, rec, "s", 1, NOW, err, sizeof err), 0);
  kefu_event_clear(&ev);
  json_decref(rec);
  snprintf(json, sizeof json,
           "{\"event_id\":\"%s\",\"shop_id\":\"s\",\"ts\":1773068400000,\"type\":\"BOT_MSG\","
           "\"buyer_id\":\"b\"}",
           id57);
  rec = json_loads(json, 0, NULL);
  assert_int_equal(kefu_event_from_json(&ev, KEFU_T_CHAT, rec, "s", 1, NOW, err, sizeof err), -1);
  json_decref(rec);
}

static void test_config_with_groups_is_valid(void **state) {
  (void)state;
  json_t *rec = json_loads("{\"event_id\":\"e1\",\"shop_id\":\"s1\",\"ts\":1773068400000,"
                           "\"groups\":[{\"group_id\":\"g0\",\"item_ids\":[\"i1\"],"
                           "\"crowd_tags\":[\"new buyer\"]}]}",
                           0, NULL);
  kefu_event_t ev;
  char err[256] = "";
  int rc = kefu_event_from_json(&ev, KEFU_T_SHOP_CONFIG, rec, "s1", 2, NOW, err, sizeof err);
  if (rc)
    fail_msg("rejected: %s", err);
  /* the typed config the rules read */
  assert_int_equal(ev.source, KEFU_SRC_CONFIG);
  assert_false(ev.config_reset);
  assert_int_equal(ev.config.ngroups, 1);
  assert_string_equal(ev.config.groups[0].group_id, "g0");
  assert_true(kefu_strv_has(&ev.config.groups[0].item_ids, "i1"));
  assert_true(kefu_strv_has(&ev.config.groups[0].crowd_tags, "new buyer"));
  kefu_event_clear(&ev);
  json_decref(rec);
}

static void test_config_tombstone_is_a_reset_event(void **state) {
  (void)state;
  kefu_event_t ev;
  char err[256];
  assert_int_equal(kefu_event_config_reset(&ev, "s1", 2, 1773068400000, 42, NOW, err, sizeof err),
                   0);
  assert_string_equal(ev.event_id, "null-s1-42");
  assert_true(ev.config_reset);
  assert_int_equal(ev.ts, 1773068400000);
  kefu_event_clear(&ev);
  assert_int_equal(kefu_event_config_reset(&ev, "s 1", 3, 1773068400000, 1, NOW, err, sizeof err),
                   -1);
}

static void test_courier_status_validation(void **state) {
  (void)state;
  char err[256];
  json_t *ok = json_loads(
      "{\"courier\":\"ZTO\",\"region_code\":\"44\",\"deliverable\":false,\"valid_from\":1}", 0,
      NULL);
  json_t *bad_region = json_loads(
      "{\"courier\":\"ZTO\",\"region_code\":\"440\",\"deliverable\":false,\"valid_from\":1}", 0,
      NULL);
  json_t *bad_window = json_loads("{\"courier\":\"ZTO\",\"region_code\":\"44\",\"deliverable\":"
                                  "false,\"valid_from\":5,\"valid_until\":5}",
                                  0, NULL);
  assert_int_equal(kefu_courier_status_validate(ok, err, sizeof err), 0);
  assert_int_equal(kefu_courier_status_validate(bad_region, err, sizeof err), -1);
  assert_int_equal(kefu_courier_status_validate(bad_window, err, sizeof err), -1);
  json_decref(ok);
  json_decref(bad_region);
  json_decref(bad_window);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_input_is_rejected_with_its_reason),
      cmocka_unit_test(test_valid_event_fields_are_lifted),
      cmocka_unit_test(test_ids_at_their_length_limits),
      cmocka_unit_test(test_config_with_groups_is_valid),
      cmocka_unit_test(test_config_tombstone_is_a_reset_event),
      cmocka_unit_test(test_courier_status_validation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
