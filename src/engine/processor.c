/* The processing loop.
 *
 * Records are decoded and validated as they are polled, and queued per task (the four
 * keyed topics' partitions with the same number) and topic. A batch takes, per task,
 * the head with the smallest (ts, topic rank, offset) while no partition that may still
 * receive data is empty — an empty one is waited for up to task_idle_ms, as Kafka
 * Streams does; one read to its end does not hold the task back.
 *
 * A batch then costs a fixed number of Redis round trips, whatever its size:
 *   1. load, only for what this instance does not hold (cache.c): every shop of the
 *      batch not in memory, read whole, and the outputs remembered for the batch's
 *      inputs when they may have been processed before (one pipeline; none in steady
 *      state);
 *   2. store: remembered outputs first, then one kefu_apply per changed shop (atomic,
 *      CAS on the shop's applied offsets), writing only changed entities;
 *   3. after the Kafka transaction commits: each partition's next offset and the task's
 *      watermark, and the remembered outputs are dropped.
 * Outputs are written before state because they are a deterministic function of
 * (state, input): if we die in between, the input is processed again from the same
 * state and produces the same bytes. An input whose state is already applied takes
 * its outputs from what was remembered, so a re-processed input re-emits exactly what
 * it emitted before (docs/ARCHITECTURE.md, "Effectively once"). */
#include "engine/processor_int.h"
#include "io/kafka.h"

#include <malloc.h>

/* ---------------------------------------------------------------- the loop */

static int open_producer(kefu_processor_t *p, char *errstr, size_t errlen);
static void destroy_producer(kefu_processor_t *p);

static void flush_pending(kefu_processor_t *p, bool idle);

/* Closes the loop's Redis connection (a failed batch): what waited in its pipeline is
 * written later. */
static void close_redis(kefu_processor_t *p, const char *why) {
  if (!p->redis)
    return;
  if (p->pos_pending)
    engine_positions_written(p, false, why);
  p->closed_commands += kefu_redis_commands_sent(p->redis);
  p->closed_round_trips += kefu_redis_round_trips(p->redis);
  kefu_redis_close(p->redis);
  p->redis = NULL;
}

static int reconnect_redis(kefu_processor_t *p, char *errstr, size_t errlen) {
  close_redis(p, "reconnecting");
  p->redis = kefu_redis_connect(&p->o->redis, errstr, errlen);
  if (p->redis && engine_state_check_reconnect(p)) {
    snprintf(errstr, errlen, "Redis lost kefu's state");
    return -1;
  }
  return p->redis ? 0 : -1;
}

static void snapshot_watermarks(const kefu_processor_t *p, int64_t *wm) {
  for (int t = 0; t < MAX_TASKS; t++)
    wm[t] = p->tasks[t].watermark;
}

static void batch_state_init(batch_state_t *bs) {
  memset(bs, 0, sizeof *bs);
}

/* The batch's shops leave memory: Redis has their state (their memory may be ahead of it,
 * or behind after a conflict). What Redis acknowledged of them stays, to be checked when
 * they are read again (a failover may have lost it). */
static void drop_batch_shops(kefu_processor_t *p, batch_state_t *bs) {
  for (size_t i = 0; i < bs->nshops; i++)
    bs->shops[i]->in_batch = false;
  for (size_t i = 0; i < bs->nshops; i++) {
    engine_acked_keep(p, bs->shops[i]);
    engine_cache_drop(p, bs->shops[i]);
  }
  bs->nshops = 0;
}

/* The state side of one attempt at a batch: Redis reads, rules and timers, Redis write.
 * 0 done, 1 retry (Redis failed: the batch's shops are dropped, their memory may be
 * ahead of Redis or behind it after a conflict), -1 fatal. */
static int state_once(kefu_processor_t *p, const batch_t *b, batch_state_t *bs, char *errstr,
                      size_t errlen) {
  int64_t max_ts = 0;
  for (size_t i = 0; i < b->n; i++)
    if (b->items[i]->valid && b->items[i]->ev.ts > max_ts)
      max_ts = b->items[i]->ev.ts;
  int64_t wm[MAX_TASKS];
  snapshot_watermarks(p, wm);
  int rc = 0;
  for (int attempt = 0;; attempt++) {
    bool missed = false;
    for (size_t i = 0; i < b->n; i++)
      p->tasks[b->items[i]->task].saw_applied = p->tasks[b->items[i]->task].missed_remembered =
          false;
    if (!p->redis && reconnect_redis(p, errstr, errlen))
      return p->fatal ? -1 : 1;
    if ((rc = engine_load_state(p, b, bs, errstr, errlen)) != 0)
      break;
    engine_run_rules(p, b, bs);
    for (size_t i = 0; i < b->n; i++)
      missed |= p->tasks[b->items[i]->task].missed_remembered;
    if (missed && attempt == 0) {
      /* An input the state shows applied, whose remembered outputs this batch did not
       * read: a dead owner's merge took it in another order than ours (a record that
       * came after its task_idle_ms wait merges before it here), so the batch before
       * did not meet applied inputs. The batch again from Redis's state, reading them. */
      for (size_t i = 0; i < b->n; i++)
        p->tasks[b->items[i]->task].check_remembered |=
            p->tasks[b->items[i]->task].missed_remembered;
      for (int t = 0; t < MAX_TASKS; t++)
        p->tasks[t].watermark = wm[t];
      drop_batch_shops(p, bs);
      engine_batch_state_clear(bs);
      batch_state_init(bs);
      continue;
    }
    if ((rc = engine_store_state(p, b, bs, max_ts, errstr, errlen)) == 0)
      return 0;
    break;
  }
  if (rc == KEFU_STORE_WENT_BACK) {
    engine_state_went_back(p, errstr);
    snprintf(errstr, errlen, "Redis lost kefu's state");
    return -1;
  }
  close_redis(p, errstr);
  drop_batch_shops(p, bs);
  for (int t = 0; t < MAX_TASKS; t++) /* the retry starts from the batch's watermarks */
    p->tasks[t].watermark = wm[t];
  if (p->o->replay) { /* it remembers nothing to retry with (DECISIONS 53) */
    size_t n = strlen(errstr);
    snprintf(errstr + n, errlen - n, " (a replay does not retry: run it again)");
    return -1;
  }
  return 1;
}

/* After an attempt (@p rc) at @p b: after a failed one its inputs may have been
 * processed, so the next attempt reads what they remembered. After a crash, the inputs
 * a dead instance applied without a commit are a prefix of the task's merge order when
 * the merge was deterministic: while a batch meets such inputs, the next may too. When
 * it was not (a record that came after task_idle_ms merges earlier now), state_once
 * finds an applied input it read nothing remembered for and does the batch again. */
static void after_attempt(kefu_processor_t *p, const batch_t *b, int rc) {
  for (size_t i = 0; i < b->n; i++) {
    task_t *task = &p->tasks[b->items[i]->task];
    task->check_remembered = rc != 0 || task->saw_applied;
  }
}

/* One attempt at a whole batch, state then Kafka then positions: 0 done, 1 retry (Redis
 * or a transaction failed), 2 a new producer first, -1 fatal. */
