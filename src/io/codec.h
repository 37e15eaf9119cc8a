/* The value codec: Confluent wire format (SPEC 1.2) <-> kefu's plain JSON form.
 *
 * A framed value is byte 0x00, the schema id as 4 bytes big-endian, then the Avro
 * binary datum. The codec is generic: it knows no topic's fields, only the schemas in
 * the table (io/schemas.h), and it does no I/O, so it is tested alone. avro-c reads and
 * writes the Avro binary; the codec frames it, converts avro-c's values to and from
 * JSON, and validates every frame before avro-c reads it (see codec.c for why).
 *
 * The plain JSON form: field names as in the schema, enums as their symbol strings,
 * unions ["null", X] as null or the bare value (no Avro-JSON wrappers), arrays as
 * arrays, maps as objects with their keys in byte order, longs as JSON integers.
 *
 * @locality A codec is used by one thread at a time; give each thread its own (they
 * may share one schema table, see io/schemas.h). */
#ifndef KEFU_IO_CODEC_H
#define KEFU_IO_CODEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/record.h"
#include "io/schemas.h"
#include "io/topics.h"

typedef struct kefu_codec kefu_codec_t;

/** Bytes in front of the Avro datum: magic byte 0x00 and the 4-byte schema id. */
#define KEFU_CODEC_HEADER_LEN 5

/** @brief A codec over @p schemas, which is borrowed and must outlive the codec.
 *  @returns the codec (kefu_codec_destroy), or NULL when out of memory. */
kefu_codec_t *kefu_codec_new(kefu_schemas_t *schemas);

/** @brief Frees the codec. NULL is a no-op. */
void kefu_codec_destroy(kefu_codec_t *c);

/** @brief The schema id of a framed value (byte 0x00, then the id big-endian) in @p *id;
 *  false when @p buf is not framed (too short, another magic byte). */
bool kefu_codec_frame_id(const void *buf, size_t len, int32_t *id);

/** @brief Decodes a framed value of @p topic, written with any known schema id of that
 *  topic (the writer's schema), into the plain JSON form.
 *
 *  Fields are read by name from the writer's schema; fields that the writer's schema
 *  lacks but the topic's current schema has get the current schema's default (in
 *  nested records too). Any byte string is safe to pass: every length, count and index
 *  is checked against the buffer and the schema before use. Of repeated map keys the
 *  last wins, except in maps whose values hold arrays or maps, where they are an error.
 *  @returns 0 with a new JSON object in @p *out (owned by the caller), or -1 with a
 *  short reason in @p errstr: "bad framing: ...", "unknown schema id 99",
 *  "schema id 5 belongs to topic kefu.shop.config", "avro: <what> at <field path>",
 *  "avro: 3 trailing bytes". */
int kefu_codec_decode(kefu_codec_t *c, kefu_topic_t topic, const void *buf, size_t len,
                      json_t **out, char *errstr, size_t errlen);

/** @brief Encodes the JSON object @p rec with the current schema of @p topic into a
 *  framed value.
 *
 *  A field that is missing, or null where the schema does not allow null, takes the
 *  schema's default (an error when it has none); JSON null for an array or a map reads
 *  as empty; map entries are written in key order (byte-wise), so equal records give
 *  equal bytes. ints must be JSON integers within 32 bits, longs JSON integers, doubles
 *  any JSON number. Unknown fields are an error.
 *  The frame is written to @p *buf, which is grown with realloc as needed (@p *buf may
 *  be NULL with @p *cap 0; both are updated, and the buffer stays the caller's);
 *  @p *len gets the frame's length.
 *  @returns 0, or -1 with the reason in @p errstr naming the field path, e.g.
 *  "unknown field groups[0].colour", "groups[1].strategy: unknown symbol FOO",
 *  "ts: missing required field". */
int kefu_codec_encode(kefu_codec_t *c, kefu_topic_t topic, const json_t *rec, char **buf,
                      size_t *cap, size_t *len, char *errstr, size_t errlen);

/** @brief As kefu_codec_encode(), from the flat record @p rec (common/record.h), which
 *  reads as the JSON object kefu_record_to_json() gives: the same rules, errors and
 *  bytes, without building the JSON. This is how the engine encodes what the rules
 *  emit. */
int kefu_codec_encode_record(kefu_codec_t *c, kefu_topic_t topic, const kefu_record_t *rec,
                             char **buf, size_t *cap, size_t *len, char *errstr, size_t errlen);

/** @brief Prints any JSON value compactly (`{"a":1,"b":"x"}`), objects in their
 *  insertion order (the schema's field order for decoded records, key order for maps),
 *  strings escaped as jansson does (UTF-8 passes through), reals in the shortest form
 *  that reads back as the same double, laid out as Python's repr() (0.4, not
 *  0.40000000000000002; 0.0 stays a real; 1e-05, 1e+16).
 *  @returns the length and a NUL-terminated string in @p *out (free() it), or -1 with
 *  @p *out NULL when out of memory. */
int kefu_json_dumps_record(const json_t *rec, char **out);

/** @brief As kefu_json_dumps_record(), into the caller's reusable buffer @p *buf of
 *  @p *cap bytes (grown with realloc as needed; may start NULL/0), for hot loops.
 *  @returns the length of the NUL-terminated text, or -1 when out of memory. */
int kefu_json_dumpb_record(const json_t *rec, char **buf, size_t *cap);

/** @brief 1 when @p p is UTF-8 as jansson accepts it (NUL bytes pass), else 0: what the
 *  codec and the binary fast path (engine/event_decode.c) accept in a string. */
int kefu_codec_utf8_ok(const uint8_t *p, size_t n);

/** @brief Reads one Avro long (zigzag varint) at *@p p, advancing it: 0, -1 when the
 *  data ends first, -2 when the varint is longer than 64 bits. The codec's and the
 *  binary fast path's reader. */
int kefu_avro_read_long(const uint8_t **p, const uint8_t *end, int64_t *out);

/** @brief Checks the Avro datum of schema @p w that starts at *@p p (data up to @p end)
 *  with the codec's validator: every length, count, union branch and enum index
 *  against the bytes left, strings UTF-8, nothing allocated. Datums that pass are safe
 *  for avro_value_read(). On success *@p p moves past the datum (more may follow: the
 *  records of an Avro container block, io/archive.c).
 *  @returns 0, or -1 with "avro: <what> at <field path>" in @p errstr. */
int kefu_avro_check_datum(avro_schema_t w, const uint8_t **p, const uint8_t *end, char *errstr,
                          size_t errlen);

#endif
