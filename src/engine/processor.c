/* The processing loop.
 *
 * Records are decoded and validated as they are polled, and queued per task (the four
 * keyed topics' partitions with the same number) and topic. A batch takes, per task,
 * the head with the smallest (ts, topic rank, offset) while no partition that may still
 * receive data is empty — an empty one is waited for up to task_idle_ms, as Kafka
 * Streams does; one read to its end does not hold the task back.
 *
 * A batch then costs a fixed number of Redis round trips, whatever its size:
 *   1. load: every touched shop's config, offsets, agents, named buyers and orders,
 *      seen event ids, and the outputs remembered for the batch's inputs (pipelined);
 *   2. load the orders the loaded buyers name (only when there are any);
 *   3. store: remembered outputs first, then one kefu_apply per shop (atomic, CAS on the
 *      shop's applied offsets);
 *   4. after the Kafka transaction commits: each partition's next offset and the task's
 *      watermark, and the remembered outputs are dropped.
 * Outputs are written before state because they are a deterministic function of
 * (state, input): if we die in between, the input is processed again from the same
 * state and produces the same bytes. An input whose state is already applied takes
 * its outputs from what was remembered, so a re-processed input re-emits exactly what
 * it emitted before (docs/ARCHITECTURE.md, "Effectively once"). */
#include "engine/processor.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "engine/emitter.h"
#include "engine/event.h"
#include "engine/shop.h"
#include "io/codec.h"
#include "io/kafka.h"
#include "io/schemas.h"
#include "io/topics.h"
#include "ops/http.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "store/redis.h"
#include "store/state_store.h"

#define MAX_TASKS 1024

/* One polled input record, decoded and validated (or not: then it goes to the DLQ). */
typedef struct input {
  rd_kafka_message_t *msg; /* owned; NULL for an idle tick */
  int task;                /* the partition number */
  int64_t offset;
  bool idle;         /* SPEC §1.3 idle advance: fires timers, no record behind it */
  int64_t polled_ms; /* wall clock when read, for the event-to-output latency */
  kefu_topic_t topic;
  bool valid;
  kefu_event_t ev;
  int64_t sort_ts; /* ev.ts; INT64_MIN for DLQ records, which go first */
  char error[256];
} input_t;

typedef struct queue {
  input_t **items;
  size_t head, tail, cap;
  bool at_end;         /* the partition was read to its end offset */
  int64_t empty_since; /* wall-clock ms the queue became empty */
} queue_t;

typedef struct task {
  bool assigned;
  int id;
  queue_t q[KEFU_KEYED_INPUTS];
  int64_t watermark;                      /* highest valid ts - lateness; INT64_MIN before any */
  int64_t next_offset[KEFU_KEYED_INPUTS]; /* position after the batch; -1 unknown */
  json_t *timer_index;   /* shop_id -> earliest timer deadline (cache of ns:{task-N}:timers) */
  int64_t last_input_ms; /* wall clock of the last record read (idle advance) */
  json_t *pending_idle;  /* idle-tick cause -> outputs found in Redis at assignment, to
                            emit again: their transaction may not have committed */
} task_t;

/* The engine's metrics, registered once (SPEC §8). */
typedef struct engine_metrics {
  kefu_metric_t *in[KEFU_T__COUNT], *out[KEFU_T__COUNT], *lag[MAX_TASKS][KEFU_KEYED_INPUTS];
  kefu_metric_t *watermark[MAX_TASKS];
  kefu_metric_t *dlq, *duplicates, *encode_errors, *commits, *aborts, *rebalances;
  kefu_histogram_t *batch_seconds, *redis_seconds, *event_to_output;
  kefu_metric_t *timer_shops[MAX_TASKS];
  int64_t last_gauges_ms;
  /* For the closing log line (and the bench that reads it). */
  uint64_t records, batches;
  int64_t first_batch_ms, last_commit_ms;
} engine_metrics_t;

struct kefu_processor {
  const kefu_processor_opts_t *o;
  engine_metrics_t m;
  rd_kafka_t *consumer, *producer, *courier_consumer;
  kefu_redis_t *redis;
  kefu_schemas_t *schemas;
  kefu_codec_t *codec;
  kefu_courier_table_t couriers;
  json_t *config_defaults;
  kefu_rules_env_t env;
  int partitions;
  task_t tasks[MAX_TASKS];
  char *enc_buf;
  size_t enc_cap;
  bool fatal;
};

typedef struct batch {
  input_t **items;
  size_t n, cap;
} batch_t;

static int64_t wall_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Every pipeline the engine sends goes through here, so its latency is measured. */
static int redis_flush(kefu_processor_t *p, redisReply ***replies, char *errstr, size_t errlen) {
  int64_t start = wall_ms();
  int n = kefu_redis_flush(p->redis, replies, errstr, errlen);
  kefu_histogram_observe(p->m.redis_seconds, (double)(wall_ms() - start) / 1000.0);
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

static input_t *queue_head(const queue_t *q) {
  return q->head < q->tail ? q->items[q->head] : NULL;
}

static void input_free(input_t *in) {
  if (!in)
    return;
  if (in->valid)
    kefu_event_clear(&in->ev);
  if (in->msg)
    rd_kafka_message_destroy(in->msg);
  free(in);
}

static void queue_drop_all(queue_t *q) {
  while (q->head < q->tail)
    input_free(q->items[q->head++]);
  q->head = q->tail = 0;
}

/* ---------------------------------------------------------------- decoding */

static void decode_input(kefu_processor_t *p, input_t *in) {
  const rd_kafka_message_t *m = in->msg;
  rd_kafka_timestamp_type_t tstype;
  json_t *rec = NULL;
  int64_t now = wall_ms();

  in->sort_ts = INT64_MIN;
  if (!m->payload) {
    if (in->topic == KEFU_T_SHOP_CONFIG &&
        !kefu_event_config_reset(&in->ev, m->key, m->key_len,
                                 rd_kafka_message_timestamp(m, &tstype), m->offset, now, in->error,
                                 sizeof in->error)) {
      in->ev.partition = m->partition;
      in->ev.offset = m->offset;
      in->valid = true;
      in->sort_ts = in->ev.ts;
    } else if (!in->error[0]) {
      snprintf(in->error, sizeof in->error,
               "null value (tombstones are only for kefu.shop.config)");
    }
    return;
  }
  if (kefu_codec_decode(p->codec, in->topic, m->payload, m->len, &rec, in->error, sizeof in->error))
    return;
  if (!kefu_event_from_json(&in->ev, in->topic, rec, m->key, m->key_len, now, in->error,
                            sizeof in->error)) {
    in->ev.partition = m->partition;
    in->ev.offset = m->offset;
    in->valid = true;
    in->sort_ts = in->ev.ts;
  }
  json_decref(rec);
}

/* ---------------------------------------------------------------- courier table */

static void apply_courier_message(kefu_processor_t *p, const rd_kafka_message_t *m) {
  char err[256], key[160];
  json_t *rec = NULL;
  if (!m->payload) {
    snprintf(key, sizeof key, "%.*s", (int)m->key_len, m->key ? (const char *)m->key : "");
    kefu_courier_table_delete(&p->couriers, key);
    return;
  }
  if (kefu_codec_decode(p->codec, KEFU_T_COURIER_STATUS, m->payload, m->len, &rec, err,
                        sizeof err) == 0 &&
      kefu_courier_status_validate(rec, err, sizeof err) == 0)
    kefu_courier_table_put(&p->couriers, rec);
  else /* the table is global and has no partition of ours in the DLQ's sense: log it */
    KEFU_WARN("couriers", "skipping courier-status record at offset %lld: %s", (long long)m->offset,
              err);
  json_decref(rec);
}

/* Polls the courier-status consumer; with @p to_end, until every partition is at its end. */
static int poll_couriers(kefu_processor_t *p, bool to_end, char *errstr, size_t errlen) {
  int64_t deadline = wall_ms() + 30000;
  for (;;) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(p->courier_consumer, to_end ? 100 : 0);
    if (!m) {
      if (!to_end)
        return 0;
      if (wall_ms() > deadline) {
        snprintf(errstr, errlen, "timed out reading %s", kefu_topic_name(KEFU_T_COURIER_STATUS));
        return -1;
      }
      continue;
    }
    bool eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
    if (!m->err)
      apply_courier_message(p, m);
    rd_kafka_message_destroy(m);
    if (eof && to_end)
      return 0; /* the table topic has one partition (deploy/ and kefu broker) */
  }
}

