/* The compact, versioned encoding of kefu's state in Redis (state_codec.h, docs/STATE.md).
 *
 * Field 1 of every top-level value is its time base (a zigzag varint, absent: 0): the
 * record's own fields start at 2 (so do a timer's, which is also a value of its own),
 * nested messages start at 1. Every time field (T in docs/STATE.md) of the value and of
 * its nested messages is written as the zigzag difference from that base, so that the
 * timestamps of one entity, which lie close together, take 1 to 5 bytes instead of 6 or
 * 7. Time fields equal to 0 ("never") are not written. Differences wrap in uint64, so any
 * int64 survives. */
#include "store/state_codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2 };

#define ONE_(n) +1
enum {
  N_PRESENCE = KEFU_PRESENCE__COUNT,
  N_LEAVE = 0 KEFU_LEAVE_TARGETS(ONE_),
  N_STRATEGY = 0 KEFU_STRATEGIES(ONE_),
  N_ACCOUNT = 0 KEFU_ACCOUNT_KINDS(ONE_),
  N_ORDER_STATE = 0 KEFU_ORDER_STATES(ONE_),
  N_TARGET = KEFU_TARGET_QUEUE + 1,
  N_REPLY = KEFU_REPLY_AGENT + 1,
  N_INVITATION = KEFU_INVITATION_ACTIVE + 1,
};

static const char *const reply_names[] = {"NONE", "BOT", "AUTO", "AGENT"};
static const char *const invitation_names[] = {"NONE", "PENDING", "ACTIVE"};
static const char *const class_names[] = {"bot", "human", "other"};

/* ================================================================== the buffer */

void kefu_buf_reset(kefu_buf_t *b) {
  b->n = 0;
}

void kefu_buf_free(kefu_buf_t *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

__attribute__((noinline)) static void grow_buf(kefu_buf_t *b, size_t k) {
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->n < k)
    cap *= 2;
  uint8_t *p = realloc(b->p, cap);
  if (!p)
    abort();
  b->p = p;
  b->cap = cap;
}

static inline void reserve(kefu_buf_t *b, size_t k) {
  if (__builtin_expect(b->cap - b->n < k, 0))
    grow_buf(b, k);
}

void kefu_buf_append(kefu_buf_t *b, const void *p, size_t n) {
  reserve(b, n);
  memcpy(b->p + b->n, p, n);
  b->n += n;
}

/* ================================================================== encoding */

static inline uint64_t zz(int64_t v) {
  return ((uint64_t)v << 1) ^ (0 - ((uint64_t)v >> 63));
}

static inline int64_t unzz(uint64_t u) {
  return (int64_t)((u >> 1) ^ (0 - (u & 1)));
}

