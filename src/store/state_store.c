#include "store/state_store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS of kefu_apply, 1-based as Lua sees them (src/store/kefu.lua). */
enum apply_key {
  K_APPLIED = 1,
  K_CFG,
  K_ENTITIES, /* K_ENTITIES + kefu_entity_kind_t: agents, buyers, orders, meta */
  K_DEDUP = K_ENTITIES + KEFU_ENT__COUNT,
  K_TIMERS,
  K_SHIPPED,
  K__END
};

static const char *const key_names[K__END] = {[K_APPLIED] = "applied",
                                              [K_CFG] = "cfg",
                                              [K_ENTITIES + KEFU_ENT_AGENT] = "agents",
                                              [K_ENTITIES + KEFU_ENT_BUYER] = "buyers",
                                              [K_ENTITIES + KEFU_ENT_ORDER] = "orders",
                                              [K_ENTITIES + KEFU_ENT_META] = "meta",
                                              [K_DEDUP] = "dedup",
                                              [K_TIMERS] = "timers",
                                              [K_SHIPPED] = "shipped"};

static void key_arg(kefu_cmd_t *c, const char *ns, const char *shop, const char *name) {
  kefu_cmd_fmt(c, "%s:{%s}:%s", ns, shop, name);
}

void kefu_shop_load_init(kefu_shop_load_t *l, kefu_shop_t *shop) {
  memset(l, 0, sizeof *l);
  l->shop = shop;
  l->buyers = json_object();
  l->orders = json_object();
  l->event_ids = json_object();
  l->timers_before = INT64_MIN;
  l->shipped_since = INT64_MIN;
}

void kefu_shop_load_clear(kefu_shop_load_t *l) {
  json_decref(l->buyers);
  json_decref(l->orders);
  json_decref(l->event_ids);
  kefu_timer_queue_clear(&l->timers);
  memset(l, 0, sizeof *l);
}

static void append_simple(kefu_redis_t *r, const char *verb, const char *ns, const char *shop,
                          const char *name) {
  kefu_cmd_t c;
  kefu_cmd_init(&c);
  kefu_cmd_str(&c, verb);
  key_arg(&c, ns, shop, name);
  kefu_redis_append(r, &c);
  kefu_cmd_clear(&c);
}

static void append_multi(kefu_redis_t *r, const char *verb, const char *ns, const char *shop,
                         const char *name, const json_t *ids) {
  const char *id;
  json_t *v;
  kefu_cmd_t c;
  kefu_cmd_init(&c);
  kefu_cmd_str(&c, verb);
  key_arg(&c, ns, shop, name);
  json_object_foreach((json_t *)ids, id, v) kefu_cmd_str(&c, id);
  kefu_redis_append(r, &c);
  kefu_cmd_clear(&c);
}

void kefu_store_load_append(kefu_redis_t *r, const char *ns, kefu_shop_load_t *l, int *next_reply) {
  const char *shop = l->shop->id;
  l->first_reply = *next_reply;
  append_simple(r, "GET", ns, shop, "cfg");
  append_simple(r, "HGETALL", ns, shop, "applied");
  append_simple(r, "HGETALL", ns, shop, "agents");
  append_simple(r, "HGETALL", ns, shop, "meta");
  l->nreplies = 4;
  /* HMGET and ZMSCORE need at least one field: empty sets send nothing. */
  if (json_object_size(l->buyers)) {
    append_multi(r, "HMGET", ns, shop, "buyers", l->buyers);
    l->nreplies++;
  }
  if (json_object_size(l->orders)) {
    append_multi(r, "HMGET", ns, shop, "orders", l->orders);
    l->nreplies++;
  }
  if (json_object_size(l->event_ids)) {
    append_multi(r, "ZMSCORE", ns, shop, "dedup", l->event_ids);
    l->nreplies++;
  }
  if (l->shipped_since != INT64_MIN) {
    kefu_cmd_t c;
    kefu_cmd_init(&c);
    kefu_cmd_str(&c, "ZRANGEBYSCORE");
    key_arg(&c, ns, shop, "shipped");
    kefu_cmd_fmt(&c, "%lld", (long long)l->shipped_since);
    kefu_cmd_str(&c, "+inf");
    kefu_cmd_str(&c, "WITHSCORES");
    kefu_redis_append(r, &c);
    kefu_cmd_clear(&c);
    l->nreplies++;
  }
  if (l->timers_before != INT64_MIN) {
    kefu_cmd_t c;
    kefu_cmd_init(&c);
    kefu_cmd_str(&c, "ZRANGEBYSCORE");
    key_arg(&c, ns, shop, "timers");
    kefu_cmd_str(&c, "-inf");
    kefu_cmd_fmt(&c, "(%lld", (long long)l->timers_before);
    kefu_cmd_str(&c, "WITHSCORES");
    kefu_redis_append(r, &c);
    kefu_cmd_clear(&c);
    l->nreplies++;
  }
  *next_reply += l->nreplies;
}

