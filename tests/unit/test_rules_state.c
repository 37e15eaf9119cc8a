/* Pure rule tests (no Kafka, no Redis): the state updates later rules read (§2.2-§2.4,
 * ROUTE-6's order status and after-sale overlay) and the deliverability query DELIV-1..3. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/event.h"
#include "rules/routing.h"
#include "rules/rules.h"

static const int64_t T0 = INT64_C(1773068400000);

typedef struct fixture {
  kefu_rule_params_t params;
  kefu_courier_table_t couriers;
  kefu_rules_env_t env;
  kefu_shop_t *shop;
} fixture_t;

static int setup(void **state) {
  static fixture_t f;
  memset(&f, 0, sizeof f);
  kefu_courier_table_init(&f.couriers);
  f.env = (kefu_rules_env_t){&f.params, &f.couriers};
  f.shop = kefu_shop_new("s1");
  *state = &f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  kefu_shop_destroy(f->shop);
  kefu_courier_table_clear(&f->couriers);
  return 0;
}

/* Fields of emitted records, read as JSON (kefu_record_to_json). */
static const char *str_field(const json_t *rec, const char *name) {
  return json_string_value(json_object_get(rec, name));
}

/* Record @p i of @p em as JSON, borrowed: it lives until eight more are asked for. */
static json_t *record(const kefu_emitter_t *em, size_t i) {
  static json_t *ring[8];
  static size_t next;
  if (i >= em->n)
    return NULL;
  json_t **slot = &ring[next++ % 8];
  json_decref(*slot);
  *slot = kefu_record_to_json(&em->records[i].rec);
  return *slot;
}

/* Builds a validated event from JSON text (the record as the codec would decode it). */
static kefu_event_t event(kefu_topic_t topic, const char *json) {
  json_t *rec = json_loads(json, 0, NULL);
  kefu_event_t ev;
  char err[256];
  const char *shop = json_string_value(json_object_get(rec, "shop_id"));
  if (kefu_event_from_json(&ev, topic, rec, shop, strlen(shop), T0 + 400 * INT64_C(86400000), err,
                           sizeof err))
    fail_msg("invalid test event: %s", err);
  json_decref(rec);
  return ev;
}

static void apply(fixture_t *f, kefu_topic_t topic, const char *json, kefu_emitter_t *out) {
  kefu_event_t ev = event(topic, json);
  kefu_rules_apply(&f->env, f->shop, &ev, out);
  kefu_event_clear(&ev);
}

static void test_order_status_and_after_sale_overlay(void **state) {
  fixture_t *f = *state;
  kefu_emitter_t em;
  kefu_emitter_init(&em, "x");
  apply(f, KEFU_T_ORDER,
        "{\"event_id\":\"o1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"PAID\",\"buyer_"
        "id\":\"b1\",\"order_id\":\"ord1\",\"region_code\":\"440305\",\"packages\":[]}",
        &em);
  apply(f, KEFU_T_ORDER,
        "{\"event_id\":\"o2\",\"shop_id\":\"s1\",\"ts\":1773068400001,\"type\":\"SHIPPED\",\"buyer_"
        "id\":\"b1\",\"order_id\":\"ord1\",\"packages\":[{\"tracking_no\":\"t1\",\"courier\":"
        "\"ZTO\"}]}",
        &em);
  /* LOGISTICS_UPDATE changes neither status nor after-sale; an empty packages list
   * leaves the packages unchanged */
  apply(f, KEFU_T_ORDER,
        "{\"event_id\":\"o3\",\"shop_id\":\"s1\",\"ts\":1773068400002,\"type\":\"LOGISTICS_"
        "UPDATE\",\"buyer_id\":\"b1\",\"order_id\":\"ord1\",\"packages\":[]}",
        &em);
  apply(f, KEFU_T_ORDER,
        "{\"event_id\":\"o4\",\"shop_id\":\"s1\",\"ts\":1773068400003,\"type\":\"AFTER_SALE_"
        "OPENED\",\"buyer_id\":\"b1\",\"order_id\":\"ord1\",\"after_sale_reason\":\"DAMAGED\"}",
        &em);
  const kefu_order_t *o = kefu_shop_order(f->shop, "ord1");
  assert_non_null(o);
  assert_int_equal(o->status, KEFU_ORDER_SHIPPED);
  assert_int_equal(o->after_sale, KEFU_AFTER_SALE_DAMAGED);
  assert_int_equal(o->npackages, 1);
  assert_string_equal(o->packages[0].tracking_no, "t1");
  assert_string_equal(o->region_code, "440305");
  assert_int_equal(o->scan_ts, T0 + 2);
  apply(f, KEFU_T_ORDER,
        "{\"event_id\":\"o5\",\"shop_id\":\"s1\",\"ts\":1773068400004,\"type\":\"AFTER_SALE_"
        "CLOSED\",\"buyer_id\":\"b1\",\"order_id\":\"ord1\"}",
        &em);
  assert_int_equal(o->after_sale, KEFU_AFTER_SALE_NONE);
  assert_int_equal(o->status, KEFU_ORDER_SHIPPED);
  const kefu_buyer_t *b = kefu_shop_buyer(f->shop, "b1");
  assert_string_equal(b->last_order, "ord1");
  assert_true(o->changed);
  assert_int_equal(em.n, 0); /* order events emit nothing */
  kefu_emitter_clear(&em);
}