/* ---------------------------------------------------------------- assignment */

static void timer_index_key(const kefu_processor_t *p, int task, char *out, size_t outlen) {
  snprintf(out, outlen, "%s:{task-%d}:timers", p->o->redis_namespace, task);
}

static void task_key(const kefu_processor_t *p, int task, char *out, size_t outlen) {
  snprintf(out, outlen, "%s:{task-%d}:pos", p->o->redis_namespace, task);
}

/* The Redis position of each keyed partition of @p task, and its watermark. */
static int load_task_position(kefu_processor_t *p, int task, int64_t pos[KEFU_KEYED_INPUTS]) {
  char key[128], errstr[256];
  redisReply **r;
  if (!p->redis &&
      !(p->redis = kefu_redis_connect(p->o->redis_url, p->o->redis_user, p->o->redis_password,
                                      p->o->redis_timeout_ms, errstr, sizeof errstr))) {
    KEFU_ERROR("engine", "task %d: %s", task, errstr);
    return -1;
  }
  kefu_cmd_t c;
  kefu_cmd_init(&c);
  kefu_cmd_str(&c, "HGETALL");
  task_key(p, task, key, sizeof key);
  kefu_cmd_str(&c, key);
  kefu_redis_append(p->redis, &c);
  kefu_cmd_clear(&c);
  kefu_cmd_init(&c);
  kefu_cmd_str(&c, "ZRANGE");
  timer_index_key(p, task, key, sizeof key);
  kefu_cmd_str(&c, key);
  kefu_cmd_str(&c, "0");
  kefu_cmd_str(&c, "-1");
  kefu_cmd_str(&c, "WITHSCORES");
  kefu_redis_append(p->redis, &c);
  kefu_cmd_clear(&c);
  kefu_cmd_init(&c);
  kefu_cmd_str(&c, "HGETALL");
  snprintf(key, sizeof key, "%s:{task-%d}:out", p->o->redis_namespace, task);
  kefu_cmd_str(&c, key);
  kefu_redis_append(p->redis, &c);
  kefu_cmd_clear(&c);
  for (int t = 0; t < KEFU_KEYED_INPUTS; t++)
    pos[t] = -1;
  if (redis_flush(p, &r, errstr, sizeof errstr) != 3 || r[0]->type != REDIS_REPLY_ARRAY ||
      r[1]->type != REDIS_REPLY_ARRAY || r[2]->type != REDIS_REPLY_ARRAY) {
    KEFU_ERROR("engine", "reading the position of task %d: %s", task, errstr);
    return -1;
  }
  for (size_t i = 0; i + 1 < r[0]->elements; i += 2) {
    const char *f = r[0]->element[i]->str;
    int64_t v = strtoll(r[0]->element[i + 1]->str, NULL, 10);
    if (strcmp(f, "wm") == 0)
      p->tasks[task].watermark = v;
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
    json_t *records = json_loadb(v->str, v->len, 0, NULL);
    if (strncmp(f->str, "idle-", 5) != 0 || !records) {
      json_decref(records);
      continue;
    }
    if (!p->tasks[task].pending_idle)
      p->tasks[task].pending_idle = json_object();
    json_object_set_new(p->tasks[task].pending_idle, f->str, records);
  }
  return 0;
}

/* On assignment, start each partition from the later of Kafka's committed offset and the
 * position kefu wrote to Redis after the transaction that covered it (SPEC §5: the mock
 * cluster does not store offsets sent with a transaction). */
static void on_assign(kefu_processor_t *p, rd_kafka_topic_partition_list_t *parts) {
  rd_kafka_committed(p->consumer, parts, 10000);
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
      task->id = id;
      task->watermark = INT64_MIN;
      task->last_input_ms = wall_ms(); /* a backlog is read before any idle advance */
      for (int k = 0; k < KEFU_KEYED_INPUTS; k++) {
        task->q[k].at_end = false;
        task->q[k].empty_since = wall_ms();
        task->next_offset[k] = -1;
      }
    }
    if (load_task_position(p, id, pos) == 0 && pos[t] >= 0 &&
        (tp->offset < 0 || pos[t] > tp->offset))
      tp->offset = pos[t];
    if (tp->offset < 0)
      tp->offset = RD_KAFKA_OFFSET_BEGINNING;
    KEFU_INFO("engine", "assigned %s [%d] from offset %lld", tp->topic, id, (long long)tp->offset);
  }
  rd_kafka_assign(p->consumer, parts);
}

static void on_revoke(kefu_processor_t *p, rd_kafka_topic_partition_list_t *parts) {
  for (int i = 0; i < parts->cnt; i++) {
    int id = parts->elems[i].partition;
    if (id >= MAX_TASKS || !p->tasks[id].assigned)
      continue;
    /* Unprocessed records are dropped: nothing of them was applied or committed. */
    for (int k = 0; k < KEFU_KEYED_INPUTS; k++)
      queue_drop_all(&p->tasks[id].q[k]);
    p->tasks[id].assigned = false;
    json_decref(p->tasks[id].timer_index);
    p->tasks[id].timer_index = NULL;
    KEFU_INFO("engine", "revoked task %d", id);
  }
  rd_kafka_assign(p->consumer, NULL);
  kefu_metric_add(p->m.rebalances, 1);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
  (void)rk;
  kefu_processor_t *p = opaque;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
    on_assign(p, parts);
  else
    on_revoke(p, parts);
}

/* ---------------------------------------------------------------- polling and merging */

static void enqueue(kefu_processor_t *p, rd_kafka_message_t *m) {
  kefu_topic_t t = kefu_topic_by_name(rd_kafka_topic_name(m->rkt));
  int id = m->partition;
  if (t == KEFU_TOPIC_NONE || t >= KEFU_KEYED_INPUTS || id >= MAX_TASKS || !p->tasks[id].assigned) {
    rd_kafka_message_destroy(m);
    return;
  }
  queue_t *q = &p->tasks[id].q[t];
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    q->at_end = true;
    rd_kafka_message_destroy(m);
    return;
  }
  input_t *in = calloc(1, sizeof *in);
  in->msg = m;
  in->task = m->partition;
  in->offset = m->offset;
  in->polled_ms = wall_ms();
  in->topic = t;
  decode_input(p, in);
  q->at_end = false;
  queue_push(q, in);
  p->tasks[id].last_input_ms = wall_ms();
  kefu_metric_add(p->m.in[t], 1);
}

