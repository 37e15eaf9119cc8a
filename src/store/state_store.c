#include "store/state_store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DAY_MS INT64_C(86400000)

/* KEYS of kefu_apply, 1-based as Lua sees them (src/store/kefu.lua); the seen days
 * follow K_SEEN. */
enum apply_key { K_APPLIED = 1, K_CFG, K_AGENTS, K_BUYERS, K_ORDERS, K_META, K_SHIPPED, K_SEEN };

static const char *const key_names[K_SEEN] = {
    [K_APPLIED] = "applied", [K_CFG] = "cfg",   [K_AGENTS] = "agents",  [K_BUYERS] = "buyers",
    [K_ORDERS] = "orders",   [K_META] = "meta", [K_SHIPPED] = "shipped"};

void kefu_store_day_name(int32_t day, char *out, size_t outlen) {
  time_t secs = (time_t)day * 86400;
  struct tm tm;
  gmtime_r(&secs, &tm);
  strftime(out, outlen, "%Y-%m-%d", &tm);
}

static void key_arg(kefu_cmd_t *c, const char *ns, const char *shop, const char *name) {
  kefu_cmd_fmt(c, "%s:{%s}:%s", ns, shop, name);
}

static void seen_key_arg(kefu_cmd_t *c, const char *ns, const char *shop, int32_t day) {
  char name[32];
  kefu_store_day_name(day, name, sizeof name);
  kefu_cmd_fmt(c, "%s:{%s}:seen:%s", ns, shop, name);
}

static void append_simple(kefu_redis_t *r, const char *ns, const char *shop, const char *verb,
                          const char *name, const char *extra) {
  kefu_cmd_t c;
  kefu_cmd_init(&c);
  kefu_cmd_str(&c, verb);
  key_arg(&c, ns, shop, name);
  for (const char *e = extra; e && *e; e += strlen(e) + 1)
    kefu_cmd_str(&c, e);
  kefu_redis_append(r, &c);
  kefu_cmd_clear(&c);
}

int kefu_store_seen_append(kefu_redis_t *r, const char *ns, const char *shop, int32_t from,
                           int32_t to) {
  kefu_cmd_t c;
  kefu_cmd_init(&c);
  kefu_cmd_str(&c, "MGET");
  for (int32_t d = from; d <= to; d++)
    seen_key_arg(&c, ns, shop, d);
  kefu_redis_append(r, &c);
  kefu_cmd_clear(&c);
  return 1;
}

int kefu_store_load_append(kefu_redis_t *r, const char *ns, const char *shop, int32_t seen_from,
                           int32_t seen_to) {
  append_simple(r, ns, shop, "GET", "cfg", NULL);
  append_simple(r, ns, shop, "HGETALL", "applied", NULL);
  append_simple(r, ns, shop, "HGETALL", "agents", NULL);
  append_simple(r, ns, shop, "HLEN", "buyers", NULL);
  append_simple(r, ns, shop, "HGETALL", "orders", NULL);
  append_simple(r, ns, shop, "HGETALL", "meta", NULL);
  append_simple(r, ns, shop, "ZRANGE", "shipped", "0\0-1\0WITHSCORES\0");
  return 7 + kefu_store_seen_append(r, ns, shop, seen_from, seen_to);
}

#define FAIL(...)                                                                                  \
  do {                                                                                             \
    snprintf(errstr, errlen, __VA_ARGS__);                                                         \
    return -1;                                                                                     \
  } while (0)

static bool is_pairs(const redisReply *r) {
  return r->type == REDIS_REPLY_ARRAY && r->elements % 2 == 0;
}

int kefu_store_seen_parse(const redisReply *r, kefu_seen_fn seen, void *arg, char *errstr,
                          size_t errlen) {
  if (r->type == REDIS_REPLY_ERROR)
    FAIL("reading event ids seen: %s", r->str);
  if (r->type != REDIS_REPLY_ARRAY)
    FAIL("seen: unexpected reply");
  for (size_t i = 0; i < r->elements; i++) {
    const redisReply *v = r->element[i];
    if (v->type != REDIS_REPLY_STRING)
      continue; /* a day without ids */
    const uint8_t *p = (const uint8_t *)v->str;
    for (size_t off = 0; off + 16 <= v->len; off += 16) {
      uint64_t h = 0, ts = 0;
      for (int k = 0; k < 8; k++) {
        h |= (uint64_t)p[off + k] << (8 * k);
        ts |= (uint64_t)p[off + 8 + k] << (8 * k);
      }
      seen(arg, h ? h : 1, (int64_t)ts);
    }
  }
  return 0;
}

