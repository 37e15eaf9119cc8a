/* The processor behind `kefu run`: poll -> merge per task -> load state -> apply rules ->
 * store state -> produce -> commit (docs/ARCHITECTURE.md). */
#ifndef KEFU_ENGINE_PROCESSOR_H
#define KEFU_ENGINE_PROCESSOR_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "io/archive.h"
#include "io/registry.h"

#include "rules/rules.h"
#include "store/redis.h"

/* Replay (SPEC §7): the records come from a source instead of a consumer group and the
 * outputs go to a sink instead of a producer; everything between is the engine of `run`.
 * A record is an archived one (io/archive.h: offset, Kafka timestamp, key, value or a
 * tombstone, headers; topic and partition as the source or sink sets them), owned by
 * whoever holds it and freed with kefu_archived_clear. */
typedef kefu_archived_header_t kefu_rec_header_t;
typedef kefu_archived_t kefu_rec_t;

typedef struct kefu_replay_io {
  int partitions; /* of each keyed input topic: the tasks */
  /* The next record of keyed input topic @p topic (kefu_topic_t 0..3) and @p partition, in
   * offset order, into @p out (moved to the engine): 1, 0 at its end, -1 with @p errstr. */
  int (*next)(void *arg, int topic, int partition, kefu_rec_t *out, char *errstr, size_t errlen);
  /* The next courier-status record (every partition, in order): 1, 0 at the end, -1. */
  int (*next_courier)(void *arg, kefu_rec_t *out, char *errstr, size_t errlen);
  /* One output (or DLQ) record, in the order `run` produces them, from one thread at a
   * time: 0, or -1 with @p errstr (the replay fails). */
  int (*emit)(void *arg, int topic, const kefu_rec_t *r, char *errstr, size_t errlen);
  void *arg;
} kefu_replay_io_t;

typedef struct kefu_processor_opts {
  const char *bootstrap, *group_id, *instance_id, *transactional_id_prefix;
  kefu_redis_opts_t redis;       /* redis.url, .user, .password, .timeout_ms, .cluster, .wait_* */
  kefu_registry_opts_t registry; /* schema.registry.*: .url "" = the built-in ids */
  /* Set by a signal while kefu_processor_new waits for the registry (NULL: never). */
  volatile sig_atomic_t *stop;
  const char *redis_namespace;
  bool exactly_once;
  int task_idle_ms, batch_max_records, batch_max_ms, redis_retry_max_ms;
  int64_t lateness_ms;
  bool idle_advance; /* SPEC §1.3: live mode only; replays keep it off */
  int64_t idle_advance_ms;
  bool pipeline; /* the Kafka commit of batch N overlaps batch N+1 (committer.c) */
  double
      state_cache_mb; /* the owner cache's budget (MiB); 0: read every shop again for each batch */
  kefu_rule_params_t params;
  char **kafka_props; /* "key=value" pass-through to every Kafka client */
  int nkafka_props;
  /* Stop after this many idle polls with every partition at its end (tests, demo); 0 = never. */
  int exit_when_idle_polls;
  /* Replay instead of a consumer group and a producer (NULL: `run`). With replay_flush,
   * every pending timer fires after the last record (cause flush-<partition>). */
  const kefu_replay_io_t *replay;
  bool replay_flush;
  /* --shop-config: shop_id (or "*": every shop) -> fields that override the shop's config,
   * from the start (a replay's what-if); NULL: none. */
  const json_t *shop_overrides;
  /* Called after each committed batch with the records processed so far (kefu demo's
   * progress line); NULL: none. From the loop's thread or the committer's. */
  void (*on_progress)(void *arg, uint64_t records);
  void *progress_arg;
} kefu_processor_opts_t;

typedef struct kefu_processor kefu_processor_t;

/** @brief Connects to Kafka and Redis, checks co-partitioning, and reads the courier
 *  table to its end. NULL with @p errstr on failure. @p opts must outlive the processor. */
kefu_processor_t *kefu_processor_new(const kefu_processor_opts_t *opts, char *errstr,
                                     size_t errlen);

/** @brief Runs until *@p stop is set (SIGINT/SIGTERM): the open batch is finished or
 *  aborted, offsets committed, the group left. 0 on a clean stop, -1 on a fatal error. */
int kefu_processor_run(kefu_processor_t *p, volatile sig_atomic_t *stop);

void kefu_processor_destroy(kefu_processor_t *p);

#endif
