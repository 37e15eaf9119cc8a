/* Reading: records are decoded and validated as they are polled, queued per task and
 * topic, and merged per task by (ts, topic rank, offset) (SPEC §1.3). Also the
 * courier-status table and partition assignment. */
#include "engine/processor_int.h"

int64_t engine_wall_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Seconds on the monotonic clock, in ns: a local Redis answers in tens of µs, which the
 * ms wall clock would round to 0 or 1 ms. */
static double monotonic_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Every pipeline the engine sends goes through here, so its latency is measured. The
 * positions waiting in the pipeline (engine_append_positions) go first: their replies
 * are taken here, and the caller sees only its own. */
int engine_redis_flush(kefu_processor_t *p, redisReply ***replies, char *errstr, size_t errlen) {
  double start = monotonic_seconds();
  uint64_t redirects = kefu_redis_redirects(p->redis);
  int k = p->pos_pending, n = kefu_redis_flush(p->redis, replies, errstr, errlen);
  kefu_histogram_observe(p->m.redis_seconds, monotonic_seconds() - start);
  kefu_metric_add(p->m.redis_redirects, (double)(kefu_redis_redirects(p->redis) - redirects));
  if (k) {
    const char *why = n < 0 ? errstr : NULL;
    for (int i = 0; i < k && i < n && !why; i++)
      if ((*replies)[i]->type == REDIS_REPLY_ERROR)
        why = (*replies)[i]->str;
    engine_positions_written(p, why == NULL, why);
    if (n >= k) {
      *replies += k;
      n -= k;
    }
  }
  return n;
}

/* ---------------------------------------------------------------- queues */

static void queue_push(queue_t *q, input_t *in) {
  if (q->tail == q->cap) {
    if (q->head > 0) {
      memmove(q->items, q->items + q->head, (q->tail - q->head) * sizeof *q->items);
      q->tail -= q->head;
      q->head = 0;
    }
    if (q->tail == q->cap) {
      q->cap = q->cap ? q->cap * 2 : 256;
      q->items = realloc(q->items, q->cap * sizeof *q->items);
    }
  }
  q->items[q->tail++] = in;
}

input_t *engine_queue_head(const queue_t *q) {
  return q->head < q->tail ? q->items[q->head] : NULL;
}

/* Freed inputs wait here for the next records (up to a few batches' worth), so a record
 * costs no malloc and no fresh page. The loop's thread only. */
#define INPUT_POOL_MAX 8192
static input_t *input_pool;
static size_t input_pool_n;

input_t *engine_input_new(void) {
  input_t *in = input_pool;
  if (!in)
    return calloc(1, sizeof *in);
  input_pool = *(input_t **)in;
  input_pool_n--;
  memset(in, 0, sizeof *in);
  return in;
}

void engine_input_free(input_t *in) {
  if (!in)
    return;
  if (in->valid)
    kefu_event_clear(&in->ev);
  if (in->msg)
    rd_kafka_message_destroy(in->msg);
  if (in->rec) {
    kefu_archived_clear(in->rec);
    free(in->rec);
  }
  if (input_pool_n >= INPUT_POOL_MAX) {
    free(in);
    return;
  }
  *(input_t **)in = input_pool;
  input_pool = in;
  input_pool_n++;
}

void engine_input_pool_clear(void) {
  while (input_pool) {
    input_t *next = *(input_t **)input_pool;
    free(input_pool);
    input_pool = next;
  }
  input_pool_n = 0;
}

void engine_queue_drop_all(queue_t *q) {
  while (q->head < q->tail)
    engine_input_free(q->items[q->head++]);
  q->head = q->tail = 0;
  q->flow_paused = false; /* the next assignment resumes its partition */
}

/* ---------------------------------------------------------------- decoding */

/* A replay's --shop-config: a config record (a tombstone too) carries the overridden
 * fields, so the what-if holds from the start whatever the stream sets. */
static void override_config(const kefu_processor_t *p, input_t *in) {
  if (in->topic == KEFU_T_SHOP_CONFIG && p->o->shop_overrides &&
      engine_config_override(p, in->ev.shop_id, &in->ev.config))
    in->ev.config_reset = false;
}

