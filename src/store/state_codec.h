/* The compact, versioned encoding of kefu's state in Redis (docs/STATE.md).
 *
 * A value is one version byte (KEFU_STATE_VERSION) and then fields, protobuf-like: a key
 * varint (field_number << 3 | wire_type), wire types 0 varint (signed: zigzag), 1 eight
 * bytes little-endian (doubles), 2 length-delimited (strings, nested messages, packed
 * varints). Absent and default values are not written; unknown fields are skipped, so a
 * newer kefu may add fields. docs/STATE.md lists every record's field numbers.
 *
 * Encoders append to a kefu_buf_t and never fail; they allocate only to grow the buffer.
 * Decoders never read past @p n nor crash on any input (they read Redis, which an
 * operator may have edited): they return 0, or -1 with a reason in @p errstr. The entity
 * id is not part of the value (it is the Redis hash field): decoders take it. */
#ifndef KEFU_STORE_STATE_CODEC_H
#define KEFU_STORE_STATE_CODEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "rules/model.h"

#define KEFU_STATE_VERSION 1
#define KEFU_STATE_TEXT_MAX 4096       /* free-text strings (intent, tags, tracking_no, ...) */
#define KEFU_STATE_LIST_MAX (1u << 20) /* elements of one repeated field */

/* A reusable output buffer: reset keeps the memory. */
typedef struct kefu_buf {
  uint8_t *p;
  size_t n, cap;
} kefu_buf_t;

void kefu_buf_reset(kefu_buf_t *b);
void kefu_buf_free(kefu_buf_t *b);
/** @brief Appends @p n bytes. */
void kefu_buf_append(kefu_buf_t *b, const void *p, size_t n);

/* ---- entities (hash fields of ns:{S}:agents, :buyers, :orders): fresh heap entities */

void kefu_state_encode_agent(kefu_buf_t *out, const kefu_agent_t *a);
/** @brief *@p out: a new agent (kefu_agent_free) with id @p id, or NULL on error. */
int kefu_state_decode_agent(const uint8_t *p, size_t n, const char *id, kefu_agent_t **out,
                            char *errstr, size_t errlen);

/* A buyer's value includes its pending timers (buyer->timers, NULL when none). */
void kefu_state_encode_buyer(kefu_buf_t *out, const kefu_buyer_t *b);
int kefu_state_decode_buyer(const uint8_t *p, size_t n, const char *id, kefu_buyer_t **out,
                            char *errstr, size_t errlen);

void kefu_state_encode_order(kefu_buf_t *out, const kefu_order_t *o);
int kefu_state_decode_order(const uint8_t *p, size_t n, const char *id, kefu_order_t **out,
                            char *errstr, size_t errlen);

/* ---- shop-wide records (members of kefu_shop_t): decoded into @p out, which is replaced
 * (its old content freed, changed flags false) on success and untouched on error. */

/* ns:{S}:cfg. Fields equal to kefu_config_defaults() are not written. */
void kefu_state_encode_config(kefu_buf_t *out, const kefu_shop_config_t *c);
int kefu_state_decode_config(const uint8_t *p, size_t n, kefu_shop_config_t *out, char *errstr,
                             size_t errlen);

/* ns:{S}:meta fields "queue", "rate", "timers". */
void kefu_state_encode_queue(kefu_buf_t *out, const kefu_queue_t *q);
int kefu_state_decode_queue(const uint8_t *p, size_t n, kefu_queue_t *out, char *errstr,
                            size_t errlen);
void kefu_state_encode_rate(kefu_buf_t *out, const kefu_rate_t *r);
int kefu_state_decode_rate(const uint8_t *p, size_t n, kefu_rate_t *out, char *errstr,
                           size_t errlen);
void kefu_state_encode_timers(kefu_buf_t *out, const kefu_timers_t *t);
int kefu_state_decode_timers(const uint8_t *p, size_t n, kefu_timers_t *out, char *errstr,
                             size_t errlen);

/* One timer as a value of its own (the same message as inside buyers and shop timers). */
void kefu_state_encode_timer(kefu_buf_t *out, const kefu_timer_t *t);
int kefu_state_decode_timer(const uint8_t *p, size_t n, kefu_timer_t *out, char *errstr,
                            size_t errlen);

/* Queue and rate records own memory the model has no function for. */
/** @brief The pending due buckets of a shop (meta `due`): @p n ascending bucket numbers,
 *  at least one. */
void kefu_state_encode_due(kefu_buf_t *out, const int64_t *v, uint32_t n);
/** @brief Decodes a due list into a fresh array *@p v (free()) of *@p count buckets. */
int kefu_state_decode_due(const uint8_t *p, size_t n, int64_t **v, uint32_t *count, char *errstr,
                          size_t errlen);
void kefu_state_queue_clear(kefu_queue_t *q);
void kefu_state_rate_clear(kefu_rate_t *r);

/* ---- JSON views for operators (`kefu state show`): field names as in rules/model.h,
 * enums as their symbols, absent strings null. New references (json_decref). */

json_t *kefu_state_agent_json(const kefu_agent_t *a);
json_t *kefu_state_buyer_json(const kefu_buyer_t *b);
json_t *kefu_state_order_json(const kefu_order_t *o);
json_t *kefu_state_config_json(const kefu_shop_config_t *c);
json_t *kefu_state_queue_json(const kefu_queue_t *q);
json_t *kefu_state_rate_json(const kefu_rate_t *r);
json_t *kefu_state_timers_json(const kefu_timers_t *t); /* NULL: [] */
json_t *kefu_state_timer_json(const kefu_timer_t *t);

#endif