static void test_profile_replaces_the_whole_profile_and_keeps_presence(void **state) {
  fixture_t *f = *state;
  kefu_emitter_t em;
  kefu_emitter_init(&em, "x");
  apply(f, KEFU_T_AGENT,
        "{\"event_id\":\"a1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"PRESENCE\","
        "\"agent_id\":\"a1\",\"presence\":\"ONLINE\"}",
        &em);
  apply(f, KEFU_T_AGENT,
        "{\"event_id\":\"a2\",\"shop_id\":\"s1\",\"ts\":1773068400001,\"type\":\"PROFILE\",\"agent_"
        "id\":\"a1\",\"level\":4,\"groups\":[\"g1\"],\"capacity\":3}",
        &em);
  const kefu_agent_t *a = kefu_shop_agent(f->shop, "a1");
  assert_non_null(a);
  assert_int_equal(a->presence, KEFU_PRESENCE_ONLINE);
  assert_int_equal(a->level, 4);
  assert_int_equal(a->capacity, 3);
  assert_int_equal(a->groups.n, 1);
  /* a later PROFILE without groups has none: the whole profile is replaced */
  apply(f, KEFU_T_AGENT,
        "{\"event_id\":\"a3\",\"shop_id\":\"s1\",\"ts\":1773068400002,\"type\":\"PROFILE\",\"agent_"
        "id\":\"a1\",\"level\":2,\"groups\":[]}",
        &em);
  assert_int_equal(a->groups.n, 0);
  assert_int_equal(a->level, 2);
  assert_int_equal(a->capacity, 20); /* absent: the default */
  assert_int_equal(a->presence, KEFU_PRESENCE_ONLINE);
  kefu_emitter_clear(&em);
}

static void test_exclusive_bind_and_unbind(void **state) {
  fixture_t *f = *state;
  kefu_emitter_t em;
  kefu_emitter_init(&em, "x");
  apply(f, KEFU_T_AGENT,
        "{\"event_id\":\"x1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"EXCLUSIVE_BIND\","
        "\"agent_id\":\"a1\",\"buyer_id\":\"b1\"}",
        &em);
  apply(f, KEFU_T_AGENT,
        "{\"event_id\":\"x2\",\"shop_id\":\"s1\",\"ts\":1773068400001,\"type\":\"EXCLUSIVE_"
        "UNBIND\",\"agent_id\":\"a2\",\"buyer_id\":\"b1\"}",
        &em);
  const kefu_buyer_t *b = kefu_shop_buyer(f->shop, "b1");
  assert_string_equal(b->exclusive_agent, "a1"); /* another agent's unbind */
  apply(f, KEFU_T_AGENT,
        "{\"event_id\":\"x3\",\"shop_id\":\"s1\",\"ts\":1773068400002,\"type\":\"EXCLUSIVE_"
        "UNBIND\",\"agent_id\":\"a1\",\"buyer_id\":\"b1\"}",
        &em);
  assert_null(b->exclusive_agent);
  kefu_emitter_clear(&em);
}