static bool before(const input_t *a, const input_t *b) {
  if (a->sort_ts != b->sort_ts)
    return a->sort_ts < b->sort_ts;
  if (kefu_topics[a->topic].rank != kefu_topics[b->topic].rank)
    return kefu_topics[a->topic].rank < kefu_topics[b->topic].rank;
  return a->offset < b->offset;
}

static void batch_add(batch_t *b, input_t *in) {
  if (b->n == b->cap) {
    b->cap = b->cap ? b->cap * 2 : 512;
    b->items = realloc(b->items, b->cap * sizeof *b->items);
  }
  b->items[b->n++] = in;
}

/* Moves the task's records that may be processed now into @p b, in merge order. */
static void take_ready(kefu_processor_t *p, task_t *task, batch_t *b, size_t max) {
  int64_t now = wall_ms();
  while (b->n < max) {
    int best = -1;
    for (int t = 0; t < KEFU_KEYED_INPUTS; t++) {
      queue_t *q = &task->q[t];
      input_t *h = queue_head(q);
      if (!h) {
        if (!q->at_end && now - q->empty_since < p->o->task_idle_ms)
          return; /* wait: this partition may still receive an earlier record */
        continue;
      }
      if (best < 0 || before(h, queue_head(&task->q[best])))
        best = t;
    }
    if (best < 0)
      return;
    queue_t *q = &task->q[best];
    batch_add(b, q->items[q->head++]);
    if (q->head == q->tail)
      q->empty_since = now;
  }
}

/* ---------------------------------------------------------------- one batch */

typedef struct batch_state {
  json_t *shop_index; /* shop_id -> index */
  kefu_shop_t **shops;
  kefu_shop_load_t *loads;
  size_t nshops;
  json_t *remembered; /* cause -> [[topic, record]...] read from Redis */
  json_t *computed;   /* cause -> [[topic, record]...] made now (to remember) */
  json_t *outputs;    /* [[topic, record, cause-header, input index]...] in order */
  int *shop_task;     /* the task each shop belongs to */
  kefu_timer_queue_t timers[MAX_TASKS]; /* per task: timers that may fire in this batch */
  int64_t max_ts[MAX_TASKS];            /* per task: the batch's highest valid ts */
} batch_state_t;

static void cause_of(const input_t *in, char *out, size_t outlen) {
  if (in->idle)
    snprintf(out, outlen, "%s", in->error); /* idle-<partition>-<watermark> */
  else
    snprintf(out, outlen, "%s/%d/%lld", kefu_topic_name(in->topic), in->task,
             (long long)in->offset);
}

static size_t shop_slot(kefu_processor_t *p, batch_state_t *bs, const char *shop_id, int task) {
  json_t *idx = json_object_get(bs->shop_index, shop_id);
  if (idx)
    return (size_t)json_integer_value(idx);
  size_t i = bs->nshops++;
  bs->shops = realloc(bs->shops, bs->nshops * sizeof *bs->shops);
  bs->loads = realloc(bs->loads, bs->nshops * sizeof *bs->loads);
  bs->shop_task = realloc(bs->shop_task, bs->nshops * sizeof *bs->shop_task);
  bs->shop_task[i] = task;
  bs->shops[i] = kefu_shop_new(shop_id, p->config_defaults);
  kefu_shop_load_init(&bs->loads[i], bs->shops[i]);
  json_object_set_new(bs->shop_index, shop_id, json_integer((json_int_t)i));
  return i;
}

static void batch_state_clear(batch_state_t *bs) {
  for (size_t i = 0; i < bs->nshops; i++) {
    kefu_shop_load_clear(&bs->loads[i]);
    kefu_shop_destroy(bs->shops[i]);
  }
  free(bs->shops);
  free(bs->loads);
  free(bs->shop_task);
  for (int t = 0; t < MAX_TASKS; t++)
    kefu_timer_queue_clear(&bs->timers[t]);
  json_decref(bs->shop_index);
  json_decref(bs->remembered);
  json_decref(bs->computed);
  json_decref(bs->outputs);
  memset(bs, 0, sizeof *bs);
}

static void want(json_t *set, const char *id) {
  if (id)
    json_object_set_new(set, id, json_true());
}

/* Shops whose timers may fire in this batch: the task's index says their earliest
 * deadline is below the batch's highest ts (a bound on both the watermark and the
 * same-buyer rule of SPEC §1.3). Their due timers are read with their state. */
static void mark_due_timers(kefu_processor_t *p, const batch_t *b, batch_state_t *bs) {
  const char *shop;
  json_t *min;
  for (int t = 0; t < MAX_TASKS; t++)
    bs->max_ts[t] = INT64_MIN;
  for (size_t i = 0; i < b->n; i++) {
    const input_t *in = b->items[i];
    int64_t ts = in->idle ? in->sort_ts : in->valid ? in->ev.ts : INT64_MIN;
    if (ts > bs->max_ts[in->task])
      bs->max_ts[in->task] = ts;
  }
  for (int t = 0; t < MAX_TASKS; t++) {
    if (bs->max_ts[t] == INT64_MIN || !p->tasks[t].timer_index)
      continue;
    json_object_foreach(p->tasks[t].timer_index, shop, min) {
      if (json_integer_value(min) >= bs->max_ts[t])
        continue;
      size_t slot = shop_slot(p, bs, shop, t);
      bs->loads[slot].timers_before = bs->max_ts[t];
    }
  }
}

