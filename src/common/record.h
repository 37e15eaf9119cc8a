/* An output record as the rules build it: a flat list of named, typed values, in the
 * shape of its topic's schema (the .avsc files of schemas/), without a JSON tree.
 *
 * Why not jansson: a record used to be a json_t built with json_pack, then walked by
 * name to fill avro-c's generic value and freed: about forty allocations, a hash table
 * and a format string parsed per record, a fifth of kefu's CPU on the bench. A flat
 * record is one struct and one buffer for its strings; the codec
 * (kefu_codec_encode_record, io/codec.h) sets avro-c's value from it with the same
 * rules as from JSON, so the bytes are the same. Values a flat list cannot say (arrays
 * of records, maps: a deliverability card's results, a rate record's cause counts) stay
 * JSON values inside the record (kefu_record_json).
 *
 * Setting a field that is already set replaces its value, as json_object_set does (the
 * JSON form keeps the field's first place). Field names are borrowed: string literals or
 * static tables. */
#ifndef KEFU_COMMON_RECORD_H
#define KEFU_COMMON_RECORD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEFU_RECORD_MAX_FIELDS 24 /* sets, counting a field set again */

typedef enum kefu_field_kind {
  KEFU_FIELD_NULL = 0,
  KEFU_FIELD_BOOL,
  KEFU_FIELD_INT, /* a JSON integer: int or long, by the schema */
  KEFU_FIELD_REAL,
  KEFU_FIELD_STR,
  KEFU_FIELD_JSON /* any JSON value (owned), encoded as the codec encodes JSON */
} kefu_field_kind_t;

typedef struct kefu_field {
  const char *name; /* borrowed, static */
  kefu_field_kind_t kind;
  uint32_t len; /* KEFU_FIELD_STR: bytes, the NUL not counted */
  union {
    int64_t i; /* BOOL and INT */
    double d;
    size_t off; /* STR: where its NUL-terminated bytes start in the record's text */
    json_t *json;
  } v;
} kefu_field_t;

typedef struct kefu_record {
  kefu_field_t fields[KEFU_RECORD_MAX_FIELDS];
  uint32_t n;
  bool overflow; /* more fields than KEFU_RECORD_MAX_FIELDS were set: encoding fails */
  char *text;    /* owned: the strings' bytes */
  size_t text_len, text_cap;
} kefu_record_t;

/** @brief An empty record (owns nothing yet). */
void kefu_record_init(kefu_record_t *r);
/** @brief Frees what the record owns; it is empty again. */
void kefu_record_clear(kefu_record_t *r);

/** @brief Sets @p name to a copy of @p s, or to null when @p s is NULL. */
void kefu_record_str(kefu_record_t *r, const char *name, const char *s);
void kefu_record_int(kefu_record_t *r, const char *name, int64_t i);
void kefu_record_bool(kefu_record_t *r, const char *name, bool b);
void kefu_record_real(kefu_record_t *r, const char *name, double d);
void kefu_record_null(kefu_record_t *r, const char *name);
/** @brief Sets @p name to @p j (stolen), or to null when @p j is NULL. */
void kefu_record_json(kefu_record_t *r, const char *name, json_t *j);

/** @brief The field @p name, or NULL when it is not set (borrowed). */
const kefu_field_t *kefu_record_get(const kefu_record_t *r, const char *name);
/** @brief The text of a KEFU_FIELD_STR field of @p r (borrowed until @p r changes). */
const char *kefu_record_text(const kefu_record_t *r, const kefu_field_t *f);
/** @brief The string field @p name, or NULL when it is not set or not a string. */
const char *kefu_record_get_str(const kefu_record_t *r, const char *name);

/** @brief The record as the JSON object json_pack would have built, fields in the order
 *  they were first set: for tests and diagnostics. Owned by the caller. */
json_t *kefu_record_to_json(const kefu_record_t *r);

#endif
