/* The schema table: every Avro schema kefu knows, by Confluent schema id (SPEC 1.2).
 *
 * Built once from the embedded schemas/ids.tsv and schemas/<name>.avsc files (kefu_schemas_new).
 * A Schema Registry client adds the ids it learns at run time with kefu_schemas_add
 * (and pins the id kefu writes with kefu_schemas_set_current); callers that only look
 * schemas up by id or topic never notice where an id came from.
 *
 * avro-c parses the schemas but ignores field defaults, so the table also keeps each
 * schema's JSON and, per record type, the default of every field: the codec fills the
 * fields a record lacks (an older writer, or a JSON record that omits them) from there.
 *
 * @locality Not synchronised: build the table and add ids before sharing it between
 * threads, or add them from the one thread that also looks them up. Lookups on a table
 * nobody modifies are safe from any thread. */
#ifndef KEFU_IO_SCHEMAS_H
#define KEFU_IO_SCHEMAS_H

#include <avro.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "io/topics.h"

typedef struct kefu_schemas kefu_schemas_t;

/** @brief Builds the table from the embedded schemas/ids.tsv and the schemas it names.
 *  @returns the table, owned by the caller (kefu_schemas_destroy), or NULL with the
 *  reason in @p errstr. */
kefu_schemas_t *kefu_schemas_new(char *errstr, size_t errlen);

/** @brief Frees the table and every schema in it. NULL is a no-op. */
void kefu_schemas_destroy(kefu_schemas_t *s);

/** @brief Adds schema @p id for @p topic from its JSON text (@p len bytes).
 *  The schema must be a record, parse with avro-c, and every field default must be
 *  valid for its type. The new id becomes the topic's current one when it is the
 *  highest id of that topic. Adding an id again with the same topic and text is a no-op.
 *  @returns 0, or -1 with the reason in @p errstr (table unchanged). */
int kefu_schemas_add(kefu_schemas_t *s, int32_t id, kefu_topic_t topic, const char *json,
                     size_t len, char *errstr, size_t errlen);

/** @brief Makes @p id (already added, of @p topic) the schema kefu writes @p topic with,
 *  e.g. the id a Schema Registry assigned to kefu's own schema.
 *  @returns 0, or -1 when @p id is unknown or belongs to another topic. */
int kefu_schemas_set_current(kefu_schemas_t *s, kefu_topic_t topic, int32_t id);

/** @brief The id kefu writes @p topic with (by default the highest id of the topic),
 *  or -1 when the topic has no schema (the DLQ) or its current schema is unlisted. */
int32_t kefu_schemas_current_id(const kefu_schemas_t *s, kefu_topic_t topic);

/** @brief With a Schema Registry the built-in ids mean nothing on the wire: every schema
 *  now in the table stays the current (reader's) schema of its topic (kefu_schemas_current,
 *  kefu_schemas_current_text) but is no longer found by its id, and the id is free for
 *  what the registry assigns. Ids added later are listed as usual; a topic's unlisted
 *  current schema changes only by kefu_schemas_set_current(). */
void kefu_schemas_unlist(kefu_schemas_t *s);

/** @brief The JSON text of the current schema of @p topic (listed or not), or NULL. */
const char *kefu_schemas_current_text(const kefu_schemas_t *s, kefu_topic_t topic);

/** @brief The schema with @p id, or NULL when unknown; its topic in @p *topic_out when
 *  @p topic_out is not NULL. The schema is borrowed: it lives as long as the table. */
avro_schema_t kefu_schemas_by_id(const kefu_schemas_t *s, int32_t id, kefu_topic_t *topic_out);

/** @brief The schema kefu writes @p topic with, or NULL (borrowed). */
avro_schema_t kefu_schemas_current(const kefu_schemas_t *s, kefu_topic_t topic);

/** @brief The JSON text of schema @p id as it was added (NUL-terminated, borrowed), or
 *  NULL when unknown; what a registry client registers. */
const char *kefu_schemas_text(const kefu_schemas_t *s, int32_t id);

/** @brief The default of field @p index of @p record, a record type of any schema in the
 *  table (the top-level one or a nested one), in Avro's JSON form, which for kefu's
 *  unions of ["null", X] is also kefu's plain JSON form. Borrowed; NULL when the field
 *  has no default or @p record is not in the table. A default of null is json_null(). */
const json_t *kefu_schemas_field_default(const kefu_schemas_t *s, avro_schema_t record,
                                         size_t index);

#endif
