/* The progress line of long CLI work (src/cli/progress.c): records, rate, and with a
 * known total the percentage and the time left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli/progress.h"

static void test_known_total(void **state) {
  (void)state;
  kefu_progress_t p = {.what = "kefu produce", .unit = "bytes", .total = 1000, .start_s = 10};
  char line[256];
  p.done = 250;
  p.records = 50;
  kefu_progress_format(&p, 12, line, sizeof line); /* 2 s for a quarter: 6 s left */
  assert_string_equal(line, "kefu produce: 50 records, 25/s, 25% of 1000 bytes, 0:06 left");
  p.done = 0;
  p.records = 0;
  kefu_progress_format(&p, 10, line, sizeof line);
  assert_string_equal(line, "kefu produce: 0 records, 0/s, 0% of 1000 bytes");
  p.done = 2000; /* a file that grew while read: never past 100 % */
  kefu_progress_format(&p, 20, line, sizeof line);
  assert_non_null(strstr(line, "100% of 1000 bytes, 0:00 left"));
}

static void test_unknown_total(void **state) {
  (void)state;
  kefu_progress_t p = {.what = "kefu produce", .unit = "bytes", .total = -1, .start_s = 0};
  char line[256];
  p.records = 300;
  kefu_progress_format(&p, 3, line, sizeof line);
  assert_string_equal(line, "kefu produce: 300 records, 100/s");
}

static void test_silent_without_a_terminal(void **state) {
  (void)state;
  kefu_progress_t p; /* cmocka's stderr is a pipe or a file under ctest */
  if (kefu_progress_wanted())
    skip();
  kefu_progress_start(&p, "x", "records", 10);
  assert_null(p.out);
  kefu_progress_update(&p, 5, 5);
  kefu_progress_end(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_known_total),
      cmocka_unit_test(test_unknown_total),
      cmocka_unit_test(test_silent_without_a_terminal),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