static void put_status(fixture_t *f, const char *courier, const char *region, int deliverable,
                       const char *reason, int64_t from, int64_t until) {
  json_t *r =
      json_pack("{s:s, s:s, s:b, s:s?, s:I}", "courier", courier, "region_code", region,
                "deliverable", deliverable, "reason", reason, "valid_from", (json_int_t)from);
  if (until)
    json_object_set_new(r, "valid_until", json_integer(until));
  kefu_courier_table_put(&f->couriers, r);
  json_decref(r);
}

/* DELIV-1 (latest per key, validity window) and DELIV-2 (longest active prefix). */
static void test_DELIV_1_2_longest_active_prefix_decides(void **state) {
  fixture_t *f = *state;
  const char *reason;
  put_status(f, "ZTO", "44", 0, "TEMPORARY_CONTROL", T0, 0);
  put_status(f, "ZTO", "4403", 1, NULL, T0, 0);
  put_status(f, "ZTO", "440305", 0, "EPIDEMIC", T0 + 1000, T0 + 2000);
  assert_true(kefu_courier_deliverable(&f->couriers, "ZTO", "440305", T0, &reason));
  assert_false(kefu_courier_deliverable(&f->couriers, "ZTO", "440305", T0 + 1000, &reason));
  assert_string_equal(reason, "EPIDEMIC");
  /* valid_until is exclusive: at T0+2000 the 6-digit record is over, 4403 decides */
  assert_true(kefu_courier_deliverable(&f->couriers, "ZTO", "440305", T0 + 2000, &reason));
  assert_false(kefu_courier_deliverable(&f->couriers, "ZTO", "440106", T0, &reason));
  assert_string_equal(reason, "TEMPORARY_CONTROL");
  /* before valid_from nothing is active: deliverable */
  assert_true(kefu_courier_deliverable(&f->couriers, "ZTO", "440106", T0 - 1, &reason));
  /* the latest record per key wins; a tombstone deletes */
  put_status(f, "ZTO", "44", 1, NULL, T0, 0);
  assert_true(kefu_courier_deliverable(&f->couriers, "ZTO", "440106", T0, &reason));
  kefu_courier_table_delete(&f->couriers, "ZTO|4403");
  put_status(f, "ZTO", "44", 0, "OUTLET_CLOSED", T0, 0);
  assert_false(kefu_courier_deliverable(&f->couriers, "ZTO", "440305", T0, &reason));
}

static json_t *results_of(kefu_emitter_t *em, size_t i) {
  return json_object_get(record(em, i), "results");
}

