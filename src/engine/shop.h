/* One shop's state as the rules see it during a batch (SPEC §5). Entities are JSON
 * objects, stored one per Redis hash field (docs/ARCHITECTURE.md lists their shapes).
 * The engine loads what a batch needs, the rules change it in memory and mark what they
 * changed, and the store writes the changes back in one atomic call per shop. */
#ifndef KEFU_ENGINE_SHOP_H
#define KEFU_ENGINE_SHOP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/ids.h"

typedef enum kefu_entity_kind {
  KEFU_ENT_AGENT = 0, /* hash kefu:{shop}:agents, field agent_id */
  KEFU_ENT_BUYER,     /* hash kefu:{shop}:buyers, field buyer_id */
  KEFU_ENT_ORDER,     /* hash kefu:{shop}:orders, field order_id */
  KEFU_ENT_META,      /* hash kefu:{shop}:meta: shop-wide records ("queue", ...) */
  KEFU_ENT__COUNT
} kefu_entity_kind_t;

typedef struct kefu_shop {
  char id[KEFU_ID_MAX + 1];
  json_t *config; /* the whole shop config, defaults filled; owned */
  bool config_dirty, config_is_default;
  json_t *entities[KEFU_ENT__COUNT]; /* id -> entity (json null: deleted); owned */
  json_t *dirty[KEFU_ENT__COUNT];    /* id -> true for entities to write back; owned */
  json_t *applied;                   /* "topic/partition" -> last applied offset; owned */
  json_t *applied_loaded;            /* the same as read from Redis, for the CAS; owned */
  json_t *dedup;                     /* event_id -> ts of ids seen in the last 7 days
                                        (only those this batch asked about); owned */
  json_t *dedup_new;                 /* event_id -> ts added by this batch; owned */
  json_t *timers_added;              /* zset member -> deadline, made by this batch; owned */
  json_t *timers_removed;            /* zset members fired by this batch; owned */
  int64_t timers_min;                /* earliest deadline left after the batch's apply */
  /* DELIV-4's index of shipped, unsigned orders (zset ns:{S}:shipped by shipment ts). */
  json_t *shipped;         /* order_id -> shipped_ts, as loaded + this batch */
  json_t *shipped_changed; /* order_id -> true for entries to write back */
  bool shipped_loaded;     /* the index was read for this batch */
} kefu_shop_t;

/** @brief A shop with no state loaded: @p defaults (borrowed, copied) as its config. */
kefu_shop_t *kefu_shop_new(const char *id, const json_t *defaults);
void kefu_shop_destroy(kefu_shop_t *s);

/** @brief The entity @p id of @p kind, or NULL when unknown (or deleted). Borrowed. */
json_t *kefu_shop_get(kefu_shop_t *s, kefu_entity_kind_t kind, const char *id);

/** @brief Replaces entity @p id (steals @p value; json null deletes) and marks it dirty. */
void kefu_shop_put(kefu_shop_t *s, kefu_entity_kind_t kind, const char *id, json_t *value);

/** @brief Marks an entity changed in place as dirty. */
void kefu_shop_touch(kefu_shop_t *s, kefu_entity_kind_t kind, const char *id);

/** @brief DELIV-4's index: @p order_id shipped at @p shipped_ts (0 removes it). */
void kefu_shop_set_shipped(kefu_shop_t *s, const char *order_id, int64_t shipped_ts);

/** @brief Replaces the config (steals @p config) and marks it dirty. */
void kefu_shop_set_config(kefu_shop_t *s, json_t *config, bool is_default);

/* Typed reads of the config with the schema's defaults already filled in. */
bool kefu_cfg_bool(const kefu_shop_t *s, const char *field);
int64_t kefu_cfg_int(const kefu_shop_t *s, const char *field);
const char *kefu_cfg_str(const kefu_shop_t *s, const char *field);
json_t *kefu_cfg_get(const kefu_shop_t *s, const char *field);

/* Helpers for entity fields. */
int64_t kefu_json_int(const json_t *o, const char *field, int64_t dflt);
const char *kefu_json_str(const json_t *o, const char *field);
/** @brief Both strings present and equal. */
bool kefu_str_eq(const char *a, const char *b);
bool kefu_json_str_eq(const json_t *o, const char *field, const char *value);
/** @brief The string @p field of @p o, or "-" when absent (for printing). */
const char *kefu_json_str_or(const json_t *o, const char *field);

#endif
