/* The processor's private parts, shared by its files (librdkafka's *_int.h style):
 *   intake.c     reading: decoding, the courier table, assignment, merging per task
 *   batch.c      state: load from Redis, run the rules and timers, store to Redis
 *   cache.c      the owner cache: shops kept in memory across batches, their timers
 *   output.c     writing: produce, commit (transaction or at-least-once), positions
 *   committer.c  the committer thread: a batch's Kafka side while the loop goes on
 *   processor.c  the loop, metrics and set-up
 * Nothing here is for use outside src/engine/. */
#ifndef KEFU_ENGINE_PROCESSOR_INT_H
#define KEFU_ENGINE_PROCESSOR_INT_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/backoff.h"
#include "engine/event.h"
#include "engine/processor.h"
#include "io/codec.h"
#include "io/kafka.h"
#include "io/schemas.h"
#include "io/topics.h"
#include "ops/http.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "rules/rules.h"
#include "store/redis.h"
#include "store/state_codec.h"
#include "store/state_store.h"

#define MAX_TASKS 1024

/* One polled input record, decoded and validated (or not: then it goes to the DLQ). */
typedef struct input {
  rd_kafka_message_t *msg;   /* owned; NULL for an idle tick and in a replay */
  kefu_rec_t *rec;           /* owned: the record of a replay (kefu_processor_opts_t.replay) */
  const void *payload, *key; /* of msg or rec; payload NULL: a tombstone */
  size_t len, key_len;
  int64_t kafka_ts; /* the record's Kafka timestamp */
  int task;         /* the partition number */
  int64_t offset;
  bool idle;           /* SPEC §1.3 idle advance: fires timers, no record behind it */
  int64_t polled_ms;   /* wall clock when read, for the event-to-output latency */
  uint32_t generation; /* its task's generation when read (task_t) */
  kefu_topic_t topic;
  bool valid;
  bool awaits_schema; /* its schema id is unknown and the registry unreachable: neither
                         valid nor for the DLQ, it holds its partition's place in the merge
                         and is decoded again (engine_take_ready); error says why */
  kefu_event_t ev;
  int64_t sort_ts; /* ev.ts; INT64_MIN for DLQ records, which go first */
  char error[256];
  char cause[300];      /* engine_set_cause, made once when it is read */
  struct shop_entry *e; /* its shop, set by the batch that loads it (that batch only) */
} input_t;

/* One input partition of a task. Its records wait here until the merge takes them. */
typedef struct queue {
  input_t **items;
  size_t head, tail, cap;
  bool at_end;       /* read to its end offset (an EOF from a fetch, or nothing to read at
                        assignment): only then may the task go on without it (SPEC §1.3) */
  int64_t end_since; /* wall-clock ms it was read to its end (at_end since then) */
  bool flow_paused;  /* its partition paused: the queue is full (flow_control) */
} queue_t;

/* Event ids a shop has seen (hash -> latest ts), open addressing; key 0 is empty. */
typedef struct seen_set {
  uint64_t *key;
  int64_t *ts;
  uint32_t cap, n;
} seen_set_t;

typedef kefu_seen_day_t seen_day_t;

/* Ids of buyers evicted from a shop (they may be in Redis, not in memory): a scalable
 * Bloom filter, each filter twice the last, about 1% false positives each. */
typedef struct bloom {
  struct bloom_filter {
    uint64_t *bits;
    uint32_t nbits, n, cap; /* nbits a power of two; cap: entries before the next */
  } * f;
  uint32_t nf;
} bloom_t;

typedef struct kefu_store_due_append due_append_t;

/* One shop as this instance holds it: the rules' state and what the engine keeps to
 * write it back (cache.c). */