static inline void put_varint(kefu_buf_t *b, uint64_t v) {
  reserve(b, 10);
  while (v >= 0x80) {
    b->p[b->n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  b->p[b->n++] = (uint8_t)v;
}

static inline void put_key(kefu_buf_t *b, unsigned f, int wt) {
  put_varint(b, (uint64_t)f << 3 | (uint64_t)wt);
}

static inline void e_uint(kefu_buf_t *b, unsigned f, uint64_t v, uint64_t def) {
  if (v != def) {
    put_key(b, f, WT_VARINT);
    put_varint(b, v);
  }
}

static inline void e_sint(kefu_buf_t *b, unsigned f, int64_t v, int64_t def) {
  if (v != def) {
    put_key(b, f, WT_VARINT);
    put_varint(b, zz(v));
  }
}

static inline void e_bool(kefu_buf_t *b, unsigned f, bool v, bool def) {
  e_uint(b, f, v ? 1 : 0, def ? 1 : 0);
}

/* A time field: 0 is not written, others relative to the value's base. */
static inline void e_time(kefu_buf_t *b, unsigned f, int64_t v, int64_t base) {
  if (v) {
    put_key(b, f, WT_VARINT);
    put_varint(b, zz((int64_t)((uint64_t)v - (uint64_t)base)));
  }
}

static inline void e_double(kefu_buf_t *b, unsigned f, double d) {
  uint64_t u = 0;
  memcpy(&u, &d, sizeof u);
  put_key(b, f, WT_I64);
  reserve(b, 8);
  for (int i = 0; i < 8; i++)
    b->p[b->n++] = (uint8_t)(u >> (8 * i));
}

static inline void e_str(kefu_buf_t *b, unsigned f, const char *s) {
  if (!s)
    return;
  size_t len = strlen(s);
  put_key(b, f, WT_LEN);
  put_varint(b, len);
  reserve(b, len);
  memcpy(b->p + b->n, s, len);
  b->n += len;
}

static void e_strv(kefu_buf_t *b, unsigned f, const kefu_strv_t *l) {
  for (uint32_t i = 0; i < l->n; i++)
    e_str(b, f, l->v[i]);
}

/* A nested message or packed field: a one-byte length is reserved and fixed up (moved
 * when the body is 128 bytes or more). */
static inline size_t msg_begin(kefu_buf_t *b, unsigned f) {
  put_key(b, f, WT_LEN);
  reserve(b, 1);
  b->p[b->n++] = 0;
  return b->n;
}

static void msg_end(kefu_buf_t *b, size_t start) {
  size_t len = b->n - start;
  if (len < 0x80) {
    b->p[start - 1] = (uint8_t)len;
    return;
  }
  uint8_t tmp[10];
  size_t k = 0;
  for (uint64_t v = len;; v >>= 7) {
    tmp[k++] = (uint8_t)(v >= 0x80 ? (v | 0x80) : v);
    if (v < 0x80)
      break;
  }
  reserve(b, k - 1);
  memmove(b->p + start - 1 + k, b->p + start, len);
  memcpy(b->p + start - 1, tmp, k);
  b->n += k - 1;
}

static void top_begin(kefu_buf_t *b, int64_t base) {
  reserve(b, 1);
  b->p[b->n++] = KEFU_STATE_VERSION;
  e_sint(b, 1, base, 0);
}

static int64_t first_nonzero(int n, const int64_t *v) {
  for (int i = 0; i < n; i++)
    if (v[i])
      return v[i];
  return 0;
}

/* ================================================================== decoding */

typedef struct rd {
  const uint8_t *p, *end, *start;
  int64_t base;
  const char *msg; /* the message being read, for errors */
  char *err;
  size_t errlen;
} rd_t;

typedef struct fld {
  uint32_t num;
  int wt;
  uint64_t v;
  const uint8_t *data;
  size_t len, at;
} fld_t;

__attribute__((format(printf, 3, 4))) static int fail(rd_t *r, size_t at, const char *fmt, ...) {
  char m[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m, sizeof m, fmt, ap);
  va_end(ap);
  if (r->err && r->errlen)
    snprintf(r->err, r->errlen, "%s: byte %zu: %s", r->msg, at, m);
  return -1;
}

static int get_varint(rd_t *r, uint64_t *out) {
  uint64_t v = 0;
  size_t at = (size_t)(r->p - r->start);
  for (int i = 0; i < 10; i++) {
    if (r->p >= r->end)
      return fail(r, at, "truncated varint");
    uint8_t c = *r->p++;
    if (i == 9 && c > 1)
      return fail(r, at, "varint overflows 64 bits");
    v |= (uint64_t)(c & 0x7f) << (7 * i);
    if (!(c & 0x80)) {
      *out = v;
      return 0;
    }
  }
  return fail(r, at, "varint longer than 10 bytes");
}

/* The next field: 1, 0 at the end, -1 on error. */
static int rd_next(rd_t *r, fld_t *f) {
  uint64_t key = 0;
  if (r->p >= r->end)
    return 0;
  f->at = (size_t)(r->p - r->start);
  if (get_varint(r, &key))
    return -1;
  f->num = (uint32_t)(key >> 3);
  f->wt = (int)(key & 7);
  if ((key >> 3) == 0 || (key >> 3) > UINT32_MAX)
    return fail(r, f->at, "bad field number %llu", (unsigned long long)(key >> 3));
  switch (f->wt) {
  case WT_VARINT: return get_varint(r, &f->v) ? -1 : 1;
  case WT_I64:
    if (r->end - r->p < 8)
      return fail(r, f->at, "field %u: truncated 8-byte value", f->num);
    f->v = 0;
    for (int i = 0; i < 8; i++)
      f->v |= (uint64_t)r->p[i] << (8 * i);
    r->p += 8;
    return 1;
  case WT_LEN:
    if (get_varint(r, &f->v))
      return -1;
    if (f->v > (uint64_t)(r->end - r->p))
      return fail(r, f->at, "field %u: length %llu exceeds the %zu bytes left", f->num,
                  (unsigned long long)f->v, (size_t)(r->end - r->p));
    f->data = r->p;
    f->len = (size_t)f->v;
    r->p += f->len;
    return 1;
  default: return fail(r, f->at, "field %u: unknown wire type %d", f->num, f->wt);
  }
}

static int want(rd_t *r, const fld_t *f, int wt) {
  if (f->wt == wt)
    return 0;
  return fail(r, f->at, "field %u: wire type %d, expected %d", f->num, f->wt, wt);
}

static rd_t sub(const rd_t *r, const fld_t *f, const char *msg) {
  rd_t s = *r;
  s.p = f->data;
  s.end = f->data + f->len;
  s.msg = msg;
  return s;
}

static int g_bool(rd_t *r, const fld_t *f, bool *out) {
  if (want(r, f, WT_VARINT))
    return -1;
  if (f->v > 1)
    return fail(r, f->at, "field %u: boolean %llu", f->num, (unsigned long long)f->v);
  *out = f->v != 0;
  return 0;
}

static int g_u32(rd_t *r, const fld_t *f, uint32_t *out) {
  if (want(r, f, WT_VARINT))
    return -1;
  if (f->v > UINT32_MAX)
    return fail(r, f->at, "field %u: %llu exceeds 32 bits", f->num, (unsigned long long)f->v);
  *out = (uint32_t)f->v;
  return 0;
}

/* An enum stored as its index: 0 <= v < count. */
static int g_enum(rd_t *r, const fld_t *f, int count, int *out) {
  if (want(r, f, WT_VARINT))
    return -1;
  if (f->v >= (uint64_t)count)
    return fail(r, f->at, "field %u: enum value %llu out of range (0..%d)", f->num,
                (unsigned long long)f->v, count - 1);
  *out = (int)f->v;
  return 0;
}

static int g_i64(rd_t *r, const fld_t *f, int64_t *out) {
  if (want(r, f, WT_VARINT))
    return -1;
  *out = unzz(f->v);
  return 0;
}

static int g_i32(rd_t *r, const fld_t *f, int32_t *out) {
  int64_t v;
  if (g_i64(r, f, &v))
    return -1;
  if (v < INT32_MIN || v > INT32_MAX)
    return fail(r, f->at, "field %u: %lld exceeds 32 bits", f->num, (long long)v);
  *out = (int32_t)v;
  return 0;
}

static int g_time(rd_t *r, const fld_t *f, int64_t *out) {
  if (want(r, f, WT_VARINT))
    return -1;
  *out = (int64_t)((uint64_t)r->base + (uint64_t)unzz(f->v));
  return 0;
}

static int g_double(rd_t *r, const fld_t *f, double *out) {
  if (want(r, f, WT_I64))
    return -1;
  memcpy(out, &f->v, sizeof *out);
  return 0;
}

static int g_str(rd_t *r, const fld_t *f, size_t max, char **out) {
  if (want(r, f, WT_LEN))
    return -1;
  if (f->len > max)
    return fail(r, f->at, "field %u: string of %zu bytes (at most %zu)", f->num, f->len, max);
  if (memchr(f->data, 0, f->len))
    return fail(r, f->at, "field %u: string contains a NUL byte", f->num);
  char *s = malloc(f->len + 1);
  if (!s)
    abort();
  memcpy(s, f->data, f->len);
  s[f->len] = '\0';
  free(*out);
  *out = s;
  return 0;
}

/* Arrays grow when their length reaches a power of two (so no capacity is kept). */
static void *grow_(void *v, uint32_t n, size_t size) {
  if (n & (n - 1))
    return v;
  void *p = realloc(v, (n ? (size_t)n * 2 : 1) * size);
  if (!p)
    abort();
  return p;
}

static int too_many(rd_t *r, const fld_t *f) {
  return fail(r, f->at, "field %u: more than %u elements", f->num, KEFU_STATE_LIST_MAX);
}

/* Appends a zeroed element to (arr, cnt): 0, or -1 past KEFU_STATE_LIST_MAX. */
#define PUSH(r, f, arr, cnt)                                                                       \
  ((cnt) >= KEFU_STATE_LIST_MAX ? too_many((r), (f))                                               \
                                : ((arr) = grow_((arr), (cnt), sizeof *(arr)),                     \
                                   memset(&(arr)[(cnt)], 0, sizeof *(arr)), (cnt)++, 0))

static int g_strv(rd_t *r, const fld_t *f, size_t max, kefu_strv_t *l) {
  if (want(r, f, WT_LEN) || PUSH(r, f, l->v, l->n))
    return -1;
  l->v[l->n - 1] = NULL;
  if (g_str(r, f, max, &l->v[l->n - 1])) {
    l->n--;
    return -1;
  }
  return 0;
}

/* Packed zigzag varints into v[0..k): missing ones 0, extra ones (a newer kefu's) ignored. */
static int g_packed(rd_t *r, const fld_t *f, int64_t *v, size_t k) {
  if (want(r, f, WT_LEN))
    return -1;
  rd_t s = sub(r, f, r->msg);
  memset(v, 0, k * sizeof *v);
  for (size_t i = 0; s.p < s.end; i++) {
    uint64_t u = 0;
    if (get_varint(&s, &u))
      return -1;
    if (i < k)
      v[i] = unzz(u);
  }
  return 0;
}

typedef int (*dec_fn)(rd_t *r, void *obj);

/* Checks the version byte, finds the time base (field 1), then reads the fields. */
static int dec_top(const uint8_t *p, size_t n, const char *what, dec_fn fn, void *obj, char *err,
                   size_t errlen) {
  static const uint8_t none[1];
  rd_t r = {.p = p ? p : none, .msg = what, .err = err, .errlen = errlen};
  fld_t f;
  int rc;
  r.start = r.p;
  r.end = r.p + (p ? n : 0);
  if (err && errlen)
    err[0] = '\0';
  if (r.p == r.end)
    return fail(&r, 0, "empty value");
  if (r.p[0] != KEFU_STATE_VERSION)
    return fail(&r, 0, "unknown format version %u (this kefu reads version %d)", r.p[0],
                KEFU_STATE_VERSION);
  r.p++;
  rd_t s = r;
  while ((rc = rd_next(&s, &f)) > 0)
    if (f.num == 1 && g_i64(&s, &f, &r.base))
      return -1;
  if (rc < 0)
    return -1;
  return fn(&r, obj);
}

/* An enum field into an lvalue of enum type (unchanged on error). */
#define G_ENUM(count, lv)                                                                          \
  do {                                                                                             \
    int e_ = (int)(lv);                                                                            \
    rc = g_enum(r, &f, (count), &e_);                                                              \
    (lv) = e_;                                                                                     \
  } while (0)

/* A nested message: checks the wire type and opens a reader on its bytes. */
static int open_sub(const rd_t *r, const fld_t *f, const char *msg, rd_t *s) {
  if (want((rd_t *)r, f, WT_LEN))
    return -1;
  *s = sub(r, f, msg);
  return 0;
}

/* A repeated nested message: appends an element and reads it (an expression: 0 or -1). */
#define NESTED(arr, cnt, name, fn)                                                                 \
  (open_sub(r, &f, (name), &s) || PUSH(r, &f, arr, cnt) ? -1 : fn(&s, &(arr)[(cnt)-1]))

static int check_id(const char *id, const char *what, char *err, size_t errlen) {
  size_t n = id ? strlen(id) : 0;
  if (n && n <= KEFU_ID_MAX)
    return 0;
  if (err && errlen)
    snprintf(err, errlen, "%s: id must be 1 to %d bytes", what, KEFU_ID_MAX);
  return -1;
}

static char *xstrdup(const char *s) {
  char *d = strdup(s);
  if (!d)
    abort();
  return d;
}

/* ================================================================== timers */

static void enc_timer_body(kefu_buf_t *b, const kefu_timer_t *t, int64_t base) {
  e_time(b, 2, t->deadline, base);
  e_time(b, 3, t->order.ts, base);
  e_sint(b, 4, t->order.rank, 0);
  e_sint(b, 5, t->order.offset, 0);
  e_sint(b, 6, t->order.n, 0);
  e_uint(b, 7, (uint64_t)t->kind, 0);
  e_time(b, 8, t->a, base);
  e_sint(b, 9, t->b, 0);
  e_sint(b, 10, t->ref_kind, 0);
  e_str(b, 11, t->ref);
}

static void enc_timer(kefu_buf_t *b, unsigned f, const kefu_timer_t *t, int64_t base) {
  size_t m = msg_begin(b, f);
  enc_timer_body(b, t, base);
  msg_end(b, m);
}

static int dec_timer_body(rd_t *r, kefu_timer_t *t) {
  fld_t f;
  int rc;
  while ((rc = rd_next(r, &f)) > 0) {
    switch (f.num) {
    case 2: rc = g_time(r, &f, &t->deadline); break;
    case 3: rc = g_time(r, &f, &t->order.ts); break;
    case 4: rc = g_i32(r, &f, &t->order.rank); break;
    case 5: rc = g_i64(r, &f, &t->order.offset); break;
    case 6: rc = g_i32(r, &f, &t->order.n); break;
    case 7: G_ENUM(KEFU_TIMER__COUNT, t->kind); break;
    case 8: rc = g_time(r, &f, &t->a); break;
    case 9: rc = g_i64(r, &f, &t->b); break;
    case 10: rc = g_i32(r, &f, &t->ref_kind); break;
    case 11: rc = g_str(r, &f, KEFU_STATE_TEXT_MAX, &t->ref); break;
    default: break;
    }
    if (rc < 0)
      return -1;
  }
  return rc;
}

/* Appends a timer message to @p l. */
static int dec_timer_into(rd_t *r, const fld_t *f, kefu_timers_t *l) {
  if (want(r, f, WT_LEN))
    return -1;
  if (l->n >= KEFU_STATE_LIST_MAX)
    return too_many(r, f);
  if (l->n == l->cap) {
    uint32_t cap = l->cap ? l->cap * 2 : 4;
    kefu_timer_t *v = realloc(l->v, cap * sizeof *v);
    if (!v)
      abort();
    l->v = v;
    l->cap = cap;
  }
  kefu_timer_t *t = &l->v[l->n++];
  memset(t, 0, sizeof *t);
  rd_t s = sub(r, f, "timer");
  return dec_timer_body(&s, t);
}

static int64_t timer_base(const kefu_timer_t *t) {
  return t->order.ts ? t->order.ts : t->deadline;
}

void kefu_state_encode_timer(kefu_buf_t *out, const kefu_timer_t *t) {
  int64_t base = timer_base(t);
  top_begin(out, base);
  enc_timer_body(out, t, base);
}

static int dec_timer_top(rd_t *r, void *obj) {
  return dec_timer_body(r, obj);
}

int kefu_state_decode_timer(const uint8_t *p, size_t n, kefu_timer_t *out, char *errstr,
                            size_t errlen) {
  kefu_timer_t t = {0};
  if (dec_top(p, n, "timer", dec_timer_top, &t, errstr, errlen)) {
    kefu_timer_clear(&t);
    return -1;
  }
  kefu_timer_clear(out);
  *out = t;
  return 0;
}

void kefu_state_encode_timers(kefu_buf_t *out, const kefu_timers_t *t) {
  int64_t base = t && t->n ? timer_base(&t->v[0]) : 0;
  top_begin(out, base);
  for (uint32_t i = 0; t && i < t->n; i++)
    enc_timer(out, 2, &t->v[i], base);
}

static int dec_timers_top(rd_t *r, void *obj) {
  kefu_timers_t *l = obj;
  fld_t f;
  int rc;
  while ((rc = rd_next(r, &f)) > 0) {
    switch (f.num) {
    case 2: rc = dec_timer_into(r, &f, l); break;
    default: break;
    }
    if (rc < 0)
      return -1;
  }
  return rc;
}

int kefu_state_decode_timers(const uint8_t *p, size_t n, kefu_timers_t *out, char *errstr,
                             size_t errlen) {
  kefu_timers_t t = {0};
  if (dec_top(p, n, "timers", dec_timers_top, &t, errstr, errlen)) {
    kefu_timers_clear(&t);
    return -1;
  }
  kefu_timers_clear(out);
  *out = t;
  return 0;
}

/* ================================================================== agent */

#define AGENT_LEVEL 1
#define AGENT_CAPACITY 20

void kefu_state_encode_agent(kefu_buf_t *out, const kefu_agent_t *a) {
  top_begin(out, 0);
  e_uint(out, 2, (uint64_t)a->presence, KEFU_PRESENCE_OFFLINE);
  e_sint(out, 3, a->level, AGENT_LEVEL);
  e_sint(out, 4, a->capacity, AGENT_CAPACITY);
  e_strv(out, 5, &a->groups);
  e_uint(out, 6, (uint64_t)a->account_kind, 0);
  e_bool(out, 7, a->has_conversion_rate, false);
  if (a->has_conversion_rate)
    e_double(out, 8, a->conversion_rate);
  e_sint(out, 9, a->load, 0);
  if (a->noutcomes) { /* packed (first delta from the previous one, converted) pairs */
    size_t m = msg_begin(out, 10);
    uint64_t prev = 0;
    for (uint32_t i = 0; i < a->noutcomes; i++) {
      put_varint(out, zz((int64_t)((uint64_t)a->outcomes[i].first - prev)));
      put_varint(out, a->outcomes[i].converted ? 1 : 0);
      prev = (uint64_t)a->outcomes[i].first;
    }
    msg_end(out, m);
  }
}

static int dec_outcomes(rd_t *r, const fld_t *f, kefu_agent_t *a) {
  if (want(r, f, WT_LEN))
    return -1;
  rd_t s = sub(r, f, "agent.outcomes");
  uint64_t prev = 0;
  while (s.p < s.end) {
    uint64_t d = 0, c = 0;
    if (get_varint(&s, &d) || get_varint(&s, &c) || PUSH(&s, f, a->outcomes, a->noutcomes))
      return -1;
    if (c > 1)
      return fail(&s, (size_t)(s.p - s.start), "converted %llu", (unsigned long long)c);
    prev += (uint64_t)unzz(d);
    a->outcomes[a->noutcomes - 1] = (kefu_outcome_t){.first = (int64_t)prev, .converted = c};
  }
  return 0;
}

static int dec_agent_top(rd_t *r, void *obj) {
  kefu_agent_t *a = obj;
  fld_t f;
  int rc;
  while ((rc = rd_next(r, &f)) > 0) {
    switch (f.num) {
    case 2: G_ENUM(N_PRESENCE, a->presence); break;
    case 3: rc = g_i32(r, &f, &a->level); break;
    case 4: rc = g_i32(r, &f, &a->capacity); break;
    case 5: rc = g_strv(r, &f, KEFU_ID_MAX, &a->groups); break;
    case 6: rc = g_enum(r, &f, N_ACCOUNT, &a->account_kind); break;
    case 7: rc = g_bool(r, &f, &a->has_conversion_rate); break;
    case 8: rc = g_double(r, &f, &a->conversion_rate); break;
    case 9: rc = g_i32(r, &f, &a->load); break;
    case 10: rc = dec_outcomes(r, &f, a); break;
    default: break;
    }
    if (rc < 0)
      return -1;
  }
  return rc;
}

int kefu_state_decode_agent(const uint8_t *p, size_t n, const char *id, kefu_agent_t **out,
                            char *errstr, size_t errlen) {
  *out = NULL;
  if (check_id(id, "agent", errstr, errlen))
    return -1;
  kefu_agent_t *a = calloc(1, sizeof *a);
  if (!a)
    abort();
  a->id = xstrdup(id);
  a->presence = KEFU_PRESENCE_OFFLINE;
  a->level = AGENT_LEVEL;
  a->capacity = AGENT_CAPACITY;
  if (dec_top(p, n, "agent", dec_agent_top, a, errstr, errlen)) {
    kefu_agent_free(a);
    return -1;
  }
  if (!a->has_conversion_rate)
    a->conversion_rate = 0;
  *out = a;
  return 0;
}

/* ================================================================== order */

void kefu_state_encode_order(kefu_buf_t *out, const kefu_order_t *o) {
  const int64_t ts[] = {o->updated_ts, o->paid_ts, o->shipped_ts, o->scan_ts};
  int64_t base = first_nonzero(4, ts);
  top_begin(out, base);
  e_str(out, 2, o->buyer_id);
  e_sint(out, 3, o->status, KEFU_STATUS_NONE);
  e_uint(out, 4, (uint64_t)o->after_sale, KEFU_AFTER_SALE_NONE);
  for (uint32_t i = 0; i < o->npackages; i++) {
    size_t m = msg_begin(out, 5);
    e_str(out, 1, o->packages[i].tracking_no);
    e_str(out, 2, o->packages[i].courier);
    msg_end(out, m);
  }
  e_str(out, 6, o->region_code);
  e_strv(out, 7, &o->item_ids);
  e_bool(out, 8, o->has_amount, false);
  if (o->has_amount)
    e_sint(out, 9, o->amount_cents, 0);
  e_bool(out, 10, o->address_changed, false);
  e_bool(out, 11, o->signed_, false);
  e_time(out, 12, o->paid_ts, base);
  e_time(out, 13, o->shipped_ts, base);
  e_time(out, 14, o->scan_ts, base);
  e_time(out, 15, o->updated_ts, base);
}

static int dec_package(rd_t *r, kefu_package_t *pk) {
  fld_t f;
  int rc;
  while ((rc = rd_next(r, &f)) > 0) {
    switch (f.num) {
    case 1: rc = g_str(r, &f, KEFU_STATE_TEXT_MAX, &pk->tracking_no); break;
    case 2: rc = g_str(r, &f, KEFU_STATE_TEXT_MAX, &pk->courier); break;
    default: break;
    }
    if (rc < 0)
      return -1;
  }
  return rc;
}

static int dec_order_top(rd_t *r, void *obj) {
  kefu_order_t *o = obj;
  int64_t v;
  rd_t s;
  fld_t f;
  int rc;
  while ((rc = rd_next(r, &f)) > 0) {
    switch (f.num) {
    case 2: rc = g_str(r, &f, KEFU_ID_MAX, &o->buyer_id); break;
    case 3:
      if (g_i64(r, &f, &v))
        return -1;
      if (v < KEFU_STATUS_NONE || v >= KEFU_ORDER__COUNT)
        return fail(r, f.at, "field 3: status %lld out of range", (long long)v);
      o->status = (int)v;
      break;
    case 4: G_ENUM(KEFU_AFTER_SALE__COUNT, o->after_sale); break;
    case 5: rc = NESTED(o->packages, o->npackages, "order.packages", dec_package); break;
    case 6: rc = g_str(r, &f, KEFU_STATE_TEXT_MAX, &o->region_code); break;
    case 7: rc = g_strv(r, &f, KEFU_ID_MAX, &o->item_ids); break;
    case 8: rc = g_bool(r, &f, &o->has_amount); break;
    case 9: rc = g_i64(r, &f, &o->amount_cents); break;
    case 10: rc = g_bool(r, &f, &o->address_changed); break;
    case 11: rc = g_bool(r, &f, &o->signed_); break;
    case 12: rc = g_time(r, &f, &o->paid_ts); break;
    case 13: rc = g_time(r, &f, &o->shipped_ts); break;
    case 14: rc = g_time(r, &f, &o->scan_ts); break;
    case 15: rc = g_time(r, &f, &o->updated_ts); break;
    default: break;
    }
    if (rc < 0)
      return -1;
  }
  return rc;
}

int kefu_state_decode_order(const uint8_t *p, size_t n, const char *id, kefu_order_t **out,
                            char *errstr, size_t errlen) {
  *out = NULL;
  if (check_id(id, "order", errstr, errlen))
    return -1;
  kefu_order_t *o = calloc(1, sizeof *o);
  if (!o)
    abort();
  o->id = xstrdup(id);
  o->status = KEFU_STATUS_NONE;
  if (dec_top(p, n, "order", dec_order_top, o, errstr, errlen)) {
    kefu_order_free(o);
    return -1;
  }
  if (!o->has_amount)
    o->amount_cents = 0;
  *out = o;
  return 0;
}

/* ================================================================== buyer */

static void enc_invitation(kefu_buf_t *b, unsigned f, const kefu_invitation_t *iv) {
  size_t m = msg_begin(b, f);
  e_uint(b, 1, (uint64_t)iv->state, KEFU_INVITATION_NONE);
  e_bool(b, 2, iv->merchant, false);
  e_str(b, 3, iv->id);
  e_str(b, 4, iv->order_id);
  e_str(b, 5, iv->courier);
  e_str(b, 6, iv->tracking_no);
  e_str(b, 7, iv->agent_id);
  msg_end(b, m);
}

static void enc_session(kefu_buf_t *b, unsigned f, const kefu_session_t *s, int64_t base) {
  size_t m = msg_begin(b, f);
  e_uint(b, 1, (uint64_t)s->target, KEFU_TARGET_NONE);
  e_str(b, 2, s->agent_id);
  e_uint(b, 3, (uint64_t)s->leave_target, 0);
  e_time(b, 4, s->opened, base);
  e_time(b, 5, s->activity, base);
  e_time(b, 6, s->idle_timer, base);
  e_time(b, 7, s->queued_since, base);
  e_bool(b, 8, s->via_transfer, false);
  e_uint(b, 9, (uint64_t)s->first_reply, KEFU_REPLY_NONE);
  e_bool(b, 10, s->entry_card, false);
  e_bool(b, 11, s->transferred, false);
  e_bool(b, 12, s->three_party, false);
  e_bool(b, 13, s->declined, false);
  const kefu_invitation_t *iv = &s->invitation;
  if (iv->state || iv->merchant || iv->id || iv->order_id || iv->courier || iv->tracking_no ||
      iv->agent_id)
    enc_invitation(b, 14, iv);
  msg_end(b, m);
}

void kefu_state_encode_buyer(kefu_buf_t *out, const kefu_buyer_t *b) {
  const int64_t ts[] = {b->has_session ? b->session.activity : 0,
                        b->has_session ? b->session.opened : 0,
                        b->timers && b->timers->n ? b->timers->v[0].order.ts : 0,
                        b->ncontacts ? b->contacts[0].ts : 0,
                        b->last_order_ts,
                        b->nwaits ? b->waits[0].opened : 0,
                        b->npairs ? b->pairs[0].first : 0};
  int64_t base = first_nonzero(sizeof ts / sizeof ts[0], ts);
  size_t m;
  top_begin(out, base);
  e_strv(out, 2, &b->orders);
  e_str(out, 3, b->last_order);
  e_time(out, 4, b->last_order_ts, base);
  e_str(out, 5, b->exclusive_agent);
  const kefu_attrs_t *at = &b->attrs;
  if (at->crowd_tags.n || at->item_id || at->intent || at->order_id) {
    m = msg_begin(out, 6);
    e_strv(out, 1, &at->crowd_tags);
    e_str(out, 2, at->item_id);
    e_str(out, 3, at->intent);
    e_str(out, 4, at->order_id);
    msg_end(out, m);
  }
  for (uint32_t i = 0; i < b->ncontacts; i++) {
    m = msg_begin(out, 7);
    e_str(out, 1, b->contacts[i].agent_id);
    e_time(out, 2, b->contacts[i].ts, base);
    msg_end(out, m);
  }
  if (b->has_session)
    enc_session(out, 8, &b->session, base);
  for (uint32_t i = 0; i < b->nwaits; i++) {
    const kefu_wait_t *w = &b->waits[i];
    m = msg_begin(out, 9);
    e_uint(out, 1, (uint64_t)w->kind, KEFU_TARGET_NONE);
    e_str(out, 2, w->id);
    e_time(out, 3, w->opened, base);
    e_sint(out, 4, w->day, 0);
    msg_end(out, m);
  }
  for (uint32_t i = 0; i < b->nconsultations; i++) {
    const kefu_consultation_t *c = &b->consultations[i];
    m = msg_begin(out, 10);
    e_sint(out, 1, c->day, 0);
    e_uint(out, 2, (uint64_t)c->kind, KEFU_TARGET_NONE);
    e_str(out, 3, c->id);
    e_bool(out, 4, c->ok, false);
    msg_end(out, m);
  }
  for (uint32_t i = 0; i < b->npairs; i++) {
    m = msg_begin(out, 11);
    e_str(out, 1, b->pairs[i].agent_id);
    e_time(out, 2, b->pairs[i].first, base);
    msg_end(out, m);
  }
  for (uint32_t i = 0; b->timers && i < b->timers->n; i++)
    enc_timer(out, 12, &b->timers->v[i], base);
}

static int dec_attrs(rd_t *r, kefu_attrs_t *a) {
  fld_t f;
  int rc;
  while ((rc = rd_next(r, &f)) > 0) {
    switch (f.num) {
    case 1: rc = g_strv(r, &f, KEFU_STATE_TEXT_MAX, &a->crowd_tags); break;
    case 2: rc = g_str(r, &f, KEFU_ID_MAX, &a->item_id); break;
    case 3: rc = g_str(r, &f, KEFU_STATE_TEXT_MAX, &a->intent); break;
    case 4: rc = g_str(r, &f, KEFU_ID_MAX, &a->order_id); break;
    default: break;
    }
    if (rc < 0)
      return -1;
  }
  return rc;
}

static int dec_contact(rd_t *r, kefu_contact_t *c) {
  fld_t f;
  int rc;
  while ((rc = rd_next(r, &f)) > 0) {
    switch (f.num) {
    case 1: rc = g_str(r, &f, KEFU_ID_MAX, &c->agent_id); break;
    case 2: rc = g_time(r, &f, &c->ts); break;
    default: break;
    }
    if (rc < 0)
      return -1;
  }
  return rc;
}

static int dec_invitation(rd_t *r, kefu_invitation_t *iv) {
  fld_t f;
  int rc;
  while ((rc = rd_next(r, &f)) > 0) {
    switch (f.num) {
    case 1: G_ENUM(N_INVITATION, iv->state); break;
    case 2: rc = g_bool(r, &f, &iv->merchant); break;
    case 3: rc = g_str(r, &f, KEFU_ID_MAX, &iv->id); break;
    case 4: rc = g_str(r, &f, KEFU_ID_MAX, &iv->order_id); break;
    case 5: rc = g_str(r, &f, KEFU_STATE_TEXT_MAX, &iv->courier); break;
    case 6: rc = g_str(r, &f, KEFU_STATE_TEXT_MAX, &iv->tracking_no); break;
    case 7: rc = g_str(r, &f, KEFU_ID_MAX, &iv->agent_id); break;
    default: break;
    }
    if (rc < 0)
      return -1;
  }
  return rc;
}

static int dec_session(rd_t *r, kefu_session_t *s) {
  rd_t n;
  fld_t f;
  int rc;
  while ((rc = rd_next(r, &f)) > 0) {
    switch (f.num) {
    case 1: G_ENUM(N_TARGET, s->target); break;
    case 2: rc = g_str(r, &f, KEFU_ID_MAX, &s->agent_id); break;
    case 3: rc = g_enum(r, &f, N_LEAVE, &s->leave_target); break;
    case 4: rc = g_time(r, &f, &s->opened); break;
    case 5: rc = g_time(r, &f, &s->activity); break;
    case 6: rc = g_time(r, &f, &s->idle_timer); break;
    case 7: rc = g_time(r, &f, &s->queued_since); break;
    case 8: rc = g_bool(r, &f, &s->via_transfer); break;
    case 9: G_ENUM(N_REPLY, s->first_reply); break;
    case 10: rc = g_bool(r, &f, &s->entry_card); break;
    case 11: rc = g_bool(r, &f, &s->transferred); break;
    case 12: rc = g_bool(r, &f, &s->three_party); break;
    case 13: rc = g_bool(r, &f, &s->declined); break;
    case 14:
      rc =
          open_sub(r, &f, "buyer.session.invitation", &n) ? -1 : dec_invitation(&n, &s->invitation);
      break;
    default: break;
    }
    if (rc < 0)
      return -1;
  }
  return rc;
}

static int dec_wait(rd_t *r, kefu_wait_t *w) {
  fld_t f;
  int rc;
  while ((rc = rd_next(r, &f)) > 0) {
    switch (f.num) {
    case 1: G_ENUM(N_TARGET, w->kind); break;
    case 2: rc = g_str(r, &f, KEFU_ID_MAX, &w->id); break;
    case 3: rc = g_time(r, &f, &w->opened); break;
    case 4: rc = g_i32(r, &f, &w->day); break;
    default: break;
    }
    if (rc < 0)
      return -1;
  }
  return rc;
}

static int dec_consultation(rd_t *r, kefu_consultation_t *c) {
  fld_t f;
  int rc;
  while ((rc = rd_next(r, &f)) > 0) {
    switch (f.num) {
    case 1: rc = g_i32(r, &f, &c->day); break;
    case 2: G_ENUM(N_TARGET, c->kind); break;
    case 3: rc = g_str(r, &f, KEFU_ID_MAX, &c->id); break;
    case 4: rc = g_bool(r, &f, &c->ok); break;
    default: break;
    }
    if (rc < 0)
      return -1;
  }
  return rc;
}

static int dec_pair(rd_t *r, kefu_pair_t *p) {
  fld_t f;
  int rc;
  while ((rc = rd_next(r, &f)) > 0) {
    switch (f.num) {
    case 1: rc = g_str(r, &f, KEFU_ID_MAX, &p->agent_id); break;
    case 2: rc = g_time(r, &f, &p->first); break;
    default: break;
    }
    if (rc < 0)
      return -1;
  }
  return rc;
}

static int dec_buyer_top(rd_t *r, void *obj) {
  kefu_buyer_t *b = obj;
  rd_t s;
  fld_t f;
  int rc;
  while ((rc = rd_next(r, &f)) > 0) {
    switch (f.num) {
    case 2: rc = g_strv(r, &f, KEFU_ID_MAX, &b->orders); break;
    case 3: rc = g_str(r, &f, KEFU_ID_MAX, &b->last_order); break;
    case 4: rc = g_time(r, &f, &b->last_order_ts); break;
    case 5: rc = g_str(r, &f, KEFU_ID_MAX, &b->exclusive_agent); break;
    case 6: rc = open_sub(r, &f, "buyer.attrs", &s) ? -1 : dec_attrs(&s, &b->attrs); break;
    case 7: rc = NESTED(b->contacts, b->ncontacts, "buyer.contacts", dec_contact); break;
    case 8:
      b->has_session = true;
      rc = open_sub(r, &f, "buyer.session", &s) ? -1 : dec_session(&s, &b->session);
      break;
    case 9: rc = NESTED(b->waits, b->nwaits, "buyer.waits", dec_wait); break;
    case 10:
      rc = NESTED(b->consultations, b->nconsultations, "buyer.consultations", dec_consultation);
      break;
    case 11: rc = NESTED(b->pairs, b->npairs, "buyer.pairs", dec_pair); break;
    case 12:
      if (!b->timers && !(b->timers = calloc(1, sizeof *b->timers)))
        abort();
      rc = dec_timer_into(r, &f, b->timers);
      break;
    default: break;
    }
    if (rc < 0)
      return -1;
  }
  return rc;
}

int kefu_state_decode_buyer(const uint8_t *p, size_t n, const char *id, kefu_buyer_t **out,
                            char *errstr, size_t errlen) {
  *out = NULL;
  if (check_id(id, "buyer", errstr, errlen))
    return -1;
  kefu_buyer_t *b = calloc(1, sizeof *b);
  if (!b)
    abort();
  b->id = xstrdup(id);
  if (dec_top(p, n, "buyer", dec_buyer_top, b, errstr, errlen)) {
    kefu_buyer_free(b);
    return -1;
  }
  *out = b;
  return 0;
}

/* ================================================================== shop config */

void kefu_state_encode_config(kefu_buf_t *out, const kefu_shop_config_t *c) {
  kefu_shop_config_t d;
  kefu_config_defaults(&d);
  top_begin(out, 0);
  e_bool(out, 2, c->bot_priority, d.bot_priority);
  e_bool(out, 3, c->exclusive_direct, d.exclusive_direct);
  e_uint(out, 4, (uint64_t)c->leave_message_target, (uint64_t)d.leave_message_target);
  e_bool(out, 5, c->queue_enabled, d.queue_enabled);
  e_sint(out, 6, c->queue_max_wait_ms, d.queue_max_wait_ms);
  e_bool(out, 7, c->logistics_enabled, d.logistics_enabled);
  e_bool(out, 8, c->merchant_invite_enabled, d.merchant_invite_enabled);
  e_strv(out, 9, &c->couriers);
  e_sint(out, 10, c->transfer_entry_exposure_pct, d.transfer_entry_exposure_pct);
  e_bool(out, 11, c->response_rate_assessed, d.response_rate_assessed);
  e_sint(out, 12, c->utc_offset_minutes, d.utc_offset_minutes);
  for (uint32_t i = 0; i < c->ngroups; i++) {
    const kefu_group_t *g = &c->groups[i];
    size_t m = msg_begin(out, 13);
    e_str(out, 1, g->group_id);
    e_bool(out, 2, g->bot_enabled, false);
    e_uint(out, 3, (uint64_t)g->strategy, 0);
    e_strv(out, 4, &g->crowd_tags);
    e_strv(out, 5, &g->item_ids);
    e_strv(out, 6, &g->intents);
    e_uint(out, 7, g->order_states, 0);
    msg_end(out, m);
  }
}

static int dec_group(rd_t *r, kefu_group_t *g) {
  fld_t f;
  int rc;
  while ((rc = rd_next(r, &f)) > 0) {
    switch (f.num) {
    case 1: rc = g_str(r, &f, KEFU_ID_MAX, &g->group_id); break;
    case 2: rc = g_bool(r, &f, &g->bot_enabled); break;
    case 3: rc = g_enum(r, &f, N_STRATEGY, &g->strategy); break;
    case 4: rc = g_strv(r, &f, KEFU_STATE_TEXT_MAX, &g->crowd_tags); break;
    case 5: rc = g_strv(r, &f, KEFU_ID_MAX, &g->item_ids); break;
    case 6: rc = g_strv(r, &f, KEFU_STATE_TEXT_MAX, &g->intents); break;
    case 7:
      rc = g_u32(r, &f, &g->order_states);
      if (rc == 0 && g->order_states >> N_ORDER_STATE)
        return fail(r, f.at, "field 7: order_states 0x%x has unknown bits", g->order_states);
      break;
    default: break;
    }
    if (rc < 0)
      return -1;
  }
  return rc;
}

static int dec_config_top(rd_t *r, void *obj) {
  kefu_shop_config_t *c = obj;
  rd_t s;
  fld_t f;
  int rc;
  while ((rc = rd_next(r, &f)) > 0) {
    switch (f.num) {
    case 2: rc = g_bool(r, &f, &c->bot_priority); break;
    case 3: rc = g_bool(r, &f, &c->exclusive_direct); break;
    case 4: rc = g_enum(r, &f, N_LEAVE, &c->leave_message_target); break;
    case 5: rc = g_bool(r, &f, &c->queue_enabled); break;
    case 6: rc = g_i64(r, &f, &c->queue_max_wait_ms); break;
    case 7: rc = g_bool(r, &f, &c->logistics_enabled); break;
    case 8: rc = g_bool(r, &f, &c->merchant_invite_enabled); break;
    case 9: rc = g_strv(r, &f, KEFU_STATE_TEXT_MAX, &c->couriers); break;
    case 10: rc = g_i32(r, &f, &c->transfer_entry_exposure_pct); break;
    case 11: rc = g_bool(r, &f, &c->response_rate_assessed); break;
    case 12: rc = g_i32(r, &f, &c->utc_offset_minutes); break;
    case 13: rc = NESTED(c->groups, c->ngroups, "config.groups", dec_group); break;
    default: break;
    }
    if (rc < 0)
      return -1;
  }
  return rc;
}

int kefu_state_decode_config(const uint8_t *p, size_t n, kefu_shop_config_t *out, char *errstr,
                             size_t errlen) {
  kefu_shop_config_t c;
  kefu_config_defaults(&c);
  if (dec_top(p, n, "config", dec_config_top, &c, errstr, errlen)) {
    kefu_config_clear(&c);
    return -1;
  }
  kefu_config_clear(out);
  *out = c;
  return 0;
}

/* ================================================================== queue */

void kefu_state_queue_clear(kefu_queue_t *q) {
  for (uint32_t i = 0; i < q->n; i++)
    free(q->v[i].buyer_id);
  free(q->v);
  memset(q, 0, sizeof *q);
}

void kefu_state_encode_queue(kefu_buf_t *out, const kefu_queue_t *q) {
  int64_t base = q->n ? q->v[0].since : 0;
  top_begin(out, base);
  for (uint32_t i = 0; i < q->n; i++) {
    size_t m = msg_begin(out, 2);
    e_str(out, 1, q->v[i].buyer_id);
    e_time(out, 2, q->v[i].since, base);
    msg_end(out, m);
  }
}

static int dec_queued(rd_t *r, kefu_queued_t *e) {
  fld_t f;
  int rc;
  while ((rc = rd_next(r, &f)) > 0) {
    switch (f.num) {
    case 1: rc = g_str(r, &f, KEFU_ID_MAX, &e->buyer_id); break;
    case 2: rc = g_time(r, &f, &e->since); break;
    default: break;
    }
    if (rc < 0)
      return -1;
  }
  return rc;
}

static int dec_queue_top(rd_t *r, void *obj) {
  kefu_queue_t *q = obj;
  rd_t s;
  fld_t f;
  int rc;
  while ((rc = rd_next(r, &f)) > 0) {
    switch (f.num) {
    case 2: rc = NESTED(q->v, q->n, "queue.entries", dec_queued); break;
    default: break;
    }
    if (rc < 0)
      return -1;
  }
  return rc;
}

int kefu_state_decode_queue(const uint8_t *p, size_t n, kefu_queue_t *out, char *errstr,
                            size_t errlen) {
  kefu_queue_t q = {0};
  if (dec_top(p, n, "queue", dec_queue_top, &q, errstr, errlen)) {
    kefu_state_queue_clear(&q);
    return -1;
  }
  kefu_state_queue_clear(out);
  *out = q;
  return 0;
}

/* ================================================================== rate */

void kefu_state_rate_clear(kefu_rate_t *r) {
  free(r->days);
  memset(r, 0, sizeof *r);
}

static void e_packed(kefu_buf_t *b, unsigned f, const int64_t *v, size_t k) {
  while (k && !v[k - 1])
    k--;
  if (!k)
    return;
  size_t m = msg_begin(b, f);
  for (size_t i = 0; i < k; i++)
    put_varint(b, zz(v[i]));
  msg_end(b, m);
}

void kefu_state_encode_rate(kefu_buf_t *out, const kefu_rate_t *r) {
  int64_t base = r->ndays ? r->days[0].close_deadline : 0;
  top_begin(out, base);
  for (uint32_t i = 0; i < r->ndays; i++) {
    const kefu_rate_day_t *d = &r->days[i];
    size_t m = msg_begin(out, 2);
    e_sint(out, 1, d->day, 0);
    e_time(out, 2, d->close_deadline, base);
    e_packed(out, 3, d->consultations, KEFU_CLASS__COUNT);
    e_packed(out, 4, d->effective, KEFU_CLASS__COUNT);
    e_packed(out, 5, d->causes, KEFU_CAUSE__COUNT);
    if (d->ncause_order) {
      size_t c = msg_begin(out, 6);
      for (uint8_t k = 0; k < d->ncause_order && k < KEFU_CAUSE__COUNT; k++)
        put_varint(out, d->cause_order[k]);
      msg_end(out, c);
    }
    msg_end(out, m);
  }
  e_bool(out, 3, r->has_closed, false);
  if (r->has_closed)
    e_sint(out, 4, r->closed_through, 0);
  e_uint(out, 5, r->penalties, 0);
  e_sint(out, 6, r->streak, 0);
  e_bool(out, 7, r->escalated, false);
}

/* A day's causes in the order each was first counted: distinct kefu_cause_t indices. */
static int g_cause_order(rd_t *r, const fld_t *f, kefu_rate_day_t *d) {
  if (want(r, f, WT_LEN))
    return -1;
  rd_t s = sub(r, f, "rate.days.cause_order");
  d->ncause_order = 0;
  while (s.p < s.end) {
    uint64_t c = 0;
    size_t at = (size_t)(s.p - s.start);
    if (get_varint(&s, &c))
      return -1;
    if (c >= KEFU_CAUSE__COUNT)
      return fail(&s, at, "cause %llu out of range (0..%d)", (unsigned long long)c,
                  KEFU_CAUSE__COUNT - 1);
    for (uint8_t k = 0; k < d->ncause_order; k++)
      if (d->cause_order[k] == c)
        return fail(&s, at, "cause %llu listed twice", (unsigned long long)c);
    d->cause_order[d->ncause_order++] = (uint8_t)c; /* distinct, so at most COUNT */
  }
  return 0;
}

static int dec_rate_day(rd_t *r, kefu_rate_day_t *d) {
  fld_t f;
  int rc;
  while ((rc = rd_next(r, &f)) > 0) {
    switch (f.num) {
    case 1: rc = g_i32(r, &f, &d->day); break;
    case 2: rc = g_time(r, &f, &d->close_deadline); break;
    case 3: rc = g_packed(r, &f, d->consultations, KEFU_CLASS__COUNT); break;
    case 4: rc = g_packed(r, &f, d->effective, KEFU_CLASS__COUNT); break;
    case 5: rc = g_packed(r, &f, d->causes, KEFU_CAUSE__COUNT); break;
    case 6: rc = g_cause_order(r, &f, d); break;
    default: break;
    }
    if (rc < 0)
      return -1;
  }
  return rc;
}

static int dec_rate_top(rd_t *r, void *obj) {
  kefu_rate_t *rt = obj;
  rd_t s;
  fld_t f;
  int rc;
  while ((rc = rd_next(r, &f)) > 0) {
    switch (f.num) {
    case 2: rc = NESTED(rt->days, rt->ndays, "rate.days", dec_rate_day); break;
    case 3: rc = g_bool(r, &f, &rt->has_closed); break;
    case 4: rc = g_i32(r, &f, &rt->closed_through); break;
    case 5: rc = g_u32(r, &f, &rt->penalties); break;
    case 6: rc = g_i32(r, &f, &rt->streak); break;
    case 7: rc = g_bool(r, &f, &rt->escalated); break;
    default: break;
    }
    if (rc < 0)
      return -1;
  }
  return rc;
}

int kefu_state_decode_rate(const uint8_t *p, size_t n, kefu_rate_t *out, char *errstr,
                           size_t errlen) {
  kefu_rate_t rt = {0};
  if (dec_top(p, n, "rate", dec_rate_top, &rt, errstr, errlen)) {
    kefu_state_rate_clear(&rt);
    return -1;
  }
  if (!rt.has_closed)
    rt.closed_through = 0;
  kefu_state_rate_clear(out);
  *out = rt;
  return 0;
}

/* ================================================================== JSON views */

static json_t *jstr(const char *s) {
  if (!s)
    return json_null();
  json_t *j = json_string(s);
  return j ? j : json_string("(not UTF-8)");
}

static json_t *jsym(const char *const *names, int count, int v) {
  return v >= 0 && v < count && names[v] ? json_string(names[v]) : json_integer(v);
}

static json_t *jstrv(const kefu_strv_t *l) {
  json_t *a = json_array();
  for (uint32_t i = 0; i < l->n; i++)
    json_array_append_new(a, jstr(l->v[i]));
  return a;
}

#define SET(o, k, v) json_object_set_new((o), (k), (v))

json_t *kefu_state_timer_json(const kefu_timer_t *t) {
  json_t *o = json_object();
  SET(o, "deadline", json_integer(t->deadline));
  SET(o, "order",
      json_pack("{s:I, s:i, s:I, s:i}", "ts", (json_int_t)t->order.ts, "rank", t->order.rank,
                "offset", (json_int_t)t->order.offset, "n", t->order.n));
  SET(o, "kind", jsym(kefu_timer_kind_names, KEFU_TIMER__COUNT, (int)t->kind));
  SET(o, "a", json_integer(t->a));
  SET(o, "b", json_integer(t->b));
  SET(o, "ref_kind", json_integer(t->ref_kind));
  SET(o, "ref", jstr(t->ref));
  return o;
}

json_t *kefu_state_timers_json(const kefu_timers_t *t) {
  json_t *a = json_array();
  for (uint32_t i = 0; t && i < t->n; i++)
    json_array_append_new(a, kefu_state_timer_json(&t->v[i]));
  return a;
}

json_t *kefu_state_agent_json(const kefu_agent_t *a) {
  json_t *o = json_object(), *out = json_array();
  SET(o, "id", jstr(a->id));
  SET(o, "presence", jsym(kefu_presence_names, N_PRESENCE, (int)a->presence));
  SET(o, "level", json_integer(a->level));
  SET(o, "capacity", json_integer(a->capacity));
  SET(o, "groups", jstrv(&a->groups));
  SET(o, "account_kind", jsym(kefu_account_kind_names, N_ACCOUNT, a->account_kind));
  SET(o, "conversion_rate", a->has_conversion_rate ? json_real(a->conversion_rate) : json_null());
  SET(o, "load", json_integer(a->load));
  for (uint32_t i = 0; i < a->noutcomes; i++)
    json_array_append_new(out, json_pack("{s:I, s:b}", "first", (json_int_t)a->outcomes[i].first,
                                         "converted", a->outcomes[i].converted));
  SET(o, "outcomes", out);
  return o;
}

json_t *kefu_state_order_json(const kefu_order_t *o) {
  json_t *j = json_object(), *pk = json_array();
  SET(j, "id", jstr(o->id));
  SET(j, "buyer_id", jstr(o->buyer_id));
  SET(j, "status",
      o->status == KEFU_STATUS_NONE ? json_null()
                                    : jsym(kefu_order_type_names, KEFU_ORDER__COUNT, o->status));
  SET(j, "after_sale",
      o->after_sale ? jsym(kefu_after_sale_names, KEFU_AFTER_SALE__COUNT, (int)o->after_sale)
                    : json_null());
  for (uint32_t i = 0; i < o->npackages; i++) {
    json_t *p = json_object();
    SET(p, "tracking_no", jstr(o->packages[i].tracking_no));
    SET(p, "courier", jstr(o->packages[i].courier));
    json_array_append_new(pk, p);
  }
  SET(j, "packages", pk);
  SET(j, "region_code", jstr(o->region_code));
  SET(j, "item_ids", jstrv(&o->item_ids));
  SET(j, "amount_cents", o->has_amount ? json_integer(o->amount_cents) : json_null());
  SET(j, "address_changed", json_boolean(o->address_changed));
  SET(j, "signed", json_boolean(o->signed_));
  SET(j, "paid_ts", json_integer(o->paid_ts));
  SET(j, "shipped_ts", json_integer(o->shipped_ts));
  SET(j, "scan_ts", json_integer(o->scan_ts));
  SET(j, "updated_ts", json_integer(o->updated_ts));
  return j;
}

static json_t *session_json(const kefu_session_t *s) {
  json_t *o = json_object();
  SET(o, "target", jsym(kefu_target_names, N_TARGET, (int)s->target));
  SET(o, "agent_id", jstr(s->agent_id));
  SET(o, "leave_target", jsym(kefu_leave_target_names, N_LEAVE, s->leave_target));
  SET(o, "opened", json_integer(s->opened));
  SET(o, "activity", json_integer(s->activity));
  SET(o, "idle_timer", json_integer(s->idle_timer));
  SET(o, "queued_since", json_integer(s->queued_since));
  SET(o, "via_transfer", json_boolean(s->via_transfer));
  SET(o, "first_reply", jsym(reply_names, N_REPLY, (int)s->first_reply));
  SET(o, "entry_card", json_boolean(s->entry_card));
  SET(o, "transferred", json_boolean(s->transferred));
  SET(o, "three_party", json_boolean(s->three_party));
  SET(o, "declined", json_boolean(s->declined));
  const kefu_invitation_t *iv = &s->invitation;
  if (iv->state == KEFU_INVITATION_NONE) {
    SET(o, "invitation", json_null());
  } else {
    json_t *i = json_object();
    SET(i, "state", jsym(invitation_names, N_INVITATION, (int)iv->state));
    SET(i, "merchant", json_boolean(iv->merchant));
    SET(i, "id", jstr(iv->id));
    SET(i, "order_id", jstr(iv->order_id));
    SET(i, "courier", jstr(iv->courier));
    SET(i, "tracking_no", jstr(iv->tracking_no));
    SET(i, "agent_id", jstr(iv->agent_id));
    SET(o, "invitation", i);
  }
  return o;
}

json_t *kefu_state_buyer_json(const kefu_buyer_t *b) {
  json_t *o = json_object(), *a, *x;
  SET(o, "id", jstr(b->id));
  SET(o, "orders", jstrv(&b->orders));
  SET(o, "last_order", jstr(b->last_order));
  SET(o, "last_order_ts", json_integer(b->last_order_ts));
  SET(o, "exclusive_agent", jstr(b->exclusive_agent));
  x = json_object();
  SET(x, "crowd_tags", jstrv(&b->attrs.crowd_tags));
  SET(x, "item_id", jstr(b->attrs.item_id));
  SET(x, "intent", jstr(b->attrs.intent));
  SET(x, "order_id", jstr(b->attrs.order_id));
  SET(o, "attrs", x);
  a = json_array();
  for (uint32_t i = 0; i < b->ncontacts; i++) {
    x = json_object();
    SET(x, "agent_id", jstr(b->contacts[i].agent_id));
    SET(x, "ts", json_integer(b->contacts[i].ts));
    json_array_append_new(a, x);
  }
  SET(o, "contacts", a);
  SET(o, "session", b->has_session ? session_json(&b->session) : json_null());
  a = json_array();
  for (uint32_t i = 0; i < b->nwaits; i++) {
    const kefu_wait_t *w = &b->waits[i];
    x = json_object();
    SET(x, "kind", jsym(kefu_target_names, N_TARGET, (int)w->kind));
    SET(x, "id", jstr(w->id));
    SET(x, "opened", json_integer(w->opened));
    SET(x, "day", json_integer(w->day));
    json_array_append_new(a, x);
  }
  SET(o, "waits", a);
  a = json_array();
  for (uint32_t i = 0; i < b->nconsultations; i++) {
    const kefu_consultation_t *c = &b->consultations[i];
    x = json_object();
    SET(x, "day", json_integer(c->day));
    SET(x, "kind", jsym(kefu_target_names, N_TARGET, (int)c->kind));
    SET(x, "id", jstr(c->id));
    SET(x, "ok", json_boolean(c->ok));
    json_array_append_new(a, x);
  }
  SET(o, "consultations", a);
  a = json_array();
  for (uint32_t i = 0; i < b->npairs; i++) {
    x = json_object();
    SET(x, "agent_id", jstr(b->pairs[i].agent_id));
    SET(x, "first", json_integer(b->pairs[i].first));
    json_array_append_new(a, x);
  }
  SET(o, "pairs", a);
  SET(o, "timers", kefu_state_timers_json(b->timers));
  return o;
}

json_t *kefu_state_config_json(const kefu_shop_config_t *c) {
  json_t *o = json_object(), *gs = json_array();
  SET(o, "bot_priority", json_boolean(c->bot_priority));
  SET(o, "exclusive_direct", json_boolean(c->exclusive_direct));
  SET(o, "leave_message_target", jsym(kefu_leave_target_names, N_LEAVE, c->leave_message_target));
  SET(o, "queue_enabled", json_boolean(c->queue_enabled));
  SET(o, "queue_max_wait_ms", json_integer(c->queue_max_wait_ms));
  SET(o, "logistics_enabled", json_boolean(c->logistics_enabled));
  SET(o, "merchant_invite_enabled", json_boolean(c->merchant_invite_enabled));
  SET(o, "couriers", jstrv(&c->couriers));
  SET(o, "transfer_entry_exposure_pct", json_integer(c->transfer_entry_exposure_pct));
  SET(o, "response_rate_assessed", json_boolean(c->response_rate_assessed));
  SET(o, "utc_offset_minutes", json_integer(c->utc_offset_minutes));
  for (uint32_t i = 0; i < c->ngroups; i++) {
    const kefu_group_t *g = &c->groups[i];
    json_t *j = json_object(), *st = json_array();
    SET(j, "group_id", jstr(g->group_id));
    SET(j, "bot_enabled", json_boolean(g->bot_enabled));
    SET(j, "strategy", jsym(kefu_strategy_names, N_STRATEGY, g->strategy));
    SET(j, "crowd_tags", jstrv(&g->crowd_tags));
    SET(j, "item_ids", jstrv(&g->item_ids));
    SET(j, "intents", jstrv(&g->intents));
    for (int s = 0; s < 32; s++)
      if (g->order_states >> s & 1)
        json_array_append_new(st, jsym(kefu_order_state_names, N_ORDER_STATE, s));
    SET(j, "order_states", st);
    json_array_append_new(gs, j);
  }
  SET(o, "groups", gs);
  return o;
}

json_t *kefu_state_queue_json(const kefu_queue_t *q) {
  json_t *a = json_array();
  for (uint32_t i = 0; i < q->n; i++)
    json_array_append_new(a, json_pack("{s:o, s:I}", "buyer_id", jstr(q->v[i].buyer_id), "since",
                                       (json_int_t)q->v[i].since));
  return a;
}

static json_t *classes_json(const int64_t *v) {
  json_t *o = json_object();
  for (int i = 0; i < KEFU_CLASS__COUNT; i++)
    SET(o, class_names[i], json_integer(v[i]));
  return o;
}

json_t *kefu_state_rate_json(const kefu_rate_t *r) {
  json_t *o = json_object(), *days = json_array();
  for (uint32_t i = 0; i < r->ndays; i++) {
    const kefu_rate_day_t *d = &r->days[i];
    json_t *j = json_object(), *causes = json_object();
    char date[32] = "";
    time_t t = (time_t)d->day * 86400;
    struct tm tm;
    if (gmtime_r(&t, &tm))
      strftime(date, sizeof date, "%Y-%m-%d", &tm);
    SET(j, "day", json_integer(d->day));
    SET(j, "date", json_string(date));
    SET(j, "close_deadline", json_integer(d->close_deadline));
    SET(j, "consultations", classes_json(d->consultations));
    SET(j, "effective", classes_json(d->effective));
    for (int c = 0; c < KEFU_CAUSE__COUNT; c++)
      if (d->causes[c])
        SET(causes, kefu_cause_names[c], json_integer(d->causes[c]));
    SET(j, "causes", causes);
    json_t *order = json_array();
    for (uint8_t k = 0; k < d->ncause_order && k < KEFU_CAUSE__COUNT; k++)
      json_array_append_new(order, jsym(kefu_cause_names, KEFU_CAUSE__COUNT, d->cause_order[k]));
    SET(j, "cause_order", order);
    json_array_append_new(days, j);
  }
  SET(o, "days", days);
  SET(o, "closed_through", r->has_closed ? json_integer(r->closed_through) : json_null());
  SET(o, "penalties", json_integer(r->penalties));
  SET(o, "streak", json_integer(r->streak));
  SET(o, "escalated", json_boolean(r->escalated));
  return o;
}

/* ================================================================== due buckets */

/* The shop's pending due buckets (meta `due`, docs/STATE.md): the base is the first,
 * field 2 repeats the difference from the one before (ascending, so each is > 0). */
void kefu_state_encode_due(kefu_buf_t *out, const int64_t *v, uint32_t n) {
  top_begin(out, n ? v[0] : 0);
  for (uint32_t i = 1; i < n; i++)
    e_sint(out, 2, v[i] - v[i - 1], INT64_MIN);
}

typedef struct due_list {
  int64_t *v;
  uint32_t n;
} due_list_t;

static int dec_due_top(rd_t *r, void *obj) {
  due_list_t *d = obj;
  fld_t f;
  int rc;
  int64_t step;
  if (PUSH(r, &(fld_t){0}, d->v, d->n))
    return -1;
  d->v[0] = r->base;
  while ((rc = rd_next(r, &f)) > 0) {
    if (f.num != 2)
      continue;
    if (g_i64(r, &f, &step))
      return -1;
    if (step <= 0)
      return fail(r, f.at, "field 2: buckets not ascending (step %lld)", (long long)step);
    if (d->v[d->n - 1] > INT64_MAX - step)
      return fail(r, f.at, "field 2: bucket beyond 64 bits");
    if (PUSH(r, &f, d->v, d->n))
      return -1;
    d->v[d->n - 1] = d->v[d->n - 2] + step;
  }
  return rc;
}

int kefu_state_decode_due(const uint8_t *p, size_t n, int64_t **v, uint32_t *count, char *errstr,
                          size_t errlen) {
  due_list_t d = {0};
  if (dec_top(p, n, "due", dec_due_top, &d, errstr, errlen)) {
    free(d.v);
    return -1;
  }
  *v = d.v;
  *count = d.n;
  return 0;
}