static int parse_entities(const redisReply *r, kefu_shop_t *shop, int key, char *errstr,
                          size_t errlen) {
  char err[256];
  if (!is_pairs(r))
    FAIL("%s: unexpected reply", key_names[key]);
  for (size_t i = 0; i < r->elements; i += 2) {
    const redisReply *f = r->element[i], *v = r->element[i + 1];
    const uint8_t *p = (const uint8_t *)v->str;
    int rc = -1;
    if (key == K_AGENTS) {
      kefu_agent_t *a = NULL;
      if (!(rc = kefu_state_decode_agent(p, v->len, f->str, &a, err, sizeof err)))
        kefu_shop_put_agent(shop, a);
    } else {
      kefu_order_t *o = NULL;
      if (!(rc = kefu_state_decode_order(p, v->len, f->str, &o, err, sizeof err)))
        kefu_shop_put_order(shop, o);
    }
    if (rc)
      FAIL("%s field %s: %s", key_names[key], f->str, err);
  }
  return 0;
}

static int parse_meta(const redisReply *r, kefu_shop_t *shop, kefu_store_loaded_t *out,
                      char *errstr, size_t errlen) {
  char err[256];
  if (!is_pairs(r))
    FAIL("meta: unexpected reply");
  for (size_t i = 0; i < r->elements; i += 2) {
    const char *f = r->element[i]->str;
    const uint8_t *p = (const uint8_t *)r->element[i + 1]->str;
    size_t n = r->element[i + 1]->len;
    int rc = 0;
    if (strcmp(f, "queue") == 0)
      rc = kefu_state_decode_queue(p, n, &shop->queue, err, sizeof err);
    else if (strcmp(f, "rate") == 0)
      rc = kefu_state_decode_rate(p, n, &shop->rate, err, sizeof err);
    else if (strcmp(f, "timers") == 0)
      rc = kefu_state_decode_timers(p, n, &shop->timers, err, sizeof err);
    else if (strcmp(f, "due") == 0) {
      free(out->due);
      out->due = NULL;
      out->ndue = 0;
      rc = kefu_state_decode_due(p, n, &out->due, &out->ndue, err, sizeof err);
    }
    /* other fields: written by a newer kefu, kept as they are */
    if (rc)
      FAIL("meta field %s: %s", f, err);
  }
  return 0;
}

int kefu_store_load_parse(redisReply **r, kefu_shop_t *shop, const char *const fields[4],
                          int64_t stored[4], kefu_store_loaded_t *out, kefu_seen_fn seen, void *arg,
                          char *errstr, size_t errlen) {
  static const char *const what[8] = {"cfg",    "applied", "agents",  "buyers",
                                      "orders", "meta",    "shipped", "seen days"};
  char err[256];
  for (int k = 0; k < 4; k++)
    stored[k] = -1;
  memset(out, 0, sizeof *out);
  for (int i = 0; i < 8; i++) /* NOPERM (ACL), OOM, ...: Redis's own words */
    if (r[i]->type == REDIS_REPLY_ERROR)
      FAIL("reading %s of shop %s: %s", what[i], shop->id, r[i]->str);
  if (r[0]->type == REDIS_REPLY_STRING) {
    if (kefu_state_decode_config((const uint8_t *)r[0]->str, r[0]->len, &shop->config, err,
                                 sizeof err))
      FAIL("cfg: %s", err);
    shop->config_is_default = false;
    kefu_shop_config_replaced(shop);
  } else if (r[0]->type != REDIS_REPLY_NIL) {
    FAIL("cfg: unexpected reply");
  }
  if (!is_pairs(r[1]))
    FAIL("applied: unexpected reply");
  for (size_t i = 0; i < r[1]->elements; i += 2)
    for (int k = 0; k < 4; k++)
      if (strcmp(r[1]->element[i]->str, fields[k]) == 0)
        stored[k] = strtoll(r[1]->element[i + 1]->str, NULL, 10);
  if (r[3]->type != REDIS_REPLY_INTEGER)
    FAIL("buyers: unexpected reply");
  out->buyers = r[3]->integer;
  if (parse_entities(r[2], shop, K_AGENTS, errstr, errlen) ||
      parse_entities(r[4], shop, K_ORDERS, errstr, errlen) ||
      parse_meta(r[5], shop, out, errstr, errlen))
    return -1;
  if (!is_pairs(r[6]))
    FAIL("shipped: unexpected reply");
  for (size_t i = 0; i < r[6]->elements; i += 2)
    kefu_map_put(&shop->shipped.by_order, r[6]->element[i]->str,
                 (void *)(intptr_t)strtoll(r[6]->element[i + 1]->str, NULL, 10));
  return kefu_store_seen_parse(r[7], seen, arg, errstr, errlen);
}

