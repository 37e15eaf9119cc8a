/* The owner cache: the shops of this instance's tasks, kept in memory across batches
 * (SPEC §5: "an instance may cache what it owns"). A shop is read from Redis once, when
 * a batch first needs it, and from then on only its changes are written. The cache is
 * bounded by state.cache_mb (least recently used shops leave first); 0 drops every shop
 * after each batch, which reads everything again for each batch.
 *
 * What makes it safe: the compare-and-set of kefu_apply on the shop's applied offsets.
 * Any other writer (a zombie after a rebalance, an operator) changes them, the next
 * write of this instance fails with a conflict, and the shop is dropped and read again.
 * A batch that fails to write drops every shop it touched, since their memory may be
 * ahead of Redis; a revoked task drops its shops. */
#include "engine/processor_int.h"

/* ------------------------------------------------------------------ event ids seen */

/* FNV-1a 64 with a final mix; never 0 (0 marks an empty slot). */
uint64_t engine_event_hash(const char *id) {
  uint64_t h = 14695981039346656037ull;
  for (const unsigned char *s = (const unsigned char *)id; *s; s++)
    h = (h ^ *s) * 1099511628211ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h ? h : 1;
}

static void seen_grow(seen_set_t *s) {
  seen_set_t old = *s;
  s->cap = old.cap ? old.cap * 2 : 64;
  s->key = calloc(s->cap, sizeof *s->key);
  s->ts = calloc(s->cap, sizeof *s->ts);
  s->n = 0;
  for (uint32_t i = 0; i < old.cap; i++)
    if (old.key[i])
      engine_seen_put(s, old.key[i], old.ts[i]);
  free(old.key);
  free(old.ts);
}

void engine_seen_put(seen_set_t *s, uint64_t h, int64_t ts) {
  if ((s->n + 1) * 2 > s->cap)
    seen_grow(s);
  uint32_t i = (uint32_t)h & (s->cap - 1);
  while (s->key[i] && s->key[i] != h)
    i = (i + 1) & (s->cap - 1);
  if (!s->key[i])
    s->n++;
  else if (s->ts[i] > ts)
    return; /* keep the latest */
  s->key[i] = h;
  s->ts[i] = ts;
}

bool engine_seen_get(const seen_set_t *s, uint64_t h, int64_t *ts) {
  if (!s->cap)
    return false;
  for (uint32_t i = (uint32_t)h & (s->cap - 1); s->key[i]; i = (i + 1) & (s->cap - 1))
    if (s->key[i] == h) {
      *ts = s->ts[i];
      return true;
    }
  return false;
}

/* Keeps only the ids seen at or after @p from_ts. */
void engine_seen_trim(seen_set_t *s, int64_t from_ts) {
  seen_set_t old = *s;
  memset(s, 0, sizeof *s);
  for (uint32_t i = 0; i < old.cap; i++)
    if (old.key[i] && old.ts[i] >= from_ts)
      engine_seen_put(s, old.key[i], old.ts[i]);
  free(old.key);
  free(old.ts);
}

