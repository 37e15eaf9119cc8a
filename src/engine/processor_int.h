/* The processor's private parts, shared by its files (librdkafka's *_int.h style):
 *   intake.c     reading: decoding, the courier table, assignment, merging per task
 *   batch.c      state: load from Redis, run the rules and timers, store to Redis
 *   output.c     writing: produce, commit (transaction or at-least-once), positions
 *   processor.c  the loop, metrics and set-up
 * Nothing here is for use outside src/engine/. */
#ifndef KEFU_ENGINE_PROCESSOR_INT_H
#define KEFU_ENGINE_PROCESSOR_INT_H

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "engine/emitter.h"
#include "engine/event.h"
#include "engine/processor.h"
#include "engine/shop.h"
#include "engine/timers.h"
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
  bool idle;           /* SPEC §1.3 idle advance: fires timers, no record behind it */
  int64_t polled_ms;   /* wall clock when read, for the event-to-output latency */
  uint32_t generation; /* its task's generation when read (task_t) */
  kefu_topic_t topic;
  bool valid;
  kefu_event_t ev;
  int64_t sort_ts; /* ev.ts; INT64_MIN for DLQ records, which go first */
  char error[256];
} input_t;

/* One input partition of a task. Its records wait here until the merge takes them. */
typedef struct queue {
  input_t **items;
  size_t head, tail, cap;
  bool at_end;         /* read to its end offset (an EOF from a fetch, or nothing to read at
                          assignment): only then may the task go on without it (SPEC §1.3) */
  int64_t empty_since; /* wall-clock ms it became empty while at its end */
} queue_t;

typedef struct task {
  bool assigned;
  int id;
  uint32_t generation; /* bumped at each assignment and revocation: a record read under
                          another generation is not this assignment's to process */
  queue_t q[KEFU_KEYED_INPUTS];
  int64_t watermark;                      /* highest valid ts - lateness; INT64_MIN before any */
  int64_t next_offset[KEFU_KEYED_INPUTS]; /* position after the batch; -1 unknown */
  json_t *timer_index;   /* shop_id -> earliest timer deadline (cache of ns:{task-N}:timers) */
  int64_t last_input_ms; /* wall clock of the last record read (idle advance) */
  json_t *pending_idle;  /* idle-tick cause -> outputs found in Redis at assignment, to
                            emit again: their transaction may not have committed */
  int64_t committed[KEFU_KEYED_INPUTS]; /* Kafka's committed offsets at assignment; -1 none */
  bool state_seen;      /* this instance saw ns:{task-N}:pos in Redis (state_check.c) */
  bool pos_stale;       /* the last position write failed: the next batch writes it */
  json_t *forget_later; /* causes whose remembered outputs are to be dropped (committed) */
} task_t;

/* The engine's metrics, registered once (SPEC §8). */
typedef struct engine_metrics {
  kefu_metric_t *in[KEFU_T__COUNT], *out[KEFU_T__COUNT], *lag[MAX_TASKS][KEFU_KEYED_INPUTS];
  kefu_metric_t *watermark[MAX_TASKS];
  kefu_metric_t *dlq, *duplicates, *encode_errors, *commits, *aborts, *rebalances, *late,
      *producer_restarts;
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
  bool paused;                    /* inputs paused while a batch is retried */
  int undelivered;                /* records of this batch not delivered (reports) */
  char undelivered_error[256];    /* the first one's topic, partition and error */
  int64_t last_consumer_error_ms; /* consumer errors are logged at most once a second */
};

typedef struct batch {
  input_t **items;
  size_t n, cap;
} batch_t;

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

/* What an attempt at a batch (or its Kafka commit) left to do. */
enum {
  ENGINE_FATAL = -1,
  ENGINE_DONE = 0,
  ENGINE_RETRY = 1,        /* Redis or Kafka failed: the batch again, after a backoff */
  ENGINE_NEW_PRODUCER = 2, /* the producer is fenced or failed for good */
};

input_t *engine_queue_head(const queue_t *q);
void engine_input_free(input_t *in);
void engine_queue_drop_all(queue_t *q);
int engine_poll_couriers(kefu_processor_t *p, bool to_end, char *errstr, size_t errlen);
void engine_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque);
void engine_enqueue(kefu_processor_t *p, rd_kafka_message_t *m);
void engine_take_ready(kefu_processor_t *p, task_t *task, batch_t *b, size_t max);
void engine_batch_add(batch_t *b, input_t *in);
void engine_timer_index_key(const kefu_processor_t *p, int task, char *out, size_t outlen);
void engine_task_key(const kefu_processor_t *p, int task, char *out, size_t outlen);
/* ns:{task-N}:out, the task's remembered outputs (cause -> records). */
void engine_task_out_key(const kefu_processor_t *p, int task, char *out, size_t outlen);
void engine_cause_of(const input_t *in, char *out, size_t outlen);
void engine_batch_state_clear(batch_state_t *bs);
int engine_load_state(kefu_processor_t *p, const batch_t *b, batch_state_t *bs, char *errstr,
                      size_t errlen);
void engine_run_rules(kefu_processor_t *p, const batch_t *b, batch_state_t *bs);
int engine_store_state(kefu_processor_t *p, const batch_t *b, batch_state_t *bs, int64_t max_ts,
                       char *errstr, size_t errlen);
int engine_kafka_commit(kefu_processor_t *p, const batch_t *b, const batch_state_t *bs,
                        char *errstr, size_t errlen);
void engine_store_positions(kefu_processor_t *p, const batch_t *b, const batch_state_t *bs);
void engine_delivery_report(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);
void engine_maybe_idle_tick(kefu_processor_t *p, task_t *task, batch_t *b);
int64_t engine_wall_ms(void);

/** @brief At assignment, right after Kafka's committed offsets are read into @p parts:
 *  refuses (-1: logged, /readyz 503, p->fatal set) when Kafka shows that a task was
 *  processed but Redis has no state for it; marks new tasks in Redis. 0 otherwise, also
 *  when Redis cannot be reached (then the next reconnect checks). state_check.c. */
int engine_state_check_assign(kefu_processor_t *p, const rd_kafka_topic_partition_list_t *parts);

/** @brief After a reconnect: -1 (as above) when a task's state that this instance saw in
 *  Redis is gone; 0 otherwise. */
int engine_state_check_reconnect(kefu_processor_t *p);
int engine_redis_flush(kefu_processor_t *p, redisReply ***replies, char *errstr, size_t errlen);

/* One variadic command per task on ns:{task-N}:out (HSET or HDEL), built up across a
 * batch so that the batch's remembered outputs cost one command per task. */
typedef struct task_out_cmds {
  const char *verb;
  kefu_cmd_t cmds[MAX_TASKS];
  bool used[MAX_TASKS];
} task_out_cmds_t;

/** @brief The command of @p task, started (verb and key) on first use. */
kefu_cmd_t *engine_task_out_cmd(kefu_processor_t *p, task_out_cmds_t *tc, int task);

/** @brief Queues every started command; returns how many. */
int engine_task_out_send(kefu_processor_t *p, task_out_cmds_t *tc);

#endif