/* Phase 1 and 2 reads for every shop of the batch, plus the remembered outputs. */
static int load_state(kefu_processor_t *p, const batch_t *b, batch_state_t *bs, char *errstr,
                      size_t errlen) {
  redisReply **r;
  char cause[300], key[128];
  int next = 0, task_reply[MAX_TASKS];
  json_t *causes_by_task[MAX_TASKS] = {0};

  for (size_t i = 0; i < b->n; i++) {
    input_t *in = b->items[i];
    int task = in->task;
    if (!causes_by_task[task])
      causes_by_task[task] = json_array();
    cause_of(in, cause, sizeof cause);
    json_array_append_new(causes_by_task[task], json_string(cause));
    if (!in->valid || in->idle)
      continue;
    size_t slot = shop_slot(p, bs, in->ev.shop_id, task); /* may move bs->loads */
    kefu_shop_load_t *l = &bs->loads[slot];
    want(l->buyers, in->ev.buyer_id);
    want(l->orders, in->ev.order_id);
    want(l->event_ids, in->ev.event_id);
  }
  mark_due_timers(p, b, bs);
  for (size_t i = 0; i < bs->nshops; i++)
    kefu_store_load_append(p->redis, p->o->redis_namespace, &bs->loads[i], &next);
  for (int t = 0; t < MAX_TASKS; t++) {
    if (!causes_by_task[t])
      continue;
    kefu_cmd_t c;
    size_t j;
    json_t *v;
    kefu_cmd_init(&c);
    kefu_cmd_str(&c, "HMGET");
    snprintf(key, sizeof key, "%s:{task-%d}:out", p->o->redis_namespace, t);
    kefu_cmd_str(&c, key);
    json_array_foreach(causes_by_task[t], j, v) kefu_cmd_str(&c, json_string_value(v));
    kefu_redis_append(p->redis, &c);
    kefu_cmd_clear(&c);
    task_reply[t] = next++;
  }
  int rc = -1;
  if (redis_flush(p, &r, errstr, errlen) != next)
    goto done;
  for (size_t i = 0; i < bs->nshops; i++)
    if (kefu_store_load_parse(&bs->loads[i], r, errstr, errlen))
      goto done;
  for (int t = 0; t < MAX_TASKS; t++) {
    size_t j;
    json_t *v;
    if (!causes_by_task[t])
      continue;
    const redisReply *rep = r[task_reply[t]];
    json_array_foreach(causes_by_task[t], j, v) {
      if (rep->type == REDIS_REPLY_ARRAY && j < rep->elements &&
          rep->element[j]->type == REDIS_REPLY_STRING)
        json_object_set_new(bs->remembered, json_string_value(v),
                            json_loadb(rep->element[j]->str, rep->element[j]->len, 0, NULL));
    }
  }
  /* What phase 1 pointed at: buyers of due timers, orders of loaded buyers. */
  for (int round = 0; round < 3; round++) {
    next = 0;
    for (size_t i = 0; i < bs->nshops; i++)
      kefu_store_more_append(p->redis, p->o->redis_namespace, &bs->loads[i], &next);
    if (next == 0)
      break;
    if (redis_flush(p, &r, errstr, errlen) != next)
      goto done;
    for (size_t i = 0; i < bs->nshops; i++)
      if (kefu_store_more_parse(&bs->loads[i], r, errstr, errlen))
        goto done;
  }
  for (size_t i = 0; i < bs->nshops; i++) { /* the task's queue takes the loaded timers */
    kefu_timer_queue_t *q = &bs->loads[i].timers;
    for (size_t k = 0; k < q->n; k++)
      kefu_timer_queue_add(&bs->timers[bs->shop_task[i]], q->items[k]);
    q->n = 0;
  }
  rc = 0;
done:
  for (int t = 0; t < MAX_TASKS; t++)
    json_decref(causes_by_task[t]);
  return rc;
}

/* Applies one valid input to its shop, unless its state is already applied (a
 * re-processed input) or its event id was seen in the last 7 days (a duplicate). */
static void apply_input(kefu_processor_t *p, batch_state_t *bs, input_t *in, const char *cause,
                        kefu_emitter_t *em) {
  size_t slot = shop_slot(p, bs, in->ev.shop_id, in->task); /* may move */
  kefu_shop_t *shop = bs->shops[slot];
  char field[300], offset[32];
  snprintf(field, sizeof field, "%s/%d", kefu_topics[in->topic].suffix, in->task);
  const char *applied = json_string_value(json_object_get(shop->applied, field));
  if (applied && strtoll(applied, NULL, 10) >= in->offset)
    return;
  snprintf(offset, sizeof offset, "%lld", (long long)in->offset);
  json_object_set_new(shop->applied, field, json_string(offset));
  if (json_object_get(shop->dedup, in->ev.event_id) ||
      json_object_get(shop->dedup_new, in->ev.event_id)) {
    kefu_metric_add(p->m.duplicates, 1);
    return;
  }
  json_object_set_new(shop->dedup_new, in->ev.event_id, json_integer(in->ev.ts));
  kefu_rules_apply(&p->env, shop, &in->ev, em);
  (void)cause;
}

static void add_outputs(batch_state_t *bs, json_t *records, const char *cause, size_t index) {
  size_t i;
  json_t *r;
  json_array_foreach(records, i, r)
      json_array_append_new(bs->outputs, json_pack("[O, O, s, I]", json_array_get(r, 0),
                                                   json_array_get(r, 1), cause, (json_int_t)index));
}

static void fire_one(kefu_processor_t *p, batch_state_t *bs, kefu_timer_t *t, int task,
                     kefu_emitter_t *em) {
  kefu_shop_t *shop = bs->shops[shop_slot(p, bs, t->shop_id, task)];
  char *member = kefu_timer_member(t);
  /* A timer made in this batch was never written: it is simply not written. */
  if (json_object_get(shop->timers_added, member))
    json_object_del(shop->timers_added, member);
  else
    json_array_append_new(shop->timers_removed, json_string(member));
  free(member);
  kefu_rules_fire(&p->env, shop, t, em);
  kefu_timer_free(t);
}

/* SPEC §1.3: before an event is applied, the timers it makes due fire, in (deadline,
 * creation) order; a chat event first fires its own buyer's timers earlier than its ts. */
static void fire_due(kefu_processor_t *p, batch_state_t *bs, const input_t *in,
                     kefu_emitter_t *em) {
  int id = in->task;
  task_t *task = &p->tasks[id];
  kefu_timer_queue_t *q = &bs->timers[id];
  kefu_timer_t *t;
  int64_t wm = in->ev.ts - p->o->lateness_ms;
  if (wm > task->watermark)
    task->watermark = wm;
  while ((t = kefu_timer_queue_pop_due(q, task->watermark, NULL, NULL)))
    fire_one(p, bs, t, id, em);
  if (in->topic == KEFU_T_CHAT && in->ev.buyer_id)
    while ((t = kefu_timer_queue_pop_due(q, in->ev.ts, in->ev.shop_id, in->ev.buyer_id)))
      fire_one(p, bs, t, id, em);
}

static void keep_outputs(batch_state_t *bs, kefu_emitter_t *em, const char *cause, size_t i) {
  json_t *remembered = json_object_get(bs->remembered, cause);
  if (remembered) {
    add_outputs(bs, remembered, cause, i);
  } else if (json_array_size(em->records)) {
    add_outputs(bs, em->records, cause, i);
    json_object_set(bs->computed, cause, em->records);
  }
}

/* SPEC §1.3 idle advance: the task's watermark moves to the tick's, and every timer it
 * makes due fires with the tick as cause. */
static void run_idle_tick(kefu_processor_t *p, batch_state_t *bs, const input_t *in,
                          const char *cause, size_t i) {
  task_t *task = &p->tasks[in->task];
  kefu_timer_queue_t *q = &bs->timers[in->task];
  kefu_timer_t *t;
  kefu_emitter_t em;
  kefu_emitter_init(&em, in->error);
  em.cause_ts = in->sort_ts;
  em.cause_rank = 9; /* after every topic of that ts */
  em.cause_offset = 0;
  em.timers = q;
  if (in->sort_ts > task->watermark)
    task->watermark = in->sort_ts;
  while ((t = kefu_timer_queue_pop_due(q, task->watermark, NULL, NULL)))
    fire_one(p, bs, t, in->task, &em);
  keep_outputs(bs, &em, cause, i);
  kefu_emitter_clear(&em);
}

