/* The diff engine of `kefu replay --diff` (SPEC §7): two sets of output records, the
 * recorded ones (side 0) and the replayed ones (side 1), matched record by record and
 * summarised per topic and record kind.
 *
 * A record's key is its topic, shop_id and the id field of its kind (rules/effects.h's
 * kefu_record_kinds; an invitation's type too, as its id is kept over its life cycle,
 * SPEC §3); a DLQ record's is its "source". Records without a usable key match by their
 * whole JSON. Records that share a key on one side match in their order of occurrence.
 * Matched records compare field by field: a missing field equals null (the JSON form
 * omits or nulls absent optional fields, SPEC §1.2), numbers compare by value.
 *
 * Not thread-safe: one thread adds and reports. */
#ifndef KEFU_CLI_DIFF_H
#define KEFU_CLI_DIFF_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "io/topics.h"

typedef struct kefu_diff kefu_diff_t;

/** @brief A new, empty diff (NULL when out of memory). Free with kefu_diff_free(). */
kefu_diff_t *kefu_diff_new(void);

/** @brief Adds one record of @p topic to @p side (0 recorded, 1 replayed). @p rec is the
 *  record's value as JSON, exactly as `kefu consume` prints it (a DLQ record as
 *  {"error", "source", "key", "value_base64"}); the reference is stolen (also on a bad
 *  @p side or @p topic, when the record is dropped). Records of one side arrive in the
 *  order they were produced, per topic. Any JSON value is accepted: what lacks a key
 *  matches by its whole JSON. */
void kefu_diff_add(kefu_diff_t *d, int side, kefu_topic_t topic, json_t *rec);

/** @brief Adds to @p side every "<topic name>.jsonl" file of @p dir (one JSON value a
 *  line, as replay's --out DIR writes them; the file name is the full topic name under
 *  the current prefix, e.g. kefu.routing.decisions.jsonl; other files are ignored;
 *  blank lines are skipped). Files are read in name order.
 *  @returns 0, or -1 with @p err naming the directory, or the file:line of a line that
 *  is not JSON (the records before it stay added). */
int kefu_diff_load_dir(kefu_diff_t *d, int side, const char *dir, char *err, size_t errlen);

/** @brief Writes the summary (text, stable: topics by name, kinds alphabetically,
 *  examples the first in recorded order) to @p summary, and every difference as one
 *  JSON object a line to @p diff_out when not NULL:
 *  {"topic", "kind", "key": {"shop_id", "id"}, "change": "changed" | "only_recorded" |
 *  "only_replayed", "fields": {"f": {"recorded": v, "replayed": v}} (changed), "recorded"
 *  or "replayed": the whole record (only_*)}. An invitation's key also has "type".
 *  Lines come per topic by name: changed and only_recorded in recorded order, then
 *  only_replayed in replayed order. May be called again (records added in between
 *  count). @returns 0 (a difference is not an error), -1 on a write error. */
int kefu_diff_report(kefu_diff_t *d, FILE *summary, FILE *diff_out);

typedef struct kefu_diff_counts {
  long recorded, replayed, unchanged, changed, only_recorded, only_replayed;
} kefu_diff_counts_t;

/** @brief The totals so far (kept as records arrive; no report needed). */
kefu_diff_counts_t kefu_diff_total(kefu_diff_t *d);

/** @brief The response-rate verdicts (kefu.response.violations): VIOLATION records on
 *  each side, and the (shop, day)s and shops whose verdict changed. A (shop, day) is
 *  violating on a side when that side has a VIOLATION record for it; a shop is newly
 *  penalised when one of its days violates in replayed only, no longer penalised when
 *  one violates in recorded only (a shop can be both). Any pointer may be NULL. */
void kefu_diff_verdicts(kefu_diff_t *d, long *violations_recorded, long *violations_replayed,
                        long *days_newly, long *days_no_longer, long *shops_newly,
                        long *shops_no_longer);

/** @brief Frees @p d and every record it holds (NULL is fine). */
void kefu_diff_free(kefu_diff_t *d);

#endif
