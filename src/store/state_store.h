/* Shop state in Redis (SPEC §5). Keys (ns = redis namespace, default "kefu"):
 *   ns:{S}:cfg      string  the shop config (JSON, defaults filled); absent = defaults
 *   ns:{S}:applied  hash    "<topic>/<partition>" -> last applied offset
 *   ns:{S}:agents   hash    agent_id -> agent (JSON)
 *   ns:{S}:buyers   hash    buyer_id -> buyer (JSON)
 *   ns:{S}:orders   hash    order_id -> order (JSON)
 *   ns:{S}:meta     hash    shop-wide records: "queue" (ROUTE-11), ... (JSON)
 *   ns:{S}:dedup    zset    event_id scored by ts; trimmed to 7 days
 *   ns:{S}:timers   zset    timers scored by deadline
 *   ns:{S}:shipped  zset    shipped, unsigned orders by shipment ts, 30 days (DELIV-4)
 * The {S} hash tag puts a shop's keys in one Redis Cluster slot, so kefu_apply can
 * update them atomically. */
#ifndef KEFU_STORE_STATE_STORE_H
#define KEFU_STORE_STATE_STORE_H

#include <jansson.h>

#include "engine/shop.h"
#include "engine/timers.h"
#include "store/redis.h"

/* What one batch needs of one shop. */
typedef struct kefu_shop_load {
  kefu_shop_t *shop;         /* borrowed */
  json_t *buyers;            /* id -> true; owned */
  json_t *orders;            /* id -> true; owned */
  json_t *event_ids;         /* id -> true; owned */
  int64_t timers_before;     /* load timers with deadline < this; INT64_MIN: none */
  int64_t shipped_since;     /* load the shipped index from this ts; INT64_MIN: no */
  kefu_timer_queue_t timers; /* the timers read; the engine moves them to its queue */
  int first_reply, nreplies, more_first_reply, more_buyers, more_orders;
} kefu_shop_load_t;

void kefu_shop_load_init(kefu_shop_load_t *l, kefu_shop_t *shop);
void kefu_shop_load_clear(kefu_shop_load_t *l);

/** @brief Queues the reads of phase 1 (config, offsets, agents, the named buyers and
 *  orders, the event ids) in the pipeline; @p next_reply is the index its first reply
 *  will have, advanced past its replies. */
void kefu_store_load_append(kefu_redis_t *r, const char *ns, kefu_shop_load_t *l, int *next_reply);

/** @brief Reads the replies of kefu_store_load_append into the shop. Then
 *  kefu_store_orders_missing() lists orders that loaded buyers name but that were not
 *  read (phase 2, one more round trip for the batch). -1 with errstr on a bad reply. */
int kefu_store_load_parse(kefu_shop_load_t *l, redisReply **replies, char *errstr, size_t errlen);

/** @brief Queues the reads of what earlier rounds pointed at but did not read: buyers
 *  of loaded timers and orders of loaded buyers. Returns the number of commands queued
 *  (0: everything needed is loaded); repeat until it returns 0 (at most three rounds). */
int kefu_store_more_append(kefu_redis_t *r, const char *ns, kefu_shop_load_t *l, int *next_reply);
int kefu_store_more_parse(kefu_shop_load_t *l, redisReply **replies, char *errstr, size_t errlen);

/** @brief Queues one FCALL kefu_apply writing the shop's changes (dirty entities, config,
 *  new event ids, applied offsets with their CAS). Event ids older than
 *  @p dedup_horizon_ts are trimmed. */
void kefu_store_apply_append(kefu_redis_t *r, const char *ns, kefu_shop_t *shop,
                             int64_t dedup_horizon_ts);

/** @brief 0 when the kefu_apply reply is OK (then shop->timers_min is the earliest timer
 *  left, INT64_MAX for none); -1 with errstr on a conflict or error. */
int kefu_store_apply_check(const redisReply *reply, kefu_shop_t *shop, char *errstr, size_t errlen);

#endif