static int process_once(kefu_processor_t *p, const batch_t *b, char *errstr, size_t errlen) {
  batch_state_t bs;
  int64_t wm[MAX_TASKS];
  batch_state_init(&bs);
  int rc = state_once(p, b, &bs, errstr, errlen);
  if (rc == 0) {
    rc = engine_kafka_commit(p, b, &bs, errstr, errlen);
    snapshot_watermarks(p, wm);
    if (rc == 0) {
      engine_append_positions(p, b, &bs, wm);
      flush_pending(p, false);
    }
  }
  after_attempt(p, b, rc);
  engine_batch_state_clear(&bs);
  if (rc == 0)
    engine_cache_trim(p);
  return rc;
}

/* Pauses (or resumes) every assigned input partition: while a batch is retried nothing
 * more is fetched (SPEC §6), but the consumer is still polled. */
static void pause_inputs(kefu_processor_t *p, bool pause) {
  rd_kafka_topic_partition_list_t *a = NULL;
  if (!p->consumer)
    return;
  if (!rd_kafka_assignment(p->consumer, &a))
    engine_set_paused(p, a, pause, "inputs");
  if (a)
    rd_kafka_topic_partition_list_destroy(a);
  p->paused = pause;
  for (int id = 0; !pause && id < p->partitions && id < MAX_TASKS; id++)
    for (int k = 0; k < KEFU_KEYED_INPUTS;
         k++) /* resumed with the rest: flow_control decides again */
      p->tasks[id].q[k].flow_paused = false;
  for (int id = 0; !pause && id < p->partitions && id < MAX_TASKS; id++)
    if (p->tasks[id].schema_paused) /* still waiting for the registry */
      engine_pause_task(p, id, true);
}

/* Polls the consumer for @p ms between two attempts at a batch. This is where a
 * rebalance is served (the callback runs inside the poll) and what keeps the member in
 * its group (max.poll.interval.ms): a retry loop that only slept could never rejoin
 * after its commit failed with REBALANCE_IN_PROGRESS or UNKNOWN_MEMBER_ID. Records
 * fetched before the pause took effect are queued as usual. */
static void serve_consumer(kefu_processor_t *p, int ms, volatile sig_atomic_t *stop) {
  int64_t until = engine_wall_ms() + ms;
  do {
    rd_kafka_message_t *m = p->consumer ? rd_kafka_consumer_poll(p->consumer, ms < 50 ? ms : 50)
                                        : (usleep(ms < 50 ? (unsigned)ms * 1000 : 50000), NULL);
    if (m)
      engine_enqueue(p, m);
    kefu_http_heartbeat(); /* alive, just not ready: liveness must not restart us */
  } while (engine_wall_ms() < until && !*stop);
  if (p->paused)
    pause_inputs(p, true); /* partitions assigned meanwhile too */
}

/* Drops the batch's records of tasks revoked or assigned anew since they were read, as
 * Kafka Streams does with a migrated task: their next owner (maybe this instance again,
 * from the committed position) processes them, never a commit under a stale
 * generation. Returns how many were dropped. */
static size_t drop_migrated(kefu_processor_t *p, batch_t *b) {
  size_t kept = 0, n = b->n;
  for (size_t i = 0; i < n; i++) {
    input_t *in = b->items[i];
    const task_t *task = &p->tasks[in->task];
    if (task->assigned && task->generation == in->generation)
      b->items[kept++] = in;
    else
      engine_input_free(in);
  }
  b->n = kept;
  return n - kept;
}

/* A new producer for one that is fenced or failed for good. With exactly_once its
 * init_transactions fences any older epoch of our transactional.id and aborts what it
 * left open; the batch is then processed again and emits the same bytes. */
