#include "common/map.h"

#include <stdlib.h>
#include <string.h>

static char tombstone;
#define TOMB (&tombstone)

/* FNV-1a: short ids, no adversary (ids are validated input, and probing is linear). */
static uint32_t hash_of(const char *s) {
  uint32_t h = 2166136261u;
  while (*s)
    h = (h ^ (uint8_t)*s++) * 16777619u;
  return h;
}

void kefu_map_init(kefu_map_t *m) {
  memset(m, 0, sizeof *m);
}

void kefu_map_clear(kefu_map_t *m, void (*free_value)(void *)) {
  for (uint32_t i = 0; i < m->cap; i++) {
    kefu_map_slot_t *s = &m->slots[i];
    if (!s->key || s->key == TOMB)
      continue;
    free(s->key);
    if (free_value)
      free_value(s->value);
  }
  free(m->slots);
  memset(m, 0, sizeof *m);
}

static kefu_map_slot_t *find(const kefu_map_t *m, const char *key, uint32_t h) {
  if (!m->cap)
    return NULL;
  for (uint32_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    kefu_map_slot_t *s = &m->slots[i];
    if (!s->key)
      return NULL;
    if (s->key != TOMB && s->hash == h && strcmp(s->key, key) == 0)
      return s;
  }
}

void *kefu_map_get(const kefu_map_t *m, const char *key) {
  if (!m->n) /* no hashing for an empty map (a batch's remembered outputs, mostly) */
    return NULL;
  kefu_map_slot_t *s = key ? find(m, key, hash_of(key)) : NULL;
  return s ? s->value : NULL;
}

static void grow(kefu_map_t *m) {
  kefu_map_t old = *m;
  uint32_t cap = old.cap ? old.cap : 8;
  while (old.n * 2 + 2 > cap) /* at most half full after the resize */
    cap *= 2;
  m->slots = calloc(cap, sizeof *m->slots);
  m->cap = cap;
  m->n = m->used = 0;
  for (uint32_t i = 0; i < old.cap; i++) {
    kefu_map_slot_t *s = &old.slots[i];
    if (!s->key || s->key == TOMB)
      continue;
    uint32_t j = s->hash & (cap - 1);
    while (m->slots[j].key)
      j = (j + 1) & (cap - 1);
    m->slots[j] = *s;
    m->n++;
    m->used++;
  }
  free(old.slots);
}

void *kefu_map_put(kefu_map_t *m, const char *key, void *value) {
  uint32_t h = hash_of(key);
  kefu_map_slot_t *s = find(m, key, h);
  if (s) {
    void *old = s->value;
    s->value = value;
    return old;
  }
  if ((m->used + 1) * 4 > m->cap * 3)
    grow(m);
  uint32_t i = h & (m->cap - 1);
  while (m->slots[i].key && m->slots[i].key != TOMB)
    i = (i + 1) & (m->cap - 1);
  if (!m->slots[i].key)
    m->used++;
  m->slots[i] = (kefu_map_slot_t){strdup(key), value, h};
  m->n++;
  return NULL;
}

void *kefu_map_del(kefu_map_t *m, const char *key) {
  kefu_map_slot_t *s = key ? find(m, key, hash_of(key)) : NULL;
  if (!s)
    return NULL;
  void *v = s->value;
  free(s->key);
  s->key = TOMB;
  s->value = NULL;
  m->n--;
  return v;
}

bool kefu_map_next(const kefu_map_t *m, size_t *it, const char **key, void **value) {
  for (; *it < m->cap; (*it)++) {
    kefu_map_slot_t *s = &m->slots[*it];
    if (s->key && s->key != TOMB) {
      *key = s->key;
      *value = s->value;
      (*it)++;
      return true;
    }
  }
  return false;
}