/* ---------------------------------------------------------------- registry outages
 *
 * A registry unreachable while running (a transport error, a timeout, HTTP 5xx) is no
 * fault of the record that needed it: the record waits, in its partition's place (SPEC
 * §6, DECISIONS 57), and only an id the registry does not know or a schema that does not
 * resolve goes to the DLQ. One backoff for the whole registry: while it runs, a record
 * with an unknown id waits without a request, so a backlog costs one request per pause
 * (each may block the loop for schema.registry.timeout_ms), not one per record. */

static void registry_failed(kefu_processor_t *p, const char *why) {
  struct registry_outage *r = &p->reg;
  int64_t now = engine_wall_ms();
  if (!r->down) {
    r->down = true;
    r->since_ms = now;
    r->backoff_ms = KEFU_BACKOFF_FIRST_MS;
  } else {
    r->backoff_ms = kefu_backoff_next(r->backoff_ms, p->o->redis_retry_max_ms);
  }
  r->retry_at_ms = now + r->backoff_ms;
  snprintf(r->why, sizeof r->why, "%s", why);
  KEFU_WARN("registry", "%s: the record waits (not to the DLQ); retrying in %d ms", why,
            r->backoff_ms);
}

static void registry_answered(kefu_processor_t *p, int32_t id) {
  if (!p->reg.down)
    return;
  KEFU_INFO("registry",
            "schema registry reachable again after %lld ms (schema id %d learnt): "
            "the records waiting for it go on",
            (long long)(engine_wall_ms() - p->reg.since_ms), (int)id);
  memset(&p->reg, 0, sizeof p->reg);
}

/* With a Schema Registry, a framed value whose id the table lacks: the id is fetched and
 * added (a writer's schema beside kefu's reader schema), so the fast path and the codec
 * below find it. A writer's schema equal to kefu's own opens the fast path for its id.
 * Returns 0; -1 with the reason for the DLQ in @p err (an unknown id, a schema that does
 * not resolve); 1 when the registry is unreachable (the reason in @p err): the record
 * waits. */
static int learn_schema_id(kefu_processor_t *p, kefu_topic_t topic, const void *payload, size_t len,
                           char *err, size_t errlen) {
  int32_t id;
  if (!p->registry || !kefu_codec_frame_id(payload, len, &id))
    return 0; /* the codec names bad framing */
  if (kefu_schemas_by_id(p->schemas, id, NULL))
    return 0;
  if (p->reg.down && engine_wall_ms() < p->reg.retry_at_ms) {
    snprintf(err, errlen, "%s", p->reg.why);
    return 1;
  }
  kefu_registry_err_t rc = kefu_registry_learn(p->registry, p->schemas, topic, id, err, errlen);
  if (rc == KEFU_REGISTRY_UNAVAILABLE) {
    registry_failed(p, err);
    return 1;
  }
  if (rc != KEFU_REGISTRY_OK)
    return -1;
  registry_answered(p, id);
  avro_schema_t w = kefu_schemas_by_id(p->schemas, id, NULL);
  if (topic <= KEFU_T_SHOP_CONFIG && p->fast_id[topic] < 0 &&
      avro_schema_equal(w, kefu_schemas_current(p->schemas, topic)))
    p->fast_id[topic] = id;
  KEFU_INFO("registry", "learnt schema id %d of %s", (int)id, kefu_topic_name(topic));
  return 0;
}

/* SPEC §1.3: the "now" of the ts checks is the wall clock, in a replay the record's
 * Kafka timestamp (so that a replay decides as the live run did). */