static void run_rules(kefu_processor_t *p, const batch_t *b, batch_state_t *bs) {
  char cause[300];
  for (size_t i = 0; i < b->n; i++) {
    input_t *in = b->items[i];
    cause_of(in, cause, sizeof cause);
    if (in->idle) {
      run_idle_tick(p, bs, in, cause, i);
      continue;
    }
    if (!in->valid) {
      kefu_metric_add(p->m.dlq, 1);
      continue;
    }
    kefu_emitter_t em;
    kefu_emitter_init(&em, in->ev.event_id);
    em.cause_ts = in->ev.ts;
    em.cause_rank = kefu_topics[in->topic].rank;
    em.cause_offset = in->offset;
    em.timers = &bs->timers[in->task];
    fire_due(p, bs, in, &em);
    apply_input(p, bs, in, cause, &em);
    keep_outputs(bs, &em, cause, i);
    kefu_emitter_clear(&em);
  }
}

/* Before a shop's new timers are written, its entry in the task's timer index is
 * lowered to their earliest deadline (ZADD LT), so the index never misses a timer even
 * if we die between the two; the exact value is written after the apply. */
static int index_new_timers(kefu_processor_t *p, batch_state_t *bs) {
  char key[128], num[32];
  const char *member;
  json_t *deadline;
  int n = 0;
  for (size_t i = 0; i < bs->nshops; i++) {
    int64_t min = INT64_MAX;
    json_object_foreach(bs->shops[i]->timers_added, member, deadline) {
      if (json_integer_value(deadline) < min)
        min = json_integer_value(deadline);
    }
    if (min == INT64_MAX)
      continue;
    kefu_cmd_t c;
    kefu_cmd_init(&c);
    kefu_cmd_str(&c, "ZADD");
    timer_index_key(p, bs->shop_task[i], key, sizeof key);
    kefu_cmd_str(&c, key);
    kefu_cmd_str(&c, "LT");
    snprintf(num, sizeof num, "%lld", (long long)min);
    kefu_cmd_str(&c, num);
    kefu_cmd_str(&c, bs->shops[i]->id);
    kefu_redis_append(p->redis, &c);
    kefu_cmd_clear(&c);
    n++;
  }
  return n;
}

/* Remembered outputs first, then one atomic kefu_apply per shop (see the top comment). */
static int store_state(kefu_processor_t *p, batch_state_t *bs, int64_t max_ts, char *errstr,
                       size_t errlen) {
  redisReply **r;
  const char *cause;
  json_t *records;
  char key[128];
  int n = index_new_timers(p, bs), first_apply;

  json_object_foreach(bs->computed, cause, records) {
    int task = atoi(strchr(cause, '/') + 1);
    char *text = json_dumps(records, JSON_COMPACT);
    kefu_cmd_t c;
    kefu_cmd_init(&c);
    kefu_cmd_str(&c, "HSET");
    snprintf(key, sizeof key, "%s:{task-%d}:out", p->o->redis_namespace, task);
    kefu_cmd_str(&c, key);
    kefu_cmd_str(&c, cause);
    kefu_cmd_str(&c, text);
    kefu_redis_append(p->redis, &c);
    kefu_cmd_clear(&c);
    free(text);
    n++;
  }
  first_apply = n;
  for (size_t i = 0; i < bs->nshops; i++) {
    kefu_store_apply_append(p->redis, p->o->redis_namespace, bs->shops[i],
                            max_ts - 7 * KEFU_DAY_MS);
    n++;
  }
  if (n == 0)
    return 0;
  if (redis_flush(p, &r, errstr, errlen) != n)
    return -1;
  for (int i = 0; i < n; i++) {
    if (i >= first_apply &&
        kefu_store_apply_check(r[i], bs->shops[i - first_apply], errstr, errlen))
      return -1;
    if (i < first_apply && r[i]->type == REDIS_REPLY_ERROR) {
      snprintf(errstr, errlen, "redis: %s", r[i]->str);
      return -1;
    }
  }
  return 0;
}

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
  rd_kafka_timestamp_type_t tstype;
  hdrs = rd_kafka_message_headers(m, &orig) ? rd_kafka_headers_new(2) : rd_kafka_headers_copy(orig);
  rd_kafka_header_add(hdrs, "kefu.source", -1, cause, -1);
  rd_kafka_header_add(hdrs, "kefu.error", -1, in->error, -1);
  return produce(p, kefu_topic_name(KEFU_T_DLQ), m->key, m->key_len, m->payload, m->len,
                 rd_kafka_message_timestamp(m, &tstype), hdrs, errstr, errlen);
}

static int produce_output(kefu_processor_t *p, const json_t *out, char *errstr, size_t errlen) {
  kefu_topic_t t = (kefu_topic_t)json_integer_value(json_array_get(out, 0));
  const json_t *rec = json_array_get(out, 1);
  const char *cause = json_string_value(json_array_get(out, 2));
  const char *shop = json_string_value(json_object_get(rec, "shop_id"));
  size_t len = 0;
  char err[256];
  if (kefu_codec_encode(p->codec, t, rec, &p->enc_buf, &p->enc_cap, &len, err, sizeof err)) {
    /* A rule built a record its schema rejects: a bug; keep going, loudly. */
    KEFU_ERROR("engine", "cannot encode a %s record caused by %s: %s", kefu_topics[t].suffix, cause,
               err);
    kefu_metric_add(p->m.encode_errors, 1);
    return 0;
  }
  rd_kafka_headers_t *hdrs = rd_kafka_headers_new(1);
  rd_kafka_header_add(hdrs, "kefu.cause", -1, cause, -1);
  kefu_metric_add(p->m.out[t], 1);
  return produce(p, kefu_topic_name(t), shop, strlen(shop), p->enc_buf, len,
                 json_integer_value(json_object_get(rec, "ts")), hdrs, errstr, errlen);
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
    json_t *records, *r;
    size_t k;
    if (done[b->items[i]->task] || !task->pending_idle)
      continue;
    done[b->items[i]->task] = true;
    json_object_foreach(task->pending_idle, cause, records) {
      json_array_foreach(records, k, r) {
        json_t *out = json_pack("[O, O, s]", json_array_get(r, 0), json_array_get(r, 1), cause);
        int rc = produce_output(p, out, errstr, errlen);
        json_decref(out);
        if (rc)
          return -1;
      }
    }
  }
  return 0;
}

static int produce_all(kefu_processor_t *p, const batch_t *b, const batch_state_t *bs, char *errstr,
                       size_t errlen) {
  char cause[300];
  size_t o = 0, nout = json_array_size(bs->outputs);
  if (produce_pending_idle(p, b, errstr, errlen))
    return -1;
  for (size_t i = 0; i < b->n; i++) {
    const input_t *in = b->items[i];
    if (!in->valid && !in->idle) {
      cause_of(in, cause, sizeof cause);
      if (produce_dlq(p, in, cause, errstr, errlen))
        return -1;
    }
    for (; o < nout &&
           (size_t)json_integer_value(json_array_get(json_array_get(bs->outputs, o), 3)) == i;
         o++)
      if (produce_output(p, json_array_get(bs->outputs, o), errstr, errlen))
        return -1;
  }
  return 0;
}

