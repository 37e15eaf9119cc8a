/* A deterministic generator of realistic input traffic for the demo and the bench:
 * shops of skewed size (a few busy ones, many quiet), agents whose presence changes
 * through the day, buyer conversations with replies inside and outside three minutes,
 * bot sessions and transfer clicks, order life cycles with packages, deliverability
 * queries, a few courier-status records and a small share of bad records. */
#ifndef KEFU_SIM_TRAFFIC_H
#define KEFU_SIM_TRAFFIC_H

#include <jansson.h>
#include <stdint.h>

typedef struct kefu_traffic_opts {
  uint64_t seed;
  int shops, agents_per_shop, buyers_per_shop;
  int64_t start_ts, duration_ms;
  int events;          /* about this many records in all */
  double bad_fraction; /* share of deliberately invalid records (they go to the DLQ) */
} kefu_traffic_opts_t;

/** @brief 20 shops, ~20,000 events over one day from 2026-03-09T00:00Z (08:00 in
 *  China), seed 1, 0.1 % bad records. */
void kefu_traffic_defaults(kefu_traffic_opts_t *o);

/** @brief Appends [topic id, record] pairs to @p out, sorted by ts (courier-status
 *  records, which have no ts, first). Same options, same records. */
void kefu_traffic_generate(const kefu_traffic_opts_t *o, json_t *out);

#endif
