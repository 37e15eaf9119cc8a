/* The minimal Prometheus text format parser of kefu status (status_metrics.h): a line is
 * `name[{labels}] value [timestamp]`; `#` lines are HELP/TYPE comments. */
#include "cli/status_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const per_task_series[PER_TASK] = {
    "kefu_task_assigned", "kefu_task_committed_ms", "kefu_queue_length", "kefu_open_timers",
    "kefu_oldest_overdue_timer_seconds"};

/* The value of label @p name in @p labels (`a="1",b="2"`), or -1. */
static long label_int(const char *labels, const char *name) {
  char pat[64];
  int n = snprintf(pat, sizeof pat, "%s=\"", name);
  for (const char *at = labels; at && (at = strstr(at, pat)); at += n)
    if (at == labels || at[-1] == ',' || at[-1] == ' ') /* not the end of another name */
      return strtol(at + n, NULL, 10);
  return -1;
}

static void add_task(double *by_task, int tasks, const char *labels, double v) {
  long t = label_int(labels, "task");
  if (t >= 0 && t < tasks)
    by_task[t] = (by_task[t] < 0 ? 0 : by_task[t]) + v;
}

/* Splits @p line into its name, labels (NULL: none) and value: 0, or -1. */
static int split(char *line, char **labels, double *v) {
  char *brace = strchr(line, '{'), *end = NULL, *value = strchr(line, ' ');
  if (line[0] == '#' || !value)
    return -1;
  *labels = NULL;
  if (brace && brace < value) { /* a label value may hold a space */
    char *close = strrchr(brace, '}');
    if (!close || close[1] != ' ')
      return -1;
    *brace = *close = '\0';
    *labels = brace + 1;
    value = close + 1;
  } else
    *value = '\0';
  *v = strtod(value + 1, &end);
  return end == value + 1 ? -1 : 0;
}

static void parse_line(scrape_t *m, int tasks, char *line) {
  char *labels;
  double v;
  if (split(line, &labels, &v))
    return;
  const char *id = labels ? strstr(labels, "instance=\"") : NULL;
  if (strcmp(line, "kefu_instance_info") == 0 && id)
    snprintf(m->instance, sizeof m->instance, "%.*s", (int)strcspn(id + 10, "\""), id + 10);
  else if (strcmp(line, "kefu_group_generation") == 0)
    m->generation = v;
  else if (strcmp(line, "kefu_rebalances_total") == 0)
    m->rebalances = v;
  else if (strcmp(line, "kefu_ready") == 0)
    m->ready = v;
  else if (strcmp(line, "kefu_dlq_total") == 0)
    m->dlq = v;
  for (int k = 0; k < PER_TASK; k++)
    if (strcmp(line, per_task_series[k]) == 0)
      add_task(m->per_task[k], tasks, labels, v);
}

void kefu_status_parse_metrics(scrape_t *m, int tasks, char *text) {
  char *save = NULL;
  m->instance[0] = '\0';
  m->generation = m->rebalances = m->dlq = m->ready = NO_VALUE;
  for (int k = 0; k < PER_TASK; k++)
    for (int t = 0; t < tasks; t++)
      m->per_task[k][t] = NO_VALUE;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
    parse_line(m, tasks, line);
}
