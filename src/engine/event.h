/* Input events: validation of a decoded record (SPEC §2, §6) and its conversion into the
 * rules' typed kefu_event_t (src/rules/model.h). Everything the codec cannot check (the
 * schema already fixed types and enum symbols) is checked here, and each check names
 * the field in its reason, because the reason travels to the DLQ where a person reads
 * it. */
#ifndef KEFU_ENGINE_EVENT_H
#define KEFU_ENGINE_EVENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "io/topics.h"
#include "rules/model.h"

/* 2000-01-01T00:00:00Z: the earliest ts accepted (SPEC §6). */
#define KEFU_TS_MIN INT64_C(946684800000)
#define KEFU_DAY_MS INT64_C(86400000)

/** @brief Validates a decoded keyed-input record of topic @p t (shape of SPEC §2, ids of
 *  §1.2, ts within [2000-01-01, @p now_ms + 1 day], the Kafka @p key equal to shop_id) and
 *  fills @p ev (owned strings: free with kefu_event_clear(), also after a failure). @p rec
 *  is only read. Returns 0, or -1 with the reason for the DLQ in @p errstr. */
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

/** @brief The source of keyed input topic @p t. */
kefu_source_t kefu_event_source(kefu_topic_t t);

#endif
