/* Lost state: noticing that Redis no longer holds what kefu wrote to it.
 *
 * Redis is the store of record (SPEC §5). If it comes back empty (restarted without
 * persistence, flushed, or a different server behind the same address), every shop's
 * applied offsets are gone with its state, so the compare-and-set of kefu_apply passes
 * and kefu would carry on from empty state while Kafka's committed offsets (or Redis's
 * own positions) say the input before them was processed: silent wrong answers. kefu
 * refuses instead: an ERROR line that says what happened and what to do, /readyz 503,
 * and exit code 1 (a crash loop an SRE sees beats numbers nobody can trust).
 *
 * The evidence is one key per task, ns:{task-N}:pos. kefu writes it when it first takes
 * a task whose key is absent (the field `since`, before any batch of the task can
 * commit) and after every commit (positions, watermark), and never deletes it. So:
 *   - at assignment, a task without the key whose input partitions have offsets
 *     committed in Kafka beyond their log start was processed against a Redis that has
 *     since lost it (case a). With exactly_once this needs the transactional offsets
 *     that real Kafka stores and librdkafka 2.0.2's mock cluster drops (SPEC §5): on
 *     the mock only at_least_once commits give this evidence (docs/DECISIONS.md);
 *   - after every reconnect, a task whose key this instance saw is gone (case b). This
 *     needs nothing from Kafka, so it holds for both guarantees on the mock too.
 * A reconnect also loads the function library again (store/redis.c), so a Redis that
 * lost its functions but not its data (FUNCTION FLUSH) simply goes on.
 * FLUSHALL on a connection that stays up is found at the next reconnect, not before:
 * checking on every batch would cost a command per task per batch for a fault that
 * comes with a restart in practice. */
#include "engine/processor_int.h"

/* @p what ends with what Redis lacks; the line adds what to do. */
static void refuse(kefu_processor_t *p, int task, const char *what) {
  char key[128], reason[256];
  engine_task_key(p, task, key, sizeof key);
  KEFU_ERROR("engine",
             "Redis lost kefu's state: %s. Refusing to go on from empty state (it would apply "
             "input again and give wrong answers). Restore Redis from its AOF/RDB backup and "
             "restart kefu; or, to reprocess everything from empty state on purpose, reset "
             "the offsets of consumer group \"%s\" to the earliest (kafka-consumer-groups "
             "--group %s --reset-offsets --to-earliest --all-topics --execute) and restart kefu",
             what, p->o->group_id, p->o->group_id);
  snprintf(reason, sizeof reason, "Redis lost kefu's state (%s is missing): see the log", key);
  kefu_http_set_ready(false, reason);
  p->fatal = true;
}

/* 0 with the first of @p task's partitions whose committed offset lies beyond its log
 * start (the proof that the task was processed before) in @p topic and @p off; -1 when
 * there is none. Asks the broker only for a partition with a committed offset (the log
 * start is not always 0: retention). */
static int committed_beyond_start(kefu_processor_t *p, task_t *task, int *topic, int64_t *off) {
  for (int k = 0; k < KEFU_KEYED_INPUTS; k++) {
    int64_t lo = 0, hi = 0;
    if (task->committed[k] <= 0)
      continue;
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
        p->consumer, kefu_topic_name((kefu_topic_t)k), task->id, &lo, &hi, 10000);
    if (err) {
      KEFU_WARN("engine", "task %d: log start of %s: %s; taking 0", task->id,
                kefu_topic_name((kefu_topic_t)k), rd_kafka_err2str(err));
      lo = 0;
    }
    if (task->committed[k] > lo) {
      *topic = k;
      *off = task->committed[k];
      return 0;
    }
  }
  return -1;
}

/* Checks the tasks marked in @p want against Redis. 0 every one is fine (or Redis is
 * unreachable: the tasks stay unchecked and the next reconnect checks them), -1 state is
 * lost (logged; p->fatal set). */