/* ------------------------------------------------------------------ buyers on demand */

static void due_key_arg(kefu_cmd_t *c, const char *ns, const char *shop, int64_t bucket) {
  kefu_cmd_fmt(c, "%s:{%s}:due:%lld", ns, shop, (long long)bucket);
}

int kefu_store_buyers_append(kefu_redis_t *r, const char *ns, const char *shop,
                             const char *const *ids, size_t n) {
  kefu_cmd_t c;
  kefu_cmd_init(&c);
  kefu_cmd_str(&c, "HMGET");
  key_arg(&c, ns, shop, "buyers");
  for (size_t i = 0; i < n; i++)
    kefu_cmd_str(&c, ids[i]);
  kefu_redis_append(r, &c);
  kefu_cmd_clear(&c);
  return 1;
}

int kefu_store_due_read_append(kefu_redis_t *r, const char *ns, const char *shop,
                               const int64_t *buckets, size_t n) {
  kefu_cmd_t c;
  kefu_cmd_init(&c);
  kefu_cmd_str(&c, "FCALL");
  kefu_cmd_str(&c, "kefu_due_read");
  kefu_cmd_fmt(&c, "%zu", n + 1);
  key_arg(&c, ns, shop, "buyers");
  for (size_t i = 0; i < n; i++)
    due_key_arg(&c, ns, shop, buckets[i]);
  kefu_redis_append(r, &c);
  kefu_cmd_clear(&c);
  return 1;
}

static int one_buyer(const redisReply *v, const char *id, kefu_buyer_fn fn, void *arg, char *errstr,
                     size_t errlen) {
  char err[256];
  kefu_buyer_t *b = NULL;
  if (v->type == REDIS_REPLY_NIL) {
    fn(arg, id, NULL);
    return 0;
  }
  if (v->type != REDIS_REPLY_STRING)
    FAIL("buyers field %s: unexpected reply", id);
  if (kefu_state_decode_buyer((const uint8_t *)v->str, v->len, id, &b, err, sizeof err))
    FAIL("buyers field %s: %s", id, err);
  fn(arg, id, b);
  return 0;
}

int kefu_store_buyers_parse(const redisReply *r, const char *const *ids, size_t n, kefu_buyer_fn fn,
                            void *arg, char *errstr, size_t errlen) {
  if (r->type == REDIS_REPLY_ERROR)
    FAIL("reading buyers: %s", r->str);
  if (r->type != REDIS_REPLY_ARRAY || (ids ? r->elements != n : r->elements % 2 != 0))
    FAIL("buyers: unexpected reply");
  for (size_t i = 0; i < r->elements; i += ids ? 1 : 2) {
    const redisReply *id = ids ? NULL : r->element[i];
    if (id && (id->type != REDIS_REPLY_STRING || id->len == 0 || id->len > KEFU_ID_MAX ||
               memchr(id->str, 0, id->len)))
      FAIL("due bucket: not a buyer id");
    if (one_buyer(r->element[ids ? i : i + 1], ids ? ids[i] : id->str, fn, arg, errstr, errlen))
      return -1;
  }
  return 0;
}

