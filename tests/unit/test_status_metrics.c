/* kefu status's reading of /metrics (src/cli/status_metrics.c): the series it knows,
 * per-task series summed over their other labels, and what it skips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cli/status_metrics.h"

#define TASKS 3

static double values[PER_TASK][TASKS];

static void parse(scrape_t *m, const char *text) {
  char buf[4096];
  memset(m, 0, sizeof *m);
  for (int k = 0; k < PER_TASK; k++)
    m->per_task[k] = values[k];
  snprintf(buf, sizeof buf, "%s", text);
  kefu_status_parse_metrics(m, TASKS, buf);
}

static void test_known_series(void **state) {
  (void)state;
  scrape_t m;
  parse(&m, "# HELP kefu_instance_info This instance's instance.id (1)\n"
            "# TYPE kefu_instance_info gauge\n"
            "kefu_instance_info{instance=\"kefu-a\"} 1\n"
            "kefu_group_generation 7\n"
            "kefu_rebalances_total 3\n"
            "kefu_dlq_total 12\n"
            "kefu_ready 0\n"
            "kefu_task_assigned{task=\"0\"} 1\n"
            "kefu_task_assigned{task=\"1\"} 0\n"
            "kefu_task_committed_ms{task=\"0\"} 1796310827349\n"
            "kefu_batch_seconds_bucket{le=\"0.005\"} 4\n");
  assert_string_equal(m.instance, "kefu-a");
  assert_true(m.generation == 7 && m.rebalances == 3 && m.dlq == 12 && m.ready == 0);
  assert_true(values[ASSIGNED][0] == 1 && values[ASSIGNED][1] == 0);
  assert_true(values[ASSIGNED][2] == NO_VALUE);
  assert_true(values[COMMITTED_AT][0] == 1796310827349.0);
  assert_true(values[QUEUE][0] == NO_VALUE && values[OPEN_TIMERS][0] == NO_VALUE);
}

/* A queue per (task, topic) is the task's queue; labels in any order. */
static void test_per_task_summed(void **state) {
  (void)state;
  scrape_t m;
  parse(&m, "kefu_queue_length{task=\"1\",topic=\"kefu.chat.events\"} 3\n"
            "kefu_queue_length{topic=\"kefu.order.events\",task=\"1\"} 2\n"
            "kefu_open_timers{task=\"2\"} 40\n"
            "kefu_oldest_overdue_timer_seconds{task=\"2\"} 1.5\n");
  assert_true(values[QUEUE][1] == 5 && values[QUEUE][0] == NO_VALUE);
  assert_true(values[OPEN_TIMERS][2] == 40 && values[OVERDUE][2] == 1.5);
  assert_true(m.generation == NO_VALUE && m.instance[0] == '\0');
}

/* Tasks out of range, a label that only ends in "task", a value missing, a space in a
 * label value, no trailing newline. */
static void test_skipped(void **state) {
  (void)state;
  scrape_t m;
  parse(&m, "kefu_task_assigned{task=\"3\"} 1\n"
            "kefu_task_assigned{subtask=\"0\"} 1\n"
            "kefu_task_assigned{task=\"1\"}\n"
            "kefu_group_generation\n"
            "kefu_instance_info{instance=\"host a-1\"} 1\n"
            "kefu_dlq_total 4 1796310827349");
  assert_true(values[ASSIGNED][0] == NO_VALUE && values[ASSIGNED][1] == NO_VALUE);
  assert_true(m.generation == NO_VALUE);
  assert_string_equal(m.instance, "host a-1");
  assert_true(m.dlq == 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_known_series),
      cmocka_unit_test(test_per_task_summed),
      cmocka_unit_test(test_skipped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
