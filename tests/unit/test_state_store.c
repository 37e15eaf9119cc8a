/* kefu_store_apply_check on kefu_apply's replies (src/store/kefu.lua): a conflict whose
 * stored offset is below the one the write expected is a Redis that went back
 * (DECISIONS 60), one above it another writer's (retried). Replies are built by hand,
 * as hiredis would hand them over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "store/state_store.h"

static redisReply str(int type, char *s) {
  return (redisReply){.type = type, .str = s, .len = strlen(s)};
}

/* {'CONFLICT', field, stored} */
static int check_conflict(char *stored, const char *expected, char *errstr, size_t errlen) {
  redisReply a = str(REDIS_REPLY_STRING, "CONFLICT");
  redisReply f = str(REDIS_REPLY_STRING, "chat.events/3");
  redisReply v = str(REDIS_REPLY_STRING, stored);
  redisReply *el[] = {&a, &f, &v};
  redisReply reply = {.type = REDIS_REPLY_ARRAY, .elements = 3, .element = el};
  kefu_shop_t *shop = kefu_shop_new("s1");
  kefu_store_write_t w = {.shop = shop, .ncas = 2};
  snprintf(w.cas[0].field, sizeof w.cas[0].field, "order.events/3");
  snprintf(w.cas[0].expected, sizeof w.cas[0].expected, "900");
  snprintf(w.cas[1].field, sizeof w.cas[1].field, "chat.events/3");
  snprintf(w.cas[1].expected, sizeof w.cas[1].expected, "%s", expected);
  int rc = kefu_store_apply_check(&reply, &w, errstr, errlen);
  kefu_shop_destroy(shop);
  return rc;
}

static void test_ok_reply(void **state) {
  (void)state;
  char err[256] = "";
  redisReply ok = str(REDIS_REPLY_STATUS, "OK");
  kefu_store_write_t w = {0};
  assert_int_equal(kefu_store_apply_check(&ok, &w, err, sizeof err), 0);
}

static void test_a_stored_offset_below_the_acknowledged_one_went_back(void **state) {
  (void)state;
  char err[256];
  assert_int_equal(check_conflict("120", "171", err, sizeof err), KEFU_STORE_WENT_BACK);
  assert_non_null(strstr(err, "shop s1's applied offset of chat.events/3 is 120 in Redis, below "
                              "171, which Redis acknowledged"));
  /* the key gone altogether (an empty Redis behind the same address) */
  assert_int_equal(check_conflict("", "171", err, sizeof err), KEFU_STORE_WENT_BACK);
  assert_non_null(strstr(err, "is (none) in Redis"));
}

static void test_a_stored_offset_above_is_another_writer(void **state) {
  (void)state;
  char err[256];
  assert_int_equal(check_conflict("200", "171", err, sizeof err), -1);
  assert_non_null(strstr(err, "another instance applied it"));
  /* a first write (nothing expected) that meets someone else's offset */
  assert_int_equal(check_conflict("5", "", err, sizeof err), -1);
}

static void test_went_back(void **state) {
  (void)state;
  assert_true(kefu_store_went_back("9", 10));
  assert_true(kefu_store_went_back("", 0));
  assert_true(kefu_store_went_back(NULL, 3));
  assert_false(kefu_store_went_back("10", 10));
  assert_false(kefu_store_went_back("11", 10));
  assert_false(kefu_store_went_back("", -1)); /* nothing acknowledged */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ok_reply),
      cmocka_unit_test(test_a_stored_offset_below_the_acknowledged_one_went_back),
      cmocka_unit_test(test_a_stored_offset_above_is_another_writer),
      cmocka_unit_test(test_went_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
