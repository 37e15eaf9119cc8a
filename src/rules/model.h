/* kefu's domain model: the typed state the rules read and change, the input event they
 * are applied to, and the timers they schedule. This header is the core's contract; it
 * includes nothing from engine/, io/, store/ or ops/ (a CI check enforces it).
 *
 * Conventions:
 * - Strings are owned, NUL-terminated, and NULL when absent (an Avro null). Set them with
 *   kefu_str_set() so the old value is freed. Lists of strings are kefu_strv_t.
 * - Enums are the contract's symbols (common/enums.h); 0 is never a valid "absent" unless
 *   the enum says so (the *_NONE members below).
 * - An entity the rules change is marked with its `changed` flag (kefu_*_touch()); the
 *   store writes back exactly those. The flags are the only bookkeeping the rules see:
 *   applied offsets, event ids, the timers a batch added are the engine's business.
 * - Every entity's shape is listed here and nowhere else; docs/ARCHITECTURE.md points
 *   here, and src/store/state_codec.c encodes exactly these fields. */
#ifndef KEFU_RULES_MODEL_H
#define KEFU_RULES_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/enums.h"
#include "common/ids.h"
#include "common/map.h"

/* ------------------------------------------------------------------ small types */

typedef struct kefu_strv {
  char **v; /* owned strings */
  uint32_t n;
} kefu_strv_t;

/** @brief Replaces *@p dst with a copy of @p src (NULL clears it). */
void kefu_str_set(char **dst, const char *src);
/** @brief Both present and equal. */
bool kefu_str_eq(const char *a, const char *b);

void kefu_strv_push(kefu_strv_t *l, const char *s);
bool kefu_strv_has(const kefu_strv_t *l, const char *s);
void kefu_strv_clear(kefu_strv_t *l);
void kefu_strv_copy(kefu_strv_t *dst, const kefu_strv_t *src);

/* Whoever holds a buyer's session, and a routing decision's target. */
typedef enum kefu_target {
  KEFU_TARGET_NONE = 0,
  KEFU_TARGET_AGENT,
  KEFU_TARGET_BOT,
  KEFU_TARGET_LEAVE_MESSAGE,
  KEFU_TARGET_QUEUE,
} kefu_target_t;
extern const char *const kefu_target_names[]; /* indexed by kefu_target_t */

/* kefu_order_type_t (common/enums.h) doubles as the lifecycle status (ROUTE-6). */
#define KEFU_STATUS_NONE (-1)

/* After-sale reasons of order_event.avsc's after_sale_reason; OTHER for any other text. */
#define KEFU_AFTER_SALE_REASONS(X) X(WRONG_ITEM) X(MISSING_ITEM) X(DAMAGED) X(LOST) X(OTHER)
#define KEFU_AFTER_SALE_ENUM_(n) KEFU_AFTER_SALE_##n,
typedef enum kefu_after_sale {
  KEFU_AFTER_SALE_NONE = 0,
  KEFU_AFTER_SALE_REASONS(KEFU_AFTER_SALE_ENUM_) KEFU_AFTER_SALE__COUNT
} kefu_after_sale_t;
extern const char *const kefu_after_sale_names[]; /* indexed by kefu_after_sale_t; [0] NULL */
/** @brief The reason of an AFTER_SALE_OPENED event's text (NULL or unknown: OTHER). */
kefu_after_sale_t kefu_after_sale_parse(const char *reason);

/* ------------------------------------------------------------------ shop config (§2.4) */

typedef struct kefu_group {
  char *group_id;
  bool bot_enabled;
  int strategy; /* kefu_strategy index: 0 EFFICIENCY, 1 CONVERSION */
  kefu_strv_t crowd_tags, item_ids, intents;
  uint32_t order_states; /* bit i: kefu_order_state_names[i] */
} kefu_group_t;

typedef struct kefu_shop_config {
  bool bot_priority, exclusive_direct;
  int leave_message_target; /* index in kefu_leave_target_names */
  bool queue_enabled;
  int64_t queue_max_wait_ms;
  bool logistics_enabled, merchant_invite_enabled;
  kefu_strv_t couriers;
  int32_t transfer_entry_exposure_pct;
  bool response_rate_assessed;
  int32_t utc_offset_minutes;
  kefu_group_t *groups; /* in config order */
  uint32_t ngroups;
} kefu_shop_config_t;

/** @brief The config of a shop that never sent one (shop_config.avsc's defaults). */
void kefu_config_defaults(kefu_shop_config_t *c);
void kefu_config_clear(kefu_shop_config_t *c);
void kefu_config_copy(kefu_shop_config_t *dst, const kefu_shop_config_t *src);