static void decode_input(kefu_processor_t *p, input_t *in) {
  json_t *rec = NULL;
  /* A record without a timestamp (-1) in a replay: no future-ts check (INT64_MAX / 4). */
  int64_t now = !p->o->replay ? engine_wall_ms() : in->kafka_ts >= 0 ? in->kafka_ts : INT64_MAX / 4;

  in->sort_ts = INT64_MIN;
  if (!in->payload) {
    if (in->topic == KEFU_T_SHOP_CONFIG &&
        !kefu_event_config_reset(&in->ev, in->key, in->key_len, in->kafka_ts, in->offset, now,
                                 in->error, sizeof in->error)) {
      in->valid = true;
      in->sort_ts = in->ev.ts;
    } else if (!in->error[0]) {
      snprintf(in->error, sizeof in->error,
               "null value (tombstones are only for kefu.shop.config)");
    }
    return;
  }
  int learnt = learn_schema_id(p, in->topic, in->payload, in->len, in->error, sizeof in->error);
  if (learnt) {
    in->awaits_schema = learnt > 0;
    return;
  }
  /* The fast path: a record of the current schema goes straight to the typed event. */
  int rc = kefu_event_decode(
      &in->ev, in->topic, in->topic <= KEFU_T_SHOP_CONFIG ? p->fast_id[in->topic] : -1, in->payload,
      in->len, in->key, in->key_len, now, in->error, sizeof in->error);
  if (rc == 0) {
    in->valid = true;
    in->sort_ts = in->ev.ts;
    return;
  }
  if (rc < 0) {
    kefu_event_clear(&in->ev);
    return;
  }
  if (kefu_codec_decode(p->codec, in->topic, in->payload, in->len, &rec, in->error,
                        sizeof in->error))
    return;
  if (!kefu_event_from_json(&in->ev, in->topic, rec, in->key, in->key_len, now, in->error,
                            sizeof in->error)) {
    in->valid = true;
    in->sort_ts = in->ev.ts;
  } else {
    kefu_event_clear(&in->ev);
  }
  json_decref(rec);
}

/* ---------------------------------------------------------------- courier table */

int engine_apply_courier(kefu_processor_t *p, const void *payload, size_t len, const void *k,
                         size_t key_len, int64_t offset) {
  char err[256], key[160];
  json_t *rec = NULL;
  int learnt;
  if (!payload) {
    snprintf(key, sizeof key, "%.*s", (int)key_len, k ? (const char *)k : "");
    kefu_courier_table_delete(&p->couriers, key);
    return 0;
  }
  if ((learnt = learn_schema_id(p, KEFU_T_COURIER_STATUS, payload, len, err, sizeof err)) > 0)
    return 1; /* kept by the caller: skipping it would lose a courier's status */
  if (learnt == 0 &&
      kefu_codec_decode(p->codec, KEFU_T_COURIER_STATUS, payload, len, &rec, err, sizeof err) ==
          0 &&
      kefu_courier_status_validate(rec, err, sizeof err) == 0)
    kefu_courier_table_put(&p->couriers, rec);
  else /* the table is global and has no partition of ours in the DLQ's sense: log it */
    KEFU_WARN("couriers", "skipping courier-status record at offset %lld: %s", (long long)offset,
              err);
  json_decref(rec);
  return 0;
}

/* The courier-status record that waits for the registry, applied again once its backoff
 * is over. True when none waits (any more): the table may read on. */
static bool courier_retried(kefu_processor_t *p) {
  rd_kafka_message_t *m = p->courier_held;
  if (!m)
    return true;
  if (p->reg.down && engine_wall_ms() < p->reg.retry_at_ms)
    return false;
  if (engine_apply_courier(p, m->payload, m->len, m->key, m->key_len, m->offset))
    return false;
  rd_kafka_message_destroy(m);
  p->courier_held = NULL;
  return true;
}

/* Polls the courier-status consumer; with @p to_end, until every partition is at its end.
 * A record waiting for the registry comes first: nothing after it is read meanwhile, so
 * the table takes its records in their order. */
int engine_poll_couriers(kefu_processor_t *p, bool to_end, char *errstr, size_t errlen) {
  int64_t deadline = engine_wall_ms() + 30000;
  for (;;) {
    bool held = !courier_retried(p);
    rd_kafka_message_t *m =
        held ? NULL : rd_kafka_consumer_poll(p->courier_consumer, to_end ? 100 : 0);
    if (!m) {
      if (!to_end)
        return 0;
      if (engine_wall_ms() > deadline || (p->o->stop && *p->o->stop)) {
        snprintf(errstr, errlen, "timed out reading %s%s%s", kefu_topic_name(KEFU_T_COURIER_STATUS),
                 held ? ": " : "", held ? p->reg.why : "");
        return -1;
      }
      if (held)
        usleep(20000);
      continue;
    }
    bool eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
    if (!m->err && engine_apply_courier(p, m->payload, m->len, m->key, m->key_len, m->offset)) {
      p->courier_held = m; /* the consumer's position is past it: it is kept, not read again */
      continue;
    }
    rd_kafka_message_destroy(m);
    if (eof && to_end)
      return 0; /* the table topic has one partition (deploy/ and kefu broker) */
  }
}