static void test_DELIV_3_by_order_and_by_region(void **state) {
  fixture_t *f = *state;
  kefu_emitter_t em;
  kefu_emitter_init(&em, "q");
  kefu_strv_push(&f->shop->config.couriers, "YTO");
  kefu_strv_push(&f->shop->config.couriers, "ZTO");
  put_status(f, "YTO", "440106", 0, "EPIDEMIC", T0, 0);
  apply(f, KEFU_T_ORDER,
        "{\"event_id\":\"o1\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"SHIPPED\",\"buyer_"
        "id\":\"b1\",\"order_id\":\"ord1\",\"region_code\":\"440106\",\"packages\":[{\"tracking_"
        "no\":\"t1\",\"courier\":\"YTO\"},{\"tracking_no\":\"t2\",\"courier\":\"SF\"},{\"tracking_"
        "no\":\"t3\",\"courier\":\"YTO\"}]}",
        &em);
  apply(f, KEFU_T_ORDER,
        "{\"event_id\":\"o2\",\"shop_id\":\"s1\",\"ts\":1773068400000,\"type\":\"PAID\",\"buyer_"
        "id\":\"b1\",\"order_id\":\"ord2\"}",
        &em);
  apply(f, KEFU_T_CHAT,
        "{\"event_id\":\"q1\",\"shop_id\":\"s1\",\"ts\":1773068400010,\"type\":\"DELIVERABILITY_"
        "QUERY\",\"agent_id\":\"a1\",\"order_id\":\"ord1\"}",
        &em);
  apply(f, KEFU_T_CHAT,
        "{\"event_id\":\"q2\",\"shop_id\":\"s1\",\"ts\":1773068400010,\"type\":\"DELIVERABILITY_"
        "QUERY\",\"agent_id\":\"a1\",\"order_id\":\"nope\"}",
        &em);
  apply(f, KEFU_T_CHAT,
        "{\"event_id\":\"q3\",\"shop_id\":\"s1\",\"ts\":1773068400010,\"type\":\"DELIVERABILITY_"
        "QUERY\",\"agent_id\":\"a1\",\"order_id\":\"ord2\"}",
        &em);
  apply(f, KEFU_T_CHAT,
        "{\"event_id\":\"q4\",\"shop_id\":\"s1\",\"ts\":1773068400010,\"type\":\"DELIVERABILITY_"
        "QUERY\",\"agent_id\":\"a1\",\"region_code\":\"440106\",\"couriers\":[\"ZTO\"]}",
        &em);
  assert_int_equal(em.n, 4);
  /* by order: the package couriers once each, in package order; SF is not supported */
  json_t *r = results_of(&em, 0);
  assert_int_equal(json_array_size(r), 2);
  assert_string_equal(str_field(json_array_get(r, 0), "courier"), "YTO");
  assert_true(json_is_false(json_object_get(json_array_get(r, 0), "deliverable")));
  assert_string_equal(str_field(json_array_get(r, 0), "reason"), "EPIDEMIC");
  assert_true(json_is_null(json_object_get(json_array_get(r, 1), "deliverable")));
  assert_string_equal(str_field(json_array_get(r, 1), "reason"), "UNSUPPORTED");
  /* unknown order: error, no results */
  json_t *card = record(&em, 1);
  assert_string_equal(str_field(card, "error"), "UNKNOWN_ORDER");
  assert_int_equal(json_array_size(results_of(&em, 1)), 0);
  /* an order without packages: the shop's couriers; without region: UNKNOWN_DESTINATION */
  r = results_of(&em, 2);
  assert_int_equal(json_array_size(r), 2);
  assert_string_equal(str_field(json_array_get(r, 1), "reason"), "UNKNOWN_DESTINATION");
  /* by region with listed couriers */
  r = results_of(&em, 3);
  assert_int_equal(json_array_size(r), 1);
  assert_string_equal(str_field(json_array_get(r, 0), "courier"), "ZTO");
  assert_true(json_is_true(json_object_get(json_array_get(r, 0), "deliverable")));
  card = record(&em, 0);
  assert_string_equal(str_field(card, "card_id"), "q-c0");
  assert_string_equal(str_field(card, "card"), "DELIVERABILITY_RESULT");
  kefu_emitter_clear(&em);
}

static void ship(fixture_t *f, kefu_emitter_t *em, const char *order, int64_t ts,
                 const char *packages, const char *region) {
  char json[1024];
  snprintf(json, sizeof json,
           "{\"event_id\":\"%s-s\",\"shop_id\":\"s1\",\"ts\":%lld,\"type\":\"SHIPPED\","
           "\"buyer_id\":\"b1\",\"order_id\":\"%s\",\"region_code\":\"%s\",\"packages\":%s}",
           order, (long long)ts, order, region, packages);
  apply(f, KEFU_T_ORDER, json, em);
}