void engine_seen_clear(seen_set_t *s) {
  free(s->key);
  free(s->ts);
  memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------ timers */

static bool ref_before(const timer_ref_t *a, const timer_ref_t *b) {
  kefu_timer_t x = {.deadline = a->deadline, .order = a->order};
  kefu_timer_t y = {.deadline = b->deadline, .order = b->order};
  return kefu_timer_cmp(&x, &y) < 0;
}

void engine_heap_push(timer_heap_t *h, const timer_ref_t *r) {
  if (h->n == h->cap) {
    h->cap = h->cap ? h->cap * 2 : 64;
    h->v = realloc(h->v, h->cap * sizeof *h->v);
  }
  size_t i = h->n++;
  while (i > 0 && ref_before(r, &h->v[(i - 1) / 2])) {
    h->v[i] = h->v[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h->v[i] = *r;
}

void engine_heap_pop(timer_heap_t *h) {
  timer_ref_t last = h->v[--h->n];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->n)
      break;
    if (c + 1 < h->n && ref_before(&h->v[c + 1], &h->v[c]))
      c++;
    if (!ref_before(&h->v[c], &last))
      break;
    h->v[i] = h->v[c];
    i = c;
  }
  if (h->n)
    h->v[i] = last;
}

/* Rebuilds @p h without the timers of @p gone (NULL: keeps all). */
static void heap_remove_shop(timer_heap_t *h, const shop_entry_t *gone) {
  timer_heap_t kept = {0};
  for (size_t i = 0; i < h->n; i++)
    if (h->v[i].e != gone)
      engine_heap_push(&kept, &h->v[i]);
  free(h->v);
  *h = kept;
}

static void push_owner(timer_heap_t *h, shop_entry_t *e, kefu_buyer_t *b, const kefu_timers_t *l) {
  for (uint32_t i = 0; l && i < l->n; i++)
    engine_heap_push(h, &(timer_ref_t){l->v[i].deadline, l->v[i].order, e, b});
}

void engine_heap_add_shop(timer_heap_t *h, shop_entry_t *e) {
  const char *id;
  void *v;
  push_owner(h, e, NULL, &e->shop->timers);
  kefu_map_foreach(&e->shop->buyers, it, id, v) {
    kefu_buyer_t *b = v;
    push_owner(h, e, b, b->timers);
  }
}

/* ------------------------------------------------------------------ entries */

shop_entry_t *engine_cache_get(kefu_processor_t *p, const char *shop_id) {
  return kefu_map_get(&p->cache, shop_id);
}

shop_entry_t *engine_cache_add(kefu_processor_t *p, const char *shop_id, int task) {
  shop_entry_t *e = engine_cache_get(p, shop_id);
  if (e)
    return e;
  e = calloc(1, sizeof *e);
  e->shop = kefu_shop_new(shop_id);
  e->task = task;
  for (int k = 0; k < KEFU_KEYED_INPUTS; k++)
    e->applied[k] = e->stored[k] = -1;
  e->seen_from = 1;
  e->seen_to = 0; /* none loaded */
  e->load_reply = e->seen_reply = -1;
  kefu_map_put(&p->cache, shop_id, e);
  return e;
}

static void entry_free(shop_entry_t *e) {
  kefu_shop_destroy(e->shop);
  engine_seen_clear(&e->seen);
  for (uint32_t i = 0; i < e->nseen_new; i++)
    kefu_buf_free(&e->seen_new[i].add);
  free(e->seen_new);
  free(e);
}

void engine_cache_drop(kefu_processor_t *p, shop_entry_t *e) {
  if (e->loaded)
    heap_remove_shop(&p->tasks[e->task].heap, e);
  kefu_map_del(&p->cache, e->shop->id);
  entry_free(e);
}

void engine_cache_drop_task(kefu_processor_t *p, int task) {
  const char *id;
  void *v;
  shop_entry_t **gone = NULL;
  size_t n = 0;
  kefu_map_foreach(&p->cache, it, id, v) {
    shop_entry_t *e = v;
    if (e->task != task)
      continue;
    gone = realloc(gone, (n + 1) * sizeof *gone);
    gone[n++] = e;
  }
  for (size_t i = 0; i < n; i++) {
    kefu_map_del(&p->cache, gone[i]->shop->id);
    entry_free(gone[i]);
  }
  free(gone);
  free(p->tasks[task].heap.v);
  memset(&p->tasks[task].heap, 0, sizeof p->tasks[task].heap);
}

static void free_entry(void *e) {
  entry_free(e);
}

void engine_cache_clear(kefu_processor_t *p) {
  kefu_map_clear(&p->cache, free_entry);
  for (int t = 0; t < MAX_TASKS; t++) {
    free(p->tasks[t].heap.v);
    memset(&p->tasks[t].heap, 0, sizeof p->tasks[t].heap);
  }
  p->cache_bytes = 0;
}

/* What a shop costs in memory, roughly: the decoded entities with their strings and
 * allocator overhead (a buyer with a session, a wait and its timers measured about 1 KiB
 * of RSS in the bench's open-waits run: docs/PERFORMANCE.md), the event ids seen and the
 * DELIV-4 index. */
static size_t entry_bytes(const shop_entry_t *e) {
  const kefu_shop_t *s = e->shop;
  return 512 + (size_t)kefu_map_size(&s->agents) * 384 + (size_t)kefu_map_size(&s->buyers) * 1024 +
         (size_t)kefu_map_size(&s->orders) * 288 + (size_t)e->seen.cap * 16 +
         (size_t)kefu_map_size(&s->shipped.by_order) * 48;
}

static int by_use(const void *a, const void *b) {
  const shop_entry_t *x = *(shop_entry_t *const *)a, *y = *(shop_entry_t *const *)b;
  return x->used < y->used ? -1 : x->used > y->used;
}

/* After a batch: with a zero budget every shop goes; else the least recently used go
 * until the rest fits. */
void engine_cache_trim(kefu_processor_t *p) {
  size_t budget = (size_t)p->o->state_cache_mb << 20, total = 0, n = 0;
  const char *id;
  void *v;
  if (budget == 0) {
    engine_cache_clear(p);
    return;
  }
  shop_entry_t **all = malloc((kefu_map_size(&p->cache) + 1) * sizeof *all);
  kefu_map_foreach(&p->cache, it, id, v) {
    all[n++] = v;
    total += entry_bytes(v);
  }
  for (int t = 0; t < MAX_TASKS; t++) /* the queued timers, counted for all shops at once */
    total += p->tasks[t].heap.n * sizeof(timer_ref_t);
  p->cache_bytes = total;
  if (total > budget) {
    qsort(all, n, sizeof *all, by_use);
    for (size_t i = 0; i < n && total > budget; i++) {
      total -= entry_bytes(all[i]);
      engine_cache_drop(p, all[i]);
    }
    p->cache_bytes = total;
  }
  free(all);
}
