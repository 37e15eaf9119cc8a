/* Timers (SPEC §1.3): their order (deadline, then creation), an owner's pending timers,
 * the task's queue of them in the engine, and the string map the shop keeps entities in.
 * That timers fire before the event that makes them due is proven end to end by the
 * rule tests (rules_fixture.h) and test_timers_restart.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/processor_int.h"

static kefu_timer_t make(int64_t deadline, int64_t created_ts, int64_t offset, int n) {
  return (kefu_timer_t){
      .deadline = deadline, .order = {created_ts, 3, offset, n}, .kind = KEFU_TIMER_RESPONSE_WAIT};
}

static void test_order_is_deadline_then_creation(void **state) {
  (void)state;
  kefu_timer_t a = make(1000, 5, 7, 0), b = make(1000, 5, 7, 1), c = make(999, 9, 9, 9);
  kefu_timer_t d = make(1000, 4, 99, 5), e = make(1000, 5, 6, 9);
  assert_true(kefu_timer_cmp(&a, &b) < 0); /* same input: its n-th timer after the first */
  assert_true(kefu_timer_cmp(&c, &a) < 0); /* earlier deadline first, whatever its creation */
  assert_true(kefu_timer_cmp(&d, &a) < 0); /* made by an earlier input (ts) */
  assert_true(kefu_timer_cmp(&e, &a) < 0); /* made by an earlier input (offset) */
  assert_int_equal(kefu_timer_cmp(&a, &a), 0);
}

static void test_owner_timers_add_remove_min(void **state) {
  (void)state;
  kefu_timers_t l = {0};
  assert_true(kefu_timers_min(&l) == INT64_MAX);
  assert_true(kefu_timers_min(NULL) == INT64_MAX);
  for (int i = 0; i < 10; i++) {
    kefu_timer_t t = make(5000 - i * 100, 1, 1, i);
    t.ref = i % 2 ? "agent-1" : NULL;
    kefu_timers_add(&l, &t);
  }
  assert_int_equal(l.n, 10);
  assert_true(kefu_timers_min(&l) == 4100);
  kefu_timer_t gone = make(4100, 1, 1, 9);
  assert_true(kefu_timers_remove(&l, &gone));
  assert_false(kefu_timers_remove(&l, &gone)); /* fires once */
  kefu_timer_t other = make(4200, 1, 1, 7);
  other.order.n = 6; /* same deadline as timer 8? no: a creation order that is not there */
  assert_false(kefu_timers_remove(&l, &other));
  assert_int_equal(l.n, 9);
  assert_true(kefu_timers_min(&l) == 4200);
  kefu_timers_clear(&l);
}

/* The task's queue pops in (deadline, creation) order whatever the push order. */
static void test_engine_heap_pops_in_order(void **state) {
  (void)state;
  timer_heap_t h = {0};
  srand(7);
  for (int i = 0; i < 500; i++) {
    timer_ref_t r = {.deadline = rand() % 50, .order = {rand() % 5, 3, rand() % 5, i}};
    engine_heap_push(&h, &r);
  }
  kefu_timer_t prev = {.deadline = INT64_MIN};
  for (int i = 0; i < 500; i++) {
    kefu_timer_t cur = {.deadline = h.v[0].deadline, .order = h.v[0].order};
    assert_true(kefu_timer_cmp(&prev, &cur) <= 0);
    prev = cur;
    engine_heap_pop(&h);
  }
  assert_int_equal(h.n, 0);
  free(h.v);
}

static void test_map_put_get_del_and_iterate(void **state) {
  (void)state;
  kefu_map_t m;
  char key[32];
  kefu_map_init(&m);
  for (intptr_t i = 0; i < 1000; i++) {
    snprintf(key, sizeof key, "b%ld", (long)i);
    assert_null(kefu_map_put(&m, key, (void *)(i + 1)));
  }
  assert_int_equal(kefu_map_size(&m), 1000);
  for (intptr_t i = 0; i < 1000; i += 2) {
    snprintf(key, sizeof key, "b%ld", (long)i);
    assert_true(kefu_map_del(&m, key) == (void *)(i + 1));
  }
  assert_null(kefu_map_get(&m, "b0"));
  assert_true(kefu_map_get(&m, "b1") == (void *)2);
  assert_true(kefu_map_put(&m, "b1", (void *)7) == (void *)2);
  size_t n = 0;
  const char *k;
  void *v;
  kefu_map_foreach(&m, it, k, v) {
    assert_non_null(v);
    n++;
  }
  assert_int_equal(n, 500);
  assert_null(kefu_map_get(&m, NULL));
  kefu_map_clear(&m, NULL);
  assert_int_equal(kefu_map_size(&m), 0);
}

/* Event ids seen (dedup, SPEC §2): the latest ts per id is kept, and trimming keeps only
 * ids seen at or after a time. */
static void test_seen_set(void **state) {
  (void)state;
  seen_set_t s = {0};
  int64_t ts;
  uint64_t a = engine_event_hash("e-1"), b = engine_event_hash("e-2");
  assert_true(a != b && a != 0);
  engine_seen_put(&s, a, 100);
  engine_seen_put(&s, a, 50); /* an older sighting does not replace the newer */
  assert_true(engine_seen_get(&s, a, &ts) && ts == 100);
  assert_false(engine_seen_get(&s, b, &ts));
  for (int i = 0; i < 5000; i++) {
    char id[16];
    snprintf(id, sizeof id, "x%d", i);
    engine_seen_put(&s, engine_event_hash(id), i);
  }
  engine_seen_trim(&s, 2500);
  assert_false(engine_seen_get(&s, a, &ts));
  assert_true(engine_seen_get(&s, engine_event_hash("x2500"), &ts) && ts == 2500);
  assert_false(engine_seen_get(&s, engine_event_hash("x2499"), &ts));
  engine_seen_clear(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_order_is_deadline_then_creation),
      cmocka_unit_test(test_owner_timers_add_remove_min),
      cmocka_unit_test(test_engine_heap_pops_in_order),
      cmocka_unit_test(test_map_put_get_del_and_iterate),
      cmocka_unit_test(test_seen_set),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