typedef struct shop_entry {
  kefu_shop_t *shop;
  int task;
  bool loaded;                        /* read from Redis (else: being read by this batch) */
  int64_t applied[KEFU_KEYED_INPUTS]; /* last applied offset per keyed topic; -1 none */
  int64_t stored[KEFU_KEYED_INPUTS];  /* as Redis holds them: the CAS's expected values */
  seen_set_t seen;
  int32_t seen_from, seen_to; /* UTC days of event ids read; from > to: none */
  seen_day_t *seen_new;       /* ids seen by the batch, to append */
  uint32_t nseen_new;
  uint64_t used;      /* the batch number that last touched it (LRU) */
  int64_t timers_min; /* earliest pending deadline after the last write */
  /* Buyers are held in part (docs/ARCHITECTURE.md "The owner cache"). */
  bool complete;   /* every buyer Redis has is in memory, or in `evicted` */
  bloom_t evicted; /* buyers evicted since the shop was read */
  int64_t *due;    /* the pending due buckets in Redis, ascending */
  bool *due_cold;  /* per bucket: it may list a buyer memory does not hold (read from
                      Redis, or evicted since); the others need no read */
  uint32_t ndue, due_cap;
  bool due_changed;      /* `due` differs from meta `due` */
  int64_t due_read;      /* every due bucket <= this was read: their buyers are in memory (or
                            evicted with an append to a later bucket in due_add) */
  due_append_t *due_add; /* ids to append to due buckets with the next write */
  bool *due_add_cold;    /* per append: of buyers evicted */
  uint32_t ndue_add;
  int64_t *due_del; /* buckets the write under way deletes */
  uint32_t ndue_del;
  /* This batch only. */
  bool in_batch, timers_touched, needs_done;
  int64_t new_timers_min;
  int32_t need_from, need_to, seen_req_from, seen_req_to;
  int load_reply, seen_reply, buyers_reply, due_reply;
  kefu_strv_t need_ids; /* buyers asked for by id */
  kefu_map_t asked;     /* ids asked for in this batch (id -> 1) */
  int64_t due_req_to;   /* due_read after the due read under way */
} shop_entry_t;

/* A pending timer in its task's queue: the queue orders them; the owner holds them. */
typedef struct timer_ref {
  int64_t deadline;
  kefu_timer_order_t order;
  shop_entry_t *e;
  kefu_buyer_t *buyer; /* NULL: a shop-wide timer */
} timer_ref_t;

typedef struct timer_heap {
  timer_ref_t *v;
  size_t n, cap;
} timer_heap_t;

typedef struct task {
  bool assigned;
  int id;
  uint32_t generation; /* bumped at each assignment and revocation: a record read under
                          another generation is not this assignment's to process */
  queue_t q[KEFU_KEYED_INPUTS];
  int64_t watermark;                      /* highest valid ts - lateness; INT64_MIN before any */
  int64_t next_offset[KEFU_KEYED_INPUTS]; /* position after the batch; -1 unknown */
  json_t *timer_index;      /* shop_id -> earliest timer deadline (cache of ns:{task-N}:timers) */
  int64_t last_input_ms;    /* wall clock of the last record read (idle advance) */
  kefu_map_t *pending_idle; /* idle-tick cause -> kefu_buf_t * found in Redis at
                               assignment, to emit again: they may not have committed */
  int64_t committed[KEFU_KEYED_INPUTS]; /* Kafka's committed offsets at assignment; -1 none */
  bool state_seen;        /* this instance saw ns:{task-N}:pos in Redis (state_check.c) */
  bool pos_stale;         /* the last position write failed: the next batch writes it */
  int64_t pos_watermark;  /* the watermark its positions carry: after its last committed batch */
  json_t *forget_later;   /* causes whose remembered outputs are to be dropped (committed) */
  timer_heap_t heap;      /* the pending timers of the task's shops in memory */
  bool check_remembered;  /* the next batch reads remembered outputs (first after assignment,
                             after a failed attempt, or after a batch that met inputs already
                             applied: the next inputs may have been processed too) */
  bool saw_applied;       /* this batch met an input whose state was already applied */
  bool missed_remembered; /* ... and had not read its remembered outputs (state_once) */
  bool starved;           /* the merge waits for a partition not read to its end */
  int64_t starved_since;  /* wall ms it has starved since, batch after batch; 0: it does not */
  bool awaits_schema;     /* the merge waits for a head whose schema the registry owes */
  bool schema_paused;     /* its partitions are paused for that (engine_registry_hold) */
} task_t;

