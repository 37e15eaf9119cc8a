/* The topics of SPEC §1.1, in one table: their default names (after the prefix), the
 * Avro schema file of their values, their direction and, for keyed inputs, the rank
 * that orders records of equal ts within a task (config < agent < order < chat). */
#ifndef KEFU_IO_TOPICS_H
#define KEFU_IO_TOPICS_H

#include <stdbool.h>

typedef enum kefu_topic {
  KEFU_T_CHAT = 0,
  KEFU_T_ORDER,
  KEFU_T_AGENT,
  KEFU_T_SHOP_CONFIG,
  KEFU_T_COURIER_STATUS,
  KEFU_T_ROUTING_DECISIONS,
  KEFU_T_LOGISTICS_INVITATIONS,
  KEFU_T_RESPONSE_VIOLATIONS,
  KEFU_T_RESPONSE_EVENTS,
  KEFU_T_SERVICE_CARDS,
  KEFU_T_INQUIRY_INSIGHTS,
  KEFU_T_DLQ,
  KEFU_T__COUNT
} kefu_topic_t;

#define KEFU_TOPIC_NONE ((kefu_topic_t)-1)

typedef struct kefu_topic_info {
  kefu_topic_t id;
  const char *suffix;      /* name after the prefix, e.g. "chat.events" */
  const char *schema_file; /* "schemas/....avsc", NULL for the DLQ (raw bytes) */
  bool input;
  bool keyed_input; /* one of the four co-partitioned inputs */
  int rank;         /* merge rank within a task; -1 for others */
  bool compacted;
} kefu_topic_info_t;

extern const kefu_topic_info_t kefu_topics[KEFU_T__COUNT];

/** Number of co-partitioned keyed input topics (they are the first four ids). */
#define KEFU_KEYED_INPUTS 4

/** @brief Sets the prefix of every topic name (default "kefu."); copies @p prefix. */
void kefu_topics_set_prefix(const char *prefix);

/** @brief Full topic name under the current prefix. The pointer stays valid until the
 *  next kefu_topics_set_prefix(). */
const char *kefu_topic_name(kefu_topic_t t);

/** @brief The topic whose name after the prefix is @p suffix ("routing.decisions"), or
 *  KEFU_TOPIC_NONE: how an output record's kind (rules/effects.h) names its topic. */
kefu_topic_t kefu_topic_by_suffix(const char *suffix);

/** @brief The topic with full name @p name under the current prefix, or KEFU_TOPIC_NONE. */
kefu_topic_t kefu_topic_by_name(const char *name);

#include <jansson.h>
#include <stddef.h>

/** @brief The Kafka key of a record of @p t in JSON form: `courier|region_code` for the
 *  courier-status table, shop_id for every other topic. Writes a NUL-terminated key to
 *  @p out; returns its length, or -1 when the record lacks the key fields. */
int kefu_topic_key(kefu_topic_t t, const json_t *rec, char *out, size_t outlen);
#endif
