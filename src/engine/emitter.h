/* Collects the output records one cause produces, in order, and gives each its id
 * `<cause_event_id>-<kind letter><n>` (SPEC §3): n counts the records of that kind made
 * while processing that cause, so a replay reproduces every id. */
#ifndef KEFU_ENGINE_EMITTER_H
#define KEFU_ENGINE_EMITTER_H

#include <jansson.h>

#include "engine/shop.h"
#include "engine/timers.h"
#include "io/topics.h"

/* The effects of one cause besides state: output records and new timers. */
typedef struct kefu_emitter {
  const char *cause_event_id; /* borrowed */
  int counters[26];           /* per kind letter */
  int draws;                  /* ROUTE-7 draws made for this cause */
  json_t *records;            /* array of [topic id, record]; owned */
  /* Where the cause stands in the task's merge order: new timers' creation order. */
  int64_t cause_ts, cause_offset;
  int cause_rank, timers_made;
  kefu_timer_queue_t *timers; /* borrowed: the task's queue, so new timers can fire in
                                 this batch; NULL in unit tests that do not need it */
} kefu_emitter_t;

/** @brief Starts collecting for the cause with event id @p cause_event_id (borrowed). */
void kefu_emitter_init(kefu_emitter_t *e, const char *cause_event_id);
void kefu_emitter_clear(kefu_emitter_t *e);

/** @brief Appends @p rec (stolen) for @p topic, setting its id field @p id_field to the
 *  next id of kind @p letter, and cause_event_id. The caller sets shop_id and ts. */
void kefu_emit(kefu_emitter_t *e, kefu_topic_t topic, char letter, const char *id_field,
               json_t *rec);

/** @brief Appends @p rec (stolen) that already carries its id (a record of an earlier
 *  invitation's life, say), setting only cause_event_id. */
void kefu_emit_keep_id(kefu_emitter_t *e, kefu_topic_t topic, json_t *rec);

/** @brief Schedules a timer of @p kind for @p shop at @p deadline (payload stolen; may be
 *  NULL): written with the shop's state, and firing in this batch already if the
 *  watermark passes it. */
void kefu_schedule(kefu_emitter_t *e, kefu_shop_t *shop, int64_t deadline, const char *kind,
                   const char *buyer_id, json_t *payload);

#endif