/* Rank slots of kefu_queue_length_top per task (gauges.c). */
#define KEFU_QUEUE_TOP 3
/* An id escaped as a label value: every byte may double, plus the terminator. */
#define KEFU_LABEL_ID_MAX (2 * KEFU_ID_MAX + 4)

/* The engine's metrics, registered once (SPEC §8). */
typedef struct engine_metrics {
  kefu_metric_t *in[KEFU_T__COUNT], *out[KEFU_T__COUNT], *lag[MAX_TASKS][KEFU_KEYED_INPUTS];
  kefu_metric_t *watermark[MAX_TASKS];
  kefu_metric_t *processed, *dlq, *duplicates, *encode_errors, *commits, *aborts, *rebalances,
      *late, *producer_restarts, *redis_redirects;
  kefu_histogram_t *batch_seconds, *redis_seconds, *event_to_output;
  kefu_metric_t *timer_shops[MAX_TASKS];
  /* What `kefu status` cannot read from Kafka or Redis: which instance owns a task, when
   * it last committed it (epoch ms), and the group's generation. */
  kefu_metric_t *assigned[MAX_TASKS], *committed_at[MAX_TASKS], *generation;
  kefu_metric_t *queue_length[MAX_TASKS], *queue_top[MAX_TASKS][KEFU_QUEUE_TOP];
  char queue_top_shop[MAX_TASKS][KEFU_QUEUE_TOP][KEFU_LABEL_ID_MAX]; /* their shop labels */
  kefu_metric_t *open_timers[MAX_TASKS], *overdue[MAX_TASKS];
  int64_t last_gauges_ms;
  /* For the closing log line (and the bench that reads it). */
  uint64_t records, batches;
  int64_t first_batch_ms, last_commit_ms;
} engine_metrics_t;

struct kefu_processor {
  const kefu_processor_opts_t *o;
  engine_metrics_t m;
  rd_kafka_t *consumer, *producer, *courier_consumer;
  rd_kafka_topic_t *out_topics[KEFU_T__COUNT]; /* the producer's output topics (warm) */
  kefu_redis_t *redis;
  kefu_schemas_t *schemas;
  kefu_codec_t *codec;       /* the loop's: decoding inputs, encoding outputs (outputs.c) */
  kefu_registry_t *registry; /* NULL: the built-in ids; used by the loop thread only */
  int32_t fast_id[KEFU_T_SHOP_CONFIG + 1]; /* kefu_event_fast_id() per keyed input topic */
  kefu_courier_table_t couriers;
  kefu_rules_env_t env;
  kefu_map_t cache; /* shop_id -> shop_entry_t*: the owner cache */
  /* shop_id -> queue_away_t*: shops of our tasks that left memory with buyers queued
   * (ROUTE-11), for the queue gauges (gauges.c) */
  kefu_map_t queues_away;
  /* shop_id -> shop_acked_t*: the applied offsets Redis acknowledged of shops dropped
   * after a failed write, checked when they are read again (state_check.c) */
  kefu_map_t acked;
  size_t cache_bytes;
  uint64_t batch_no;
  uint64_t batches_made; /* batches taken from the merge (not only committed ones) */
  kefu_buf_t scratch;    /* encoding buffer */
  int partitions;
  task_t tasks[MAX_TASKS];
  char *enc_buf;
  size_t enc_cap;
  bool fatal;
  bool replay_flushed;            /* the flush ticks of --flush are made */
  bool paused;                    /* inputs paused while a batch is retried */
  int undelivered;                /* records of this batch not delivered (reports) */
  char undelivered_error[256];    /* the first one's topic, partition and error */
  int64_t last_consumer_error_ms; /* consumer errors are logged at most once a second */
  /* A Schema Registry unreachable while running (intake.c): records with an id it has not
   * answered for wait; no request is made before retry_at_ms. */
  struct registry_outage {
    bool down;
    int backoff_ms; /* the pause after the last failure */
    int64_t since_ms, retry_at_ms;
    char why[256]; /* the last failure */
  } reg;
  rd_kafka_message_t *courier_held; /* a courier-status record waiting for the registry;
                                       owned; the table reads nothing past it */
  int held_tasks;                   /* tasks held at the last engine_registry_hold */
  bool hold_shown;                  /* /readyz is held (kefu_http_hold) */
  /* The committer (committer.c): the Kafka side and positions of one batch at a time,
   * while the loop reads and computes the next. */
  pthread_t committer;
  bool committer_running, committer_quit;
  pthread_mutex_t job_lock;
  pthread_cond_t job_cond;
  struct commit_job *job;    /* in the committer's hands; NULL: none */
  bool job_done;             /* the committer is through with p->job */
  struct commit_job *failed; /* came back failed, in a rebalance callback: retried after it */
  int pos_pending;           /* positions commands waiting in p->redis's pipeline */
  bool pos_again;            /* they are those a failed write left (flush_pending) */
  uint64_t closed_commands, closed_round_trips; /* of closed connections (closing log) */
  bool pos_touched[MAX_TASKS]; /* the tasks they (or a failed earlier write) are for */
  /* After a failed write of what waits (flush_pending), idle: when it is tried again,
   * and the pause before the try after that. */
  int64_t pending_retry_ms;
  int pending_backoff_ms;
  /* The exact earliest timer deadline of shops written by the last batch: written to the
   * task's index with the next Redis write (the index holds a lower bound meanwhile). */
  struct index_entry {
    int task;
    char *shop;
    int64_t min;
  } * index_next;
  size_t nindex_next;
};