static int new_producer(kefu_processor_t *p, char *errstr, size_t errlen) {
  if (p->producer) {
    rd_kafka_purge(p->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    destroy_producer(p);
  }
  kefu_metric_add(p->m.producer_restarts, 1);
  return open_producer(p, errstr, errlen);
}

static void book_batch(kefu_processor_t *p, const batch_t *b, int64_t start, int64_t done) {
  if (!p->m.first_batch_ms)
    p->m.first_batch_ms = start;
  p->m.last_commit_ms = done;
  p->m.records += b->n;
  kefu_metric_add(p->m.processed, (double)b->n);
  if (p->o->on_progress)
    p->o->on_progress(p->o->progress_arg, p->m.records);
  p->m.batches++;
  for (size_t i = 0; i < b->n; i++)
    if (!b->items[i]->idle)
      kefu_histogram_observe(p->m.event_to_output,
                             (double)(done - b->items[i]->polled_ms) / 1000.0);
  kefu_histogram_observe(p->m.batch_seconds, (double)(done - start) / 1000.0);
}

/* A batch the plain way: attempts until it is done, a fatal error, or a stop. @p failed
 * is ENGINE_DONE for a batch not tried yet, else how its first attempt (the pipeline's)
 * failed, with @p why. */
static int process_batch(kefu_processor_t *p, batch_t *b, volatile sig_atomic_t *stop, int failed,
                         const char *why) {
  char errstr[512];
  int backoff = KEFU_BACKOFF_FIRST_MS, rc = failed, new_producers = 0;
  int64_t start = engine_wall_ms();
  snprintf(errstr, sizeof errstr, "%s", why ? why : "");
  for (bool attempt = failed == ENGINE_DONE;; attempt = true) {
    if (attempt) {
      kefu_http_busy(true); /* /readyz tells if this blocks for long (a broker outage) */
      rc = engine_can_commit(p) ? process_once(p, b, errstr, sizeof errstr) : ENGINE_NEW_PRODUCER;
      kefu_http_busy(false);
    }
    if (rc == ENGINE_DONE)
      break;
    if (rc == ENGINE_FATAL)
      break;
    kefu_http_set_ready(false, errstr);
    if (rc == ENGINE_NEW_PRODUCER) {
      if (++new_producers > 5) {
        snprintf(errstr + strlen(errstr), sizeof errstr - strlen(errstr),
                 "; the producer was fenced %d times in a row: is another instance using "
                 "instance.id %s?",
                 new_producers - 1, p->o->instance_id);
        rc = ENGINE_FATAL;
        break;
      }
      KEFU_WARN("engine", "batch of %zu records not done: %s; creating a new producer", b->n,
                errstr);
      if (new_producer(p, errstr, sizeof errstr))
        KEFU_WARN("engine", "new producer: %s", errstr);
    } else {
      KEFU_WARN("engine", "batch of %zu records not done, retrying in %d ms: %s", b->n, backoff,
                errstr);
    }
    if (*stop) { /* SPEC §6: the batch is abandoned, nothing of it committed */
      KEFU_WARN("engine",
                "stopping with a batch of %zu records not done: the next owner of "
                "its tasks processes it again",
                b->n);
      return 0;
    }
    if (!p->paused)
      pause_inputs(p, true);
    serve_consumer(p, backoff, stop);
    if (p->fatal) { /* an assignment meanwhile found that Redis lost the state */
      snprintf(errstr, sizeof errstr, "Redis lost kefu's state");
      rc = ENGINE_FATAL;
      break;
    }
    size_t dropped = drop_migrated(p, b);
    if (dropped)
      KEFU_INFO("engine",
                "rebalanced while retrying: %zu records of the batch are no longer ours "
                "to process (%zu left)",
                dropped, b->n);
    if (b->n == 0) {
      rc = ENGINE_DONE;
      break;
    }
    backoff = kefu_backoff_next(backoff, p->o->redis_retry_max_ms);
  }
  if (p->paused)
    pause_inputs(p, false);
  if (rc == ENGINE_FATAL) {
    KEFU_ERROR("engine", "fatal: %s", errstr);
    return -1;
  }
  kefu_http_set_ready(true, NULL);
  book_batch(p, b, start, engine_wall_ms());
  return 0;
}

/* ---------------------------------------------------------------- the pipeline
 *
 * With processing.pipeline (the default) a batch's state is written by the loop, and its
 * Kafka side (outputs and offsets in one transaction, or delivered then committed) and
 * positions are the committer's (committer.c), while the loop polls, decodes and computes
 * the next batch; before that one's state is written the loop waits for the committer.
 * Why it keeps effectively-once: docs/ARCHITECTURE.md, "The pipelined loop". */

static void job_free(commit_job_t *job) {
  for (size_t i = 0; i < job->b.n; i++)
    engine_input_free(job->b.items[i]);
  free(job->b.items);
  engine_batch_state_clear(&job->bs);
  free(job);
}

/* The committer's job, once done: booked when it committed; returned when it did not
 * (its caller processes it again), else NULL. */
static commit_job_t *reap(kefu_processor_t *p) {
  commit_job_t *job = engine_commit_wait(p);
  if (!job)
    return NULL;
  if (job->rc != ENGINE_DONE)
    return job;
  kefu_http_set_ready(true, NULL);
  book_batch(p, &job->b, job->start_ms, job->done_ms);
  engine_append_positions(p, &job->b, &job->bs, job->watermark); /* with the next write */
  job_free(job);
  return NULL;
}

static bool positions_stale(const kefu_processor_t *p) {
  for (int t = 0; t < MAX_TASKS; t++)
    if (p->tasks[t].assigned && p->tasks[t].pos_stale)
      return true;
  return false;
}

/* What waits for the next Redis write (a batch's positions, the exact timer-index
 * entries), written now: when nothing else goes to Redis (idle, a rebalance, the end).
 * When that write fails the connection goes (the next one reads a cluster's slot map
 * again) and positions no write carried are tried again here, with the retries'
 * backoff: an idle instance's positions do not wait for its next input. Before a task
 * is given up and at the end (@p idle false) they are tried at once. */
static void flush_pending(kefu_processor_t *p, bool idle) {
  char errstr[256];
  redisReply **r;
  if (p->fatal) /* Redis lost the state: nothing more is written to it */
    return;
  bool stale = positions_stale(p) && !p->pos_pending;
  if (stale && idle && engine_wall_ms() < p->pending_retry_ms)
    stale = false;      /* not yet */
  p->pos_again = stale; /* engine_positions_written's log says so */
  if (stale && !p->redis && reconnect_redis(p, errstr, sizeof errstr)) {
    if (!p->fatal) /* else the loop stops */
      engine_positions_written(p, false, errstr);
    p->pos_again = false;
    goto failed;
  }
  if (stale) { /* an empty batch: only the stale tasks' positions */
    batch_t none = {0};
    batch_state_t bs;
    int64_t wm[MAX_TASKS];
    batch_state_init(&bs);
    snapshot_watermarks(p, wm);
    engine_append_positions(p, &none, &bs, wm);
  }
  int n = engine_append_index(p);
  if (!n && !p->pos_pending)
    return;
  int got = engine_redis_flush(p, &r, errstr, sizeof errstr);
  p->pos_again = false;
  if (got != n) {
    if (n) /* a failed positions write is logged by engine_redis_flush */
      KEFU_WARN("engine", "timer index: %s (it keeps lower bounds)", errstr);
    close_redis(p, errstr);
  } else if (!positions_stale(p)) { /* (a refused HSET leaves them stale) */
    p->pending_backoff_ms = 0;
    return;
  }
failed:
  p->pending_backoff_ms = p->pending_backoff_ms
                              ? kefu_backoff_next(p->pending_backoff_ms, p->o->redis_retry_max_ms)
                              : KEFU_BACKOFF_FIRST_MS;
  p->pending_retry_ms = engine_wall_ms() + p->pending_backoff_ms;
}

static void drain(kefu_processor_t *p, bool idle) {
  commit_job_t *job = reap(p);
  if (job) {
    if (p->failed) /* cannot happen: one job at a time */
      job_free(p->failed);
    p->failed = job;
  }
  flush_pending(p, idle);
}

void engine_pipeline_drain(kefu_processor_t *p) {
  drain(p, false);
}

/* Processes a batch the committer could not commit again, the plain way: its state is
 * applied in Redis, so its inputs take their outputs from what they remembered. Its
 * records of tasks that moved meanwhile are dropped. */
static int redo(kefu_processor_t *p, commit_job_t *job, volatile sig_atomic_t *stop) {
  for (size_t i = 0; i < job->b.n; i++)
    p->tasks[job->b.items[i]->task].check_remembered = true;
  drop_migrated(p, &job->b);
  int rc = job->b.n ? process_batch(p, &job->b, stop, job->rc, job->errstr) : 0;
  job_free(job);
  return rc;
}

/* One batch through the pipeline: its state now, its Kafka side in the committer. When
 * the batch before it comes back failed, both are processed again the plain way, in
 * order, from the watermarks this batch started with. */
static int process_pipelined(kefu_processor_t *p, batch_t *b, volatile sig_atomic_t *stop) {
  commit_job_t *job = calloc(1, sizeof *job);
  int64_t wm_before[MAX_TASKS];
  int rc = ENGINE_RETRY;
  job->b = *b;
  memset(b, 0, sizeof *b); /* the job owns the records now */
  job->start_ms = engine_wall_ms();
  batch_state_init(&job->bs);
  snapshot_watermarks(p, wm_before);
  if (engine_can_commit(p)) {
    kefu_http_busy(true);
    rc = state_once(p, &job->b, &job->bs, job->errstr, sizeof job->errstr);
    kefu_http_busy(false);
  }
  if (rc == ENGINE_FATAL) {
    KEFU_ERROR("engine", "fatal: %s", job->errstr);
    job_free(job);
    return -1;
  }
  commit_job_t *prev = reap(p);
  if (rc == ENGINE_DONE && !prev) {
    after_attempt(p, &job->b, 0);
    snapshot_watermarks(p, job->watermark);
    for (size_t i = 0; i < job->bs.nshops; i++) /* the committer needs only the outputs */
      job->bs.shops[i]->in_batch = false;
    free(job->bs.shops);
    job->bs.shops = NULL;
    job->bs.nshops = 0;
    engine_cache_trim(p); /* after: it may free the batch's shops */
    engine_commit_async(p, job);
    return 0;
  }
  /* The plain way, in order. This batch's state may be written already: then its inputs
   * take their outputs from what they remembered. */
  for (int t = 0; t < MAX_TASKS; t++)
    p->tasks[t].watermark = wm_before[t];
  after_attempt(p, &job->b, 1);
  engine_batch_state_clear(&job->bs);
  if (prev && redo(p, prev, stop)) {
    job_free(job);
    return -1;
  }
  rc = process_batch(p, &job->b, stop, rc, job->errstr);
  job_free(job);
  return rc;
}

static bool all_at_end(const kefu_processor_t *p) {
  bool any = false;
  for (int t = 0; t < MAX_TASKS; t++) {
    if (!p->tasks[t].assigned)
      continue;
    any = true;
    for (int k = 0; k < KEFU_KEYED_INPUTS; k++)
      if (!p->tasks[t].q[k].at_end || engine_queue_head(&p->tasks[t].q[k]))
        return false;
  }
  return any;
}

static kefu_metric_t *gauge(const char *name, const char *help, const char *fmt, int a,
                            const char *b) {
  char labels[256];
  snprintf(labels, sizeof labels, fmt, a, b);
  return kefu_metrics_gauge(name, help, labels);
}

/* The lag of a partition whose head waits for the Schema Registry: from that record to
 * the end offset, asked of the broker (one request a second per waiting task), since
 * librdkafka refreshes no end offset of a paused partition and the records read into
 * the queue count as read. False for any other partition. */
static bool held_lag(kefu_processor_t *p, const task_t *task, int k, int64_t *lag) {
  const input_t *h = engine_queue_head(&task->q[k]);
  int64_t lo, hi;
  if (!p->consumer || !task->schema_paused || !h || !h->awaits_schema ||
      rd_kafka_query_watermark_offsets(p->consumer, kefu_topic_name((kefu_topic_t)k), task->id, &lo,
                                       &hi, 500))
    return false;
  *lag = hi - h->offset;
  return true;
}

/* Once a second: consumer lag per partition (high watermark - position, from
 * librdkafka's cached offsets: no request, except held_lag's), each task's watermark,
 * how many shops of each task have timers, and the queue and timer gauges of gauges.c. */
static void update_gauges(kefu_processor_t *p) {
  int64_t now = engine_wall_ms();
  if (now - p->m.last_gauges_ms < 1000)
    return;
  p->m.last_gauges_ms = now;
  if (!p->m.generation)
    p->m.generation =
        kefu_metrics_gauge("kefu_group_generation", "The consumer group's generation id", NULL);
  if (p->consumer)
    kefu_metric_set(p->m.generation, kefu_kafka_generation(p->consumer));
  for (int id = 0; id < p->partitions && id < MAX_TASKS; id++) {
    task_t *task = &p->tasks[id];
    if (!p->m.assigned[id])
      p->m.assigned[id] = gauge("kefu_task_assigned", "1 while this instance owns the task",
                                "task=\"%d\"%s", id, "");
    if (!p->m.committed_at[id])
      p->m.committed_at[id] =
          gauge("kefu_task_committed_ms", "When this instance last committed the task (epoch ms)",
                "task=\"%d\"%s", id, "");
    kefu_metric_set(p->m.assigned[id], task->assigned);
    if (!task->assigned)
      continue;
    for (int k = 0; k < KEFU_KEYED_INPUTS; k++) {
      const char *topic = kefu_topic_name((kefu_topic_t)k);
      int64_t lo, hi;
      rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
      rd_kafka_topic_partition_list_add(l, topic, id);
      if (!p->m.lag[id][k])
        p->m.lag[id][k] = gauge("kefu_consumer_lag", "Records not yet read, per input partition",
                                "partition=\"%d\",topic=\"%s\"", id, topic);
      if (held_lag(p, task, k, &hi))
        kefu_metric_set(p->m.lag[id][k], (double)hi);
      else if (p->consumer && !rd_kafka_get_watermark_offsets(p->consumer, topic, id, &lo, &hi) &&
               !rd_kafka_position(p->consumer, l) && l->elems[0].offset >= 0)
        kefu_metric_set(p->m.lag[id][k], (double)(hi - l->elems[0].offset));
      rd_kafka_topic_partition_list_destroy(l);
    }
    if (!p->m.watermark[id])
      p->m.watermark[id] = gauge("kefu_watermark_ms", "Event-time watermark per task (epoch ms)",
                                 "task=\"%d\"%s", id, "");
    if (!p->m.timer_shops[id])
      p->m.timer_shops[id] =
          gauge("kefu_timer_shops", "Shops with pending timers per task", "task=\"%d\"%s", id, "");
    if (task->watermark != INT64_MIN)
      kefu_metric_set(p->m.watermark[id], (double)task->watermark);
    kefu_metric_set(p->m.timer_shops[id],
                    task->timer_index ? (double)json_object_size(task->timer_index) : 0);
    engine_timer_gauges(p, task, now);
  }
  engine_queue_gauges(p);
}

/* SPEC §1.3 idle advance (live mode only): a task that has read nothing for
 * idle_advance_ms gets its watermark raised to wall clock - idle_advance_ms, so a quiet
 * night still fires timers. Only when a timer would fire, so a quiet task costs nothing. */
void engine_maybe_idle_tick(kefu_processor_t *p, task_t *task, batch_t *b) {
  int64_t now = engine_wall_ms(), target = now - p->o->idle_advance_ms;
  const char *shop;
  json_t *min;
  bool due = false;
  if (!p->o->idle_advance || now - task->last_input_ms < p->o->idle_advance_ms ||
      target <= task->watermark)
    return;
  for (int k = 0; k < KEFU_KEYED_INPUTS; k++)
    if (engine_queue_head(&task->q[k]))
      return;
  json_object_foreach(task->timer_index, shop, min) due |= json_integer_value(min) < target;
  if (!due)
    return;
  input_t *in = engine_input_new();
  in->idle = true;
  in->task = task->id;
  in->generation = task->generation;
  in->sort_ts = target;
  snprintf(in->error, sizeof in->error, "idle-%d-%lld", task->id, (long long)target);
  engine_set_cause(in);
  engine_batch_add(b, in);
}

/* A replay's merge of @p task: reads the source into its empty queues as the merge needs
 * them (at most REPLAY_FILL records ahead per partition). 0, or -1 (source error). */
static int replay_take(kefu_processor_t *p, task_t *task, batch_t *b, size_t max) {
  char errstr[512];
  do {
    task->starved = false;
    if (engine_replay_fill(p, task, errstr, sizeof errstr)) {
      KEFU_ERROR("replay", "%s", errstr);
      return -1;
    }
    engine_take_ready(p, task, b, max);
  } while (task->starved && b->n < max);
  return 0;
}

/* A replay with nothing left to merge: the flush ticks once (--flush), then the end once
 * the last batch is committed. True: the loop ends. */
static bool replay_end(kefu_processor_t *p, batch_t *b) {
  if (!all_at_end(p))
    return false;
  if (p->o->replay_flush && !p->replay_flushed) {
    p->replay_flushed = true;
    engine_pipeline_drain(p);
    engine_replay_flush_ticks(p, b);
    return false;
  }
  return true;
}

/* Flow control, as Kafka Streams' buffered.records.per.partition: while a task has
 * waited for records that have not arrived (starved) for 20 batch.max_ms (1 s) or more, a
 * partition whose queue holds two batches' worth is paused until it is down to one, or
 * nobody waits. librdkafka's consumer has one queue, filled in fetch order: a hot
 * partition's backlog, fetched first, stood in front of every other partition's records,
 * and the merge saw nothing else until it had taken it all (test_fairness.py). Pausing a
 * partition drops its fetched records from that queue (librdkafka fetches them again from
 * the last one kefu read when it resumes), so the others' come through. Only for a
 * starvation that lasts: each pause costs a fetch again, and a backlog on every partition
 * starves a task for a moment now and then (paused on every such moment, the bench's
 * backlog ran at half speed). Not while a retry pauses everything (p->paused): resuming
 * is its business; nor for a task paused while it waits for the Schema Registry
 * (engine_registry_hold's). DECISIONS 63. */
static void flow_control(kefu_processor_t *p) {
  size_t full = 2 * (size_t)p->o->batch_max_records;
  int64_t now = engine_wall_ms(), patience = 20 * (int64_t)p->o->batch_max_ms;
  bool starved = false;
  for (int id = 0; id < p->partitions && id < MAX_TASKS; id++) {
    task_t *t = &p->tasks[id];
    if (!t->assigned || !t->starved)
      t->starved_since = 0;
    else if (!t->starved_since)
      t->starved_since = now;
    starved |= t->starved_since && now - t->starved_since >= (patience > 200 ? patience : 200);
  }
  for (int id = 0; id < p->partitions && id < MAX_TASKS && !p->paused && !p->o->replay; id++)
    for (int k = 0; k < KEFU_KEYED_INPUTS && p->tasks[id].assigned && !p->tasks[id].schema_paused;
         k++) {
      queue_t *q = &p->tasks[id].q[k];
      size_t n = q->tail - q->head;
      bool pause = starved && !p->tasks[id].starved && n >= (q->flow_paused ? full / 2 : full);
      if (pause == q->flow_paused)
        continue;
      rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
      rd_kafka_topic_partition_list_add(one, kefu_topic_name((kefu_topic_t)k), id);
      if (engine_set_paused(p, one, pause, "a full partition")) {
        q->flow_paused = pause;
        KEFU_DEBUG("engine", "%s %s [%d]: %zu records queued", pause ? "paused" : "resumed",
                   kefu_topic_name((kefu_topic_t)k), id, n);
      }
      rd_kafka_topic_partition_list_destroy(one);
    }
}

/* A batch of records from every task that has some ready, in shares (DECISIONS 63): each
 * assigned task takes up to max / (assigned tasks) first, then what room is left goes to
 * the tasks in turn, starting with the next one each batch. A hot task's backlog then
 * takes the room the others leave, not all of it: under load every task's lag falls from
 * the start, and a task with a small backlog is done long before the hot one. A task's
 * own order is its merge; the order of tasks within a batch does not matter. */
static void fair_fill(kefu_processor_t *p, batch_t *b, size_t max) {
  int n = p->partitions < MAX_TASKS ? p->partitions : MAX_TASKS, assigned = 0;
  int first = n > 0 ? (int)(p->batches_made % (uint64_t)n) : 0;
  for (int i = 0; i < n; i++)
    assigned += p->tasks[i].assigned;
  size_t share = assigned ? (max + (size_t)assigned - 1) / (size_t)assigned : max;
  for (int pass = 0; pass < 2 && b->n < max; pass++)
    for (int i = 0; i < n && b->n < max; i++) {
      task_t *task = &p->tasks[(first + i) % n];
      if (!task->assigned)
        continue;
      size_t limit = pass == 0 && b->n + share < max ? b->n + share : max;
      engine_take_ready(p, task, b, limit);
      if (pass == 0)
        engine_maybe_idle_tick(p, task, b);
    }
}

/* A replay's batch: its tasks in turn, each read from its source as it takes records. */
static int replay_fill(kefu_processor_t *p, batch_t *b, size_t max) {
  int n = p->partitions < MAX_TASKS ? p->partitions : MAX_TASKS;
  int first = n > 0 ? (int)(p->batches_made % (uint64_t)n) : 0;
  for (int i = 0; i < n && b->n < max; i++)
    if (replay_take(p, &p->tasks[(first + i) % n], b, max)) {
      for (size_t k = 0; k < b->n; k++)
        engine_input_free(b->items[k]);
      b->n = 0;
      return -1;
    }
  return 0;
}

int kefu_processor_run(kefu_processor_t *p, volatile sig_atomic_t *stop) {
  batch_t b = {0};
  int idle_polls = 0, rc = 0;
  char errstr[256];
  size_t max = (size_t)p->o->batch_max_records;
  bool backlog = false; /* the last batch was full */

  kefu_http_set_ready(true, NULL); /* connected to Kafka and Redis: ready until a batch fails */
  while (!*stop) {
    int64_t deadline = engine_wall_ms() + p->o->batch_max_ms;
    /* A batch collects until it is full or batch.max_ms passed; after a full batch (a
     * backlog) only what is already fetched is taken, without waiting for more. */
    /* The merge takes a partition's records only as fast as its task's other partitions
     * allow (SPEC §1.3): with 4 batches waiting in its queues nothing more is polled,
     * unless a task waits for records of a partition not read to its end (DECISIONS 49). */
    bool starved = false;
    for (int i = 0; i < p->partitions && i < MAX_TASKS; i++)
      starved |= p->tasks[i].starved;
    /* A starved task's records may stand behind another partition's in librdkafka's
     * queue: up to 4 batches are polled at once then, so that flow_control sees that
     * partition's queue fill and pauses it. */
    size_t queued = 0, limit = starved ? 4 * max : engine_queued(p) >= 4 * max ? 0 : max;
    if (p->o->replay) /* the merge reads its source as it takes records (replay_take) */
      limit = 1;
    else if (!limit)
      engine_poll_couriers(p, false, errstr, sizeof errstr);
    while (limit && !p->o->replay) {
      rd_kafka_message_t *m = rd_kafka_consumer_poll(p->consumer, backlog ? 0 : 20);
      if (m) {
        engine_enqueue(p, m);
        queued++;
      }
      engine_poll_couriers(p, false, errstr, sizeof errstr);
      if ((!m && backlog) || queued >= limit || engine_wall_ms() >= deadline || *stop || p->fatal)
        break;
    }
    if (p->fatal) { /* set at assignment: Redis lost the state */
      rc = -1;
      break;
    }
    flow_control(p);
    if (p->failed) { /* the committer's job came back failed in a rebalance callback */
      commit_job_t *job = p->failed;
      p->failed = NULL;
      if ((rc = redo(p, job, stop)))
        break;
    }
    b.n = 0;
    for (int i = 0; i < p->partitions && i < MAX_TASKS; i++)
      p->tasks[i].starved = false;
    if (!p->o->replay) {
      fair_fill(p, &b, max);
    } else if (replay_fill(p, &b, max)) {
      rc = -1;
      break;
    }
    engine_registry_hold(p);
    if (p->o->replay && b.n == 0 && replay_end(p, &b))
      break;
    kefu_http_heartbeat();
    update_gauges(p);
    if (b.n == 0) {
      /* Nothing polled, nothing to do: the merge waits for task_idle_ms, or for the
       * registry (a replay polls nothing that would wait instead). */
      if (!limit || p->held_tasks)
        usleep(2000);
      drain(p, true); /* nothing to overlap: the last batch's commit is booked */
      if (p->failed)
        continue;
      if (p->o->exit_when_idle_polls && all_at_end(p) && ++idle_polls >= p->o->exit_when_idle_polls)
        break;
      continue;
    }
    idle_polls = 0;
    backlog = b.n >= max;
    p->batches_made++; /* the next batch starts with the next task */
    if (p->committer_running) {
      rc = process_pipelined(p, &b, stop); /* takes the records */
    } else {
      rc = process_batch(p, &b, stop, ENGINE_DONE, NULL);
      for (size_t i = 0; i < b.n; i++)
        engine_input_free(b.items[i]);
    }
    if (rc)
      break;
  }
  free(b.items);
  engine_pipeline_drain(p);
  if (p->failed) { /* SPEC §6: abandoned, nothing of it committed */
    KEFU_WARN("engine",
              "stopping with a batch of %zu records not committed (%s): the next owner of "
              "its tasks processes it again",
              p->failed->b.n, p->failed->errstr);
    job_free(p->failed);
    p->failed = NULL;
    if (p->o->replay)
      rc = -1;
  }
  uint64_t cmds = p->closed_commands, trips = p->closed_round_trips;
  if (p->redis) {
    cmds += kefu_redis_commands_sent(p->redis);
    trips += kefu_redis_round_trips(p->redis);
  }
  double secs = (double)(p->m.last_commit_ms - p->m.first_batch_ms) / 1000.0;
  KEFU_INFO("engine",
            "processed %llu records in %llu batches over %.3f s (%.0f records/s), "
            "%llu Redis commands in %llu round trips",
            (unsigned long long)p->m.records, (unsigned long long)p->m.batches, secs,
            secs > 0 ? (double)p->m.records / secs : 0.0, (unsigned long long)cmds,
            (unsigned long long)trips);
  if (p->consumer) {
    KEFU_INFO("engine", "stopping: leaving the consumer group");
    rd_kafka_consumer_close(p->consumer);
  }
  if (!rc && *stop && p->o->replay) {
    KEFU_ERROR("engine", "replay stopped before its end");
    rc = -1;
  }
  return rc;
}

/* ---------------------------------------------------------------- set-up */

/* The kafka.* properties that apply to @p role (librdkafka's scope of each): no client
 * warns at start about a property meant for the other. */
static rd_kafka_conf_t *base_conf(const kefu_processor_opts_t *o, kefu_kafka_role_t role,
                                  char *errstr, size_t errlen) {
  return kefu_kafka_conf_for(role, o->bootstrap, o->kafka_props, o->nkafka_props, errstr, errlen);
}

/* The output topics' metadata when the producer opens, not at its first record: librdkafka
 * asks for an unknown topic's metadata only at its next refresh, which stalled the first
 * batch after every start (and after every new producer) by up to a second. The topic
 * handles are kept while the producer lives. */
static void warm_output_topics(kefu_processor_t *p) {
  for (int t = 0; t < KEFU_T__COUNT; t++) {
    if (kefu_topics[t].input)
      continue;
    p->out_topics[t] = rd_kafka_topic_new(p->producer, kefu_topic_name((kefu_topic_t)t), NULL);
    const struct rd_kafka_metadata *md = NULL;
    if (p->out_topics[t] && rd_kafka_metadata(p->producer, 0, p->out_topics[t], &md, 5000) ==
                                RD_KAFKA_RESP_ERR_NO_ERROR)
      rd_kafka_metadata_destroy(md);
  }
}

static void destroy_producer(kefu_processor_t *p) {
  for (int t = 0; t < KEFU_T__COUNT; t++)
    if (p->out_topics[t]) {
      rd_kafka_topic_destroy(p->out_topics[t]);
      p->out_topics[t] = NULL;
    }
  rd_kafka_destroy(p->producer);
  p->producer = NULL;
}

/* Whether the operator set librdkafka property @p key (kafka.<key>). */
static bool user_kafka_set(const kefu_processor_opts_t *o, const char *key) {
  size_t n = strlen(key);
  for (int i = 0; i < o->nkafka_props; i++)
    if (strncmp(o->kafka_props[i], key, n) == 0 && o->kafka_props[i][n] == '=')
      return true;
  return false;
}

static int open_producer(kefu_processor_t *p, char *errstr, size_t errlen) {
  const kefu_processor_opts_t *o = p->o;
  char txn_id[256];
  rd_kafka_conf_t *conf = base_conf(o, KEFU_KAFKA_PRODUCER, errstr, errlen);
  if (!conf)
    return -1;
  snprintf(txn_id, sizeof txn_id, "%s-%s", o->transactional_id_prefix, o->instance_id);
  if (kefu_kafka_set(conf, "enable.idempotence", "true", errstr, errlen) ||
      (!user_kafka_set(o, "linger.ms") && !user_kafka_set(o, "queue.buffering.max.ms") &&
       kefu_kafka_set(conf, "linger.ms", "5", errstr, errlen)) ||
      kefu_kafka_set(conf, "partitioner", "murmur2_random", errstr, errlen) ||
      (o->exactly_once && kefu_kafka_set(conf, "transactional.id", txn_id, errstr, errlen))) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  rd_kafka_conf_set_opaque(conf, p);
  rd_kafka_conf_set_dr_msg_cb(conf, engine_delivery_report);
  if (!(p->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errlen))) {
    if (!p->producer)
      rd_kafka_conf_destroy(conf);
    return -1;
  }
  warm_output_topics(p);
  if (o->exactly_once) {
    rd_kafka_error_t *error = rd_kafka_init_transactions(p->producer, 60000);
    if (error) {
      snprintf(errstr, errlen, "init_transactions: %s", rd_kafka_error_string(error));
      rd_kafka_error_destroy(error);
      destroy_producer(p); /* unusable: the retry loop makes another */
      return -1;
    }
  }
  return 0;
}