static json_t *parse_json(const redisReply *r) {
  if (!r || r->type != REDIS_REPLY_STRING)
    return NULL;
  return json_loadb(r->str, r->len, 0, NULL);
}

/* HMGET with no field is an error reply: an empty id set reads as nothing. */
static int parse_entities(json_t *into, const json_t *ids, const redisReply *r, char *errstr,
                          size_t errlen) {
  const char *id;
  json_t *v;
  size_t i = 0;
  if (json_object_size(ids) == 0)
    return 0;
  if (r->type != REDIS_REPLY_ARRAY || r->elements != json_object_size(ids)) {
    snprintf(errstr, errlen, "redis: unexpected HMGET reply");
    return -1;
  }
  json_object_foreach((json_t *)ids, id, v) {
    json_t *e = parse_json(r->element[i++]);
    /* json null marks an id asked for and absent, so later rounds do not ask again */
    json_object_set_new(into, id, e ? e : json_null());
  }
  return 0;
}

static int parse_hash(json_t *into, const redisReply *r, int as_json, char *errstr, size_t errlen) {
  if (r->type != REDIS_REPLY_ARRAY) {
    snprintf(errstr, errlen, "redis: unexpected HGETALL reply");
    return -1;
  }
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    const redisReply *k = r->element[i], *v = r->element[i + 1];
    json_t *val = as_json ? parse_json(v) : json_stringn(v->str, v->len);
    if (val)
      json_object_set_new(into, k->str, val);
  }
  return 0;
}

static int parse_dedup(kefu_shop_load_t *l, const redisReply *r, char *errstr, size_t errlen) {
  const char *id;
  json_t *v;
  size_t i = 0;
  if (json_object_size(l->event_ids) == 0)
    return 0;
  if (r->type != REDIS_REPLY_ARRAY || r->elements != json_object_size(l->event_ids)) {
    snprintf(errstr, errlen, "redis: unexpected ZMSCORE reply");
    return -1;
  }
  json_object_foreach(l->event_ids, id, v) {
    const redisReply *e = r->element[i++];
    if (e->type == REDIS_REPLY_STRING)
      json_object_set_new(l->shop->dedup, id, json_integer(strtoll(e->str, NULL, 10)));
  }
  return 0;
}

static int parse_shipped(kefu_shop_load_t *l, const redisReply *r, char *errstr, size_t errlen) {
  if (r->type != REDIS_REPLY_ARRAY) {
    snprintf(errstr, errlen, "redis: unexpected ZRANGEBYSCORE reply");
    return -1;
  }
  for (size_t i = 0; i + 1 < r->elements; i += 2)
    json_object_set_new(l->shop->shipped, r->element[i]->str,
                        json_integer(strtoll(r->element[i + 1]->str, NULL, 10)));
  l->shop->shipped_loaded = true;
  return 0;
}

static int parse_timers(kefu_shop_load_t *l, const redisReply *r, char *errstr, size_t errlen) {
  if (r->type != REDIS_REPLY_ARRAY) {
    snprintf(errstr, errlen, "redis: unexpected ZRANGEBYSCORE reply");
    return -1;
  }
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    const redisReply *m = r->element[i];
    kefu_timer_t *t =
        kefu_timer_parse(m->str, m->len, strtoll(r->element[i + 1]->str, NULL, 10), l->shop->id);
    if (t)
      kefu_timer_queue_add(&l->timers, t);
  }
  return 0;
}