typedef struct batch {
  input_t **items;
  size_t n, cap;
} batch_t;

/* One encoded output record (outputs.c): its bytes are in a remembered value. */
typedef struct out_rec {
  uint8_t topic; /* kefu_topic_t */
  int64_t ts;
  size_t input; /* its cause: the input's index in the batch */
  const uint8_t *key, *val;
  uint32_t key_len, val_len;
} out_rec_t;

typedef struct batch_state {
  uint64_t batch_no;
  shop_entry_t **shops; /* every shop the batch reads or writes */
  size_t nshops;
  kefu_map_t remembered; /* cause -> kefu_buf_t * (outputs.c) read from Redis */
  kefu_buf_t **computed; /* per input of the batch: its outputs made now (to remember) */
  bool *kept;            /* per input: it has outputs (made now or remembered) to forget */
  size_t ninputs;
  out_rec_t *outs; /* every output in order, pointing into those values */
  size_t nouts, outs_cap;
  int64_t max_ts[MAX_TASKS]; /* per task: the batch's highest valid ts */
} batch_state_t;

/* A batch whose state is written, on its way through the committer: its Kafka side
 * (outputs and offsets), then its positions. */
typedef struct commit_job {
  batch_t b;
  batch_state_t bs;             /* its outputs (bs.shops already released) */
  int64_t watermark[MAX_TASKS]; /* the tasks' watermarks after the batch: its positions */
  int64_t start_ms, done_ms;
  int rc; /* ENGINE_DONE ... once done */
  char errstr[512];
} commit_job_t;

/* What an attempt at a batch (or its Kafka commit) left to do. */
enum {
  ENGINE_FATAL = -1,
  ENGINE_DONE = 0,
  ENGINE_RETRY = 1,        /* Redis or Kafka failed: the batch again, after a backoff */
  ENGINE_NEW_PRODUCER = 2, /* the producer is fenced or failed for good */
};

