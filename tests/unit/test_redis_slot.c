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

/* A Redis not ready yet is waited for at start; one kefu may not use fails the start.
 * The texts are kefu_redis_connect's, with hiredis's and Redis's words in them. */
static void test_which_start_errors_are_waited_for(void **state) {
  (void)state;
  const char *later[] = {"redis 127.0.0.1:7000: Connection refused",
                         "redis redis-0.redis:6379: Name or service not known",
                         "redis 10.0.0.1:6379: Connection timed out",
                         "redis FUNCTION LOAD: NOREPLICAS Not enough good replicas to write.",
                         "redis FUNCTION LOAD: LOADING Redis is loading the dataset in memory",
                         "redis 127.0.0.1:7000: CLUSTER SLOTS: CLUSTERDOWN The cluster is down",
                         "redis cluster: slot 42 has no master (the cluster is not ok)",
                         "redis FUNCTION LOAD: MASTERDOWN Link with MASTER is down",
                         "redis FUNCTION LOAD: BUSY Redis is busy running a script."};
  const char *never[] = {
      "redis AUTH: WRONGPASS invalid username-password pair or user is disabled.",
      "redis FUNCTION LOAD: NOPERM this user has no permissions to run the 'function' command",
      "redis FUNCTION LOAD: ERR unknown command 'FUNCTION'",
      "redis.url: a Redis Cluster has database 0 only, not /3",
      "redis 127.0.0.1:7000 is not a cluster node, and redis.url names 3 hosts",
      "redis FUNCTION LOAD: BUSYKEY Target key name already exists.",
      "redis.url: not a redis:// URL: LOADING"};
  for (size_t i = 0; i < sizeof later / sizeof *later; i++)
    assert_true(kefu_redis_error_is_transient(later[i]));
  for (size_t i = 0; i < sizeof never / sizeof *never; i++)
    assert_false(kefu_redis_error_is_transient(never[i]));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_slots_as_redis_computes_them),
      cmocka_unit_test(test_a_shops_keys_share_a_slot),
      cmocka_unit_test(test_which_start_errors_are_waited_for),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
