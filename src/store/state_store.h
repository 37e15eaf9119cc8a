/* Shop state in Redis (SPEC §5; docs/STATE.md has the layout and the value encoding).
 * Keys (ns = redis namespace, default "kefu"; {S} the shop id, a Redis Cluster hash tag
 * so that one kefu_apply call updates a shop atomically):
 *   ns:{S}:cfg           string  the shop config (absent: the defaults)
 *   ns:{S}:applied       hash    "<topic>/<partition>" -> last applied offset
 *   ns:{S}:agents        hash    agent_id -> agent
 *   ns:{S}:buyers        hash    buyer_id -> buyer, with the buyer's pending timers
 *   ns:{S}:orders        hash    order_id -> order
 *   ns:{S}:meta          hash    "queue" (ROUTE-11), "rate" (RATE), "timers" (shop-wide),
 *                                "due" (the pending due buckets)
 *   ns:{S}:shipped       zset    shipped, unsigned orders by shipment ts, 30 days (DELIV-4)
 *   ns:{S}:seen:<date>   string  16-byte entries (event id hash, ts) of that UTC day
 *   ns:{S}:due:<k>       string  ids of buyers with a timer due from bucket k on
 * Values are kefu's compact state encoding (src/store/state_codec.h). A shop is read
 * without its buyers, which are read as batches name them (by id, or by due bucket: a
 * buyer whose earliest timer falls in bucket k, k * KEFU_DUE_BUCKET_MS of event time on,
 * is listed in some pending bucket <= k); all is written as changes. */
#ifndef KEFU_STORE_STATE_STORE_H
#define KEFU_STORE_STATE_STORE_H

#include "rules/model.h"
#include "store/redis.h"
#include "store/state_codec.h"

/** Width of a due bucket (ms of event time). */
#define KEFU_DUE_BUCKET_MS INT64_C(60000)

/** @brief The due bucket of a deadline. */
static inline int64_t kefu_due_bucket(int64_t deadline) {
  return deadline >= 0 ? deadline / KEFU_DUE_BUCKET_MS
                       : (deadline - KEFU_DUE_BUCKET_MS + 1) / KEFU_DUE_BUCKET_MS;
}

/** @brief Queues the reads of a shop but its buyers (and their number), with its event
 *  ids of UTC days [@p seen_from, @p seen_to]. Returns the number of replies it will
 *  have. */
int kefu_store_load_append(kefu_redis_t *r, const char *ns, const char *shop, int32_t seen_from,
                           int32_t seen_to);

typedef void (*kefu_seen_fn)(void *arg, uint64_t hash, int64_t ts);

/* What a load says besides the shop's records. */
typedef struct kefu_store_loaded {
  int64_t buyers; /* stored buyers (HLEN) */
  int64_t *due;   /* the pending due buckets, ascending (malloc'd: the caller's) */
  uint32_t ndue;
} kefu_store_loaded_t;

/** @brief Reads the replies of kefu_store_load_append (@p r points at the first) into the
 *  fresh @p shop; @p stored gets the applied offset of each of @p fields (-1: none),
 *  @p out the buyer count and due buckets, and @p seen is called for every event id
 *  read. -1 with errstr on a reply or value that does not decode (naming the key and
 *  field). */
int kefu_store_load_parse(redisReply **r, kefu_shop_t *shop, const char *const fields[4],
                          int64_t stored[4], kefu_store_loaded_t *out, kefu_seen_fn seen, void *arg,
                          char *errstr, size_t errlen);

/** @brief Queues an HMGET of the buyers @p ids; returns 1. */
int kefu_store_buyers_append(kefu_redis_t *r, const char *ns, const char *shop,
                             const char *const *ids, size_t n);
/** @brief Queues the read of the buyers listed in due buckets @p buckets (one FCALL
 *  kefu_due_read); returns 1. */
int kefu_store_due_read_append(kefu_redis_t *r, const char *ns, const char *shop,
                               const int64_t *buckets, size_t n);