input_t *engine_queue_head(const queue_t *q);
/** @brief A zeroed input, from the pool of freed ones when it has one. */
input_t *engine_input_new(void);
/** @brief Frees what @p in holds and keeps it for engine_input_new. */
void engine_input_free(input_t *in);
/** @brief Frees the pool (at the processor's end). */
void engine_input_pool_clear(void);
void engine_queue_drop_all(queue_t *q);
int engine_poll_couriers(kefu_processor_t *p, bool to_end, char *errstr, size_t errlen);
void engine_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque);
void engine_enqueue(kefu_processor_t *p, rd_kafka_message_t *m);
/** @brief Decodes @p in (record and offset set) and queues it for task @p id's merge. */
void engine_enqueue_input(kefu_processor_t *p, input_t *in, kefu_topic_t t, int id);
/** @brief Applies one courier-status record (@p payload NULL: a tombstone).
 *  @returns 0 (applied, or skipped with a warning: a record the table cannot take), or 1
 *  when the Schema Registry is unreachable: the caller keeps the record and applies it
 *  again later (engine_poll_couriers). */
int engine_apply_courier(kefu_processor_t *p, const void *payload, size_t len, const void *key,
                         size_t key_len, int64_t offset);
/** @brief After the merge of each loop: pauses the partitions of tasks that wait for the
 *  Schema Registry (resumes them once they go on) and holds /readyz while any record
 *  waits for it (kefu_http_hold). */
void engine_registry_hold(kefu_processor_t *p);
/** @brief Pauses (@p pause) or resumes the partitions of @p l: the one place kefu pauses
 *  input (a retry: all of them; a task waiting for the registry; flow control: one
 *  partition). False when librdkafka refuses (logged, naming @p what); true for an empty
 *  list or a replay (which reads only as the merge asks). */
bool engine_set_paused(kefu_processor_t *p, const rd_kafka_topic_partition_list_t *l, bool pause,
                       const char *what);
/** @brief Pauses (@p pause) or resumes the keyed input partitions of task @p id. */
void engine_pause_task(kefu_processor_t *p, int id, bool pause);

/* Replay (replay.c): the source and sink of kefu_processor_opts_t.replay. */
/** @brief Sets up a replay: the tasks (all of them this instance's) and the courier table. */
int engine_replay_setup(kefu_processor_t *p, char *errstr, size_t errlen);
/** @brief Reads records into @p task's empty queues not at their end; -1 on a source error. */
int engine_replay_fill(kefu_processor_t *p, task_t *task, char *errstr, size_t errlen);
/** @brief The batch's DLQ and output records to the sink, in the order `run` produces them. */
int engine_replay_emit(kefu_processor_t *p, const batch_t *b, const batch_state_t *bs, char *errstr,
                       size_t errlen);
/** @brief Applies --shop-config's fields for @p shop_id to @p c; false: none apply. */
bool engine_config_override(const kefu_processor_t *p, const char *shop_id, kefu_shop_config_t *c);
/** @brief Adds one flush tick per task to @p b (SPEC §7 --flush). */
void engine_replay_flush_ticks(kefu_processor_t *p, batch_t *b);
void engine_take_ready(kefu_processor_t *p, task_t *task, batch_t *b, size_t max);
/** @brief Records waiting in the merge's queues, of every task but those waiting for the
 *  Schema Registry (their partitions are paused: their queues grow no more, and must not
 *  stop the polling that the other tasks need). */
size_t engine_queued(const kefu_processor_t *p);
void engine_batch_add(batch_t *b, input_t *in);
void engine_timer_index_key(const kefu_processor_t *p, int task, char *out, size_t outlen);
void engine_task_key(const kefu_processor_t *p, int task, char *out, size_t outlen);
/* ns:{task-N}:out, the task's remembered outputs (cause -> records). */
void engine_task_out_key(const kefu_processor_t *p, int task, char *out, size_t outlen);
/** @brief Sets in->cause: <topic>/<partition>/<offset>, or an idle tick's name. */
void engine_set_cause(input_t *in);
void engine_batch_state_clear(batch_state_t *bs);

