/* Event-time timers (SPEC §1.3). A timer belongs to a shop and lives in the shop's
 * Redis zset ns:{S}:timers, scored by its deadline, so it is written and removed
 * atomically with the shop's state and survives a restart or a move to another
 * instance. It fires when the task's watermark becomes greater than its deadline; timers
 * fire in (deadline, creation) order, creation being the merge position of the input
 * whose processing made the timer plus a counter.
 *
 * Timers are never cancelled: a handler checks whether what it was set for still holds
 * (a wait already met, a session already closed) and then does nothing. That keeps a
 * cancellation from needing a read of the zset, and stale timers leave with their
 * deadline. */
#ifndef KEFU_ENGINE_TIMERS_H
#define KEFU_ENGINE_TIMERS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ids.h"

typedef struct kefu_timer {
  int64_t deadline;
  char order[64]; /* creation order, fixed width, compares bytewise */
  char kind[32];  /* what fires: the rule family's name for it */
  char shop_id[KEFU_ID_MAX + 1];
  char buyer_id[KEFU_ID_MAX + 1]; /* "" when the timer is not a buyer's */
  json_t *payload;                /* owned; an object */
  char *member;                   /* the zset member as read from Redis; owned, may be NULL */
} kefu_timer_t;

/** @brief The zset member of @p t: "order|kind|buyer|payload-json"; caller frees. */
char *kefu_timer_member(const kefu_timer_t *t);

/** @brief Parses a zset member with its score (the deadline) for shop @p shop_id.
 *  Returns a new timer, or NULL when the member is not one kefu wrote. */
kefu_timer_t *kefu_timer_parse(const char *member, size_t len, int64_t deadline,
                               const char *shop_id);

void kefu_timer_free(kefu_timer_t *t);

/** @brief Creation order of the n-th timer made while processing the input at merge
 *  position (ts, rank, offset): fixed-width so that bytewise order is creation order. */
void kefu_timer_order(char *out, size_t outlen, int64_t ts, int rank, int64_t offset, int n);

/* A task's timers that may fire during a batch, in (deadline, creation) order. */
typedef struct kefu_timer_queue {
  kefu_timer_t **items;
  size_t n, cap;
} kefu_timer_queue_t;

/** @brief Adds @p t (owned by the queue from now on) in its place. */
void kefu_timer_queue_add(kefu_timer_queue_t *q, kefu_timer_t *t);

/** @brief Removes and returns the first timer whose deadline is < @p watermark, or NULL.
 *  With @p shop_id and @p buyer_id, only that buyer's timers qualify (SPEC §1.3: a chat
 *  event first fires its own buyer's timers earlier than its ts). Caller owns it. */
kefu_timer_t *kefu_timer_queue_pop_due(kefu_timer_queue_t *q, int64_t watermark,
                                       const char *shop_id, const char *buyer_id);

void kefu_timer_queue_clear(kefu_timer_queue_t *q);

#endif