static int check_tasks(kefu_processor_t *p, const bool *want) {
  char key[128], errstr[256], what[512];
  redisReply **r;
  int n = 0, nmark = 0, topic;
  int64_t off;
  bool mark[MAX_TASKS] = {0};

  for (int t = 0; t < MAX_TASKS; t++) {
    if (!want[t])
      continue;
    kefu_cmd_t c;
    kefu_cmd_init(&c);
    kefu_cmd_str(&c, "EXISTS");
    engine_task_key(p, t, key, sizeof key);
    kefu_cmd_str(&c, key);
    kefu_redis_append(p->redis, &c);
    kefu_cmd_clear(&c);
    n++;
  }
  if (n == 0)
    return 0;
  if (engine_redis_flush(p, &r, errstr, sizeof errstr) != n) {
    KEFU_WARN("engine", "checking the tasks' state in Redis: %s (checked again on reconnect)",
              errstr);
    return 0;
  }
  for (int t = 0, i = 0; t < MAX_TASKS; t++) {
    if (!want[t])
      continue;
    task_t *task = &p->tasks[t];
    bool exists = r[i]->type == REDIS_REPLY_INTEGER && r[i]->integer == 1;
    i++;
    if (exists) {
      task->state_seen = true;
      continue;
    }
    engine_task_key(p, t, key, sizeof key);
    if (task->state_seen) {
      snprintf(what, sizeof what,
               "%s (task %d's position, which this instance read or wrote) is gone after "
               "reconnecting: Redis was restarted without persistence, or flushed",
               key, t);
      refuse(p, t, what);
      return -1;
    }
    if (committed_beyond_start(p, task, &topic, &off) == 0) {
      snprintf(what, sizeof what,
               "consumer group \"%s\" has committed %s [%d] at offset %lld in Kafka, but "
               "Redis has no state for task %d (%s is missing): Redis was restarted without "
               "persistence, flushed, or is not the Redis kefu used",
               p->o->group_id, kefu_topic_name((kefu_topic_t)topic), t, (long long)off, t, key);
      refuse(p, t, what);
      return -1;
    }
    mark[t] = true; /* a new task: this Redis holds its state from now on */
  }
  for (int t = 0; t < MAX_TASKS; t++) {
    if (!mark[t])
      continue;
    kefu_cmd_t c;
    kefu_cmd_init(&c);
    kefu_cmd_str(&c, "HSETNX");
    engine_task_key(p, t, key, sizeof key);
    kefu_cmd_str(&c, key);
    kefu_cmd_str(&c, "since");
    kefu_cmd_fmt(&c, "%lld", (long long)engine_wall_ms());
    kefu_redis_append(p->redis, &c);
    kefu_cmd_clear(&c);
    nmark++;
  }
  if (nmark && engine_redis_flush(p, &r, errstr, sizeof errstr) != nmark) {
    KEFU_WARN("engine", "marking new tasks in Redis: %s (checked again on reconnect)", errstr);
    return 0;
  }
  for (int t = 0; t < MAX_TASKS; t++)
    if (mark[t])
      p->tasks[t].state_seen = true;
  return 0;
}

int engine_state_check_assign(kefu_processor_t *p, const rd_kafka_topic_partition_list_t *parts) {
  bool want[MAX_TASKS] = {0};
  char errstr[256];
  for (int i = 0; i < parts->cnt; i++) {
    const rd_kafka_topic_partition_t *tp = &parts->elems[i];
    kefu_topic_t t = kefu_topic_by_name(tp->topic);
    if (t == KEFU_TOPIC_NONE || t >= KEFU_KEYED_INPUTS || tp->partition >= MAX_TASKS)
      continue;
    task_t *task = &p->tasks[tp->partition];
    if (!want[tp->partition]) {
      want[tp->partition] = true;
      task->id = tp->partition;
      task->state_seen = false; /* a new assignment is checked afresh */
      for (int k = 0; k < KEFU_KEYED_INPUTS; k++)
        task->committed[k] = -1;
    }
    task->committed[t] = tp->err ? -1 : tp->offset;
  }
  if (!p->redis && !(p->redis = kefu_redis_connect(&p->o->redis, errstr, sizeof errstr))) {
    KEFU_WARN("engine", "checking the tasks' state in Redis: %s (checked again on reconnect)",
              errstr);
    return 0;
  }
  return check_tasks(p, want);
}

