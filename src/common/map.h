/* A hash map from strings to pointers (open addressing, linear probing): the shop's
 * agents, buyers and orders by id. Keys are copied. Iteration order is unspecified and
 * differs with the order of insertion, so a rule whose output depends on an order sorts
 * first (the cache and cache-off modes insert in different orders). */
#ifndef KEFU_COMMON_MAP_H
#define KEFU_COMMON_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kefu_map_slot {
  char *key; /* owned; NULL: empty; KEFU_MAP_TOMBSTONE: deleted */
  void *value;
  uint32_t hash;
} kefu_map_slot_t;

typedef struct kefu_map {
  kefu_map_slot_t *slots;
  uint32_t cap;  /* a power of two, or 0 */
  uint32_t n;    /* live entries */
  uint32_t used; /* live + deleted slots */
} kefu_map_t;

void kefu_map_init(kefu_map_t *m);
/** @brief Frees every key, calls @p free_value (may be NULL) on every value, empties. */
void kefu_map_clear(kefu_map_t *m, void (*free_value)(void *));

void *kefu_map_get(const kefu_map_t *m, const char *key);
/** @brief Sets @p key to @p value; returns the value it replaced, or NULL. */
void *kefu_map_put(kefu_map_t *m, const char *key, void *value);
/** @brief Removes @p key; returns its value, or NULL when absent. */
void *kefu_map_del(kefu_map_t *m, const char *key);
static inline uint32_t kefu_map_size(const kefu_map_t *m) {
  return m->n;
}

/** @brief The next live entry at or after slot *@p it; advances *@p it past it. */
bool kefu_map_next(const kefu_map_t *m, size_t *it, const char **key, void **value);

#define kefu_map_foreach(m, it, k, v) for (size_t it = 0; kefu_map_next((m), &it, &(k), &(v));)

#endif