/* Encoded outputs (outputs.c). */
/** @brief The records of @p em encoded as a remembered value (never NULL). */
kefu_buf_t *engine_outputs_encode(kefu_processor_t *p, const kefu_emitter_t *em,
                                  const kefu_topic_t *topic_of_kind, const char *cause);
/** @brief A remembered value read from Redis, checked (and converted from the JSON of
 *  older versions); NULL when it is not one kefu wrote. */
kefu_buf_t *engine_outputs_read(kefu_processor_t *p, const char *s, size_t n, const char *cause);
/** @brief Calls @p fn (may be NULL) for each record of a remembered value; the number of
 *  records, or -1 when it is malformed (or @p fn returned non-zero). */
int engine_outputs_each(const uint8_t *p, size_t n, int (*fn)(void *, const out_rec_t *),
                        void *arg);
/** @brief Appends the records of @p blob, caused by input @p input, to bs->outs. */
void engine_outputs_add(batch_state_t *bs, const kefu_buf_t *blob, size_t input);
/** @brief Frees a kefu_buf_t * value (kefu_map_clear); NULL: nothing. */
void engine_outputs_free(void *blob);
/** @brief Frees task->pending_idle (NULL after). */
void engine_pending_idle_free(task_t *task);

/* The owner cache (cache.c). */
uint64_t engine_event_hash(const char *id);
void engine_seen_put(seen_set_t *s, uint64_t h, int64_t ts);
bool engine_seen_get(const seen_set_t *s, uint64_t h, int64_t *ts);
void engine_seen_trim(seen_set_t *s, int64_t from_ts);
void engine_seen_clear(seen_set_t *s);
void engine_seen_note(shop_entry_t *e, uint64_t h, int64_t ts);
void engine_heap_push(timer_heap_t *h, const timer_ref_t *r);
void engine_heap_pop(timer_heap_t *h);
void engine_heap_add_shop(timer_heap_t *h, shop_entry_t *e);
shop_entry_t *engine_cache_get(kefu_processor_t *p, const char *shop_id);
shop_entry_t *engine_cache_add(kefu_processor_t *p, const char *shop_id, int task);
void engine_cache_drop(kefu_processor_t *p, shop_entry_t *e);
void engine_cache_drop_task(kefu_processor_t *p, int task);
void engine_cache_clear(kefu_processor_t *p);
void engine_cache_trim(kefu_processor_t *p);
/** @brief @p id may be a buyer Redis has for @p e but memory does not. */
bool engine_buyer_maybe_stored(const shop_entry_t *e, const char *id);
/** @brief Takes @p b, read from Redis, into @p e (unless memory has that buyer: then @p b
 *  is freed) and its timers into the task's queue. Returns the buyer held. */
kefu_buyer_t *engine_buyer_loaded(kefu_processor_t *p, shop_entry_t *e, kefu_buyer_t *b);
/** @brief Queues @p id for due bucket @p bucket with @p e's next write; @p cold: a buyer
 *  leaving memory. */
void engine_due_add(shop_entry_t *e, int64_t bucket, const char *id, bool cold);
/** @brief Frees the appends queued for @p e's next write. */
void engine_due_add_clear(shop_entry_t *e);
/** @brief Puts @p bucket in @p e's pending list (or marks it @p cold too). */
void engine_due_insert(shop_entry_t *e, int64_t bucket, bool cold);
/** @brief The earliest deadline @p e may have pending, buyers out of memory included. */
int64_t engine_due_min(const shop_entry_t *e);
int engine_load_state(kefu_processor_t *p, const batch_t *b, batch_state_t *bs, char *errstr,
                      size_t errlen);
void engine_run_rules(kefu_processor_t *p, const batch_t *b, batch_state_t *bs);
int engine_store_state(kefu_processor_t *p, const batch_t *b, batch_state_t *bs, int64_t max_ts,
                       char *errstr, size_t errlen);
int engine_kafka_commit(kefu_processor_t *p, const batch_t *b, const batch_state_t *bs,
                        char *errstr, size_t errlen);
