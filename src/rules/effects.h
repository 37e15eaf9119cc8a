/* The effects of one cause besides state: output records and new timers (SPEC §1.3, §3).
 *
 * Every output record has a kind; one table (kefu_record_kinds) says its topic, the
 * letter of its ids and the field that holds the id. An id is
 * `<cause_event_id>-<letter><n>`: n counts the records of that kind made while
 * processing that cause, so a replay reproduces every id. Records are flat records
 * (common/record.h) in the shape of their topic's schema (the .avsc files of schemas/);
 * the rule unit tests encode every record they see with the real codec, so a misspelled
 * field or symbol fails a test. */
#ifndef KEFU_RULES_EFFECTS_H
#define KEFU_RULES_EFFECTS_H

#include "common/record.h"
#include "rules/model.h"

typedef enum kefu_record_kind {
  KEFU_REC_DECISION = 0,   /* routing.decisions, RoutingDecision */
  KEFU_REC_CARD,           /* service.cards, ServiceCard */
  KEFU_REC_INVITATION,     /* logistics.invitations, LogisticsInvitation */
  KEFU_REC_RESPONSE_EVENT, /* response.events, ResponseEvent */
  KEFU_REC_RATE_RECORD,    /* response.violations, ResponseRateRecord */
  KEFU_REC_INSIGHT,        /* inquiry.insights, InquiryInsight */
  KEFU_REC__COUNT
} kefu_record_kind_t;

typedef struct kefu_record_kind_info {
  const char *topic_suffix; /* the topic's name after the prefix (io/topics.c) */
  char letter;              /* of the record's id */
  const char *id_field;
} kefu_record_kind_info_t;

extern const kefu_record_kind_info_t kefu_record_kinds[KEFU_REC__COUNT];

typedef struct kefu_output {
  kefu_record_kind_t kind;
  kefu_record_t rec; /* owned */
} kefu_output_t;

/* A new timer, as the engine sees it: its shop, its owner (buyer id, or NULL for a
 * shop-wide timer) and the timer. The hook queues it so it can fire in this batch. */
typedef void (*kefu_timer_hook_t)(void *arg, kefu_shop_t *shop, const char *buyer_id,
                                  const kefu_timer_t *t);

typedef struct kefu_emitter {
  const char *cause_event_id; /* borrowed */
  int counters[KEFU_REC__COUNT];
  int draws; /* ROUTE-7 draws made for this cause */
  kefu_output_t *records;
  size_t n, cap;
  /* Where the cause stands in the task's merge order: new timers' creation order. */
  int64_t cause_ts, cause_offset;
  int cause_rank, timers_made;
  kefu_timer_hook_t on_timer; /* may be NULL */
  void *on_timer_arg;
} kefu_emitter_t;

/** @brief Starts collecting for the cause with event id @p cause_event_id (borrowed). */
void kefu_emitter_init(kefu_emitter_t *e, const char *cause_event_id);
/** @brief Frees the records still held. */
void kefu_emitter_clear(kefu_emitter_t *e);

/** @brief Appends @p rec of @p kind, setting its id field to the next id of the kind
 *  and cause_event_id. What @p rec owns moves to the emitter (@p rec is left empty).
 *  The caller sets shop_id and ts. Returns the id (borrowed from the emitter's copy,
 *  good until the emitter is cleared). */
const char *kefu_emit(kefu_emitter_t *e, kefu_record_kind_t kind, kefu_record_t *rec);

/** @brief Appends @p rec (moved, as kefu_emit) that already carries its id (a record of
 *  an earlier invitation's life, say), setting only cause_event_id. */
void kefu_emit_keep_id(kefu_emitter_t *e, kefu_record_kind_t kind, kefu_record_t *rec);

/** @brief Schedules a timer of @p kind at @p deadline for @p buyer_id (NULL: shop-wide)
 *  with payload a, b, ref_kind, ref (see kefu_timer_kind_t). The timer joins its owner's
 *  pending timers (state, written with the shop) and the engine's queue through the
 *  hook, so it fires in this batch already if the watermark passes it. */
void kefu_schedule(kefu_emitter_t *e, kefu_shop_t *shop, const char *buyer_id, int64_t deadline,
                   kefu_timer_kind_t kind, int64_t a, int64_t b, int32_t ref_kind, const char *ref);

#endif