/** Called per buyer read: @p b is the decoded buyer (the callee's), NULL when Redis has
 *  no value for @p id. */
typedef void (*kefu_buyer_fn)(void *arg, const char *id, kefu_buyer_t *b);

/** @brief Reads an HMGET reply of kefu_store_buyers_append (@p ids as given there), or
 *  with @p ids NULL a kefu_due_read reply (id, value pairs). -1 with errstr on a reply
 *  or value that does not decode. */
int kefu_store_buyers_parse(const redisReply *r, const char *const *ids, size_t n, kefu_buyer_fn fn,
                            void *arg, char *errstr, size_t errlen);

/** @brief Appends one buyer id to a due bucket's value under construction. */
void kefu_store_due_add(kefu_buf_t *ids, const char *id);

/** @brief Queues the read of the shop's event ids of days [@p from, @p to]; returns 1. */
int kefu_store_seen_append(kefu_redis_t *r, const char *ns, const char *shop, int32_t from,
                           int32_t to);
int kefu_store_seen_parse(const redisReply *r, kefu_seen_fn seen, void *arg, char *errstr,
                          size_t errlen);

/* Event ids seen by a batch, per UTC day. */
typedef struct kefu_seen_day {
  int32_t day;
  kefu_buf_t add; /* 16-byte entries */
} kefu_seen_day_t;

typedef struct kefu_store_cas {
  char field[64], expected[24], value[24]; /* expected "" : not stored yet */
} kefu_store_cas_t;

/* One shop's write besides its changed entities (which the store finds by their
 * `changed` flags and clears). */
typedef struct kefu_store_write {
  kefu_shop_t *shop;
  kefu_store_cas_t cas[4];
  int ncas;
  bool offsets_changed;
  const kefu_seen_day_t *seen;
  uint32_t nseen;
  int32_t seen_del_from, seen_del_to; /* days of event ids to delete; from > to: none */
  int64_t shipped_keep_from;          /* DELIV-4 entries shipped before this go */
  /* Due buckets: ids appended (kefu_store_due_add), buckets deleted, and the pending
   * list now (written to meta `due` when due_changed; none: the field goes). */
  const struct kefu_store_due_append {
    int64_t bucket;
    kefu_buf_t ids;
  } * due_add;
  uint32_t ndue_add;
  const int64_t *due_del;
  uint32_t ndue_del;
  const int64_t *due;
  uint32_t ndue;
  bool due_changed;
} kefu_store_write_t;

/** @brief Queues one FCALL kefu_apply for @p w when it changes anything; returns 1 when
 *  queued, 0 when there is nothing to write. @p scratch is a reusable buffer. */
int kefu_store_apply_append(kefu_redis_t *r, const char *ns, kefu_store_write_t *w,
                            kefu_buf_t *scratch);

/** @brief 0 when the kefu_apply reply for @p w is OK; -1 with errstr on a conflict or
 *  error; KEFU_STORE_WENT_BACK with errstr when the conflict's stored offset is below the
 *  one @p w expected (which Redis had acknowledged): Redis lost a write it had taken,
 *  not another writer's doing (those only move offsets forward). */
int kefu_store_apply_check(const redisReply *reply, const kefu_store_write_t *w, char *errstr,
                           size_t errlen);
#define KEFU_STORE_WENT_BACK (-2)

/** @brief True when an offset Redis holds (@p stored, "" or absent: none) is below
 *  @p acked, one it acknowledged before (-1: none). */
bool kefu_store_went_back(const char *stored, int64_t acked);

/** @brief The earliest deadline of the pending timers of the shop and of the buyers it
 *  holds, INT64_MAX for none. */
int64_t kefu_store_timers_min(const kefu_shop_t *shop);

/** @brief "YYYY-MM-DD" of UTC day @p day (days since 1970-01-01). */
void kefu_store_day_name(int32_t day, char *out, size_t outlen);

#endif
