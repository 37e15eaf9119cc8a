/* The per-task gauges of queues and timers (SPEC §8), refreshed once a second by
 * update_gauges (processor.c). docs/OPERATIONS.md "Metrics" says what each one means.
 *
 * Queues (ROUTE-11) are part of a shop's state. The owner cache holds the shops the
 * batches work on, but a shop can leave memory (over budget, state.cache_mb 0, after a
 * failed write) while Redis keeps its queue as it was. So a shop that leaves memory with
 * buyers queued is remembered (p->queues_away: shop id -> its task and queue length)
 * until it is read again or its task is revoked; only this instance writes the shops of
 * its tasks, so the length stays true meanwhile. An update walks the shops in memory and
 * those remembered: one pass over shops, never over buyers, and nothing on the hot path.
 *
 * Per task the gauges are the sum of its queues and KEFU_QUEUE_TOP rank slots holding
 * its longest queues: a slot is one series whose shop label follows the shop in that
 * rank (kefu_metric_relabel), so a task has 1 + KEFU_QUEUE_TOP queue series whatever its
 * number of shops (DECISIONS 64).
 *
 * Timers: kefu_open_timers counts the task's timer queue (the pending timers of the shops
 * and buyers in memory, the ones the next batch can fire); the oldest overdue timer is
 * taken from the task's timer index instead, which covers every shop with timers, in
 * memory or not: a timer is overdue when its deadline is behind the wall clock, which
 * only happens for long when the watermark stalls (DECISIONS 64). */
#include "engine/processor_int.h"

typedef struct queue_away {
  int task;
  uint32_t n;
} queue_away_t;

void engine_queue_leaves(kefu_processor_t *p, const shop_entry_t *e) {
  uint32_t n = e->loaded ? e->shop->queue.n : 0;
  if (n == 0) {
    free(kefu_map_del(&p->queues_away, e->shop->id));
    return;
  }
  queue_away_t *a = kefu_map_get(&p->queues_away, e->shop->id);
  if (!a && !(a = malloc(sizeof *a)))
    return;
  a->task = e->task;
  a->n = n;
  kefu_map_put(&p->queues_away, e->shop->id, a);
}

void engine_queue_back(kefu_processor_t *p, const char *shop_id) {
  free(kefu_map_del(&p->queues_away, shop_id));
}

/* The longest queues of one task and their sum. */
typedef struct queue_tally {
  uint64_t total;
  struct {
    const char *shop; /* NULL: an empty slot */
    uint32_t n;
  } top[KEFU_QUEUE_TOP];
} queue_tally_t;

/* Longer first; equal lengths by shop id, so that the slots do not flap. */
static bool ranks_before(uint32_t n, const char *shop, uint32_t other_n, const char *other) {
  return n > other_n || (n == other_n && other && strcmp(shop, other) < 0);
}

static void tally_add(queue_tally_t *t, const char *shop, uint32_t n) {
  int i = KEFU_QUEUE_TOP;
  if (n == 0)
    return;
  t->total += n;
  while (i > 0 && ranks_before(n, shop, t->top[i - 1].n, t->top[i - 1].shop))
    i--;
  if (i == KEFU_QUEUE_TOP)
    return;
  memmove(&t->top[i + 1], &t->top[i], (size_t)(KEFU_QUEUE_TOP - 1 - i) * sizeof t->top[0]);
  t->top[i].shop = shop;
  t->top[i].n = n;
}

/* @p in as a Prometheus label value: backslash, double quote and newline escaped. */
static void label_escape(char *out, size_t len, const char *in) {
  size_t o = 0;
  for (; *in && o + 3 < len; in++) {
    if (*in == '\\' || *in == '"' || *in == '\n')
      out[o++] = '\\';
    out[o++] = *in == '\n' ? 'n' : *in;
  }
  out[o] = '\0';
}

static kefu_metric_t *task_gauge(const char *name, const char *help, int task) {
  char labels[32];
  snprintf(labels, sizeof labels, "task=\"%d\"", task);
  return kefu_metrics_gauge(name, help, labels);
}