/* ---------------------------------------------------------------- assignment */

void engine_timer_index_key(const kefu_processor_t *p, int task, char *out, size_t outlen) {
  snprintf(out, outlen, "%s:{task-%d}:timers", p->o->redis_namespace, task);
}

void engine_task_key(const kefu_processor_t *p, int task, char *out, size_t outlen) {
  snprintf(out, outlen, "%s:{task-%d}:pos", p->o->redis_namespace, task);
}

void engine_task_out_key(const kefu_processor_t *p, int task, char *out, size_t outlen) {
  snprintf(out, outlen, "%s:{task-%d}:out", p->o->redis_namespace, task);
}

/* Remembered outputs of inputs before where the task now starts: their commit is known
 * (Kafka's committed offset, or a Redis position, written only after it), but a stop
 * between the commit and the HDEL of engine_append_positions left them behind. */
static void drop_committed_outputs(kefu_processor_t *p, int task,
                                   const rd_kafka_topic_partition_list_t *parts) {
  task_out_cmds_t tc = {.verb = "HDEL"};
  char key[128], errstr[256];
  redisReply **r;
  kefu_cmd_t c;
  kefu_cmd_init(&c);
  kefu_cmd_str(&c, "HKEYS");
  engine_task_out_key(p, task, key, sizeof key);
  kefu_cmd_str(&c, key);
  kefu_redis_append(p->redis, &c);
  kefu_cmd_clear(&c);
  if (engine_redis_flush(p, &r, errstr, sizeof errstr) != 1 || r[0]->type != REDIS_REPLY_ARRAY)
    return; /* they wait for the next assignment */
  for (int k = 0; k < parts->cnt; k++) {
    const rd_kafka_topic_partition_t *tp = &parts->elems[k];
    char prefix[300]; /* an input's cause is <topic>/<partition>/<offset> (engine_set_cause) */
    int n = snprintf(prefix, sizeof prefix, "%s/%d/", tp->topic, task);
    if (tp->partition != task || tp->offset <= 0)
      continue;
    for (size_t i = 0; i < r[0]->elements; i++) {
      const char *cause = r[0]->element[i]->str;
      if (strncmp(cause, prefix, (size_t)n) == 0 && strtoll(cause + n, NULL, 10) < tp->offset)
        kefu_cmd_str(engine_task_out_cmd(p, &tc, task), cause);
    }
  }
  if (engine_task_out_send(p->redis, &tc) && engine_redis_flush(p, &r, errstr, sizeof errstr) != 1)
    KEFU_WARN("engine", "task %d: dropping committed outputs: %s", task, errstr);
}