void kefu_store_due_add(kefu_buf_t *ids, const char *id) {
  uint8_t len = (uint8_t)strlen(id); /* ids are at most KEFU_ID_MAX bytes */
  kefu_buf_append(ids, &len, 1);
  kefu_buf_append(ids, id, len);
}

/* ------------------------------------------------------------------ writing */

/* One variadic op of kefu_apply under construction: verb, key index, count, arguments.
 * Its count is patched in when it is closed. */
typedef struct op {
  kefu_cmd_t *c;
  int count_arg, count;
} op_t;

static void op_open(op_t *o, kefu_cmd_t *c, const char *verb, int key) {
  o->c = c;
  kefu_cmd_str(c, verb);
  kefu_cmd_fmt(c, "%d", key);
  o->count_arg = c->argc;
  kefu_cmd_str(c, "0");
  o->count = 0;
}

static void op_arg(op_t *o, const void *p, size_t n) {
  kefu_cmd_arg(o->c, p, n);
  o->count++;
}

static void op_str(op_t *o, const char *s) {
  op_arg(o, s, strlen(s));
}

/* Closes the op; an op with no arguments is taken back out of the command. */
static bool op_close(op_t *o) {
  kefu_cmd_t *c = o->c;
  if (o->count == 0) {
    for (int i = o->count_arg - 2; i < c->argc; i++)
      free(c->argv[i]);
    c->argc = o->count_arg - 2;
    return false;
  }
  char num[16];
  int n = snprintf(num, sizeof num, "%d", o->count);
  free(c->argv[o->count_arg]);
  c->argv[o->count_arg] = malloc((size_t)n + 1);
  memcpy(c->argv[o->count_arg], num, (size_t)n + 1);
  c->lens[o->count_arg] = (size_t)n;
  return true;
}

/* HSET of every changed entity of one hash, clearing their flags: the shop's dirty list
 * for buyers, a walk over agents and orders. */
static bool write_entities(kefu_cmd_t *c, kefu_shop_t *s, int key, kefu_buf_t *buf) {
  const kefu_map_t *m = key == K_AGENTS ? &s->agents : &s->orders;
  const char *id;
  void *v;
  op_t o;
  op_open(&o, c, "hset", key);
  if (key == K_BUYERS) {
    for (uint32_t i = 0; i < s->dirty.n; i++) {
      kefu_buyer_t *b = s->dirty.v[i];
      b->changed = false;
      kefu_buf_reset(buf);
      kefu_state_encode_buyer(buf, b);
      op_str(&o, b->id);
      op_arg(&o, buf->p, buf->n);
    }
    s->dirty.n = 0;
    return op_close(&o);
  }
  kefu_map_foreach(m, it, id, v) {
    kefu_buf_reset(buf);
    if (key == K_AGENTS) {
      kefu_agent_t *a = v;
      if (!a->changed)
        continue;
      a->changed = false;
      kefu_state_encode_agent(buf, a);
    } else {
      kefu_order_t * or = v;
      if (! or->changed)
        continue;
      or->changed = false;
      kefu_state_encode_order(buf, or);
    }
    op_str(&o, id);
    op_arg(&o, buf->p, buf->n);
  }
  return op_close(&o);
}

static bool write_meta(kefu_cmd_t *c, kefu_shop_t *s, kefu_buf_t *buf) {
  op_t o;
  bool any = false;
  op_open(&o, c, "hset", K_META);
  if (s->queue.changed) {
    kefu_buf_reset(buf);
    kefu_state_encode_queue(buf, &s->queue);
    op_str(&o, "queue");
    op_arg(&o, buf->p, buf->n);
    s->queue.changed = false;
  }
  if (s->rate.changed) {
    kefu_buf_reset(buf);
    kefu_state_encode_rate(buf, &s->rate);
    op_str(&o, "rate");
    op_arg(&o, buf->p, buf->n);
    s->rate.changed = false;
  }
  if (s->timers_changed) {
    kefu_buf_reset(buf);
    kefu_state_encode_timers(buf, &s->timers);
    op_str(&o, "timers");
    op_arg(&o, buf->p, buf->n);
    s->timers_changed = false;
  }
  any |= op_close(&o);
  if (s->config_changed) {
    if (s->config_is_default) { /* a tombstone: back to the defaults */
      kefu_cmd_str(c, "del");
      kefu_cmd_fmt(c, "%d", K_CFG);
      kefu_cmd_str(c, "0");
    } else {
      kefu_buf_reset(buf);
      kefu_state_encode_config(buf, &s->config);
      op_open(&o, c, "set", K_CFG);
      op_arg(&o, buf->p, buf->n);
      op_close(&o);
    }
    s->config_changed = false;
    any = true;
  }
  return any;
}