/* ------------------------------------------------------------------ agent (§2.3) */

typedef struct kefu_outcome { /* INSIGHT-3: one (agent, buyer) pair's result */
  int64_t first;              /* the pair's first decision ts */
  bool converted;
} kefu_outcome_t;

typedef struct kefu_agent {
  char *id;
  /* OFFLINE until a PRESENCE event (ROUTE-2). Once the agent is in a shop, change it
   * only with kefu_agent_set_presence(), which keeps the shop's ONLINE index. */
  kefu_presence_t presence;
  int32_t level, capacity;
  kefu_strv_t groups;
  int account_kind; /* index in kefu_account_kind_names */
  bool has_conversion_rate;
  double conversion_rate;
  int32_t load;             /* sessions routed to the agent and open */
  kefu_outcome_t *outcomes; /* oldest first, 30 days kept */
  uint32_t noutcomes;
  bool changed;
  /* Routing's cache, not state (never encoded): which of the shop config's first 64
   * groups `groups` names (bit i: config group i), and whether it names any other;
   * valid while group_gen equals the shop's config_gen (0: not computed). Whoever
   * replaces `groups` sets group_gen to 0. */
  uint64_t group_bits;
  bool group_other;
  uint32_t group_gen;
} kefu_agent_t;

/* ------------------------------------------------------------------ order (§2.2) */

typedef struct kefu_package {
  char *tracking_no, *courier;
} kefu_package_t;

typedef struct kefu_order {
  char *id;
  char *buyer_id; /* of the order's first event (docs/DECISIONS.md) */
  int status;     /* kefu_order_type_t of the last lifecycle event, or KEFU_STATUS_NONE */
  kefu_after_sale_t after_sale;
  kefu_package_t *packages;
  uint32_t npackages;
  char *region_code;
  kefu_strv_t item_ids;
  bool has_amount;
  int64_t amount_cents;
  bool address_changed, signed_;                    /* signed_: SIGNED or COMPLETED seen */
  int64_t paid_ts, shipped_ts, scan_ts, updated_ts; /* 0: never */
  bool changed;
} kefu_order_t;

/* ------------------------------------------------------------------ buyer and session */

typedef struct kefu_contact { /* ROUTE-9 */
  char *agent_id;
  int64_t ts;
} kefu_contact_t;

typedef enum kefu_first_reply {
  KEFU_REPLY_NONE = 0,
  KEFU_REPLY_BOT,
  KEFU_REPLY_AUTO,
  KEFU_REPLY_AGENT,
} kefu_first_reply_t;

typedef enum kefu_invitation_state {
  KEFU_INVITATION_NONE = 0,
  KEFU_INVITATION_PENDING,
  KEFU_INVITATION_ACTIVE,
} kefu_invitation_state_t;

typedef struct kefu_invitation { /* LOGI-1..6 */
  kefu_invitation_state_t state;
  bool merchant; /* initiator MERCHANT, else PLATFORM */
  char *id, *order_id, *courier, *tracking_no, *agent_id;
} kefu_invitation_t;

typedef struct kefu_session { /* ROUTE-10; open while kefu_buyer_t.has_session */
  kefu_target_t target;
  char *agent_id;           /* target AGENT */
  int leave_target;         /* target LEAVE_MESSAGE: kefu_leave_target_names index */
  int64_t opened, activity; /* ts of the first decision and of the last activity */
  int64_t idle_timer;       /* deadline of the pending idle timer, 0: none */
  int64_t queued_since;     /* target QUEUE: when it joined the queue, 0: not queued */
  bool via_transfer;        /* queued by a TRANSFER_CLICK (XFER-2) */
  kefu_first_reply_t first_reply;
  bool entry_card, transferred; /* XFER-1, XFER-3 */
  bool three_party, declined;   /* LOGI-4, LOGI-5 */
  kefu_invitation_t invitation; /* state NONE: no invitation */
} kefu_session_t;

typedef struct kefu_wait { /* RATE-3: a counted message waiting for a reply */
  kefu_target_t kind;      /* the responder */
  char *id;                /* agent id or leave-message target symbol; NULL: bot, queue */
  int64_t opened;
  int32_t day; /* local day number (days since 1970-01-01 in shop time) */
} kefu_wait_t;

typedef struct kefu_consultation { /* RATE-1: (day, buyer, responder); counted in the tally */
  int32_t day;
  kefu_target_t kind;
  char *id;
  bool ok; /* false once one of its waits timed out */
} kefu_consultation_t;