/* DELIV-4: shipped in the last 30 days, never SIGNED/COMPLETED, not CLOSED, a supported
 * courier that cannot deliver now; once per order with its first such package; newest
 * shipment first; at most 100. */
static void test_DELIV_4_undeliverable_orders(void **state) {
  fixture_t *f = *state;
  kefu_emitter_t em;
  kefu_emitter_init(&em, "q");
  const int64_t day = 86400000, now = T0 + 40 * day;
  put_status(f, "ZTO", "44", 0, "TEMPORARY_CONTROL", T0, 0);
  put_status(f, "YTO", "44", 0, "EPIDEMIC", T0, 0);
  put_status(f, "SF", "44", 0, "EPIDEMIC", T0, 0); /* not one of the nine: ignored */
  const char *two = "[{\"tracking_no\":\"t1\",\"courier\":\"STO\"},"
                    "{\"tracking_no\":\"t2\",\"courier\":\"ZTO\"},"
                    "{\"tracking_no\":\"t3\",\"courier\":\"YTO\"}]";
  const char *zto = "[{\"tracking_no\":\"z\",\"courier\":\"ZTO\"}]";
  ship(f, &em, "old", now - 30 * day - 1, zto, "440305"); /* 30 days and 1 ms: out */
  ship(f, &em, "edge", now - 30 * day, zto, "440305");    /* exactly 30 days: in */
  ship(f, &em, "multi", now - 2 * day, two, "440305");    /* first undeliverable package */
  ship(f, &em, "fine", now - 3 * day, zto, "310115");     /* deliverable: not listed */
  ship(f, &em, "signed", now - 1 * day, zto, "440305");
  apply(f, KEFU_T_ORDER,
        "{\"event_id\":\"sg\",\"shop_id\":\"s1\",\"ts\":1776524400000,\"type\":\"SIGNED\",\"buyer_"
        "id\":\"b1\",\"order_id\":\"signed\"}",
        &em);
  ship(f, &em, "sf", now - 1 * day, "[{\"tracking_no\":\"s\",\"courier\":\"SF\"}]", "440305");
  char q[512];
  snprintf(q, sizeof q,
           "{\"event_id\":\"q1\",\"shop_id\":\"s1\",\"ts\":%lld,\"type\":\"DELIVERABILITY_QUERY\","
           "\"agent_id\":\"a1\",\"region_code\":\"440305\",\"list_undeliverable\":true}",
           (long long)now);
  apply(f, KEFU_T_CHAT, q, &em);
  json_t *card = record(&em, em.n - 1);
  json_t *list = json_object_get(card, "undeliverable_orders");
  assert_int_equal(json_array_size(list), 2);
  assert_string_equal(str_field(json_array_get(list, 0), "order_id"), "multi");
  assert_string_equal(str_field(json_array_get(list, 0), "courier"), "ZTO");
  assert_string_equal(str_field(json_array_get(list, 0), "tracking_no"), "t2");
  assert_string_equal(str_field(json_array_get(list, 0), "reason"), "TEMPORARY_CONTROL");
  assert_string_equal(str_field(json_array_get(list, 1), "order_id"), "edge");
  /* without list_undeliverable the list is empty */
  snprintf(q, sizeof q,
           "{\"event_id\":\"q2\",\"shop_id\":\"s1\",\"ts\":%lld,\"type\":\"DELIVERABILITY_QUERY\","
           "\"agent_id\":\"a1\",\"region_code\":\"440305\"}",
           (long long)now);
  apply(f, KEFU_T_CHAT, q, &em);
  card = record(&em, em.n - 1);
  assert_int_equal(json_array_size(json_object_get(card, "undeliverable_orders")), 0);
  kefu_emitter_clear(&em);
}

