/* The timer queue and its Redis encoding (SPEC §1.3): timers fire in (deadline,
 * creation) order once the watermark is greater than the deadline; a chat event's own
 * buyer's timers earlier than its ts fire first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/timers.h"

static kefu_timer_t *make(int64_t deadline, int64_t created_ts, int n, const char *shop,
                          const char *buyer) {
  kefu_timer_t *t = calloc(1, sizeof *t);
  t->deadline = deadline;
  kefu_timer_order(t->order, sizeof t->order, created_ts, 3, 100, n);
  strcpy(t->kind, "test");
  strcpy(t->shop_id, shop);
  strcpy(t->buyer_id, buyer);
  t->payload = json_pack("{s:i}", "n", n);
  return t;
}

static void test_fires_only_when_watermark_passes_deadline(void **state) {
  (void)state;
  kefu_timer_queue_t q = {0};
  kefu_timer_queue_add(&q, make(180000, 0, 0, "s1", "b1"));
  /* "fires when the watermark becomes greater than D": 180,000 is not yet */
  assert_null(kefu_timer_queue_pop_due(&q, 180000, NULL, NULL));
  kefu_timer_t *t = kefu_timer_queue_pop_due(&q, 180001, NULL, NULL);
  assert_non_null(t);
  assert_int_equal(t->deadline, 180000);
  kefu_timer_free(t);
  assert_int_equal(q.n, 0);
  kefu_timer_queue_clear(&q);
}

static void test_deadline_then_creation_order(void **state) {
  (void)state;
  kefu_timer_queue_t q = {0};
  kefu_timer_queue_add(&q, make(500, 20, 0, "s1", "b1"));
  kefu_timer_queue_add(&q, make(400, 30, 0, "s2", "b2"));
  kefu_timer_queue_add(&q, make(500, 10, 1, "s3", "b3"));
  kefu_timer_queue_add(&q, make(500, 10, 0, "s4", "b4"));
  const char *want[] = {"s2", "s4", "s3", "s1"};
  for (int i = 0; i < 4; i++) {
    kefu_timer_t *t = kefu_timer_queue_pop_due(&q, 1000, NULL, NULL);
    assert_non_null(t);
    assert_string_equal(t->shop_id, want[i]);
    kefu_timer_free(t);
  }
  kefu_timer_queue_clear(&q);
}

static void test_own_buyer_timers_fire_before_their_ts(void **state) {
  (void)state;
  kefu_timer_queue_t q = {0};
  kefu_timer_queue_add(&q, make(100, 0, 0, "s1", "other"));
  kefu_timer_queue_add(&q, make(200, 0, 1, "s1", "b1"));
  kefu_timer_queue_add(&q, make(200, 0, 2, "s2", "b1")); /* same buyer id, other shop */
  /* watermark 50 (lateness), the event of s1/b1 at ts 300 */
  kefu_timer_t *t = kefu_timer_queue_pop_due(&q, 300, "s1", "b1");
  assert_non_null(t);
  assert_string_equal(t->buyer_id, "b1");
  assert_string_equal(t->shop_id, "s1");
  kefu_timer_free(t);
  assert_null(kefu_timer_queue_pop_due(&q, 300, "s1", "b1"));
  assert_int_equal(q.n, 2);
  kefu_timer_queue_clear(&q);
}

static void test_member_round_trip(void **state) {
  (void)state;
  kefu_timer_t *t = make(123456, 42, 7, "shop.1", "buyer-9");
  char *m = kefu_timer_member(t);
  kefu_timer_t *back = kefu_timer_parse(m, strlen(m), 123456, "shop.1");
  assert_non_null(back);
  assert_string_equal(back->order, t->order);
  assert_string_equal(back->kind, "test");
  assert_string_equal(back->buyer_id, "buyer-9");
  assert_true(json_equal(back->payload, t->payload));
  char *again = kefu_timer_member(back);
  assert_string_equal(again, m); /* ZREM finds the member it was written as */
  assert_null(kefu_timer_parse("garbage", 7, 1, "s"));
  free(m);
  free(again);
  kefu_timer_free(t);
  kefu_timer_free(back);
}

static void test_order_is_fixed_width(void **state) {
  (void)state;
  char a[64], b[64];
  kefu_timer_order(a, sizeof a, 9, 0, 5, 0);
  kefu_timer_order(b, sizeof b, 10, 0, 5, 0);
  assert_true(strcmp(a, b) < 0); /* 9 before 10, bytewise */
  assert_int_equal(strlen(a), strlen(b));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fires_only_when_watermark_passes_deadline),
      cmocka_unit_test(test_deadline_then_creation_order),
      cmocka_unit_test(test_own_buyer_timers_fire_before_their_ts),
      cmocka_unit_test(test_member_round_trip),
      cmocka_unit_test(test_order_is_fixed_width),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