/* The Redis position of each keyed partition of @p task, and its watermark. */
static int load_task_position(kefu_processor_t *p, int task, int64_t pos[KEFU_KEYED_INPUTS]) {
  char key[128], errstr[256];
  redisReply **r;
  if (!p->redis && !(p->redis = kefu_redis_connect(&p->o->redis, errstr, sizeof errstr))) {
    KEFU_ERROR("engine", "task %d: %s", task, errstr);
    return -1;
  }
  kefu_cmd_t c;
  kefu_cmd_init(&c);
  kefu_cmd_str(&c, "HGETALL");
  engine_task_key(p, task, key, sizeof key);
  kefu_cmd_str(&c, key);
  kefu_redis_append(p->redis, &c);
  kefu_cmd_clear(&c);
  kefu_cmd_init(&c);
  kefu_cmd_str(&c, "ZRANGE");
  engine_timer_index_key(p, task, key, sizeof key);
  kefu_cmd_str(&c, key);
  kefu_cmd_str(&c, "0");
  kefu_cmd_str(&c, "-1");
  kefu_cmd_str(&c, "WITHSCORES");
  kefu_redis_append(p->redis, &c);
  kefu_cmd_clear(&c);
  kefu_cmd_init(&c);
  kefu_cmd_str(&c, "HGETALL");
  engine_task_out_key(p, task, key, sizeof key);
  kefu_cmd_str(&c, key);
  kefu_redis_append(p->redis, &c);
  kefu_cmd_clear(&c);
  for (int t = 0; t < KEFU_KEYED_INPUTS; t++)
    pos[t] = -1;
  if (engine_redis_flush(p, &r, errstr, sizeof errstr) != 3) {
    KEFU_ERROR("engine", "reading the position of task %d: %s", task, errstr);
    return -1;
  }
  for (int i = 0; i < 3; i++)
    if (r[i]->type != REDIS_REPLY_ARRAY) { /* NOPERM (ACL), ...: in Redis's words */
      snprintf(errstr, sizeof errstr, "reading the position of task %d: %s", task,
               r[i]->type == REDIS_REPLY_ERROR ? r[i]->str : "unexpected reply");
      KEFU_ERROR("engine", "%s", errstr);
      kefu_http_set_ready(false, errstr); /* until a batch goes through */
      return -1;
    }
  for (size_t i = 0; i + 1 < r[0]->elements; i += 2) {
    const char *f = r[0]->element[i]->str;
    int64_t v = strtoll(r[0]->element[i + 1]->str, NULL, 10);
    if (strcmp(f, "wm") == 0)
      p->tasks[task].watermark = p->tasks[task].pos_watermark = v;
    for (int t = 0; t < KEFU_KEYED_INPUTS; t++)
      if (strcmp(f, kefu_topics[t].suffix) == 0)
        pos[t] = v;
  }
  json_decref(p->tasks[task].timer_index);
  p->tasks[task].timer_index = json_object();
  for (size_t i = 0; i + 1 < r[1]->elements; i += 2)
    json_object_set_new(p->tasks[task].timer_index, r[1]->element[i]->str,
                        json_integer(strtoll(r[1]->element[i + 1]->str, NULL, 10)));
  for (size_t i = 0; i + 1 < r[2]->elements; i += 2) {
    const redisReply *f = r[2]->element[i], *v = r[2]->element[i + 1];
    kefu_buf_t *blob;
    if (strncmp(f->str, "idle-", 5) != 0 ||
        !(blob = engine_outputs_read(p, v->str, v->len, f->str)))
      continue;
    if (!p->tasks[task].pending_idle)
      p->tasks[task].pending_idle = calloc(1, sizeof *p->tasks[task].pending_idle);
    engine_outputs_free(kefu_map_put(p->tasks[task].pending_idle, f->str, blob));
  }
  return 0;
}

/* Whether @p tp (its start offset set) has nothing to read now: its end offset (a
 * watermark query, one request to the partition's leader) is not beyond the start. An
 * unknown end offset counts as more to read: the task then waits for the first fetch. */
static bool nothing_to_read(kefu_processor_t *p, const rd_kafka_topic_partition_t *tp) {
  int64_t lo, hi;
  rd_kafka_resp_err_t err =
      rd_kafka_query_watermark_offsets(p->consumer, tp->topic, tp->partition, &lo, &hi, 10000);
  if (err) {
    KEFU_WARN("engine", "end offset of %s [%d] unknown (%s): waiting for its first fetch",
              tp->topic, tp->partition, rd_kafka_err2str(err));
    return false;
  }
  return tp->offset == RD_KAFKA_OFFSET_BEGINNING ? hi <= lo : hi <= tp->offset;
}

/* On assignment, start each partition from the later of Kafka's committed offset and the
 * position kefu wrote to Redis after the transaction that covered it (SPEC §5: the mock
 * cluster does not store offsets sent with a transaction). */
