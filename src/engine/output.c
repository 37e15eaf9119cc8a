/* Writing: outputs and DLQ records in one Kafka transaction with the input offsets (or
 * delivered, then offsets committed), then positions to Redis. */
#include "engine/processor_int.h"

/* ---------------------------------------------------------------- producing */

static int produce(kefu_processor_t *p, const char *topic, const void *key, size_t keylen,
                   const void *val, size_t vallen, int64_t ts, rd_kafka_headers_t *hdrs,
                   char *errstr, size_t errlen) {
  rd_kafka_resp_err_t err;
  for (;;) {
    err = rd_kafka_producev(p->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, keylen),
                            RD_KAFKA_V_VALUE((void *)val, vallen),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(ts),
                            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
      break;
    rd_kafka_poll(p->producer, 50);
  }
  if (err) {
    rd_kafka_headers_destroy(hdrs); /* owned by librdkafka only on success */
    snprintf(errstr, errlen, "produce to %s: %s", topic, rd_kafka_err2str(err));
    return -1;
  }
  return 0;
}

static int produce_dlq(kefu_processor_t *p, const input_t *in, const char *cause, char *errstr,
                       size_t errlen) {
  const rd_kafka_message_t *m = in->msg;
  rd_kafka_headers_t *orig = NULL, *hdrs;
  hdrs = rd_kafka_message_headers(m, &orig) ? rd_kafka_headers_new(2) : rd_kafka_headers_copy(orig);
  rd_kafka_header_add(hdrs, "kefu.source", -1, cause, -1);
  rd_kafka_header_add(hdrs, "kefu.error", -1, in->error, -1);
  return produce(p, kefu_topic_name(KEFU_T_DLQ), in->key, in->key_len, in->payload, in->len,
                 in->kafka_ts, hdrs, errstr, errlen);
}

static int produce_output(kefu_processor_t *p, const out_rec_t *r, const char *cause, char *errstr,
                          size_t errlen) {
  rd_kafka_headers_t *hdrs = rd_kafka_headers_new(1);
  rd_kafka_header_add(hdrs, "kefu.cause", -1, cause, -1);
  kefu_metric_add(p->m.out[r->topic], 1);
  return produce(p, kefu_topic_name((kefu_topic_t)r->topic), r->key, r->key_len, r->val, r->val_len,
                 r->ts, hdrs, errstr, errlen);
}

typedef struct idle_ctx {
  kefu_processor_t *p;
  const char *cause;
  char *errstr;
  size_t errlen;
} idle_ctx_t;

static int produce_idle_one(void *arg, const out_rec_t *r) {
  idle_ctx_t *x = arg;
  return produce_output(x->p, r, x->cause, x->errstr, x->errlen);
}

/* Outputs of idle ticks that an earlier owner of the task remembered but may not have
 * committed (there is no input to process again for them): emitted again, the same
 * bytes, with the first batch of the task. */
static int produce_pending_idle(kefu_processor_t *p, const batch_t *b, char *errstr,
                                size_t errlen) {
  bool done[MAX_TASKS] = {0};
  for (size_t i = 0; i < b->n; i++) {
    task_t *task = &p->tasks[b->items[i]->task];
    const char *cause;
    void *v;
    if (done[b->items[i]->task] || !task->pending_idle)
      continue;
    done[b->items[i]->task] = true;
    kefu_map_foreach(task->pending_idle, it, cause, v) {
      const kefu_buf_t *blob = v;
      idle_ctx_t x = {p, cause, errstr, errlen};
      if (engine_outputs_each(blob->p, blob->n, produce_idle_one, &x) < 0)
        return -1;
    }
  }
  return 0;
}

static int produce_all(kefu_processor_t *p, const batch_t *b, const batch_state_t *bs, char *errstr,
                       size_t errlen) {
  size_t o = 0;
  if (produce_pending_idle(p, b, errstr, errlen))
    return -1;
  for (size_t i = 0; i < b->n; i++) {
    const input_t *in = b->items[i];
    if (!in->valid && !in->idle && produce_dlq(p, in, in->cause, errstr, errlen))
      return -1;
    for (; o < bs->nouts && bs->outs[o].input == i; o++)
      if (produce_output(p, &bs->outs[o], in->cause, errstr, errlen))
        return -1;
  }
  return 0;
}

/* The next offset of every partition the batch read from. */
static rd_kafka_topic_partition_list_t *batch_offsets(const batch_t *b) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
  int at[MAX_TASKS][KEFU_KEYED_INPUTS]; /* index in l + 1 per (task, topic); 0: none yet */
  memset(at, 0, sizeof at);
  for (size_t i = 0; i < b->n; i++) {
    const input_t *in = b->items[i];
    if (in->idle)
      continue; /* an idle tick */
    int *k = &at[in->task][in->topic];
    if (!*k) {
      rd_kafka_topic_partition_list_add(l, kefu_topic_name(in->topic), in->task);
      *k = l->cnt;
    }
    rd_kafka_topic_partition_t *tp = &l->elems[*k - 1];
    if (in->offset + 1 > tp->offset)
      tp->offset = in->offset + 1;
  }
  return l;
}

