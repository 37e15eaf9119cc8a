/* Redis Cluster key slots (kefu_redis_key_slot): CRC16 of the hash tag or the whole key,
 * mod 16384. The expected values are what redis-server 7.0's CLUSTER KEYSLOT answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "store/redis.h"

static int slot(const char *key) {
  return kefu_redis_key_slot(key, strlen(key));
}

static void test_slots_as_redis_computes_them(void **state) {
  (void)state;
  assert_int_equal(slot("123456789"), 12739); /* CRC16-XMODEM("123456789") = 0x31C3 */
  assert_int_equal(slot("foo"), 12182);
  assert_int_equal(slot("bar"), 5061);
  assert_int_equal(slot("{user1000}.following"), 3443);
  assert_int_equal(slot("foo{}bar"), 14292); /* an empty tag: the whole key */
  assert_int_equal(slot("{}"), 15257);
  assert_int_equal(slot("a{b}c{d}"), 3300); /* the first tag only */
}

/* Every key of a shop, and every key of a task, share the slot of its tag. */
static void test_a_shops_keys_share_a_slot(void **state) {
  (void)state;
  const char *shop[] = {"kefu:{shop07}:cfg", "kefu:{shop07}:buyers",
                        "kefu:{shop07}:seen:2026-12-01", "kefu:{shop07}:due:29412345",
                        "other-ns:{shop07}:applied"};
  for (size_t i = 0; i < sizeof shop / sizeof shop[0]; i++)
    assert_int_equal(slot(shop[i]), slot("shop07"));
  assert_int_equal(slot("kefu:{task-3}:pos"), slot("kefu:{task-3}:out"));
  assert_int_equal(slot("kefu:{task-3}:timers"), slot("task-3"));
  assert_int_not_equal(slot("kefu:{task-3}:pos"), slot("kefu:{task-4}:pos"));
  assert_int_equal(slot("{unclosed"), slot("{unclosed")); /* no tag: the whole key */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_slots_as_redis_computes_them),
      cmocka_unit_test(test_a_shops_keys_share_a_slot),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
