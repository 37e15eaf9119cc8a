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

/** @brief The checks of kefu_event_from_json() (same order, same reasons) on an event of
 *  keyed input topic @p t already decoded into its typed form with every field of its
 *  schema type (the binary fast path): ev->type < 0 means an unknown type, whose
 *  symbol is @p type_symbol. Returns 0, or -1 with the reason in @p errstr. */
int kefu_event_check(const kefu_event_t *ev, kefu_topic_t t, const char *type_symbol,
                     const char *key, size_t keylen, int64_t now_ms, char *errstr, size_t errlen);

/** @brief Decodes a framed Avro value of keyed input topic @p t straight into @p ev and
 *  checks it as kefu_event_from_json() does, without jansson or avro-c, when the frame's
 *  schema id is @p fast_id (see kefu_event_fast_id()). Returns 1 when it does not apply
 *  (another schema id, bad framing, @p fast_id < 0: take the codec), 0 when @p ev holds
 *  a valid event, -1 with the reason in @p errstr (a decode error "avro: ..." or a
 *  check's reason). @p ev owns strings: kefu_event_clear() it after 0 or -1. */
int kefu_event_decode(kefu_event_t *ev, kefu_topic_t t, int32_t fast_id, const void *buf,
                      size_t len, const char *key, size_t keylen, int64_t now_ms, char *errstr,
                      size_t errlen);

struct kefu_schemas;
/** @brief The schema id kefu_event_decode() may decode for topic @p t: the topic's current
 *  id when its schema text is the one the fast path was written for (the embedded
 *  schemas/<topic>.avsc), else -1 (everything goes through the codec). */
int32_t kefu_event_fast_id(const struct kefu_schemas *s, kefu_topic_t t);

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

/** @brief A shop config from the JSON of a ShopConfig record (kefu.shop.config): fields
 *  absent, or of another type, keep their defaults. @p c is overwritten (not freed). */
void kefu_event_config_of(kefu_shop_config_t *c, const json_t *rec);

#endif