/* Delivery reports (served by flush and poll): a record that could not be delivered
 * fails its batch. Without this an at_least_once batch would commit its input offsets
 * over a lost output. */
void engine_delivery_report(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  kefu_processor_t *p = opaque;
  (void)rk;
  if (!m->err)
    return;
  if (!p->undelivered++)
    snprintf(p->undelivered_error, sizeof p->undelivered_error, "%s [%d]: %s",
             rd_kafka_topic_name(m->rkt), m->partition, rd_kafka_err2str(m->err));
}

/* After a failed commit: ENGINE_NEW_PRODUCER when the producer is unusable (fenced, or
 * an idempotence fatal error), else ENGINE_RETRY. */
static int retry_or_new_producer(kefu_processor_t *p, char *errstr, size_t errlen) {
  char why[256];
  if (!rd_kafka_fatal_error(p->producer, why, sizeof why))
    return ENGINE_RETRY;
  size_t n = strlen(errstr);
  snprintf(errstr + n, errlen - n, " (producer: %s)", why);
  return ENGINE_NEW_PRODUCER;
}

/* Kafka side of a batch: outputs and offsets in one transaction (exactly_once), or
 * delivered outputs then committed offsets (at_least_once). ENGINE_DONE, ENGINE_RETRY
 * (the batch again, maybe after a rebalance), or ENGINE_NEW_PRODUCER (the producer is
 * fenced or failed for good: a new one, then the batch again). */
int engine_kafka_commit(kefu_processor_t *p, const batch_t *b, const batch_state_t *bs,
                        char *errstr, size_t errlen) {
  rd_kafka_topic_partition_list_t *offsets = batch_offsets(b);
  rd_kafka_error_t *error = NULL;
  int rc = ENGINE_DONE;

  if (p->o->replay) { /* no transaction and no offsets: the outputs to the replay's sink */
    rd_kafka_topic_partition_list_destroy(offsets);
    return engine_replay_emit(p, b, bs, errstr, errlen) ? ENGINE_FATAL : ENGINE_DONE;
  }
  p->undelivered = 0;

  if (p->o->exactly_once && (error = rd_kafka_begin_transaction(p->producer)))
    goto txn_error;
  if (produce_all(p, b, bs, errstr, errlen)) {
    rc = retry_or_new_producer(p, errstr, errlen);
    if (rc == ENGINE_RETRY && p->o->exactly_once &&
        (error = rd_kafka_abort_transaction(p->producer, 30000)))
      goto txn_error;
    goto done;
  }
  if (p->o->exactly_once) {
    rd_kafka_consumer_group_metadata_t *cgmd = rd_kafka_consumer_group_metadata(p->consumer);
    if (offsets->cnt) /* an idle tick alone moves no offset */
      error = rd_kafka_send_offsets_to_transaction(p->producer, offsets, cgmd, 30000);
    rd_kafka_consumer_group_metadata_destroy(cgmd);
    if (error || (error = rd_kafka_commit_transaction(p->producer, 60000)))
      goto txn_error;
    kefu_metric_add(p->m.commits, 1);
  } else {
    rd_kafka_resp_err_t err = rd_kafka_flush(p->producer, 60000);
    if (err) {
      snprintf(errstr, errlen, "at_least_once: delivery: %s", rd_kafka_err2str(err));
    } else if (p->undelivered) {
      err = RD_KAFKA_RESP_ERR__FAIL;
      snprintf(errstr, errlen, "at_least_once: %d records not delivered, first %s", p->undelivered,
               p->undelivered_error);
    } else if (offsets->cnt && (err = rd_kafka_commit(p->consumer, offsets, 0))) {
      /* REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION: the retry loop
       * serves the rebalance and drops what is no longer ours before trying again. */
      snprintf(errstr, errlen, "at_least_once: offset commit: %s", rd_kafka_err2str(err));
    }
    if (err)
      rc = retry_or_new_producer(p, errstr, errlen);
  }
  goto done;
txn_error:
  snprintf(errstr, errlen, "transaction: %s", rd_kafka_error_string(error));
  if (rd_kafka_error_is_fatal(error)) {
    rc = ENGINE_NEW_PRODUCER; /* fenced (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH...) */
  } else {
    rc = ENGINE_RETRY;
    /* Retry the batch from a clean transaction: abort the open one, also after a
     * retriable commit timeout (a new begin_transaction would conflict with the
     * unfinished commit). The batch's outputs come back byte for byte (remembered). */
    if (p->o->exactly_once) {
      rd_kafka_error_t *e2 = rd_kafka_abort_transaction(p->producer, 30000);
      if (e2)
        rd_kafka_error_destroy(e2);
      kefu_metric_add(p->m.aborts, 1);
      rc = retry_or_new_producer(p, errstr, errlen); /* the abort may have failed for good */
    }
  }
  rd_kafka_error_destroy(error);
done:
  rd_kafka_topic_partition_list_destroy(offsets);
  return rc;
}