typedef struct kefu_pair { /* INSIGHT-3: an open (agent, buyer) pair */
  char *agent_id;
  int64_t first;
} kefu_pair_t;

typedef struct kefu_attrs { /* ROUTE-1: the routing attributes of the last CHAT_OPEN */
  kefu_strv_t crowd_tags;
  char *item_id, *intent, *order_id;
} kefu_attrs_t;

typedef struct kefu_buyer {
  char *id;
  kefu_strv_t orders; /* the buyer's order ids, first seen first */
  char *last_order;   /* most recently updated by event time */
  int64_t last_order_ts;
  char *exclusive_agent;
  kefu_attrs_t attrs;
  kefu_contact_t *contacts; /* newest first, one per agent, 72 h, at most 16 */
  uint32_t ncontacts;
  bool has_session;
  kefu_session_t session;
  kefu_wait_t *waits;
  uint32_t nwaits;
  kefu_consultation_t *consultations; /* of days not yet closed */
  uint32_t nconsultations;
  kefu_pair_t *pairs;
  uint32_t npairs;
  struct kefu_timers *timers; /* pending timers owned by this buyer; may be NULL */
  bool changed;
  /* The owner cache's (src/engine/cache.c); the rules never look. */
  struct kefu_buyer_cache {
    uint64_t used;  /* the batch that last needed it (least recently used leave first) */
    int64_t due_at; /* with due_listed: a due bucket listing it in Redis, exactly that one
                       (due_exact) or one at or below it */
    bool due_listed, due_exact, pinned, evicted;
  } cache;
} kefu_buyer_t;

/* ------------------------------------------------------------------ shop-wide records */

typedef struct kefu_queued { /* ROUTE-11 */
  char *buyer_id;
  int64_t since;
} kefu_queued_t;

typedef struct kefu_queue {
  kefu_queued_t *v; /* FIFO */
  uint32_t n;
  bool changed;
} kefu_queue_t;

#define KEFU_CAUSES(X)                                                                             \
  X(NOT_SHIPPED_ON_TIME)                                                                           \
  X(UNDELIVERABLE_ROUTE)                                                                           \
  X(WRONG_OR_MISSING)                                                                              \
  X(ADDRESS_CHANGED) X(LOGISTICS_STALLED) X(SIGNED_NOT_RECEIVED) X(DAMAGED_OR_LOST) X(UNKNOWN)
#define KEFU_CAUSE_ENUM_(n) KEFU_CAUSE_##n,
typedef enum kefu_cause { KEFU_CAUSES(KEFU_CAUSE_ENUM_) KEFU_CAUSE__COUNT } kefu_cause_t;
extern const char *const kefu_cause_names[];

/* Responder classes of a day's counts (RATE-5). */
enum { KEFU_CLASS_BOT = 0, KEFU_CLASS_HUMAN, KEFU_CLASS_OTHER, KEFU_CLASS__COUNT };

typedef struct kefu_rate_day { /* one open local day of the shop (RATE-1..5, INSIGHT-2) */
  int32_t day;
  int64_t close_deadline;                   /* its day_close timer's deadline */
  int64_t consultations[KEFU_CLASS__COUNT]; /* counted consultations by responder class */
  int64_t effective[KEFU_CLASS__COUNT];     /* of which still effective */
  int64_t causes[KEFU_CAUSE__COUNT];        /* INSIGHT-2 */
  /* The causes counted so far in the order each was first counted that day: the report's
   * cause_counts map lists them in that order, as the JSON object it replaces did. */
  uint8_t cause_order[KEFU_CAUSE__COUNT];
  uint8_t ncause_order;
} kefu_rate_day_t;

typedef struct kefu_rate { /* the response-rate record of the shop */
  kefu_rate_day_t *days;   /* open days, ascending */
  uint32_t ndays;
  bool has_closed;
  int32_t closed_through; /* the last closed day: never reopened */
  uint32_t penalties;     /* bit i: penalty i in force (RATE-6..8 order) */
  int32_t streak;
  bool escalated;
  bool changed;
} kefu_rate_t;

/* DELIV-4's index: shipped orders never SIGNED/COMPLETED nor CLOSED, by shipment ts. */
typedef struct kefu_shipped {
  kefu_map_t by_order; /* order id -> (int64_t) shipped ts, stored in the value pointer */
  bool changed;
  kefu_strv_t added, removed; /* since the store last wrote it */
} kefu_shipped_t;

/* ------------------------------------------------------------------ timers (SPEC §1.3) */

