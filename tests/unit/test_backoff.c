/* The doubling backoff shared by the Redis, broker and Schema Registry retries
 * (SPEC §6: retry with backoff). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/backoff.h"

static void test_SPEC_6_backoff_doubles_from_100_ms_up_to_the_cap(void **state) {
  (void)state;
  int ms = KEFU_BACKOFF_FIRST_MS, seen[8];
  for (int i = 0; i < 8; i++) {
    seen[i] = ms;
    ms = kefu_backoff_next(ms, 5000);
  }
  const int want[8] = {100, 200, 400, 800, 1600, 3200, 5000, 5000};
  for (int i = 0; i < 8; i++)
    assert_int_equal(seen[i], want[i]);
}

static void test_backoff_never_overflows_nor_passes_a_small_cap(void **state) {
  (void)state;
  assert_int_equal(kefu_backoff_next(INT32_MAX, INT32_MAX), INT32_MAX);
  assert_int_equal(kefu_backoff_next(1 << 30, INT32_MAX), INT32_MAX);
  assert_int_equal(kefu_backoff_next(100, 50), 50);
  assert_int_equal(kefu_backoff_next(100, 1), 1);
  assert_int_equal(kefu_backoff_next(0, 5000), 1);
  assert_int_equal(kefu_backoff_next(1, 3), 2);
  assert_int_equal(kefu_backoff_next(2, 3), 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_SPEC_6_backoff_doubles_from_100_ms_up_to_the_cap),
      cmocka_unit_test(test_backoff_never_overflows_nor_passes_a_small_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