/* DELIV-4's index: the entries added and removed since the last write, and those
 * shipped more than 30 days before the batch's newest event go (SPEC §5: bounded). */
static bool write_shipped(kefu_cmd_t *c, kefu_shop_t *s, int64_t keep_from) {
  kefu_shipped_t *sh = &s->shipped;
  const char *id;
  void *v;
  char num[24];
  op_t o;
  if (!sh->changed)
    return false;
  sh->changed = false;
  op_open(&o, c, "zrem", K_SHIPPED);
  for (uint32_t i = 0; i < sh->removed.n; i++)
    if (!kefu_map_get(&sh->by_order, sh->removed.v[i]))
      op_str(&o, sh->removed.v[i]);
  op_close(&o);
  op_open(&o, c, "zadd", K_SHIPPED);
  for (uint32_t i = 0; i < sh->added.n; i++) {
    if (!(v = kefu_map_get(&sh->by_order, sh->added.v[i])))
      continue;
    snprintf(num, sizeof num, "%lld", (long long)(intptr_t)v);
    op_str(&o, num);
    op_str(&o, sh->added.v[i]);
  }
  op_close(&o);
  kefu_strv_clear(&sh->added);
  kefu_strv_clear(&sh->removed);
  snprintf(num, sizeof num, "(%lld", (long long)keep_from);
  op_open(&o, c, "ztrim", K_SHIPPED);
  op_str(&o, num);
  op_close(&o);
  kefu_map_foreach(&sh->by_order, it, id, v) {
    if ((int64_t)(intptr_t)v < keep_from)
      kefu_map_del(&sh->by_order, id);
  }
  return true;
}

/* The due buckets' ops: their key indexes follow the seen days' (@p first). */
static bool write_due(kefu_cmd_t *c, const kefu_store_write_t *w, int first, kefu_buf_t *buf) {
  op_t o;
  for (uint32_t i = 0; i < w->ndue_del; i++) { /* first: a bucket may be listed again */
    kefu_cmd_str(c, "del");
    kefu_cmd_fmt(c, "%d", first + (int)w->ndue_add + (int)i);
    kefu_cmd_str(c, "0");
  }
  for (uint32_t i = 0; i < w->ndue_add; i++) {
    op_open(&o, c, "append", first + (int)i);
    op_arg(&o, w->due_add[i].ids.p, w->due_add[i].ids.n);
    op_close(&o);
  }
  if (w->due_changed && w->ndue) {
    kefu_buf_reset(buf);
    kefu_state_encode_due(buf, w->due, w->ndue);
    op_open(&o, c, "hset", K_META);
    op_str(&o, "due");
    op_arg(&o, buf->p, buf->n);
    op_close(&o);
  } else if (w->due_changed) {
    op_open(&o, c, "hdel", K_META);
    op_str(&o, "due");
    op_close(&o);
  }
  return w->ndue_add || w->ndue_del || w->due_changed;
}