int kefu_store_load_parse(kefu_shop_load_t *l, redisReply **replies, char *errstr, size_t errlen) {
  redisReply **r = replies + l->first_reply;
  kefu_shop_t *s = l->shop;
  int next = 4;
  for (int i = 0; i < l->nreplies; i++)
    if (r[i]->type == REDIS_REPLY_ERROR) {
      snprintf(errstr, errlen, "redis: %s", r[i]->str);
      return -1;
    }
  json_t *cfg = parse_json(r[0]);
  if (cfg) {
    json_decref(s->config);
    s->config = cfg;
    s->config_is_default = false;
  }
  if (parse_hash(s->applied, r[1], 0, errstr, errlen) ||
      parse_hash(s->entities[KEFU_ENT_AGENT], r[2], 1, errstr, errlen) ||
      parse_hash(s->entities[KEFU_ENT_META], r[3], 1, errstr, errlen) ||
      (json_object_size(l->buyers) &&
       parse_entities(s->entities[KEFU_ENT_BUYER], l->buyers, r[next++], errstr, errlen)) ||
      (json_object_size(l->orders) &&
       parse_entities(s->entities[KEFU_ENT_ORDER], l->orders, r[next++], errstr, errlen)) ||
      (json_object_size(l->event_ids) && parse_dedup(l, r[next++], errstr, errlen)) ||
      (l->shipped_since != INT64_MIN && parse_shipped(l, r[next++], errstr, errlen)) ||
      (l->timers_before != INT64_MIN && parse_timers(l, r[next++], errstr, errlen)))
    return -1;
  json_object_update(s->applied_loaded, s->applied);
  return 0;
}

static void add_missing(json_t *set, const json_t *known, const char *id) {
  if (id && *id && !json_object_get(known, id))
    json_object_set_new(set, id, json_true());
}

int kefu_store_more_append(kefu_redis_t *r, const char *ns, kefu_shop_load_t *l, int *next_reply) {
  kefu_shop_t *s = l->shop;
  const char *id;
  json_t *b, *oid;
  size_t i;
  json_object_clear(l->buyers);
  json_object_clear(l->orders);
  for (i = 0; i < l->timers.n; i++)
    add_missing(l->buyers, s->entities[KEFU_ENT_BUYER], l->timers.items[i]->buyer_id);
  json_array_foreach(json_object_get(kefu_shop_get(s, KEFU_ENT_META, "queue"), "buyers"), i, b)
      add_missing(l->buyers, s->entities[KEFU_ENT_BUYER], kefu_json_str(b, "buyer_id"));
  json_object_foreach(s->entities[KEFU_ENT_BUYER], id, b) {
    json_array_foreach(json_object_get(b, "orders"), i, oid)
        add_missing(l->orders, s->entities[KEFU_ENT_ORDER], json_string_value(oid));
  }
  json_object_foreach(s->shipped, id, b) add_missing(l->orders, s->entities[KEFU_ENT_ORDER], id);
  l->more_first_reply = *next_reply;
  l->more_buyers = json_object_size(l->buyers) > 0;
  l->more_orders = json_object_size(l->orders) > 0;
  if (l->more_buyers)
    append_multi(r, "HMGET", ns, s->id, "buyers", l->buyers);
  if (l->more_orders)
    append_multi(r, "HMGET", ns, s->id, "orders", l->orders);
  *next_reply += l->more_buyers + l->more_orders;
  return l->more_buyers + l->more_orders;
}

int kefu_store_more_parse(kefu_shop_load_t *l, redisReply **replies, char *errstr, size_t errlen) {
  int next = l->more_first_reply;
  if (l->more_buyers &&
      parse_entities(l->shop->entities[KEFU_ENT_BUYER], l->buyers, replies[next++], errstr, errlen))
    return -1;
  if (l->more_orders &&
      parse_entities(l->shop->entities[KEFU_ENT_ORDER], l->orders, replies[next], errstr, errlen))
    return -1;
  return 0;
}

static void op(kefu_cmd_t *c, const char *name, int key, const char *a, size_t alen, const char *b,
               size_t blen) {
  kefu_cmd_str(c, name);
  kefu_cmd_fmt(c, "%d", key);
  kefu_cmd_arg(c, a, alen);
  kefu_cmd_arg(c, b, blen);
}

static void op_str(kefu_cmd_t *c, const char *name, int key, const char *a, const char *b) {
  op(c, name, key, a, strlen(a), b, strlen(b));
}