/** @brief After the commit of @p b: its tasks' positions (@p watermark: the tasks'
 *  watermarks after it) and the HDEL of its remembered outputs, queued on p->redis for
 *  its next flush (engine_redis_flush takes their replies). */
void engine_append_positions(kefu_processor_t *p, const batch_t *b, const batch_state_t *bs,
                             const int64_t *watermark);
/** @brief The queued positions were written (@p ok) or not (@p why). */
void engine_positions_written(kefu_processor_t *p, bool ok, const char *why);
/** @brief Queues the exact timer-index entries of the last write (p->index_next) on
 *  p->redis; returns how many commands. */
int engine_append_index(kefu_processor_t *p);

/** @brief There is a producer (or a replay's sink) to commit a batch with. */
static inline bool engine_can_commit(const kefu_processor_t *p) {
  return p->producer || p->o->replay;
}

/* Gauges of queues and timers (gauges.c). */
/** @brief @p e leaves memory: its queue length is remembered for the queue gauges. */
void engine_queue_leaves(kefu_processor_t *p, const shop_entry_t *e);
/** @brief Shop @p shop_id is in memory again: what was remembered of it goes. */
void engine_queue_back(kefu_processor_t *p, const char *shop_id);
/** @brief kefu_queue_length{task} and kefu_queue_length_top of every assigned task. */
void engine_queue_gauges(kefu_processor_t *p);
/** @brief kefu_open_timers and kefu_oldest_overdue_timer_seconds of @p task at @p now. */
void engine_timer_gauges(kefu_processor_t *p, const task_t *task, int64_t now);
/** @brief @p task was revoked (-1: the end): its gauges read 0, its shops are forgotten. */
void engine_task_gauges_forget(kefu_processor_t *p, int task);

/* The committer (committer.c). */
int engine_committer_start(kefu_processor_t *p, char *errstr, size_t errlen);
void engine_committer_stop(kefu_processor_t *p);
/** @brief Hands @p job to the committer (which must be idle). */
void engine_commit_async(kefu_processor_t *p, commit_job_t *job);
/** @brief Waits for the job in the committer's hands; NULL when there is none. */
commit_job_t *engine_commit_wait(kefu_processor_t *p);
/** @brief Waits for the committer and books its job; one that failed is kept in
 *  p->failed for the loop to process again. Then writes the pending timer-index
 *  entries and positions, and those a failed write left. Before a rebalance is served
 *  and when the loop ends (the idle loop does the same, retrying with a backoff). */
void engine_pipeline_drain(kefu_processor_t *p);
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

/* What Redis acknowledged of a shop that left memory after a failed write. */
typedef struct shop_acked {
  int task;
  int64_t offsets[KEFU_KEYED_INPUTS]; /* -1: none */
} shop_acked_t;

/** @brief Keeps @p e's acknowledged applied offsets before it leaves memory after a failed
 *  write, so that reading it again can tell a Redis that lost them. state_check.c. */
void engine_acked_keep(kefu_processor_t *p, const shop_entry_t *e);

/** @brief @p e just read from Redis: KEFU_STORE_WENT_BACK with @p errstr when an applied
 *  offset is below one Redis acknowledged before (engine_acked_keep), else 0. */
int engine_acked_check(kefu_processor_t *p, const shop_entry_t *e, char *errstr, size_t errlen);

/** @brief Forgets the acknowledged offsets of @p task's shops (-1: of every task). */
void engine_acked_forget(kefu_processor_t *p, int task);

/** @brief Refuses to go on (logged with the remedy, /readyz 503, p->fatal): Redis went
 *  back, @p what says where. */
void engine_state_went_back(kefu_processor_t *p, const char *what);
/** @brief Sends p->redis's pipeline; the replies of the caller's commands (positions queued
 *  before them are taken out) and their number, or -1. */
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

/** @brief Queues every started command on @p conn; returns how many. */
int engine_task_out_send(kefu_redis_t *conn, task_out_cmds_t *tc);

#endif