int kefu_store_apply_append(kefu_redis_t *r, const char *ns, kefu_store_write_t *w,
                            kefu_buf_t *scratch) {
  kefu_shop_t *s = w->shop;
  kefu_cmd_t c;
  bool any = w->offsets_changed || w->nseen;
  int nseen_keys = (int)w->nseen +
                   (w->seen_del_from <= w->seen_del_to ? w->seen_del_to - w->seen_del_from + 1 : 0);
  int nkeys = K_SEEN - 1 + nseen_keys + (int)w->ndue_add + (int)w->ndue_del;
  kefu_cmd_init(&c);
  kefu_cmd_str(&c, "FCALL");
  kefu_cmd_str(&c, "kefu_apply");
  kefu_cmd_fmt(&c, "%d", nkeys);
  for (int k = 1; k < K_SEEN; k++)
    key_arg(&c, ns, s->id, key_names[k]);
  for (uint32_t i = 0; i < w->nseen; i++)
    seen_key_arg(&c, ns, s->id, w->seen[i].day);
  for (int32_t d = w->seen_del_from; d <= w->seen_del_to; d++)
    seen_key_arg(&c, ns, s->id, d);
  for (uint32_t i = 0; i < w->ndue_add; i++)
    due_key_arg(&c, ns, s->id, w->due_add[i].bucket);
  for (uint32_t i = 0; i < w->ndue_del; i++)
    due_key_arg(&c, ns, s->id, w->due_del[i]);
  kefu_cmd_fmt(&c, "%d", w->ncas);
  for (int i = 0; i < w->ncas; i++) {
    kefu_cmd_str(&c, w->cas[i].field);
    kefu_cmd_str(&c, w->cas[i].expected);
    kefu_cmd_str(&c, w->cas[i].value);
  }
  any |= write_entities(&c, s, K_AGENTS, scratch);
  any |= write_entities(&c, s, K_BUYERS, scratch);
  any |= write_entities(&c, s, K_ORDERS, scratch);
  any |= write_meta(&c, s, scratch);
  any |= write_shipped(&c, s, w->shipped_keep_from);
  for (uint32_t i = 0; i < w->nseen; i++) {
    op_t o;
    op_open(&o, &c, "append", K_SEEN + (int)i);
    op_arg(&o, w->seen[i].add.p, w->seen[i].add.n);
    op_close(&o);
  }
  for (int32_t d = w->seen_del_from; d <= w->seen_del_to; d++) {
    kefu_cmd_str(&c, "del");
    kefu_cmd_fmt(&c, "%d", K_SEEN + (int)w->nseen + (d - w->seen_del_from));
    kefu_cmd_str(&c, "0");
    any = true;
  }
  any |= write_due(&c, w, K_SEEN + nseen_keys, scratch);
  if (any)
    kefu_redis_append(r, &c);
  kefu_cmd_clear(&c);
  return any ? 1 : 0;
}

bool kefu_store_went_back(const char *stored, int64_t acked) {
  if (acked < 0)
    return false;
  long long v = stored && *stored ? strtoll(stored, NULL, 10) : -1;
  return v < acked;
}

int kefu_store_apply_check(const redisReply *reply, const kefu_store_write_t *w, char *errstr,
                           size_t errlen) {
  if (reply->type == REDIS_REPLY_STATUS || reply->type == REDIS_REPLY_STRING) {
    if (strcmp(reply->str, "OK") == 0)
      return 0;
  }
  if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3) {
    const redisReply *field = reply->element[1], *stored = reply->element[2];
    const char *f = field->type == REDIS_REPLY_STRING ? field->str : "";
    const char *v = stored->type == REDIS_REPLY_STRING ? stored->str : "";
    for (int i = 0; i < w->ncas; i++)
      if (strcmp(w->cas[i].field, f) == 0 && w->cas[i].expected[0] &&
          kefu_store_went_back(v, strtoll(w->cas[i].expected, NULL, 10))) {
        snprintf(errstr, errlen,
                 "shop %s's applied offset of %s is %s in Redis, below %s, which Redis "
                 "acknowledged to this instance",
                 w->shop->id, f, *v ? v : "(none)", w->cas[i].expected);
        return KEFU_STORE_WENT_BACK;
      }
    FAIL("state conflict on %s (stored offset %s): another instance applied it", f, v);
  }
  FAIL("kefu_apply: %s", reply->str ? reply->str : "unexpected reply");
}

int64_t kefu_store_timers_min(const kefu_shop_t *shop) {
  const char *id;
  void *v;
  int64_t m = kefu_timers_min(&shop->timers);
  kefu_map_foreach(&shop->buyers, it, id, v) {
    const kefu_buyer_t *b = v;
    int64_t t = kefu_timers_min(b->timers);
    if (t < m)
      m = t;
  }
  return m;
}