typedef enum kefu_timer_kind {
  KEFU_TIMER_NONE = 0,
  KEFU_TIMER_SESSION_IDLE,      /* ROUTE-10 */
  KEFU_TIMER_QUEUE_TIMEOUT,     /* ROUTE-11: a = queued since */
  KEFU_TIMER_RESPONSE_WAIT,     /* RATE-3: a = opened, ref_kind/ref = responder */
  KEFU_TIMER_DAY_CLOSE,         /* RATE-4: a = local midnight (UTC ms), b = day number */
  KEFU_TIMER_INVITATION_EXPIRY, /* LOGI-2: ref = invitation id */
  KEFU_TIMER_CONVERSION_WINDOW, /* INSIGHT-3: a = first, ref = agent id */
  KEFU_TIMER__COUNT
} kefu_timer_kind_t;
extern const char *const kefu_timer_kind_names[];

/* Creation order: the merge position of the input whose processing made the timer, and
 * how many timers that input had made before it. Compared field by field. */
typedef struct kefu_timer_order {
  int64_t ts;
  int32_t rank;
  int64_t offset;
  int32_t n;
} kefu_timer_order_t;

typedef struct kefu_timer {
  int64_t deadline;
  kefu_timer_order_t order;
  kefu_timer_kind_t kind;
  int64_t a, b;
  int32_t ref_kind;
  char *ref;
} kefu_timer_t;

/** @brief (deadline, creation order): <0, 0, >0. */
int kefu_timer_cmp(const kefu_timer_t *x, const kefu_timer_t *y);
void kefu_timer_clear(kefu_timer_t *t);
void kefu_timer_copy(kefu_timer_t *dst, const kefu_timer_t *src);

/* The pending timers of one owner (a buyer, or the shop), unordered. */
typedef struct kefu_timers {
  kefu_timer_t *v;
  uint32_t n, cap;
} kefu_timers_t;

/* ------------------------------------------------------------------ the shop */

/* The shop's ONLINE agents sorted by id (bytewise, as ROUTE-7 orders its draw): routing
 * reads its pools and ROUTE-2 from here instead of walking every agent of the shop, so a
 * decision costs O(ONLINE agents), not O(agents). Borrowed pointers into `agents`; kept
 * by kefu_shop_put_agent() and kefu_agent_set_presence(). */
typedef struct kefu_online {
  kefu_agent_t **v;
  uint32_t n, cap;
} kefu_online_t;

typedef struct kefu_shop {
  char id[KEFU_ID_MAX + 1];
  kefu_shop_config_t config;
  bool config_is_default, config_changed;
  uint32_t config_gen; /* never 0; changes whenever `config` is replaced (kefu_agent_t) */
  kefu_map_t agents;   /* id -> kefu_agent_t* */
  kefu_online_t online;
  kefu_map_t buyers; /* id -> kefu_buyer_t* */
  kefu_map_t orders; /* id -> kefu_order_t* */
  kefu_queue_t queue;
  kefu_rate_t rate;
  kefu_shipped_t shipped;
  kefu_timers_t timers; /* shop-wide timers (day close) */
  bool timers_changed;
  /* The buyers marked changed since the store last wrote them (kefu_buyer_touch), so a
   * write visits those, not every buyer the shop holds. */
  struct {
    kefu_buyer_t **v;
    uint32_t n, cap;
  } dirty;
} kefu_shop_t;

kefu_shop_t *kefu_shop_new(const char *id);
void kefu_shop_destroy(kefu_shop_t *s);

/* Lookups: NULL when unknown. */
kefu_agent_t *kefu_shop_agent(const kefu_shop_t *s, const char *id);
kefu_buyer_t *kefu_shop_buyer(const kefu_shop_t *s, const char *id);
kefu_order_t *kefu_shop_order(const kefu_shop_t *s, const char *id);

/* Get-or-create. A new agent has the §2.3 defaults (OFFLINE, level 1, capacity 20, SUB);
 * a new order the @p buyer_id of its first event. Neither is marked changed. */
kefu_agent_t *kefu_shop_agent_add(kefu_shop_t *s, const char *id);
kefu_buyer_t *kefu_shop_buyer_add(kefu_shop_t *s, const char *id);
kefu_order_t *kefu_shop_order_add(kefu_shop_t *s, const char *id, const char *buyer_id);

/** @brief Sets @p a's presence (@p a belongs to @p s) and keeps @p s's ONLINE index. */
void kefu_agent_set_presence(kefu_shop_t *s, kefu_agent_t *a, kefu_presence_t presence);

/* Inserting entities the store decoded (the shop takes ownership; replaces any; an agent
 * joins the ONLINE index by the presence it has). */
