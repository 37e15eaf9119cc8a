#include "engine/timers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *kefu_timer_member(const kefu_timer_t *t) {
  if (t->member)
    return strdup(t->member);
  char *payload =
      json_dumps(t->payload ? t->payload : json_object(), JSON_COMPACT | JSON_SORT_KEYS);
  size_t len = strlen(t->order) + strlen(t->kind) + strlen(t->buyer_id) + strlen(payload) + 4;
  char *m = malloc(len);
  snprintf(m, len, "%s|%s|%s|%s", t->order, t->kind, t->buyer_id, payload);
  free(payload);
  return m;
}

static int copy_part(char *dst, size_t dstlen, const char *start, const char *end) {
  if (!end || (size_t)(end - start) >= dstlen)
    return -1;
  memcpy(dst, start, (size_t)(end - start));
  dst[end - start] = '\0';
  return 0;
}

kefu_timer_t *kefu_timer_parse(const char *member, size_t len, int64_t deadline,
                               const char *shop_id) {
  kefu_timer_t *t = calloc(1, sizeof *t);
  const char *end = member + len;
  const char *p1 = memchr(member, '|', len);
  const char *p2 = p1 ? memchr(p1 + 1, '|', (size_t)(end - p1 - 1)) : NULL;
  const char *p3 = p2 ? memchr(p2 + 1, '|', (size_t)(end - p2 - 1)) : NULL;
  t->deadline = deadline;
  snprintf(t->shop_id, sizeof t->shop_id, "%s", shop_id);
  if (copy_part(t->order, sizeof t->order, member, p1) ||
      copy_part(t->kind, sizeof t->kind, p1 + 1, p2) ||
      copy_part(t->buyer_id, sizeof t->buyer_id, p2 + 1, p3) ||
      !(t->payload = json_loadb(p3 + 1, (size_t)(end - p3 - 1), 0, NULL)) ||
      !json_is_object(t->payload)) {
    kefu_timer_free(t);
    return NULL;
  }
  t->member = strndup(member, len);
  return t;
}

void kefu_timer_free(kefu_timer_t *t) {
  if (!t)
    return;
  json_decref(t->payload);
  free(t->member);
  free(t);
}

void kefu_timer_order(char *out, size_t outlen, int64_t ts, int rank, int64_t offset, int n) {
  /* ts and offset are non-negative for every valid input; 19 digits hold any int64. */
  snprintf(out, outlen, "%019" PRId64 ".%d.%019" PRId64 ".%05d", ts, rank, offset, n);
}

static int compare(const kefu_timer_t *a, const kefu_timer_t *b) {
  if (a->deadline != b->deadline)
    return a->deadline < b->deadline ? -1 : 1;
  return strcmp(a->order, b->order);
}

void kefu_timer_queue_add(kefu_timer_queue_t *q, kefu_timer_t *t) {
  size_t lo = 0, hi = q->n;
  if (q->n == q->cap) {
    q->cap = q->cap ? q->cap * 2 : 64;
    q->items = realloc(q->items, q->cap * sizeof *q->items);
  }
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (compare(q->items[mid], t) <= 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  memmove(q->items + lo + 1, q->items + lo, (q->n - lo) * sizeof *q->items);
  q->items[lo] = t;
  q->n++;
}

kefu_timer_t *kefu_timer_queue_pop_due(kefu_timer_queue_t *q, int64_t watermark,
                                       const char *shop_id, const char *buyer_id) {
  for (size_t i = 0; i < q->n && q->items[i]->deadline < watermark; i++) {
    kefu_timer_t *t = q->items[i];
    if (buyer_id && (strcmp(t->buyer_id, buyer_id) != 0 || strcmp(t->shop_id, shop_id) != 0))
      continue;
    memmove(q->items + i, q->items + i + 1, (q->n - i - 1) * sizeof *q->items);
    q->n--;
    return t;
  }
  return NULL;
}

void kefu_timer_queue_clear(kefu_timer_queue_t *q) {
  for (size_t i = 0; i < q->n; i++)
    kefu_timer_free(q->items[i]);
  free(q->items);
  memset(q, 0, sizeof *q);
}