static void on_assign(kefu_processor_t *p, rd_kafka_topic_partition_list_t *parts) {
  engine_pipeline_drain(p); /* positions are read below */
  rd_kafka_committed(p->consumer, parts, 10000);
  if (engine_state_check_assign(p, parts))
    return; /* Redis lost the state: the loop stops (p->fatal) */
  for (int i = 0; i < parts->cnt; i++) {
    rd_kafka_topic_partition_t *tp = &parts->elems[i];
    kefu_topic_t t = kefu_topic_by_name(tp->topic);
    int id = tp->partition;
    int64_t pos[KEFU_KEYED_INPUTS];
    if (t == KEFU_TOPIC_NONE || id >= MAX_TASKS)
      continue;
    task_t *task = &p->tasks[id];
    if (!task->assigned) {
      task->assigned = true;
      task->generation++;
      task->check_remembered = true; /* an earlier owner may have processed its inputs */
      task->id = id;
      task->watermark = task->pos_watermark = INT64_MIN;
      task->last_input_ms = engine_wall_ms(); /* a backlog is read before any idle advance */
      for (int k = 0; k < KEFU_KEYED_INPUTS; k++) {
        task->q[k].at_end = false;
        task->next_offset[k] = -1;
      }
    }
    if (load_task_position(p, id, pos) == 0 && pos[t] >= 0 &&
        (tp->offset < 0 || pos[t] > tp->offset))
      tp->offset = pos[t];
    if (tp->offset < 0)
      tp->offset = RD_KAFKA_OFFSET_BEGINNING;
    task->q[t].at_end = nothing_to_read(p, tp);
    task->q[t].end_since = engine_wall_ms();
    KEFU_INFO("engine", "assigned %s [%d] from offset %lld%s", tp->topic, id, (long long)tp->offset,
              task->q[t].at_end ? " (nothing to read)" : "");
  }
  if (p->redis)
    for (int id = 0; id < p->partitions && id < MAX_TASKS; id++)
      for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].partition == id) {
          drop_committed_outputs(p, id, parts);
          break;
        }
  rd_kafka_assign(p->consumer, parts);
  /* librdkafka keeps a partition's pause flag across assignments: set it as it must be
   * now (paused while a batch is retried), never left over from before. */
  if (p->paused)
    rd_kafka_pause_partitions(p->consumer, parts);
  else
    rd_kafka_resume_partitions(p->consumer, parts);
}

static void on_revoke(kefu_processor_t *p, rd_kafka_topic_partition_list_t *parts) {
  /* The batch in the committer's hands commits (and writes its positions) before its
   * tasks go: as Kafka Streams commits before it gives up a task. */
  engine_pipeline_drain(p);
  for (int i = 0; i < parts->cnt; i++) {
    int id = parts->elems[i].partition;
    if (id >= MAX_TASKS || !p->tasks[id].assigned)
      continue;
    /* Unprocessed records are dropped: nothing of them was applied or committed. */
    for (int k = 0; k < KEFU_KEYED_INPUTS; k++)
      engine_queue_drop_all(&p->tasks[id].q[k]);
    /* Records waiting for the registry went with the queues; the resume below covers a
     * pause for them. */
    p->tasks[id].awaits_schema = p->tasks[id].schema_paused = false;
    for (int k = 0; k < KEFU_KEYED_INPUTS; k++) /* no stale lag for a task we gave up */
      kefu_metric_set(p->m.lag[id][k], 0);
    p->tasks[id].assigned = false;
    p->tasks[id].generation++; /* what a batch holds of it is no longer ours */
    json_decref(p->tasks[id].timer_index);
    p->tasks[id].timer_index = NULL;
    engine_cache_drop_task(p, id); /* its next owner reads its shops from Redis */
    engine_task_gauges_forget(p, id);
    engine_acked_forget(p, id);
    KEFU_INFO("engine", "revoked task %d", id);
  }
  rd_kafka_resume_partitions(p->consumer, parts); /* see on_assign */
  rd_kafka_assign(p->consumer, NULL);
  kefu_metric_add(p->m.rebalances, 1);
}

void engine_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
  (void)rk;
  kefu_processor_t *p = opaque;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
    on_assign(p, parts);
  else
    on_revoke(p, parts);
}

/* ---------------------------------------------------------------- polling and merging */

/* A consumer error that is not a partition's EOF (a broker down, an offset out of
 * range...): librdkafka retries by itself; it is logged, at most once a second, and is
 * never taken for a record. */
static void consumer_error(kefu_processor_t *p, rd_kafka_message_t *m) {
  int64_t now = engine_wall_ms();
  if (now - p->last_consumer_error_ms >= 1000) {
    p->last_consumer_error_ms = now;
    KEFU_WARN("engine", "consumer: %s%s%.0d: %s", m->rkt ? rd_kafka_topic_name(m->rkt) : "",
              m->rkt ? " partition " : "", m->rkt ? m->partition : 0, rd_kafka_message_errstr(m));
  }
  rd_kafka_message_destroy(m);
}

size_t engine_queued(const kefu_processor_t *p) {
  size_t n = 0;
  for (int id = 0; id < p->partitions && id < MAX_TASKS; id++)
    for (int k = 0; k < KEFU_KEYED_INPUTS && !p->tasks[id].awaits_schema; k++)
      n += p->tasks[id].q[k].tail - p->tasks[id].q[k].head;
  return n;
}

