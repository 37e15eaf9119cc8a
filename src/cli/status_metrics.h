/* What `kefu status` reads of an instance's /metrics (Prometheus text format), parsed
 * apart from the HTTP that fetches it so that it can be tested alone (status.c). */
#ifndef KEFU_CLI_STATUS_METRICS_H
#define KEFU_CLI_STATUS_METRICS_H

#include <stdbool.h>

#define NO_VALUE (-1.0) /* a series the instance does not expose */

/* The per-task series status shows (label task="N"; other labels summed over). */
enum { ASSIGNED, COMMITTED_AT, QUEUE, OPEN_TIMERS, OVERDUE, PER_TASK };

/* What one instance's /metrics said. */
typedef struct scrape {
  const char *url;
  bool up;
  char instance[128];                        /* kefu_instance_info's label; "" absent */
  double generation, rebalances, dlq, ready; /* NO_VALUE: absent */
  double *per_task[PER_TASK];                /* [series][task], tasks entries each */
} scrape_t;

/** @brief Reads @p text (a /metrics body; modified) into @p m: every value is NO_VALUE or
 *  "" first, then each series status knows is taken from its lines, a per-task series
 *  summed over its labels other than task (a queue per topic), tasks from 0 to
 *  @p tasks - 1 only. Comments, other series and lines that do not parse are skipped. */
void kefu_status_parse_metrics(scrape_t *m, int tasks, char *text);

#endif