static void append_entity_ops(kefu_cmd_t *c, kefu_shop_t *s) {
  for (int k = 0; k < KEFU_ENT__COUNT; k++) {
    const char *id;
    json_t *v;
    json_object_foreach(s->dirty[k], id, v) {
      json_t *e = json_object_get(s->entities[k], id);
      if (!json_is_object(e)) {
        op_str(c, "hdel", K_ENTITIES + k, id, "-");
        continue;
      }
      char *text = json_dumps(e, JSON_COMPACT);
      op_str(c, "hset", K_ENTITIES + k, id, text);
      free(text);
    }
  }
}

/* DELIV-4's index: changed entries, and anything shipped more than 30 days before the
 * newest shipment is trimmed. */
static void append_shipped_ops(kefu_cmd_t *c, kefu_shop_t *s) {
  const char *id;
  json_t *v;
  char num[32];
  int64_t newest = 0;
  json_object_foreach(s->shipped_changed, id, v) {
    json_t *ts = json_object_get(s->shipped, id);
    if (!ts) {
      op_str(c, "zrem", K_SHIPPED, id, "-");
      continue;
    }
    snprintf(num, sizeof num, "%lld", (long long)json_integer_value(ts));
    op_str(c, "zadd", K_SHIPPED, num, id);
    if (json_integer_value(ts) > newest)
      newest = json_integer_value(ts);
  }
  if (newest) {
    snprintf(num, sizeof num, "(%lld", (long long)(newest - 30 * INT64_C(86400000)));
    op_str(c, "ztrim", K_SHIPPED, num, "-");
  }
}

void kefu_store_apply_append(kefu_redis_t *r, const char *ns, kefu_shop_t *s,
                             int64_t dedup_horizon_ts) {
  const char *field;
  json_t *v;
  char num[32];
  kefu_cmd_t c;

  kefu_cmd_init(&c);
  kefu_cmd_str(&c, "FCALL");
  kefu_cmd_str(&c, "kefu_apply");
  kefu_cmd_fmt(&c, "%d", K__END - 1);
  for (int i = 1; i < K__END; i++)
    key_arg(&c, ns, s->id, key_names[i]);
  kefu_cmd_fmt(&c, "%zu", json_object_size(s->applied));
  json_object_foreach(s->applied, field, v) {
    const char *before = json_string_value(json_object_get(s->applied_loaded, field));
    kefu_cmd_str(&c, field);
    kefu_cmd_str(&c, before ? before : "");
    kefu_cmd_str(&c, json_string_value(v));
  }
  if (s->config_dirty) {
    char *text = json_dumps(s->config, JSON_COMPACT);
    if (s->config_is_default)
      op_str(&c, "del", K_CFG, "-", "-");
    else
      op_str(&c, "set", K_CFG, text, "-");
    free(text);
  }
  append_entity_ops(&c, s);
  json_object_foreach(s->dedup_new, field, v) {
    snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
    op_str(&c, "zadd", K_DEDUP, num, field);
  }
  json_object_foreach(s->timers_added, field, v) {
    snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
    op_str(&c, "zadd", K_TIMERS, num, field);
  }
  size_t i;
  json_array_foreach(s->timers_removed, i, v)
      op_str(&c, "zrem", K_TIMERS, json_string_value(v), "-");
  append_shipped_ops(&c, s);
  if (json_object_size(s->dedup_new)) {
    snprintf(num, sizeof num, "(%lld", (long long)dedup_horizon_ts);
    op_str(&c, "ztrim", K_DEDUP, num, "-");
  }
  kefu_redis_append(r, &c);
  kefu_cmd_clear(&c);
}

int kefu_store_apply_check(const redisReply *reply, kefu_shop_t *shop, char *errstr,
                           size_t errlen) {
  if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
      reply->element[0]->type == REDIS_REPLY_STRING && strcmp(reply->element[0]->str, "OK") == 0) {
    const redisReply *min = reply->element[1];
    shop->timers_min =
        min->type == REDIS_REPLY_STRING && min->len ? strtoll(min->str, NULL, 10) : INT64_MAX;
    return 0;
  }
  if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3)
    snprintf(errstr, errlen, "state conflict on %s (stored offset %s): another instance applied it",
             reply->element[1]->str, reply->element[2]->str);
  else
    snprintf(errstr, errlen, "kefu_apply: %s", reply->str ? reply->str : "unexpected reply");
  return -1;
}
