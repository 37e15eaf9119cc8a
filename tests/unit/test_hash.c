/* Kafka's murmur2 against the Java client's own vectors (Kafka's UtilsTest): the draws
 * of ROUTE-7 and the exposure buckets of XFER-1 must be reproducible by anyone, and
 * keys must land where a Java producer puts them (SPEC §1.1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/murmur2.h"

static void test_ROUTE_7_XFER_1_murmur2_java_vectors(void **state) {
  (void)state;
  static const struct {
    const char *s;
    int32_t h;
  } v[] = {{"21", -973932308},
           {"foobar", -790332482},
           {"a-little-bit-long-string", -985981536},
           {"a-little-bit-longer-string", -1486304829},
           {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
           {"abc", 479470107}};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    assert_int_equal(kefu_murmur2(v[i].s, strlen(v[i].s)), v[i].h);
}

static void test_partition_like_a_java_producer(void **state) {
  (void)state;
  /* (murmur2 & 0x7fffffff) % n: "foobar" -> -790332482 & 0x7fffffff = 1357151166 */
  assert_int_equal(kefu_murmur2_partition("foobar", 6, 4), 1357151166 % 4);
  assert_int_equal(kefu_murmur2_partition("21", 2, 12), (-973932308 & 0x7fffffff) % 12);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ROUTE_7_XFER_1_murmur2_java_vectors),
      cmocka_unit_test(test_partition_like_a_java_producer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
