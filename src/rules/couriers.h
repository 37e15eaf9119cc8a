/* The courier-status table (DELIV-1, DELIV-2): the latest record per (courier,
 * region_code) from the compacted kefu.courier.status topic. Every instance holds the
 * whole table in memory (SPEC §1.3); it changes only between batches. */
#ifndef KEFU_RULES_COURIERS_H
#define KEFU_RULES_COURIERS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct kefu_courier_table {
  json_t *entries; /* "courier|region_code" -> record; owned */
} kefu_courier_table_t;

void kefu_courier_table_init(kefu_courier_table_t *t);
void kefu_courier_table_clear(kefu_courier_table_t *t);

/** @brief Applies a record (borrowed, validated) of the topic: the latest per key wins. */
void kefu_courier_table_put(kefu_courier_table_t *t, const json_t *rec);

/** @brief Applies a tombstone for key `courier|region_code`. */
void kefu_courier_table_delete(kefu_courier_table_t *t, const char *key);

/** @brief DELIV-2: whether @p courier delivers to the 6-digit adcode @p region at @p ts.
 *  The active record (valid_from <= ts < valid_until) with the longest matching region
 *  prefix decides; with none, the courier delivers. On false, *reason (borrowed from the
 *  table) is the record's reason. */
bool kefu_courier_deliverable(const kefu_courier_table_t *t, const char *courier,
                              const char *region, int64_t ts, const char **reason);

#endif