/* The batch's remembered outputs, now committed, and those of earlier batches whose
 * position write failed (task->forget_later): one variadic HDEL per task. */
static int forget_outputs(kefu_processor_t *p, kefu_redis_t *conn, const batch_t *b,
                          const batch_state_t *bs) {
  task_out_cmds_t tc = {.verb = "HDEL"};
  for (size_t i = 0; i < b->n; i++) {
    task_t *task = &p->tasks[b->items[i]->task];
    const char *cause = b->items[i]->cause;
    if (!task->forget_later)
      task->forget_later = json_object();
    if (i < bs->ninputs && bs->kept[i] && !p->o->replay) /* a replay remembers nothing */
      json_object_set_new(task->forget_later, cause, json_true());
    const char *idle;
    void *v;
    if (!task->pending_idle)
      continue;
    kefu_map_foreach(task->pending_idle, it, idle, v) /* emitted with this batch */
        json_object_set_new(task->forget_later, idle, json_true());
    engine_pending_idle_free(task);
  }
  if (!conn) /* no connection: all of them next time */
    return 0;
  for (int t = 0; t < MAX_TASKS; t++) {
    const char *c;
    json_t *v;
    json_object_foreach(p->tasks[t].forget_later, c, v)
        kefu_cmd_str(engine_task_out_cmd(p, &tc, t), c);
  }
  return engine_task_out_send(conn, &tc);
}

/* After the commit: positions and watermarks to Redis, remembered outputs dropped. Not
 * fatal when it fails: Kafka's offsets and the shops' applied offsets still hold, and a
 * later write carries the task's positions and drops those outputs (pos_stale,
 * forget_later), so an outage does not leave them behind. The commands wait in the
 * loop's pipeline for its next flush (engine_redis_flush): with the committer that is the
 * next batch's Redis write, so they cost no round trip of their own. */
void engine_append_positions(kefu_processor_t *p, const batch_t *b, const batch_state_t *bs,
                             const int64_t *watermark) {
  rd_kafka_topic_partition_list_t *offsets = batch_offsets(b);
  char key[128];
  bool *touched = p->pos_touched;
  int n = 0;

  for (int i = 0; i < offsets->cnt; i++) {
    kefu_topic_t t = kefu_topic_by_name(offsets->elems[i].topic);
    touched[offsets->elems[i].partition] = true;
    p->tasks[offsets->elems[i].partition].next_offset[t] = offsets->elems[i].offset;
  }
  for (size_t i = 0; i < b->n; i++) { /* idle ticks move the watermark */
    touched[b->items[i]->task] = true;
    p->tasks[b->items[i]->task].pos_watermark = watermark[b->items[i]->task];
  }
  for (int t = 0; t < MAX_TASKS; t++) /* the tasks this commit covered (kefu status) */
    if (touched[t])
      kefu_metric_set(p->m.committed_at[t], (double)engine_wall_ms());
  for (int t = 0; t < MAX_TASKS; t++) /* an earlier write failed */
    touched[t] |= p->tasks[t].assigned && p->tasks[t].pos_stale;
  for (int t = 0; t < MAX_TASKS && p->redis; t++) {
    if (!touched[t])
      continue;
    kefu_cmd_t c;
    kefu_cmd_init(&c);
    kefu_cmd_str(&c, "HSET");
    engine_task_key(p, t, key, sizeof key);
    kefu_cmd_str(&c, key);
    for (int k = 0; k < KEFU_KEYED_INPUTS; k++)
      if (p->tasks[t].next_offset[k] >= 0) {
        kefu_cmd_str(&c, kefu_topics[k].suffix);
        kefu_cmd_fmt(&c, "%lld", (long long)p->tasks[t].next_offset[k]);
      }
    kefu_cmd_str(&c, "wm");
    kefu_cmd_fmt(&c, "%lld", (long long)p->tasks[t].pos_watermark);
    kefu_redis_append(p->redis, &c);
    kefu_cmd_clear(&c);
    n++;
  }
  n += forget_outputs(p, p->redis, b, bs);
  rd_kafka_topic_partition_list_destroy(offsets);
  if (!p->redis) {
    engine_positions_written(p, false, "no connection to Redis");
    return;
  }
  p->pos_pending += n;
}

void engine_positions_written(kefu_processor_t *p, bool ok, const char *why) {
  if (!ok) {
    KEFU_WARN("engine",
              "writing positions%s: %s (written with the next write, or tried again when idle)",
              p->pos_again ? " again" : "", why);
    for (int t = 0; t < MAX_TASKS; t++)
      p->tasks[t].pos_stale |= p->pos_touched[t];
  } else {
    for (int t = 0; t < MAX_TASKS; t++) {
      p->tasks[t].pos_stale = false;
      json_decref(p->tasks[t].forget_later);
      p->tasks[t].forget_later = NULL;
    }
  }
  memset(p->pos_touched, 0, sizeof p->pos_touched);
  p->pos_pending = 0;
}
