/* The processor behind `kefu run`: poll -> merge per task -> load state -> apply rules ->
 * store state -> produce -> commit (docs/ARCHITECTURE.md). */
#ifndef KEFU_ENGINE_PROCESSOR_H
#define KEFU_ENGINE_PROCESSOR_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rules/rules.h"

typedef struct kefu_processor_opts {
  const char *bootstrap, *group_id, *instance_id, *transactional_id_prefix;
  const char *redis_url, *redis_user, *redis_password, *redis_namespace;
  bool exactly_once;
  int task_idle_ms, batch_max_records, batch_max_ms, redis_timeout_ms, redis_retry_max_ms;
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
