/* Collects the output records one cause produces, in order, and gives each its id
 * `<cause_event_id>-<kind letter><n>` (SPEC §3): n counts the records of that kind made
 * while processing that cause, so a replay reproduces every id. */
#ifndef KEFU_ENGINE_EMITTER_H
#define KEFU_ENGINE_EMITTER_H

#include <jansson.h>

#include "io/topics.h"

typedef struct kefu_emitter {
  const char *cause_event_id; /* borrowed */
  int counters[26];           /* per kind letter */
  json_t *records;            /* array of [topic id, record]; owned */
} kefu_emitter_t;

/** @brief Starts collecting for the cause with event id @p cause_event_id (borrowed). */
void kefu_emitter_init(kefu_emitter_t *e, const char *cause_event_id);
void kefu_emitter_clear(kefu_emitter_t *e);

/** @brief Appends @p rec (stolen) for @p topic, setting its id field @p id_field to the
 *  next id of kind @p letter, and cause_event_id. The caller sets shop_id and ts. */
void kefu_emit(kefu_emitter_t *e, kefu_topic_t topic, char letter, const char *id_field,
               json_t *rec);

#endif