/* Decodes @p in (its record and offset set) and queues it for the merge of task @p id. */
void engine_enqueue_input(kefu_processor_t *p, input_t *in, kefu_topic_t t, int id) {
  queue_t *q = &p->tasks[id].q[t];
  in->generation = p->tasks[id].generation;
  in->task = id;
  in->polled_ms = engine_wall_ms();
  in->topic = t;
  engine_set_cause(in);
  decode_input(p, in);
  if (in->valid)
    override_config(p, in);
  q->at_end = false;
  queue_push(q, in);
  p->tasks[id].last_input_ms = in->polled_ms;
  kefu_metric_add(p->m.in[t], 1);
}

void engine_enqueue(kefu_processor_t *p, rd_kafka_message_t *m) {
  if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    consumer_error(p, m);
    return;
  }
  kefu_topic_t t = kefu_topic_by_name(rd_kafka_topic_name(m->rkt));
  int id = m->partition;
  if (t == KEFU_TOPIC_NONE || t >= KEFU_KEYED_INPUTS || id >= MAX_TASKS || !p->tasks[id].assigned) {
    rd_kafka_message_destroy(m);
    return;
  }
  queue_t *q = &p->tasks[id].q[t];
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    if (!q->at_end)
      q->end_since = engine_wall_ms(); /* the task_idle_ms wait counts from here */
    q->at_end = true;
    rd_kafka_message_destroy(m);
    return;
  }
  rd_kafka_timestamp_type_t tstype;
  input_t *in = engine_input_new();
  in->msg = m;
  in->payload = m->payload;
  in->len = m->len;
  in->key = m->key;
  in->key_len = m->key_len;
  in->kafka_ts = rd_kafka_message_timestamp(m, &tstype);
  in->offset = m->offset;
  engine_enqueue_input(p, in, t, id);
}

static bool before(const input_t *a, const input_t *b) {
  if (a->sort_ts != b->sort_ts)
    return a->sort_ts < b->sort_ts;
  if (kefu_topics[a->topic].rank != kefu_topics[b->topic].rank)
    return kefu_topics[a->topic].rank < kefu_topics[b->topic].rank;
  return a->offset < b->offset;
}

void engine_batch_add(batch_t *b, input_t *in) {
  if (b->n == b->cap) {
    b->cap = b->cap ? b->cap * 2 : 512;
    b->items = realloc(b->items, b->cap * sizeof *b->items);
  }
  b->items[b->n++] = in;
}

/* A head waiting for the registry, decoded again (once its backoff is over) as
 * engine_enqueue_input decodes. True when it no longer waits: valid, or for the DLQ. */
static bool schema_retried(kefu_processor_t *p, input_t *in) {
  if (p->reg.down && engine_wall_ms() < p->reg.retry_at_ms)
    return false;
  in->awaits_schema = false;
  in->error[0] = '\0';
  decode_input(p, in);
  if (in->valid)
    override_config(p, in);
  return !in->awaits_schema;
}

/* Moves the task's records that may be processed now into @p b, in merge order.
 *
 * An empty partition that is not at its end has records on the broker that have not
 * arrived yet (its fetch is slow, or it drains between small fetches): it holds the task
 * for as long as that takes, or a backlog would merge in another order (SPEC §1.3, as
 * Kafka Streams since KIP-695). An empty partition at its end may get new records any
 * time: it is waited for until task_idle_ms after it was read to its end with nothing
 * new since, then the task goes on without it. The wait counts from that end, not from
 * when the merge took its last record: a backlog fetched far ahead of the merge has been
 * waiting for new data all along (docs/DECISIONS.md 29). */