/* Slot @p rank (0-based) of @p task now shows @p shop (NULL: none) with @p n. */
static void set_rank(engine_metrics_t *m, int task, int rank, const char *shop, uint32_t n) {
  char labels[64 + 2 * KEFU_ID_MAX], esc[KEFU_LABEL_ID_MAX];
  label_escape(esc, sizeof esc, shop ? shop : "");
  snprintf(labels, sizeof labels, "task=\"%d\",rank=\"%d\",shop=\"%s\"", task, rank + 1, esc);
  if (!m->queue_top[task][rank])
    m->queue_top[task][rank] = kefu_metrics_gauge(
        "kefu_queue_length_top",
        "Buyers queued (ROUTE-11) in the task's longest queues, one slot per rank", labels);
  else if (strcmp(m->queue_top_shop[task][rank], esc) != 0)
    kefu_metric_relabel(m->queue_top[task][rank], labels);
  snprintf(m->queue_top_shop[task][rank], sizeof m->queue_top_shop[task][rank], "%s", esc);
  kefu_metric_set(m->queue_top[task][rank], n);
}

static void set_queue_gauges(engine_metrics_t *m, int task, const queue_tally_t *t) {
  if (!m->queue_length[task])
    m->queue_length[task] =
        task_gauge("kefu_queue_length", "Buyers queued (ROUTE-11) over the task's shops", task);
  kefu_metric_set(m->queue_length[task], (double)t->total);
  for (int r = 0; r < KEFU_QUEUE_TOP; r++)
    set_rank(m, task, r, t->top[r].shop, t->top[r].n);
}

void engine_queue_gauges(kefu_processor_t *p) {
  queue_tally_t *tally = calloc((size_t)MAX_TASKS, sizeof *tally);
  const char *id;
  void *v;
  if (!tally)
    return;
  kefu_map_foreach(&p->cache, it, id, v) {
    const shop_entry_t *e = v;
    if (e->loaded)
      tally_add(&tally[e->task], id, e->shop->queue.n);
  }
  kefu_map_foreach(&p->queues_away, it, id, v) {
    const queue_away_t *a = v;
    if (!kefu_map_get(&p->cache, id))
      tally_add(&tally[a->task], id, a->n);
  }
  for (int t = 0; t < p->partitions && t < MAX_TASKS; t++)
    if (p->tasks[t].assigned)
      set_queue_gauges(&p->m, t, &tally[t]);
  free(tally);
}

void engine_timer_gauges(kefu_processor_t *p, const task_t *task, int64_t now) {
  engine_metrics_t *m = &p->m;
  int64_t first = INT64_MAX;
  const char *shop;
  json_t *min;
  json_object_foreach(task->timer_index, shop, min) {
    if (json_integer_value(min) < first)
      first = json_integer_value(min);
  }
  if (!m->open_timers[task->id]) {
    m->open_timers[task->id] = task_gauge(
        "kefu_open_timers", "Pending timers of the task's shops and buyers in memory", task->id);
    m->overdue[task->id] = task_gauge(
        "kefu_oldest_overdue_timer_seconds",
        "Wall clock minus the task's earliest timer deadline, when behind it (0: none)", task->id);
  }
  kefu_metric_set(m->open_timers[task->id], (double)task->heap.n);
  kefu_metric_set(m->overdue[task->id], first < now ? (double)(now - first) / 1000.0 : 0);
}

void engine_task_gauges_forget(kefu_processor_t *p, int task) {
  const char *id;
  void *v;
  kefu_strv_t gone = {0};
  if (task < 0 || task >= MAX_TASKS) {
    kefu_map_clear(&p->queues_away, free);
    return;
  }
  kefu_map_foreach(&p->queues_away, it, id, v) {
    if (((queue_away_t *)v)->task == task)
      kefu_strv_push(&gone, id);
  }
  for (uint32_t i = 0; i < gone.n; i++)
    free(kefu_map_del(&p->queues_away, gone.v[i]));
  kefu_strv_clear(&gone);
  /* A revoked task's series stay registered: no stale value may outlive the ownership. */
  kefu_metric_set(p->m.queue_length[task], 0);
  for (int r = 0; r < KEFU_QUEUE_TOP; r++)
    kefu_metric_set(p->m.queue_top[task][r], 0);
  kefu_metric_set(p->m.open_timers[task], 0);
  kefu_metric_set(p->m.overdue[task], 0);
}
