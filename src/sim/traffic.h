/* A deterministic generator of realistic input traffic, for `kefu demo` and the bench.
 *
 * What a day of a marketplace's customer service looks like, in the JSON form of
 * SPEC §1.2: shops of skewed size (shop k gets a share of the buyers ∝ 1/(k+1), so a
 * few are busy and most are quiet), each with one config record (routing groups,
 * couriers, switches) and agents staffed in proportion to its traffic who work shifts
 * with breaks (PRESENCE ONLINE / SUSPENDED / OFFLINE), a night with nobody online,
 * buyer conversations that follow a day curve (quiet at dawn, peaks late morning and
 * evening): presale questions that sometimes end in an order, logistics inquiries about
 * orders shipped days earlier (late, in transit, stalled, signed but not received),
 * after-sale cases, bot sessions with transfer clicks, replies mostly inside three
 * minutes and some not (every sixth shop, from shop02, is a slow one), canned auto-replies,
 * deliverability queries by region and by order, logistics invitations and consents; order life
 * cycles from CREATED through one or two packages to SIGNED and COMPLETED, with address changes and
 * after-sales; a few courier-status records; and a small share of deliberately invalid records so
 * that the dead-letter path shows.
 *
 * Same options, same records, byte for byte: the only randomness is a splitmix64
 * stream seeded from the options. Nothing here knows the rules: the generator only
 * writes plausible input, and whatever kefu decides about it is kefu's business. */
#ifndef KEFU_SIM_TRAFFIC_H
#define KEFU_SIM_TRAFFIC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kefu_traffic_opts {
  uint64_t seed;
  int shops;           /* 1..10000 */
  int buyers_per_shop; /* on average; a shop's pool follows its share of the traffic */
  int agents_per_shop; /* on average; a shop's staff follows its share, at least 2 */
  int64_t start_ts;    /* start of the simulated window, epoch ms */
  int64_t duration_ms; /* length of the window, at least one hour */
  int events;          /* stop once about this many valid records are made */
  double bad_fraction; /* invalid records to add, as a share of the valid ones, 0..0.5 */
  /* One huge shop besides the others (the bench's agent-count test), off when
   * huge_agents is 0: shop "huge" with huge_agents agents (1..100000), huge_buyers buyers
   * (10..10000000) and huge_share of the journeys (0..1); the other shops share the rest
   * as before, and events counts the records after the shops' setup (configs, profiles,
   * shifts), so that staff sizes can be compared on the same conversation traffic. Off,
   * the traffic is exactly what it was without these fields. */
  int huge_agents, huge_buyers;
  double huge_share;
} kefu_traffic_opts_t;

/** @brief The demo's defaults: seed 1, 20 shops, 200 buyers and 4 agents per shop on
 *  average, one day from 2026-03-09T00:00:00Z (08:00 in China), about 20,000 records,
 *  0.1 % invalid ones, no huge shop. */
void kefu_traffic_defaults(kefu_traffic_opts_t *o);

/** @brief Generates the traffic of @p o and appends it to the JSON array @p out, one
 *  `[topic, record]` pair per record: topic is a kefu_topic_t as a JSON integer (one of
 *  the five input topics), record a new JSON object in the plain JSON form of SPEC §1.2.
 *  Pairs come sorted by ts (ties in generation order); courier-status records, which
 *  have no ts, come first. Records of the window's history (orders placed days before
 *  it) are included; nothing at or after the window's end is.
 *  @returns the number of pairs appended, or -1 with the reason in @p errstr when an
 *  option is out of range (@p out unchanged). */
int kefu_traffic_generate(const kefu_traffic_opts_t *o, json_t *out, char *errstr, size_t errlen);

#endif
