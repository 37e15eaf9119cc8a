/* Remembered outputs (src/engine/outputs.c): the format-2 values of ns:{task-N}:out are
 * read back record by record, and anything else (truncated, foreign, an input topic) is
 * refused rather than read past its end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "engine/processor_int.h"

static void put(kefu_buf_t *b, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) {
    uint8_t x = (uint8_t)(v >> (8 * i));
    kefu_buf_append(b, &x, 1);
  }
}

static void record(kefu_buf_t *b, kefu_topic_t t, int64_t ts, const char *key, const char *val,
                   size_t vlen) {
  put(b, (uint64_t)t, 1);
  put(b, (uint64_t)ts, 8);
  put(b, strlen(key), 4);
  kefu_buf_append(b, key, strlen(key));
  put(b, vlen, 4);
  kefu_buf_append(b, val, vlen);
}

static kefu_topic_t an_output(void) {
  for (int t = 0; t < KEFU_T__COUNT; t++)
    if (!kefu_topics[t].input)
      return (kefu_topic_t)t;
  return KEFU_T__COUNT;
}

static void two_records(kefu_buf_t *b) {
  put(b, 2, 1); /* the format */
  record(b, an_output(), 1700000000123, "shop-1", "\0\0\0\0\1abc", 8);
  record(b, an_output(), -5, "s", "", 0);
}

static void test_reads_every_record(void **state) {
  (void)state;
  kefu_buf_t b = {0};
  batch_state_t bs = {0};
  two_records(&b);
  assert_int_equal(engine_outputs_each(b.p, b.n, NULL, NULL), 2);
  engine_outputs_add(&bs, &b, 7);
  assert_int_equal(bs.nouts, 2);
  assert_int_equal(bs.outs[0].topic, an_output());
  assert_int_equal(bs.outs[0].ts, 1700000000123);
  assert_int_equal(bs.outs[0].input, 7);
  assert_int_equal(bs.outs[0].key_len, 6);
  assert_memory_equal(bs.outs[0].key, "shop-1", 6);
  assert_int_equal(bs.outs[0].val_len, 8);
  assert_memory_equal(bs.outs[0].val, "\0\0\0\0\1abc", 8);
  assert_int_equal(bs.outs[1].ts, -5);
  assert_int_equal(bs.outs[1].val_len, 0);
  free(bs.outs);
  kefu_buf_free(&b);
}

/* Every proper prefix but the one that ends between the records is refused. */
static void test_truncated_values_are_refused(void **state) {
  (void)state;
  kefu_buf_t b = {0};
  two_records(&b);
  size_t first_end = 1 + 13 + 6 + 4 + 8;
  for (size_t n = 0; n < b.n; n++) {
    int got = engine_outputs_each(b.p, n, NULL, NULL);
    if (n == 1)
      assert_int_equal(got, 0); /* the format byte alone: no records */
    else if (n == first_end)
      assert_int_equal(got, 1);
    else
      assert_int_equal(got, -1);
  }
  kefu_buf_free(&b);
}

static void test_foreign_values_are_refused(void **state) {
  (void)state;
  kefu_buf_t b = {0};
  put(&b, 3, 1); /* an unknown format */
  record(&b, an_output(), 1, "s", "x", 1);
  assert_int_equal(engine_outputs_each(b.p, b.n, NULL, NULL), -1);
  kefu_buf_reset(&b);
  put(&b, 2, 1);
  record(&b, KEFU_T_CHAT, 1, "s", "x", 1); /* kefu never outputs to an input topic */
  assert_int_equal(engine_outputs_each(b.p, b.n, NULL, NULL), -1);
  kefu_buf_reset(&b);
  put(&b, 2, 1);
  record(&b, (kefu_topic_t)200, 1, "s", "x", 1);
  assert_int_equal(engine_outputs_each(b.p, b.n, NULL, NULL), -1);
  kefu_buf_reset(&b);
  put(&b, 2, 1);
  put(&b, an_output(), 1);
  put(&b, 0, 8);
  put(&b, 0xffffffffu, 4); /* a key length past the end */
  assert_int_equal(engine_outputs_each(b.p, b.n, NULL, NULL), -1);
  kefu_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reads_every_record),
      cmocka_unit_test(test_truncated_values_are_refused),
      cmocka_unit_test(test_foreign_values_are_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
