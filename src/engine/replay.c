/* Replay (SPEC §7): the engine of `run` with a source of recorded records instead of a
 * consumer group, and a sink instead of a producer. The merge, the rules, the timers and
 * the state in Redis are the same code; what differs is here:
 *   - every task is this process's from the start, and a partition ends where its source
 *     ends, so the merge waits for a partition's next record however long it takes and
 *     never for one at its end (no task_idle_ms, no idle advance: SPEC §1.3);
 *   - a batch's outputs go to the sink in the order `run` would produce them, with no
 *     transaction and no offsets (processor.c, output.c), and nothing is remembered;
 *   - --flush: after the last record, one tick per task moves its watermark past every
 *     deadline, so every pending timer fires (cause flush-<partition>). */
#include "engine/processor_int.h"

/* 9999-12-31T23:59:59.999Z: past every deadline an event time can set. */
#define FLUSH_TS 253402300799999LL
/* Records read ahead per partition when the merge finds it empty: a task holds at most
 * this many per partition. */
#define REPLAY_FILL 256

int engine_replay_setup(kefu_processor_t *p, char *errstr, size_t errlen) {
  const kefu_replay_io_t *io = p->o->replay;
  kefu_rec_t r = {0};
  int rc = 0;
  if (io->partitions < 1 || io->partitions > MAX_TASKS) {
    snprintf(errstr, errlen, "%d partitions: a replay takes 1 to %d", io->partitions, MAX_TASKS);
    return -1;
  }
  p->partitions = io->partitions;
  /* The courier-status table first, whole (SPEC §1.3). */
  while (io->next_courier && (rc = io->next_courier(io->arg, &r, errstr, errlen)) == 1) {
    /* The registry unreachable: the record waits for it, as in `run` (intake.c). */
    while (engine_apply_courier(p, r.has_value ? r.value : NULL, r.value_len, r.key, r.key_len,
                                r.offset)) {
      if (p->o->stop && *p->o->stop) {
        snprintf(errstr, errlen, "stopped while waiting: %s", p->reg.why);
        rc = -1;
        break;
      }
      usleep(20000);
    }
    kefu_archived_clear(&r);
    if (rc < 0)
      break;
  }
  if (rc < 0)
    return -1;
  for (int id = 0; id < p->partitions; id++) {
    task_t *task = &p->tasks[id];
    task->assigned = true;
    task->id = id;
    task->generation = 1;
    task->watermark = task->pos_watermark = INT64_MIN;
    task->timer_index = json_object();
    task->last_input_ms = engine_wall_ms();
    for (int k = 0; k < KEFU_KEYED_INPUTS; k++) {
      task->next_offset[k] = -1;
      task->q[k].at_end = false;
      task->q[k].end_since = 0; /* at its end: never waited for */
    }
  }
  return 0;
}

int engine_replay_fill(kefu_processor_t *p, task_t *task, char *errstr, size_t errlen) {
  const kefu_replay_io_t *io = p->o->replay;
  static const char empty[1];
  for (int t = 0; t < KEFU_KEYED_INPUTS; t++) {
    queue_t *q = &task->q[t];
    for (int n = 0; n < REPLAY_FILL && !q->at_end && !(n == 0 && engine_queue_head(q)); n++) {
      kefu_rec_t *r = calloc(1, sizeof *r);
      int rc = io->next(io->arg, t, task->id, r, errstr, errlen);
      if (rc != 1) {
        free(r);
        if (rc < 0)
          return -1;
        q->at_end = true;
        break;
      }
      input_t *in = engine_input_new();
      in->rec = r;
      in->payload = !r->has_value ? NULL : r->value ? r->value : empty;
      in->len = r->value_len;
      in->key = r->has_key ? r->key : NULL;
      in->key_len = r->has_key ? r->key_len : 0;
      in->kafka_ts = r->timestamp;
      in->offset = r->offset;
      engine_enqueue_input(p, in, (kefu_topic_t)t, task->id);
    }
  }
  return 0;
}

static int emit_output(kefu_processor_t *p, const out_rec_t *r, const char *cause, char *errstr,
                       size_t errlen) {
  const kefu_replay_io_t *io = p->o->replay;
  kefu_rec_header_t h = {(char *)"kefu.cause", (void *)cause, strlen(cause), true};
  kefu_rec_t rec = {.timestamp = r->ts,
                    .key = (void *)r->key,
                    .key_len = r->key_len,
                    .has_key = true,
                    .value = (void *)r->val,
                    .value_len = r->val_len,
                    .has_value = true,
                    .headers = &h,
                    .nheaders = 1};
  kefu_metric_add(p->m.out[r->topic], 1);
  return io->emit(io->arg, r->topic, &rec, errstr, errlen);
}

/* As output.c's DLQ record: the input's bytes and headers, with kefu.source and
 * kefu.error added. */
static int emit_dlq(kefu_processor_t *p, const input_t *in, char *errstr, size_t errlen) {
  const kefu_replay_io_t *io = p->o->replay;
  const kefu_rec_t *orig = in->rec;
  size_t n = orig->nheaders;
  kefu_rec_header_t *h = calloc(n + 2, sizeof *h);
  if (n)
    memcpy(h, orig->headers, n * sizeof *h);
  h[n++] = (kefu_rec_header_t){(char *)"kefu.source", (void *)in->cause, strlen(in->cause), true};
  h[n++] = (kefu_rec_header_t){(char *)"kefu.error", (void *)in->error, strlen(in->error), true};
  kefu_rec_t rec = *orig;
  rec.headers = h;
  rec.nheaders = n;
  kefu_metric_add(p->m.out[KEFU_T_DLQ], 1);
  int rc = io->emit(io->arg, KEFU_T_DLQ, &rec, errstr, errlen);
  free(h);
  return rc;
}

int engine_replay_emit(kefu_processor_t *p, const batch_t *b, const batch_state_t *bs, char *errstr,
                       size_t errlen) {
  size_t o = 0;
  for (size_t i = 0; i < b->n; i++) {
    const input_t *in = b->items[i];
    if (!in->valid && !in->idle && emit_dlq(p, in, errstr, errlen))
      return -1;
    for (; o < bs->nouts && bs->outs[o].input == i; o++)
      if (emit_output(p, &bs->outs[o], in->cause, errstr, errlen))
        return -1;
  }
  return 0;
}

void engine_replay_flush_ticks(kefu_processor_t *p, batch_t *b) {
  for (int id = 0; id < p->partitions; id++) {
    input_t *in = engine_input_new();
    in->idle = true;
    in->task = id;
    in->generation = p->tasks[id].generation;
    in->sort_ts = FLUSH_TS;
    snprintf(in->error, sizeof in->error, "flush-%d", id);
    engine_set_cause(in);
    engine_batch_add(b, in);
  }
}

bool engine_config_override(const kefu_processor_t *p, const char *shop_id, kefu_shop_config_t *c) {
  const json_t *all = json_object_get(p->o->shop_overrides, "*"),
               *one = json_object_get(p->o->shop_overrides, shop_id);
  if (!all && !one)
    return false;
  json_t *j = kefu_state_config_json(c);
  if (all)
    json_object_update(j, (json_t *)all);
  if (one)
    json_object_update(j, (json_t *)one);
  kefu_config_clear(c);
  kefu_event_config_of(c, j);
  json_decref(j);
  return true;
}