void kefu_shop_put_agent(kefu_shop_t *s, kefu_agent_t *a);
void kefu_shop_put_buyer(kefu_shop_t *s, kefu_buyer_t *b);
void kefu_shop_put_order(kefu_shop_t *s, kefu_order_t *o);

void kefu_agent_free(kefu_agent_t *a);
void kefu_buyer_free(kefu_buyer_t *b);
void kefu_order_free(kefu_order_t *o);
void kefu_session_clear(kefu_session_t *s);
void kefu_invitation_clear(kefu_invitation_t *i);

/* Marking changes for the store. */
static inline void kefu_agent_touch(kefu_agent_t *a) {
  a->changed = true;
}
/** @brief Marks @p b changed and lists it in @p s's dirty buyers (once). */
void kefu_buyer_touch(kefu_shop_t *s, kefu_buyer_t *b);
static inline void kefu_order_touch(kefu_order_t *o) {
  o->changed = true;
}

/** @brief DELIV-4's index: @p order_id shipped at @p shipped_ts (0 removes it). */
void kefu_shop_set_shipped(kefu_shop_t *s, const char *order_id, int64_t shipped_ts);

/** @brief Replaces the config (copied) and marks it changed. */
void kefu_shop_set_config(kefu_shop_t *s, const kefu_shop_config_t *c, bool is_default);
/** @brief Says that `config` was replaced in place (the store's load does): caches that
 *  depend on it are dropped. kefu_shop_set_config() does this itself. */
void kefu_shop_config_replaced(kefu_shop_t *s);

/** @brief The timers a timer of @p buyer_id (NULL: the shop) belongs in, created. */
kefu_timers_t *kefu_shop_timers_of(kefu_shop_t *s, const char *buyer_id);
void kefu_timers_add(kefu_timers_t *l, const kefu_timer_t *t); /* copies */
/** @brief Moves the timer of @p deadline and creation @p order out of @p l (may be NULL)
 *  into @p out, which owns its ref then; false when it is not there. */
bool kefu_timers_take(kefu_timers_t *l, int64_t deadline, const kefu_timer_order_t *order,
                      kefu_timer_t *out);
/** @brief Removes the timer with @p t's creation order; false when it was not there. */
bool kefu_timers_remove(kefu_timers_t *l, const kefu_timer_t *t);
void kefu_timers_clear(kefu_timers_t *l);
/** @brief Earliest deadline in @p l, INT64_MAX when empty. */
int64_t kefu_timers_min(const kefu_timers_t *l);

/* ------------------------------------------------------------------ the input event */

/* Chat event fields (chat_event.avsc). */
typedef struct kefu_chat {
  char *item_id, *intent, *invitation_id, *region_code;
  kefu_strv_t crowd_tags, couriers;
  bool auto_reply, accepted, list_undeliverable;
} kefu_chat_t;

/* Order event fields (order_event.avsc). */
typedef struct kefu_order_ev {
  kefu_package_t *packages;
  uint32_t npackages;
  char *region_code;
  kefu_strv_t item_ids;
  bool has_amount;
  int64_t amount_cents;
  char *after_sale_reason;
} kefu_order_ev_t;

/* Agent event fields (agent_event.avsc). */
typedef struct kefu_agent_ev {
  bool has_presence;
  kefu_presence_t presence;
  int32_t level, capacity;
  kefu_strv_t groups;
  int account_kind;
  bool has_conversion_rate;
  double conversion_rate;
} kefu_agent_ev_t;

typedef enum kefu_source {
  KEFU_SRC_CONFIG = 0, /* kefu.shop.config */
  KEFU_SRC_AGENT,      /* kefu.agent.events */
  KEFU_SRC_ORDER,      /* kefu.order.events */
  KEFU_SRC_CHAT,       /* kefu.chat.events */
} kefu_source_t;

/* A validated input event (SPEC §2, §6). */
typedef struct kefu_event {
  kefu_source_t source;
  int type; /* kefu_chat_type_t, kefu_order_type_t or kefu_agent_type_t; 0 for config */
  char *event_id, *shop_id;
  int64_t ts;
  char *buyer_id, *agent_id, *order_id; /* NULL when absent */
  kefu_chat_t chat;
  kefu_order_ev_t order;
  kefu_agent_ev_t agent;
  bool config_reset;         /* a tombstone on kefu.shop.config: back to the defaults */
  kefu_shop_config_t config; /* KEFU_SRC_CONFIG and not config_reset */
} kefu_event_t;

/** @brief Frees what @p ev owns and zeroes it. */
void kefu_event_clear(kefu_event_t *ev);

#endif