static void test_DELIV_4_at_most_100_orders(void **state) {
  fixture_t *f = *state;
  kefu_emitter_t em;
  kefu_emitter_init(&em, "q");
  put_status(f, "ZTO", "44", 0, "TEMPORARY_CONTROL", T0, 0);
  char order[32];
  for (int i = 0; i < 120; i++) {
    snprintf(order, sizeof order, "o%03d", i);
    ship(f, &em, order, T0 + i, "[{\"tracking_no\":\"z\",\"courier\":\"ZTO\"}]", "440305");
  }
  apply(f, KEFU_T_CHAT,
        "{\"event_id\":\"q\",\"shop_id\":\"s1\",\"ts\":1773068401000,\"type\":\"DELIVERABILITY_"
        "QUERY\",\"agent_id\":\"a1\",\"region_code\":\"440305\",\"list_undeliverable\":true}",
        &em);
  json_t *card = record(&em, 0);
  json_t *list = json_object_get(card, "undeliverable_orders");
  assert_int_equal(json_array_size(list), 100);
  assert_string_equal(str_field(json_array_get(list, 0), "order_id"), "o119");
  assert_string_equal(str_field(json_array_get(list, 99), "order_id"), "o020");
  kefu_emitter_clear(&em);
}

/* The ONLINE index routing draws from (ROUTE-2, ROUTE-7) is always the shop's ONLINE
 * agents in bytewise id order, whatever order presence changes and store loads come in. */
static void check_online_index(const kefu_shop_t *shop) {
  const char *id;
  void *v;
  uint32_t online = 0;
  kefu_map_foreach(&shop->agents, it, id, v) online +=
      ((kefu_agent_t *)v)->presence == KEFU_PRESENCE_ONLINE;
  assert_int_equal(shop->online.n, online);
  for (uint32_t i = 0; i < shop->online.n; i++) {
    assert_int_equal(shop->online.v[i]->presence, KEFU_PRESENCE_ONLINE);
    assert_ptr_equal(shop->online.v[i], kefu_shop_agent(shop, shop->online.v[i]->id));
    if (i > 0)
      assert_true(strcmp(shop->online.v[i - 1]->id, shop->online.v[i]->id) < 0);
  }
  assert_int_equal(kefu_shop_any_agent_online(shop), online > 0);
}

static void test_ROUTE_7_online_index_follows_presence_and_loads(void **state) {
  fixture_t *f = *state;
  static const kefu_presence_t p[3] = {KEFU_PRESENCE_ONLINE, KEFU_PRESENCE_SUSPENDED,
                                       KEFU_PRESENCE_OFFLINE};
  char id[16];
  uint32_t x = 12345;
  check_online_index(f->shop);
  for (int step = 0; step < 3000; step++) {
    x = x * 1103515245u + 12345u;
    snprintf(id, sizeof id, "a%u", (x >> 8) % 97);
    kefu_agent_t *a;
    if ((x >> 4) % 5 == 0) { /* the store loads a fresh copy of the agent */
      a = calloc(1, sizeof *a);
      a->id = strdup(id);
      a->level = 1;
      a->capacity = 20;
      a->presence = p[(x >> 20) % 3];
      kefu_shop_put_agent(f->shop, a);
    } else {
      a = kefu_shop_agent_add(f->shop, id);
      kefu_agent_set_presence(f->shop, a, p[(x >> 20) % 3]);
    }
    check_online_index(f->shop);
  }
  assert_true(f->shop->online.n > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_order_status_and_after_sale_overlay, setup, teardown),
      cmocka_unit_test_setup_teardown(test_profile_replaces_the_whole_profile_and_keeps_presence,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_exclusive_bind_and_unbind, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ROUTE_7_online_index_follows_presence_and_loads, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_DELIV_1_2_longest_active_prefix_decides, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_DELIV_3_by_order_and_by_region, setup, teardown),
      cmocka_unit_test_setup_teardown(test_DELIV_4_undeliverable_orders, setup, teardown),
      cmocka_unit_test_setup_teardown(test_DELIV_4_at_most_100_orders, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