/* The next offset of every partition the batch read from. */
static rd_kafka_topic_partition_list_t *batch_offsets(const batch_t *b) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
  for (size_t i = 0; i < b->n; i++) {
    const rd_kafka_message_t *m = b->items[i]->msg;
    if (!m)
      continue; /* an idle tick */
    rd_kafka_topic_partition_t *tp =
        rd_kafka_topic_partition_list_find(l, rd_kafka_topic_name(m->rkt), m->partition);
    if (!tp)
      tp = rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition);
    if (m->offset + 1 > tp->offset)
      tp->offset = m->offset + 1;
  }
  return l;
}

/* Kafka side of a batch: outputs and offsets in one transaction (exactly_once), or
 * delivered outputs then committed offsets (at_least_once). 0 ok, 1 retry the batch,
 * -1 fatal. */
static int kafka_commit(kefu_processor_t *p, const batch_t *b, const batch_state_t *bs,
                        char *errstr, size_t errlen) {
  rd_kafka_topic_partition_list_t *offsets = batch_offsets(b);
  rd_kafka_error_t *error = NULL;
  int rc = 0;

  if (p->o->exactly_once && (error = rd_kafka_begin_transaction(p->producer)))
    goto txn_error;
  if (produce_all(p, b, bs, errstr, errlen)) {
    rc = 1;
    if (p->o->exactly_once && (error = rd_kafka_abort_transaction(p->producer, 30000)))
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
    if (!err && offsets->cnt)
      err = rd_kafka_commit(p->consumer, offsets, 0);
    if (err) {
      snprintf(errstr, errlen, "at_least_once commit: %s", rd_kafka_err2str(err));
      rc = 1;
    }
  }
  goto done;
txn_error:
  snprintf(errstr, errlen, "transaction: %s", rd_kafka_error_string(error));
  if (rd_kafka_error_is_fatal(error)) {
    rc = -1;
  } else {
    rc = 1;
    if (rd_kafka_error_txn_requires_abort(error)) {
      rd_kafka_error_t *e2 = rd_kafka_abort_transaction(p->producer, 30000);
      if (e2)
        rd_kafka_error_destroy(e2);
      kefu_metric_add(p->m.aborts, 1);
    }
  }
  rd_kafka_error_destroy(error);
done:
  rd_kafka_topic_partition_list_destroy(offsets);
  return rc;
}

/* The exact earliest deadline of every shop whose timers changed, as kefu_apply read it
 * (also kept in memory: the index is this instance's cache of what it owns). */
static int store_timer_index(kefu_processor_t *p, const batch_state_t *bs) {
  char key[128];
  int n = 0;
  for (size_t i = 0; i < bs->nshops; i++) {
    kefu_shop_t *shop = bs->shops[i];
    task_t *task = &p->tasks[bs->shop_task[i]];
    if (!json_object_size(shop->timers_added) && !json_array_size(shop->timers_removed))
      continue;
    if (!task->timer_index)
      task->timer_index = json_object();
    kefu_cmd_t c;
    kefu_cmd_init(&c);
    timer_index_key(p, bs->shop_task[i], key, sizeof key);
    if (shop->timers_min == INT64_MAX) {
      kefu_cmd_str(&c, "ZREM");
      kefu_cmd_str(&c, key);
      kefu_cmd_str(&c, shop->id);
      json_object_del(task->timer_index, shop->id);
    } else {
      kefu_cmd_str(&c, "ZADD");
      kefu_cmd_str(&c, key);
      kefu_cmd_fmt(&c, "%lld", (long long)shop->timers_min);
      kefu_cmd_str(&c, shop->id);
      json_object_set_new(task->timer_index, shop->id, json_integer(shop->timers_min));
    }
    kefu_redis_append(p->redis, &c);
    kefu_cmd_clear(&c);
    n++;
  }
  return n;
}

static int drop_pending_idle(kefu_processor_t *p, const batch_t *b) {
  char key[128];
  const char *cause;
  json_t *v;
  int n = 0;
  for (size_t i = 0; i < b->n; i++) {
    task_t *task = &p->tasks[b->items[i]->task];
    if (!task->pending_idle)
      continue;
    json_object_foreach(task->pending_idle, cause, v) {
      kefu_cmd_t c;
      kefu_cmd_init(&c);
      kefu_cmd_str(&c, "HDEL");
      snprintf(key, sizeof key, "%s:{task-%d}:out", p->o->redis_namespace, b->items[i]->task);
      kefu_cmd_str(&c, key);
      kefu_cmd_str(&c, cause);
      kefu_redis_append(p->redis, &c);
      kefu_cmd_clear(&c);
      n++;
    }
    json_decref(task->pending_idle);
    task->pending_idle = NULL;
  }
  return n;
}

/* After the commit: positions and watermarks to Redis, remembered outputs dropped. Not
 * fatal when it fails: Kafka's offsets and the shops' applied offsets still hold. */
static void store_positions(kefu_processor_t *p, const batch_t *b, const batch_state_t *bs) {
  rd_kafka_topic_partition_list_t *offsets = batch_offsets(b);
  char key[128], errstr[256], cause[300];
  redisReply **r;
  int n = 0;
  bool touched[MAX_TASKS] = {0};

  for (int i = 0; i < offsets->cnt; i++) {
    kefu_topic_t t = kefu_topic_by_name(offsets->elems[i].topic);
    touched[offsets->elems[i].partition] = true;
    p->tasks[offsets->elems[i].partition].next_offset[t] = offsets->elems[i].offset;
  }
  for (size_t i = 0; i < b->n; i++) /* idle ticks move the watermark */
    touched[b->items[i]->task] = true;
  for (int t = 0; t < MAX_TASKS; t++) {
    if (!touched[t])
      continue;
    kefu_cmd_t c;
    kefu_cmd_init(&c);
    kefu_cmd_str(&c, "HSET");
    task_key(p, t, key, sizeof key);
    kefu_cmd_str(&c, key);
    for (int k = 0; k < KEFU_KEYED_INPUTS; k++)
      if (p->tasks[t].next_offset[k] >= 0) {
        kefu_cmd_str(&c, kefu_topics[k].suffix);
        kefu_cmd_fmt(&c, "%lld", (long long)p->tasks[t].next_offset[k]);
      }
    kefu_cmd_str(&c, "wm");
    kefu_cmd_fmt(&c, "%lld", (long long)p->tasks[t].watermark);
    kefu_redis_append(p->redis, &c);
    kefu_cmd_clear(&c);
    n++;
  }
  n += store_timer_index(p, bs);
  n += drop_pending_idle(p, b);
  for (size_t i = 0; i < b->n; i++) {
    cause_of(b->items[i], cause, sizeof cause);
    if (!json_object_get(bs->computed, cause) && !json_object_get(bs->remembered, cause))
      continue;
    kefu_cmd_t c;
    kefu_cmd_init(&c);
    kefu_cmd_str(&c, "HDEL");
    snprintf(key, sizeof key, "%s:{task-%d}:out", p->o->redis_namespace, b->items[i]->task);
    kefu_cmd_str(&c, key);
    kefu_cmd_str(&c, cause);
    kefu_redis_append(p->redis, &c);
    kefu_cmd_clear(&c);
    n++;
  }
  if (n && redis_flush(p, &r, errstr, sizeof errstr) != n)
    KEFU_WARN("engine", "writing positions: %s", errstr);
  rd_kafka_topic_partition_list_destroy(offsets);
}