/* ---------------------------------------------------------------- a Redis that went back
 *
 * A Redis can also come back with less than it acknowledged: a replica promoted before
 * it had the master's last writes (asynchronous replication, without redis.wait_replicas),
 * a master restarted from an AOF that was not fsynced. Its positions and shops exist,
 * older. The applied offsets tell: they only move forward (another writer's, a zombie's,
 * too), so one below what Redis acknowledged to this instance is a lost write. Found at
 * the shop's next write (kefu_apply's compare-and-set answers with the stored offset)
 * for a shop in memory, and when it is read again for one dropped after a failed write
 * (its acknowledged offsets are kept until then). Not found: a shop whose lost write this
 * instance does not meet again (evicted, or its task moved). */
void engine_state_went_back(kefu_processor_t *p, const char *what) {
  KEFU_ERROR("engine",
             "Redis lost kefu's state: %s. Redis went back to older state (a failover "
             "promoted a replica without the master's last writes: set redis.wait_replicas "
             "and min-replicas-to-write, docs/OPERATIONS.md \"Redis Cluster\"). Refusing to "
             "go on (the inputs of the lost writes are committed in Kafka: going on would give "
             "wrong answers). Restore Redis from the old master's AOF if it has them and "
             "restart kefu; or reset the offsets of consumer group \"%s\" to the earliest "
             "(kafka-consumer-groups --group %s --reset-offsets --to-earliest --all-topics "
             "--execute) after emptying Redis, and restart kefu",
             what, p->o->group_id, p->o->group_id);
  kefu_http_set_ready(false, "Redis lost kefu's state (it went back to older state): see the log");
  p->fatal = true;
}

void engine_acked_keep(kefu_processor_t *p, const shop_entry_t *e) {
  shop_acked_t *a = kefu_map_get(&p->acked, e->shop->id);
  if (!a) {
    a = malloc(sizeof *a);
    for (int k = 0; k < KEFU_KEYED_INPUTS; k++)
      a->offsets[k] = -1;
    kefu_map_put(&p->acked, e->shop->id, a);
  }
  a->task = e->task;
  for (int k = 0; k < KEFU_KEYED_INPUTS; k++)
    if (e->stored[k] > a->offsets[k])
      a->offsets[k] = e->stored[k];
}

int engine_acked_check(kefu_processor_t *p, const shop_entry_t *e, char *errstr, size_t errlen) {
  shop_acked_t *a = kefu_map_del(&p->acked, e->shop->id);
  int rc = 0;
  for (int k = 0; a && k < KEFU_KEYED_INPUTS && !rc; k++)
    if (a->offsets[k] >= 0 && e->stored[k] < a->offsets[k]) {
      snprintf(errstr, errlen,
               "shop %s's applied offset of %s [%d] is %lld in Redis, below %lld, which Redis "
               "acknowledged to this instance",
               e->shop->id, kefu_topic_name((kefu_topic_t)k), e->task, (long long)e->stored[k],
               (long long)a->offsets[k]);
      rc = KEFU_STORE_WENT_BACK;
    }
  free(a);
  return rc;
}

void engine_acked_forget(kefu_processor_t *p, int task) {
  const char *id;
  void *v;
  const char **gone = NULL;
  size_t n = 0;
  kefu_map_foreach(&p->acked, it, id, v) {
    if (task >= 0 && ((shop_acked_t *)v)->task != task)
      continue;
    gone = realloc(gone, (n + 1) * sizeof *gone);
    gone[n++] = id;
  }
  for (size_t i = 0; i < n; i++)
    free(kefu_map_del(&p->acked, gone[i]));
  free(gone);
}

int engine_state_check_reconnect(kefu_processor_t *p) {
  bool want[MAX_TASKS] = {0};
  for (int t = 0; t < MAX_TASKS; t++)
    want[t] = p->tasks[t].assigned;
  return check_tasks(p, want);
}
