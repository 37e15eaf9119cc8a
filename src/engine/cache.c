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
#include <malloc.h>

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

/* Up to 80 % full: linear probing then takes about 2.5 probes to find an id and 9 to
 * find one missing (in one or two cache lines of keys), and the table, the cache's
 * biggest part with many buyers, costs 16 bytes an id / 0.4 to 0.8. */
void engine_seen_put(seen_set_t *s, uint64_t h, int64_t ts) {
  if ((uint64_t)(s->n + 1) * 5 > (uint64_t)s->cap * 4)
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

/* ------------------------------------------------------------------ buyers held in part */

#define BUYER_BYTES 1280 /* what a buyer costs in memory, roughly (entry_bytes) */

#define BLOOM_PROBES 7
#define BLOOM_FIRST_BITS 8192u /* 1 KiB; 10 bits an entry */

static void bloom_bits(uint64_t h, uint32_t i, uint32_t nbits, uint32_t *word, uint64_t *mask) {
  uint32_t bit = (uint32_t)(h + i * ((h >> 32) | 1)) & (nbits - 1);
  *word = bit / 64;
  *mask = UINT64_C(1) << (bit % 64);
}

static void bloom_add(bloom_t *b, uint64_t h) {
  if (!b->nf || b->f[b->nf - 1].n >= b->f[b->nf - 1].cap) {
    uint32_t nbits = b->nf ? b->f[b->nf - 1].nbits * 2 : BLOOM_FIRST_BITS;
    b->f = realloc(b->f, (b->nf + 1) * sizeof *b->f);
    b->f[b->nf] = (struct bloom_filter){calloc(nbits / 64, sizeof(uint64_t)), nbits, 0, nbits / 10};
    b->nf++;
  }
  struct bloom_filter *f = &b->f[b->nf - 1];
  for (uint32_t i = 0; i < BLOOM_PROBES; i++) {
    uint32_t w;
    uint64_t m;
    bloom_bits(h, i, f->nbits, &w, &m);
    f->bits[w] |= m;
  }
  f->n++;
}

static bool bloom_maybe(const bloom_t *b, uint64_t h) {
  for (uint32_t k = 0; k < b->nf; k++) {
    const struct bloom_filter *f = &b->f[k];
    bool all = true;
    for (uint32_t i = 0; i < BLOOM_PROBES && all; i++) {
      uint32_t w;
      uint64_t m;
      bloom_bits(h, i, f->nbits, &w, &m);
      all = (f->bits[w] & m) != 0;
    }
    if (all)
      return true;
  }
  return false;
}

static size_t bloom_bytes(const bloom_t *b) {
  size_t n = 0;
  for (uint32_t k = 0; k < b->nf; k++)
    n += b->f[k].nbits / 8;
  return n;
}

bool engine_buyer_maybe_stored(const shop_entry_t *e, const char *id) {
  if (kefu_shop_buyer(e->shop, id))
    return false;
  return !e->complete || bloom_maybe(&e->evicted, engine_event_hash(id));
}

kefu_buyer_t *engine_buyer_loaded(kefu_processor_t *p, shop_entry_t *e, kefu_buyer_t *b) {
  kefu_buyer_t *held = kefu_shop_buyer(e->shop, b->id);
  if (held) { /* memory is ahead of (or equal to) Redis */
    kefu_buyer_free(b);
    return held;
  }
  b->changed = false;
  kefu_shop_put_buyer(e->shop, b);
  push_owner(&p->tasks[e->task].heap, e, b, b->timers);
  int64_t m = kefu_timers_min(b->timers);
  if (m != INT64_MAX) { /* listed at or below its earliest timer's bucket */
    b->cache.due_listed = true;
    b->cache.due_exact = false;
    b->cache.due_at = kefu_due_bucket(m);
  }
  return b;
}

void engine_due_add(shop_entry_t *e, int64_t bucket, const char *id, bool cold) {
  uint32_t i = 0;
  while (i < e->ndue_add && e->due_add[i].bucket != bucket)
    i++;
  if (i == e->ndue_add) {
    e->due_add = realloc(e->due_add, (e->ndue_add + 1) * sizeof *e->due_add);
    e->due_add_cold = realloc(e->due_add_cold, (e->ndue_add + 1) * sizeof *e->due_add_cold);
    memset(&e->due_add[i], 0, sizeof e->due_add[i]);
    e->due_add[i].bucket = bucket;
    e->due_add_cold[i] = false;
    e->ndue_add++;
  }
  e->due_add_cold[i] |= cold;
  kefu_store_due_add(&e->due_add[i].ids, id);
}

void engine_due_insert(shop_entry_t *e, int64_t bucket, bool cold) {
  uint32_t i = 0;
  while (i < e->ndue && e->due[i] < bucket)
    i++;
  if (i < e->ndue && e->due[i] == bucket) {
    e->due_cold[i] |= cold;
    return;
  }
  if (e->ndue == e->due_cap) {
    e->due_cap = e->due_cap ? 2 * e->due_cap : 8;
    e->due = realloc(e->due, e->due_cap * sizeof *e->due);
    e->due_cold = realloc(e->due_cold, e->due_cap * sizeof *e->due_cold);
  }
  memmove(&e->due[i + 1], &e->due[i], (e->ndue - i) * sizeof *e->due);
  memmove(&e->due_cold[i + 1], &e->due_cold[i], (e->ndue - i) * sizeof *e->due_cold);
  e->due[i] = bucket;
  e->due_cold[i] = cold;
  e->ndue++;
  e->due_changed = true;
}

/* The buckets that list buyers memory does not hold bound what is pending; the timers of
 * the buyers it holds are counted as they are. */
int64_t engine_due_min(const shop_entry_t *e) {
  int64_t m = kefu_store_timers_min(e->shop);
  for (uint32_t i = 0; i < e->ndue; i++)
    if (e->due[i] > e->due_read && e->due_cold[i]) { /* the first to read */
      if (e->due[i] * KEFU_DUE_BUCKET_MS < m)
        m = e->due[i] * KEFU_DUE_BUCKET_MS;
      break;
    }
  for (uint32_t i = 0; i < e->ndue_add; i++)
    if (e->due_add_cold[i] && e->due_add[i].bucket * KEFU_DUE_BUCKET_MS < m)
      m = e->due_add[i].bucket * KEFU_DUE_BUCKET_MS;
  return m;
}

/* ------------------------------------------------------------------ entries */

shop_entry_t *engine_cache_get(kefu_processor_t *p, const char *shop_id) {
  return kefu_map_get(&p->cache, shop_id);
}

shop_entry_t *engine_cache_add(kefu_processor_t *p, const char *shop_id, int task) {
  shop_entry_t *e = engine_cache_get(p, shop_id);
  if (e)
    return e;
  engine_queue_back(p, shop_id);
  e = calloc(1, sizeof *e);
  e->shop = kefu_shop_new(shop_id);
  if (engine_config_override(p, shop_id, &e->shop->config)) /* a what-if: from the start */
    e->shop->config_is_default = false;
  e->task = task;
  for (int k = 0; k < KEFU_KEYED_INPUTS; k++)
    e->applied[k] = e->stored[k] = -1;
  e->seen_from = 1;
  e->seen_to = 0; /* none loaded */
  e->load_reply = e->seen_reply = e->buyers_reply = e->due_reply = -1;
  e->due_read = INT64_MIN;
  kefu_map_put(&p->cache, shop_id, e);
  return e;
}

static void bloom_clear(bloom_t *b) {
  for (uint32_t i = 0; i < b->nf; i++)
    free(b->f[i].bits);
  free(b->f);
  memset(b, 0, sizeof *b);
}

void engine_due_add_clear(shop_entry_t *e) {
  for (uint32_t i = 0; i < e->ndue_add; i++)
    kefu_buf_free(&e->due_add[i].ids);
  free(e->due_add);
  free(e->due_add_cold);
  e->due_add = NULL;
  e->due_add_cold = NULL;
  e->ndue_add = 0;
}

static void entry_free(shop_entry_t *e) {
  kefu_shop_destroy(e->shop);
  bloom_clear(&e->evicted);
  engine_due_add_clear(e);
  free(e->due);
  free(e->due_cold);
  free(e->due_del);
  kefu_strv_clear(&e->need_ids);
  kefu_map_clear(&e->asked, NULL);
  engine_seen_clear(&e->seen);
  for (uint32_t i = 0; i < e->nseen_new; i++)
    kefu_buf_free(&e->seen_new[i].add);
  free(e->seen_new);
  free(e);
}

void engine_cache_drop(kefu_processor_t *p, shop_entry_t *e) {
  engine_queue_leaves(p, e);
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
  const char *id;
  void *v;
  kefu_map_foreach(&p->cache, it, id, v) engine_queue_leaves(p, v);
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
  return 512 + (size_t)kefu_map_size(&s->agents) * 384 +
         (size_t)kefu_map_size(&s->buyers) * BUYER_BYTES + (size_t)kefu_map_size(&s->orders) * 288 +
         (size_t)e->seen.cap * 16 + (size_t)kefu_map_size(&s->shipped.by_order) * 48 +
         bloom_bytes(&e->evicted);
}

static int by_use(const void *a, const void *b) {
  const shop_entry_t *x = *(shop_entry_t *const *)a, *y = *(shop_entry_t *const *)b;
  return x->used < y->used ? -1 : x->used > y->used;
}

typedef struct victim {
  uint64_t used;
  shop_entry_t *e;
  kefu_buyer_t *b;
} victim_t;

static int victim_by_use(const void *a, const void *b) {
  const victim_t *x = a, *y = b;
  return x->used < y->used ? -1 : x->used > y->used;
}

/* A buyer may leave memory when Redis holds it as memory does (written since its last
 * change), it is not queued (ROUTE-11 walks the queue), and no timer of it is one the
 * next batches fire from memory: its earliest is in a due bucket not read yet, which
 * lists it or will with the next write. */
static bool evictable(const shop_entry_t *e, const kefu_buyer_t *b) {
  if (b->changed || b->cache.pinned)
    return false;
  int64_t m = kefu_timers_min(b->timers);
  return m == INT64_MAX || kefu_due_bucket(m) > e->due_read;
}

static void set_queue_pins(shop_entry_t *e, bool on) {
  for (uint32_t i = 0; i < e->shop->queue.n; i++) {
    kefu_buyer_t *b = kefu_shop_buyer(e->shop, e->shop->queue.v[i].buyer_id);
    if (b)
      b->cache.pinned = on;
  }
}

/* Takes @p b out of memory. If the bucket listing it may be deleted (it was read, or
 * which one is not known), it is listed again, in its earliest timer's bucket, with the
 * shop's next write; until then the old one stays in Redis (deleted by that write). */
static void evict(shop_entry_t *e, kefu_buyer_t *b) {
  int64_t m = kefu_timers_min(b->timers);
  if (m != INT64_MAX &&
      (!b->cache.due_listed || !b->cache.due_exact || b->cache.due_at <= e->due_read))
    engine_due_add(e, kefu_due_bucket(m), b->id, true);
  else if (m != INT64_MAX) /* its bucket (not read yet) must be read now */
    engine_due_insert(e, b->cache.due_at, true);
  bloom_add(&e->evicted, engine_event_hash(b->id));
  b->cache.evicted = true;
  kefu_map_del(&e->shop->buyers, b->id);
}

/* Evicts least recently used buyers until @p total is at most @p target; returns the new
 * total. */
static size_t evict_buyers(kefu_processor_t *p, shop_entry_t **all, size_t n, size_t total,
                           size_t target) {
  victim_t *v = NULL;
  size_t nv = 0, cap = 0, k = 0;
  bool touched[MAX_TASKS] = {0};
  for (size_t i = 0; i < n; i++) {
    const char *id;
    void *val;
    set_queue_pins(all[i], true);
    kefu_map_foreach(&all[i]->shop->buyers, it, id, val) {
      kefu_buyer_t *b = val;
      if (!evictable(all[i], b))
        continue;
      if (nv == cap) {
        cap = cap ? 2 * cap : 1024;
        v = realloc(v, cap * sizeof *v);
      }
      v[nv++] = (victim_t){b->cache.used, all[i], b};
    }
    set_queue_pins(all[i], false);
  }
  qsort(v, nv, sizeof *v, victim_by_use);
  for (; k < nv && total > target; k++) {
    evict(v[k].e, v[k].b);
    touched[v[k].e->task] = true;
    total -= BUYER_BYTES;
  }
  for (int t = 0; t < MAX_TASKS; t++) { /* the queue forgets them before they are freed */
    timer_heap_t *h = &p->tasks[t].heap, kept = {0};
    if (!touched[t])
      continue;
    for (size_t i = 0; i < h->n; i++)
      if (!h->v[i].buyer || !h->v[i].buyer->cache.evicted)
        engine_heap_push(&kept, &h->v[i]);
    free(h->v);
    *h = kept;
  }
  for (size_t i = 0; i < k; i++)
    kefu_buyer_free(v[i].b);
  free(v);
  return total;
}

/* After a batch, when memory is over budget: the least recently used buyers leave first,
 * down to three quarters of it (so that this runs seldom), then whole shops if still
 * over. A zero budget drops every shop. */
void engine_cache_trim(kefu_processor_t *p) {
  size_t budget = (size_t)(p->o->state_cache_mb * 1048576.0), total = 0, n = 0;
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
  bool over = total > budget;
  if (over)
    total = evict_buyers(p, all, n, total, budget - budget / 4);
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
  /* What left is small pieces all over the heap, which glibc keeps (the heap's top is
   * trimmed only past M_TRIM_THRESHOLD): hand their whole pages back, or RSS would stay
   * at its highest however much the cache evicts. */
  if (over)
    malloc_trim(0);
}