/* The consumer prefetches at most 8 MiB (librdkafka's default is 64 MiB): the merge's
 * own queues hold what is decoded (at most 4 batches: kefu_processor_run), and a backlog read ahead
 * of them is memory and nothing else. kafka.queued.max.messages.kbytes overrides it. */
static int open_consumer(kefu_processor_t *p, char *errstr, size_t errlen) {
  const kefu_processor_opts_t *o = p->o;
  rd_kafka_conf_t *conf = base_conf(o, KEFU_KAFKA_CONSUMER, errstr, errlen);
  if (!conf)
    return -1;
  if ((!user_kafka_set(o, "queued.max.messages.kbytes") &&
       kefu_kafka_set(conf, "queued.max.messages.kbytes", "8192", errstr, errlen)) ||
      kefu_kafka_set(conf, "group.id", o->group_id, errstr, errlen) ||
      kefu_kafka_set(conf, "partition.assignment.strategy", "range", errstr, errlen) ||
      kefu_kafka_set(conf, "enable.auto.commit", "false", errstr, errlen) ||
      kefu_kafka_set(conf, "enable.auto.offset.store", "false", errstr, errlen) ||
      kefu_kafka_set(conf, "enable.partition.eof", "true", errstr, errlen) ||
      kefu_kafka_set(conf, "isolation.level", "read_committed", errstr, errlen) ||
      kefu_kafka_set(conf, "auto.offset.reset", "earliest", errstr, errlen)) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  rd_kafka_conf_set_opaque(conf, p);
  rd_kafka_conf_set_rebalance_cb(conf, engine_rebalance_cb);
  if (!(p->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errlen))) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  rd_kafka_poll_set_consumer(p->consumer);
  return 0;
}

