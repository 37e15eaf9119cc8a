/* An input event after decoding and validation (SPEC §2, §6). The record's JSON form
 * (from the codec) is kept; the fields every rule reads are lifted into the struct,
 * their strings borrowed from @c rec. */
#ifndef KEFU_ENGINE_EVENT_H
#define KEFU_ENGINE_EVENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "io/topics.h"

/* 2000-01-01T00:00:00Z: the earliest ts accepted (SPEC §6). */
#define KEFU_TS_MIN INT64_C(946684800000)
#define KEFU_DAY_MS INT64_C(86400000)

typedef struct kefu_event {
  kefu_topic_t topic;
  int type; /* kefu_chat_type_t, kefu_order_type_t or kefu_agent_type_t; 0 for config */
  const char *event_id, *shop_id;
  int64_t ts;
  const char *buyer_id, *agent_id, *order_id; /* NULL when absent */
  json_t *rec;                                /* owned */
  /* Where it came from: every output names its cause (SPEC §3). */
  int32_t partition;
  int64_t offset;
} kefu_event_t;

/** @brief Validates a decoded keyed-input record of topic @p t (shape of SPEC §2, ids of
 *  §1.2, ts within [2000-01-01, @p now_ms + 1 day], the Kafka @p key equal to shop_id) and
 *  fills @p ev. Takes a reference to @p rec on success. Returns 0, or -1 with the reason
 *  for the DLQ in @p errstr. */
int kefu_event_from_json(kefu_event_t *ev, kefu_topic_t t, json_t *rec, const char *key,
                         size_t keylen, int64_t now_ms, char *errstr, size_t errlen);

/** @brief The shop-config reset that a tombstone on kefu.shop.config stands for: ts is the
 *  record's Kafka timestamp, event id `null-<shop_id>-<offset>` (SPEC §1.2). */
int kefu_event_config_reset(kefu_event_t *ev, const char *key, size_t keylen, int64_t ts,
                            int64_t offset, int64_t now_ms, char *errstr, size_t errlen);

/** @brief Validates a decoded courier-status record (SPEC §2.5). 0 or -1 with errstr. */
int kefu_courier_status_validate(const json_t *rec, char *errstr, size_t errlen);

/** @brief True when @p s is an adcode prefix: 2, 4 or 6 digits. */
bool kefu_region_code_valid(const char *s);

/** @brief Drops the event's record reference. */
void kefu_event_clear(kefu_event_t *ev);

#endif