/* ---------------------------------------------------------------- the loop */

static int reconnect_redis(kefu_processor_t *p, char *errstr, size_t errlen) {
  kefu_redis_close(p->redis);
  p->redis = kefu_redis_connect(p->o->redis_url, p->o->redis_user, p->o->redis_password,
                                p->o->redis_timeout_ms, errstr, errlen);
  return p->redis ? 0 : -1;
}

/* One attempt at a batch: 0 done, 1 retry (Redis or a transaction failed), -1 fatal. */
static int process_once(kefu_processor_t *p, const batch_t *b, char *errstr, size_t errlen) {
  batch_state_t bs = {.shop_index = json_object(),
                      .remembered = json_object(),
                      .computed = json_object(),
                      .outputs = json_array()};
  int64_t max_ts = 0;
  int rc = 1;
  for (size_t i = 0; i < b->n; i++)
    if (b->items[i]->valid && b->items[i]->ev.ts > max_ts)
      max_ts = b->items[i]->ev.ts;
  if (!p->redis && reconnect_redis(p, errstr, errlen))
    goto done;
  if (load_state(p, b, &bs, errstr, errlen))
    goto redis_failed;
  run_rules(p, b, &bs);
  if (store_state(p, &bs, max_ts, errstr, errlen))
    goto redis_failed;
  rc = kafka_commit(p, b, &bs, errstr, errlen);
  if (rc == 0)
    store_positions(p, b, &bs);
  goto done;
redis_failed:
  kefu_redis_close(p->redis);
  p->redis = NULL;
done:
  batch_state_clear(&bs);
  return rc;
}

static int process_batch(kefu_processor_t *p, batch_t *b, volatile sig_atomic_t *stop) {
  char errstr[512];
  int backoff = 100, rc;
  int64_t start = wall_ms();
  while ((rc = process_once(p, b, errstr, sizeof errstr)) == 1) {
    kefu_http_set_ready(false, errstr);
    KEFU_WARN("engine", "batch of %zu records not done, retrying in %d ms: %s", b->n, backoff,
              errstr);
    if (*stop)
      return -1;
    usleep((useconds_t)backoff * 1000);
    backoff = backoff * 2 > p->o->redis_retry_max_ms ? p->o->redis_retry_max_ms : backoff * 2;
  }
  if (rc < 0) {
    KEFU_ERROR("engine", "fatal: %s", errstr);
    return -1;
  }
  kefu_http_set_ready(true, NULL);
  int64_t now = wall_ms();
  if (!p->m.first_batch_ms)
    p->m.first_batch_ms = start;
  p->m.last_commit_ms = now;
  p->m.records += b->n;
  p->m.batches++;
  for (size_t i = 0; i < b->n; i++)
    if (b->items[i]->msg)
      kefu_histogram_observe(p->m.event_to_output, (double)(now - b->items[i]->polled_ms) / 1000.0);
  kefu_histogram_observe(p->m.batch_seconds, (double)(wall_ms() - start) / 1000.0);
  return 0;
}