/* SPEC §5: the four keyed topics must have equal partition counts. */
static int check_copartitioning(kefu_processor_t *p, char *errstr, size_t errlen) {
  for (int t = 0; t < KEFU_KEYED_INPUTS; t++) {
    int n = kefu_kafka_partition_count(p->consumer, kefu_topic_name((kefu_topic_t)t), 10000, errstr,
                                       errlen);
    if (n < 0)
      return -1;
    if (t == 0)
      p->partitions = n;
    else if (n != p->partitions) {
      snprintf(errstr, errlen,
               "%s has %d partitions but %s has %d: the keyed input topics must be "
               "co-partitioned (equal partition counts)",
               kefu_topic_name((kefu_topic_t)t), n, kefu_topic_name(KEFU_T_CHAT), p->partitions);
      return -1;
    }
  }
  if (p->partitions > MAX_TASKS) {
    snprintf(errstr, errlen, "at most %d partitions are supported", MAX_TASKS);
    return -1;
  }
  return 0;
}

static int subscribe(kefu_processor_t *p, char *errstr, size_t errlen) {
  rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(KEFU_KEYED_INPUTS);
  for (int t = 0; t < KEFU_KEYED_INPUTS; t++)
    rd_kafka_topic_partition_list_add(topics, kefu_topic_name((kefu_topic_t)t),
                                      RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t err = rd_kafka_subscribe(p->consumer, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err) {
    snprintf(errstr, errlen, "subscribe: %s", rd_kafka_err2str(err));
    return -1;
  }
  return 0;
}

static int open_courier_table(kefu_processor_t *p, char *errstr, size_t errlen) {
  char group[300];
  rd_kafka_conf_t *conf = base_conf(p->o, KEFU_KAFKA_CONSUMER, errstr, errlen);
  snprintf(group, sizeof group, "%s-couriers-%s", p->o->group_id, p->o->instance_id);
  if (!conf || kefu_kafka_set(conf, "group.id", group, errstr, errlen) ||
      kefu_kafka_set(conf, "enable.auto.commit", "false", errstr, errlen) ||
      kefu_kafka_set(conf, "enable.partition.eof", "true", errstr, errlen) ||
      !(p->courier_consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errlen))) {
    if (conf && !p->courier_consumer)
      rd_kafka_conf_destroy(conf);
    return -1;
  }
  rd_kafka_poll_set_consumer(p->courier_consumer);
  const char *topic = kefu_topic_name(KEFU_T_COURIER_STATUS);
  int n = kefu_kafka_partition_count(p->courier_consumer, topic, 10000, errstr, errlen);
  if (n < 0)
    return -1;
  rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(n);
  for (int i = 0; i < n; i++)
    rd_kafka_topic_partition_list_add(parts, topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(p->courier_consumer, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  /* Read the whole table before any keyed input (SPEC §1.3). */
  for (int i = 0; i < n; i++)
    if (engine_poll_couriers(p, true, errstr, errlen))
      return -1;
  KEFU_INFO("couriers", "courier-status table loaded: %zu entries",
            json_object_size(p->couriers.entries));
  return 0;
}

static void register_metrics(engine_metrics_t *m, const char *instance_id) {
  char labels[384];
  /* instance.id is [A-Za-z0-9._-] or hostname-pid: nothing to escape in a label */
  snprintf(labels, sizeof labels, "instance=\"%s\"", instance_id);
  kefu_metric_set(
      kefu_metrics_gauge("kefu_instance_info", "This instance's instance.id (1)", labels), 1);
  for (int t = 0; t < KEFU_T__COUNT; t++) {
    snprintf(labels, sizeof labels, "topic=\"%s\"", kefu_topic_name((kefu_topic_t)t));
    m->in[t] = kefu_metrics_counter("kefu_records_in_total", "Input records read", labels);
    m->out[t] = kefu_metrics_counter("kefu_records_out_total", "Output records written", labels);
  }
  m->processed = kefu_metrics_counter("kefu_records_processed_total",
                                      "Input records (and idle ticks) of batches committed", NULL);
  m->dlq = kefu_metrics_counter("kefu_dlq_total", "Records sent to the DLQ", NULL);
  m->duplicates =
      kefu_metrics_counter("kefu_duplicates_total", "Duplicate event ids applied once", NULL);
  m->late = kefu_metrics_counter(
      "kefu_late_events_total",
      "Events older than their task's watermark (applied; a closed day stays closed)", NULL);
  m->encode_errors =
      kefu_metrics_counter("kefu_encode_errors_total", "Outputs a schema rejected (bugs)", NULL);
  m->commits =
      kefu_metrics_counter("kefu_transactions_total", "Kafka transactions", "result=\"commit\"");
  m->aborts =
      kefu_metrics_counter("kefu_transactions_total", "Kafka transactions", "result=\"abort\"");
  m->rebalances = kefu_metrics_counter("kefu_rebalances_total", "Consumer group rebalances", NULL);
  m->producer_restarts = kefu_metrics_counter(
      "kefu_producer_restarts_total", "Producers replaced after fencing or a fatal error", NULL);
  m->redis_redirects = kefu_metrics_counter(
      "kefu_redis_redirects_total",
      "Redis Cluster replies followed: MOVED, ASK, TRYAGAIN, CLUSTERDOWN (slots migrating, a "
      "failover)",
      NULL);
  m->batch_seconds =
      kefu_metrics_histogram("kefu_batch_seconds", "Time to process one batch", NULL,
                             kefu_metrics_buckets_short, kefu_metrics_buckets_short_n);
  m->event_to_output =
      kefu_metrics_histogram("kefu_event_to_output_seconds",
                             "From reading a record to the commit of what it produced (wall clock)",
                             NULL, kefu_metrics_buckets_long, kefu_metrics_buckets_long_n);
  m->redis_seconds =
      kefu_metrics_histogram("kefu_redis_seconds", "Redis round-trip time", NULL,
                             kefu_metrics_buckets_redis, kefu_metrics_buckets_redis_n);
}

/* Not ready for @p why: logged, then @p *backoff ms of waiting (beating, so /healthz
 * stays 200), doubled up to redis.retry_max_ms for the next time. -1: a stop came. */
static int wait_at_start(const kefu_processor_opts_t *o, const char *subsystem, const char *why,
                         int *backoff) {
  kefu_http_set_ready(false, why);
  KEFU_WARN(subsystem, "%s; retrying in %d ms", why, *backoff);
  for (int waited = 0; waited < *backoff; waited += 50) {
    if (o->stop && *o->stop)
      return -1;
    kefu_http_heartbeat();
    usleep(50000);
  }
  *backoff = kefu_backoff_next(*backoff, o->redis_retry_max_ms);
  return 0;
}

/* kefu run's Redis: a Redis that is not ready yet (down, loading its AOF, a cluster
 * electing a master, a master refusing writes without its replica: NOREPLICAS) is
 * waited for, not ready, as the retry loop waits for it later; a Redis kefu may not use
 * (a wrong password, missing ACL permissions, another kefu's functions) fails the start.
 * A replay fails at once: an analyst's job should say so rather than wait. */
static kefu_redis_t *connect_redis_at_start(const kefu_processor_opts_t *o, char *errstr,
                                            size_t errlen) {
  int backoff = KEFU_BACKOFF_FIRST_MS;
  for (;;) {
    kefu_redis_t *r = kefu_redis_connect(&o->redis, errstr, errlen);
    if (r || o->replay || !o->stop || !kefu_redis_error_is_transient(errstr))
      return r;
    char why[600];
    snprintf(why, sizeof why, "redis unavailable: %s", errstr);
    if (wait_at_start(o, "redis", why, &backoff)) {
      snprintf(errstr, errlen, "stopped while waiting for Redis (%s)", why);
      return NULL;
    }
  }
}

/* With schema.registry.url: the built-in ids leave the table (kefu's schemas stay as the
 * readers' and writers' schemas) and every output schema is registered, its id pinned as
 * the one kefu writes. An unreachable registry is retried with backoff, not ready (never
 * the built-in ids instead); a refusal (HTTP 409 incompatible, 401, 422) fails the start
 * with the registry's message and the subject. */
static int setup_registry(kefu_processor_t *p, char *errstr, size_t errlen) {
  const kefu_processor_opts_t *o = p->o;
  int backoff = KEFU_BACKOFF_FIRST_MS;
  if (!o->registry.url || !*o->registry.url)
    return 0;
  if (!(p->registry = kefu_registry_new(&o->registry, errstr, errlen)))
    return -1;
  kefu_schemas_unlist(p->schemas);
  for (;;) {
    char why[768];
    kefu_registry_err_t rc =
        kefu_registry_register_outputs(p->registry, p->schemas, why, sizeof why);
    if (rc == KEFU_REGISTRY_OK)
      break;
    if (rc != KEFU_REGISTRY_UNAVAILABLE) {
      snprintf(errstr, errlen, "schema registry: %s", why);
      return -1;
    }
    char ready_why[800];
    snprintf(ready_why, sizeof ready_why, "schema registry unavailable: %s", why);
    if (wait_at_start(o, "registry", ready_why, &backoff)) {
      snprintf(errstr, errlen, "stopped while waiting for the schema registry");
      return -1;
    }
  }
  for (int t = KEFU_T_COURIER_STATUS + 1; t < KEFU_T__COUNT; t++)
    if (kefu_schemas_current_id(p->schemas, (kefu_topic_t)t) >= 0)
      KEFU_INFO("registry", "subject %s-value: writing schema id %d",
                kefu_topic_name((kefu_topic_t)t),
                (int)kefu_schemas_current_id(p->schemas, (kefu_topic_t)t));
  return 0;
}

kefu_processor_t *kefu_processor_new(const kefu_processor_opts_t *o, char *errstr, size_t errlen) {
  /* A batch allocates and frees megabytes (inputs, outputs, Redis replies): glibc would
   * hand the top of the heap back to the kernel after each, and the next batch takes
   * page faults for it again. A long-running loop keeps it. Blocks of a MiB and more
   * (a shop's event-id table) are mapped on their own, so that a freed one goes back to
   * the kernel instead of staying as a hole in the heap (cache.c trims the rest after
   * it evicts). */
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  kefu_processor_t *p = calloc(1, sizeof *p);
  p->o = o;
  register_metrics(&p->m, o->instance_id ? o->instance_id : "");
  kefu_courier_table_init(&p->couriers);
  if (!(p->schemas = kefu_schemas_new(errstr, errlen)))
    goto fail;
  p->codec = kefu_codec_new(p->schemas);
  if (setup_registry(p, errstr, errlen))
    goto fail;
  for (int t = 0; t <= KEFU_T_SHOP_CONFIG; t++)
    p->fast_id[t] = kefu_event_fast_id(p->schemas, (kefu_topic_t)t);
  p->env.params = &o->params;
  p->env.couriers = &p->couriers;
  /* A replay's source and sink stand for the consumer group, the producer and the
   * courier table (replay.c). */
  if (!(p->redis = connect_redis_at_start(o, errstr, errlen)) ||
      (o->replay ? engine_replay_setup(p, errstr, errlen)
                 : open_consumer(p, errstr, errlen) || check_copartitioning(p, errstr, errlen) ||
                       open_producer(p, errstr, errlen) || open_courier_table(p, errstr, errlen) ||
                       subscribe(p, errstr, errlen)) ||
      (o->pipeline && engine_committer_start(p, errstr, errlen)))
    goto fail;
  if (kefu_redis_is_cluster(p->redis))
    KEFU_INFO("engine", "Redis Cluster: %d masters", kefu_redis_nodes(p->redis));
  return p;
fail:
  kefu_processor_destroy(p);
  return NULL;
}

void kefu_processor_destroy(kefu_processor_t *p) {
  if (!p)
    return;
  engine_committer_stop(p);
  for (int t = 0; t < MAX_TASKS; t++)
    for (int k = 0; k < KEFU_KEYED_INPUTS; k++) {
      engine_queue_drop_all(&p->tasks[t].q[k]);
      free(p->tasks[t].q[k].items);
    }
  for (int t = 0; t < MAX_TASKS; t++) {
    json_decref(p->tasks[t].forget_later);
    json_decref(p->tasks[t].timer_index); /* a task still assigned at the end (a replay's) */
    engine_pending_idle_free(&p->tasks[t]);
  }
  if (p->courier_held) /* not applied: the next start reads the whole table again */
    rd_kafka_message_destroy(p->courier_held);
  if (p->hold_shown)
    kefu_http_hold(NULL);
  if (p->courier_consumer) {
    rd_kafka_consumer_close(p->courier_consumer);
    rd_kafka_destroy(p->courier_consumer);
  }
  if (p->consumer)
    rd_kafka_destroy(p->consumer);
  if (p->producer) {
    rd_kafka_flush(p->producer, 10000);
    destroy_producer(p);
  }
  kefu_redis_close(p->redis);
  for (size_t i = 0; i < p->nindex_next; i++)
    free(p->index_next[i].shop);
  free(p->index_next);
  if (p->codec)
    kefu_codec_destroy(p->codec);
  kefu_registry_destroy(p->registry);
  if (p->schemas)
    kefu_schemas_destroy(p->schemas);
  engine_cache_clear(p);
  kefu_map_clear(&p->cache, NULL);
  kefu_map_clear(&p->acked, free);
  engine_task_gauges_forget(p, -1);
  kefu_buf_free(&p->scratch);
  kefu_courier_table_clear(&p->couriers);
  free(p->enc_buf);
  free(p);
  engine_input_pool_clear();
}