void engine_take_ready(kefu_processor_t *p, task_t *task, batch_t *b, size_t max) {
  int64_t now = engine_wall_ms();
  /* Whether the task waits for the registry is known even when the batch has no room
   * (fair_fill calls with none left): engine_registry_hold must not resume it then. */
  task->awaits_schema = false;
  for (int t = 0; t < KEFU_KEYED_INPUTS; t++) {
    input_t *h = engine_queue_head(&task->q[t]);
    if (h && h->awaits_schema && !schema_retried(p, h)) {
      task->awaits_schema = true;
      return;
    }
  }
  while (b->n < max) {
    int best = -1;
    for (int t = 0; t < KEFU_KEYED_INPUTS; t++) {
      queue_t *q = &task->q[t];
      input_t *h = engine_queue_head(q);
      if (h && h->awaits_schema && !schema_retried(p, h)) {
        task->awaits_schema = true; /* its ts is unknown: it may be the earliest */
        return;
      }
      if (!h) {
        if (!q->at_end) {
          task->starved = true; /* its records are needed: the loop polls for them */
          return;
        }
        if (now - q->end_since < p->o->task_idle_ms)
          return; /* wait: this partition may still hold an earlier record */
        continue;
      }
      if (best < 0 || before(h, engine_queue_head(&task->q[best])))
        best = t;
    }
    if (best < 0)
      return;
    queue_t *q = &task->q[best];
    engine_batch_add(b, q->items[q->head++]);
  }
}

bool engine_set_paused(kefu_processor_t *p, const rd_kafka_topic_partition_list_t *l, bool pause,
                       const char *what) {
  if (!p->consumer || !l->cnt)
    return !l->cnt; /* a replay reads only as the merge asks */
  rd_kafka_topic_partition_list_t *copy = rd_kafka_topic_partition_list_copy(l);
  rd_kafka_resp_err_t err = pause ? rd_kafka_pause_partitions(p->consumer, copy)
                                  : rd_kafka_resume_partitions(p->consumer, copy);
  rd_kafka_topic_partition_list_destroy(copy);
  if (err)
    KEFU_WARN("engine", "%s %s: %s", pause ? "pausing" : "resuming", what, rd_kafka_err2str(err));
  return !err;
}

void engine_pause_task(kefu_processor_t *p, int id, bool pause) {
  char what[32];
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(KEFU_KEYED_INPUTS);
  for (int t = 0; t < KEFU_KEYED_INPUTS; t++)
    if (pause || !p->tasks[id].q[t].flow_paused) /* flow_control's pause stays */
      rd_kafka_topic_partition_list_add(l, kefu_topic_name((kefu_topic_t)t), id);
  snprintf(what, sizeof what, "task %d", id);
  engine_set_paused(p, l, pause, what);
  rd_kafka_topic_partition_list_destroy(l);
}

/* A task waiting for the registry is paused: its records would only pile up in memory
 * behind the waiting head, and its lag should show that it does not move. The others go
 * on. While a batch is retried every input is paused anyway (p->paused). */
void engine_registry_hold(kefu_processor_t *p) {
  int held = 0;
  for (int id = 0; id < p->partitions && id < MAX_TASKS; id++) {
    task_t *task = &p->tasks[id];
    bool wait = task->assigned && task->awaits_schema;
    if (wait != task->schema_paused && (wait || !p->paused))
      engine_pause_task(p, id, wait);
    task->schema_paused = wait;
    held += wait;
  }
  if ((held || p->courier_held) == p->hold_shown && held == p->held_tasks)
    return;
  p->held_tasks = held;
  p->hold_shown = held || p->courier_held;
  if (!p->hold_shown) {
    kefu_http_hold(NULL);
    return;
  }
  char why[512];
  snprintf(why, sizeof why, "waiting for the schema registry (%d tasks%s): %s", held,
           p->courier_held ? " and the courier-status table" : "", p->reg.why);
  kefu_http_hold(why);
}

kefu_cmd_t *engine_task_out_cmd(kefu_processor_t *p, task_out_cmds_t *tc, int task) {
  char key[128];
  if (!tc->used[task]) {
    tc->used[task] = true;
    kefu_cmd_init(&tc->cmds[task]);
    kefu_cmd_str(&tc->cmds[task], tc->verb);
    engine_task_out_key(p, task, key, sizeof key);
    kefu_cmd_str(&tc->cmds[task], key);
  }
  return &tc->cmds[task];
}

int engine_task_out_send(kefu_redis_t *conn, task_out_cmds_t *tc) {
  int n = 0;
  for (int t = 0; t < MAX_TASKS; t++)
    if (tc->used[t]) {
      kefu_redis_append(conn, &tc->cmds[t]);
      kefu_cmd_clear(&tc->cmds[t]);
      n++;
    }
  return n;
}