static bool all_at_end(const kefu_processor_t *p) {
  bool any = false;
  for (int t = 0; t < MAX_TASKS; t++) {
    if (!p->tasks[t].assigned)
      continue;
    any = true;
    for (int k = 0; k < KEFU_KEYED_INPUTS; k++)
      if (!p->tasks[t].q[k].at_end || queue_head(&p->tasks[t].q[k]))
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

/* Once a second: consumer lag per partition (high watermark - position, from
 * librdkafka's cached offsets: no request), each task's watermark, and how many shops
 * of each task have timers. */
static void update_gauges(kefu_processor_t *p) {
  int64_t now = wall_ms();
  if (now - p->m.last_gauges_ms < 1000)
    return;
  p->m.last_gauges_ms = now;
  for (int id = 0; id < p->partitions && id < MAX_TASKS; id++) {
    task_t *task = &p->tasks[id];
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
      if (!rd_kafka_get_watermark_offsets(p->consumer, topic, id, &lo, &hi) &&
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
  }
}

/* SPEC §1.3 idle advance (live mode only): a task that has read nothing for
 * idle_advance_ms gets its watermark raised to wall clock - idle_advance_ms, so a quiet
 * night still fires timers. Only when a timer would fire, so a quiet task costs nothing. */
static void maybe_idle_tick(kefu_processor_t *p, task_t *task, batch_t *b) {
  int64_t now = wall_ms(), target = now - p->o->idle_advance_ms;
  const char *shop;
  json_t *min;
  bool due = false;
  if (!p->o->idle_advance || now - task->last_input_ms < p->o->idle_advance_ms ||
      target <= task->watermark)
    return;
  for (int k = 0; k < KEFU_KEYED_INPUTS; k++)
    if (queue_head(&task->q[k]))
      return;
  json_object_foreach(task->timer_index, shop, min) due |= json_integer_value(min) < target;
  if (!due)
    return;
  input_t *in = calloc(1, sizeof *in);
  in->idle = true;
  in->task = task->id;
  in->sort_ts = target;
  snprintf(in->error, sizeof in->error, "idle-%d-%lld", task->id, (long long)target);
  batch_add(b, in);
}

int kefu_processor_run(kefu_processor_t *p, volatile sig_atomic_t *stop) {
  batch_t b = {0};
  int idle_polls = 0, rc = 0;
  char errstr[256];
  size_t max = (size_t)p->o->batch_max_records;

  while (!*stop) {
    int64_t deadline = wall_ms() + p->o->batch_max_ms;
    size_t queued = 0;
    do {
      rd_kafka_message_t *m = rd_kafka_consumer_poll(p->consumer, 20);
      if (m) {
        enqueue(p, m);
        queued++;
      }
      poll_couriers(p, false, errstr, sizeof errstr);
    } while (queued < max && wall_ms() < deadline && !*stop);
    b.n = 0;
    for (int t = 0; t < MAX_TASKS && b.n < max; t++)
      if (p->tasks[t].assigned) {
        take_ready(p, &p->tasks[t], &b, max);
        maybe_idle_tick(p, &p->tasks[t], &b);
      }
    kefu_http_heartbeat();
    update_gauges(p);
    if (b.n == 0) {
      if (p->o->exit_when_idle_polls && all_at_end(p) && ++idle_polls >= p->o->exit_when_idle_polls)
        break;
      continue;
    }
    idle_polls = 0;
    rc = process_batch(p, &b, stop);
    for (size_t i = 0; i < b.n; i++)
      input_free(b.items[i]);
    if (rc)
      break;
  }
  free(b.items);
  double secs = (double)(p->m.last_commit_ms - p->m.first_batch_ms) / 1000.0;
  KEFU_INFO("engine",
            "processed %llu records in %llu batches over %.3f s (%.0f records/s), "
            "%llu Redis commands",
            (unsigned long long)p->m.records, (unsigned long long)p->m.batches, secs,
            secs > 0 ? (double)p->m.records / secs : 0.0,
            p->redis ? (unsigned long long)kefu_redis_commands_sent(p->redis) : 0ULL);
  KEFU_INFO("engine", "stopping: leaving the consumer group");
  rd_kafka_consumer_close(p->consumer);
  return rc;
}

/* ---------------------------------------------------------------- set-up */

static rd_kafka_conf_t *base_conf(const kefu_processor_opts_t *o, char *errstr, size_t errlen) {
  return kefu_kafka_conf(o->bootstrap, o->kafka_props, o->nkafka_props, errstr, errlen);
}

static int open_producer(kefu_processor_t *p, char *errstr, size_t errlen) {
  const kefu_processor_opts_t *o = p->o;
  char txn_id[256];
  rd_kafka_conf_t *conf = base_conf(o, errstr, errlen);
  if (!conf)
    return -1;
  snprintf(txn_id, sizeof txn_id, "%s-%s", o->transactional_id_prefix, o->instance_id);
  if (kefu_kafka_set(conf, "enable.idempotence", "true", errstr, errlen) ||
      kefu_kafka_set(conf, "linger.ms", "5", errstr, errlen) ||
      kefu_kafka_set(conf, "partitioner", "murmur2_random", errstr, errlen) ||
      (o->exactly_once && kefu_kafka_set(conf, "transactional.id", txn_id, errstr, errlen)) ||
      !(p->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errlen))) {
    if (!p->producer)
      rd_kafka_conf_destroy(conf);
    return -1;
  }
  if (o->exactly_once) {
    rd_kafka_error_t *error = rd_kafka_init_transactions(p->producer, 60000);
    if (error) {
      snprintf(errstr, errlen, "init_transactions: %s", rd_kafka_error_string(error));
      rd_kafka_error_destroy(error);
      return -1;
    }
  }
  return 0;
}

static int open_consumer(kefu_processor_t *p, char *errstr, size_t errlen) {
  const kefu_processor_opts_t *o = p->o;
  rd_kafka_conf_t *conf = base_conf(o, errstr, errlen);
  if (!conf)
    return -1;
  if (kefu_kafka_set(conf, "group.id", o->group_id, errstr, errlen) ||
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
  rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
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
  rd_kafka_conf_t *conf = base_conf(p->o, errstr, errlen);
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
    if (poll_couriers(p, true, errstr, errlen))
      return -1;
  KEFU_INFO("couriers", "courier-status table loaded: %zu entries",
            json_object_size(p->couriers.entries));
  return 0;
}

/* A shop config with every field at its schema default: encode the envelope alone and
 * decode it back. */
static json_t *config_defaults(kefu_codec_t *codec, char *errstr, size_t errlen) {
  json_t *env = json_pack("{s:s, s:s, s:I}", "event_id", "defaults", "shop_id", "defaults", "ts",
                          (json_int_t)KEFU_TS_MIN);
  char *buf = NULL;
  size_t cap = 0, len = 0;
  json_t *out = NULL;
  if (kefu_codec_encode(codec, KEFU_T_SHOP_CONFIG, env, &buf, &cap, &len, errstr, errlen) == 0 &&
      kefu_codec_decode(codec, KEFU_T_SHOP_CONFIG, buf, len, &out, errstr, errlen) == 0) {
    json_object_del(out, "event_id");
    json_object_del(out, "shop_id");
    json_object_del(out, "ts");
  }
  free(buf);
  json_decref(env);
  return out;
}

static void register_metrics(engine_metrics_t *m) {
  char labels[128];
  for (int t = 0; t < KEFU_T__COUNT; t++) {
    snprintf(labels, sizeof labels, "topic=\"%s\"", kefu_topic_name((kefu_topic_t)t));
    m->in[t] = kefu_metrics_counter("kefu_records_in_total", "Input records read", labels);
    m->out[t] = kefu_metrics_counter("kefu_records_out_total", "Output records written", labels);
  }
  m->dlq = kefu_metrics_counter("kefu_dlq_total", "Records sent to the DLQ", NULL);
  m->duplicates =
      kefu_metrics_counter("kefu_duplicates_total", "Duplicate event ids applied once", NULL);
  m->encode_errors =
      kefu_metrics_counter("kefu_encode_errors_total", "Outputs a schema rejected (bugs)", NULL);
  m->commits =
      kefu_metrics_counter("kefu_transactions_total", "Kafka transactions", "result=\"commit\"");
  m->aborts =
      kefu_metrics_counter("kefu_transactions_total", "Kafka transactions", "result=\"abort\"");
  m->rebalances = kefu_metrics_counter("kefu_rebalances_total", "Consumer group rebalances", NULL);
  m->batch_seconds =
      kefu_metrics_histogram("kefu_batch_seconds", "Time to process one batch", NULL,
                             kefu_metrics_buckets_short, kefu_metrics_buckets_short_n);
  m->event_to_output =
      kefu_metrics_histogram("kefu_event_to_output_seconds",
                             "From reading a record to the commit of what it produced (wall clock)",
                             NULL, kefu_metrics_buckets_long, kefu_metrics_buckets_long_n);
  m->redis_seconds =
      kefu_metrics_histogram("kefu_redis_seconds", "Redis round-trip time", NULL,
                             kefu_metrics_buckets_short, kefu_metrics_buckets_short_n);
}

kefu_processor_t *kefu_processor_new(const kefu_processor_opts_t *o, char *errstr, size_t errlen) {
  kefu_processor_t *p = calloc(1, sizeof *p);
  p->o = o;
  register_metrics(&p->m);
  kefu_courier_table_init(&p->couriers);
  if (!(p->schemas = kefu_schemas_new(errstr, errlen)))
    goto fail;
  p->codec = kefu_codec_new(p->schemas);
  if (!(p->config_defaults = config_defaults(p->codec, errstr, errlen)))
    goto fail;
  p->env.params = &o->params;
  p->env.couriers = &p->couriers;
  p->env.config_defaults = p->config_defaults;
  if (!(p->redis = kefu_redis_connect(o->redis_url, o->redis_user, o->redis_password,
                                      o->redis_timeout_ms, errstr, errlen)) ||
      open_consumer(p, errstr, errlen) || check_copartitioning(p, errstr, errlen) ||
      open_producer(p, errstr, errlen) || open_courier_table(p, errstr, errlen) ||
      subscribe(p, errstr, errlen))
    goto fail;
  return p;
fail:
  kefu_processor_destroy(p);
  return NULL;
}

void kefu_processor_destroy(kefu_processor_t *p) {
  if (!p)
    return;
  for (int t = 0; t < MAX_TASKS; t++)
    for (int k = 0; k < KEFU_KEYED_INPUTS; k++) {
      queue_drop_all(&p->tasks[t].q[k]);
      free(p->tasks[t].q[k].items);
    }
  if (p->courier_consumer) {
    rd_kafka_consumer_close(p->courier_consumer);
    rd_kafka_destroy(p->courier_consumer);
  }
  if (p->consumer)
    rd_kafka_destroy(p->consumer);
  if (p->producer) {
    rd_kafka_flush(p->producer, 10000);
    rd_kafka_destroy(p->producer);
  }
  kefu_redis_close(p->redis);
  if (p->codec)
    kefu_codec_destroy(p->codec);
  if (p->schemas)
    kefu_schemas_destroy(p->schemas);
  json_decref(p->config_defaults);
  kefu_courier_table_clear(&p->couriers);
  free(p->enc_buf);
  free(p);
}
