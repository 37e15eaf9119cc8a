/* kefu state show: a shop's state in Redis as JSON, for operators (docs/STATE.md).
 *
 *   kefu state show [--redis URL] [--namespace NS] [-c FILE] [--set KEY=VALUE]... SHOP
 *   kefu state show ... SHOP buyer|agent|order ID
 *
 * Without an entity: one object with the shop's config, queue, rate record, shop timers,
 * applied offsets, the number of agents, buyers, orders and shipped orders, the shop's
 * entry in the tasks' timer indexes, and the size of every dedup day. With one: that entity.
 * Read-only: it sends no command that writes (not even the FUNCTION LOAD of the processor's
 * connection). Configuration as `kefu run`'s: file (-c), then KEFU_* environment, then the flags.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/ids.h"
#include "ops/config.h"
#include "store/redis.h"
#include "store/state_codec.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: kefu state show [--redis URL] [--namespace NS] [-c FILE] [--set KEY=VALUE]...\n"
          "                       SHOP [buyer|agent|order ID | buyers|agents|orders | seen]\n"
          "  Prints the shop's state in Redis as JSON: config, queue, rate record, shop\n"
          "  timers, applied offsets, entity counts and dedup days; or one entity; or\n"
          "  every entity of a kind (an object by id); or the event ids seen (the hex of\n"
          "  each id's 64-bit hash -> its ts; docs/STATE.md gives the hash).\n"
          "  --redis URL      redis://[user[:password]@]host:port[/db] (redis.url); a Redis\n"
          "                   Cluster: a list of seeds, redis://h1:p1,h2:p2 (redis.cluster)\n"
          "  --namespace NS   key prefix (redis.namespace, default kefu)\n"
          "  -c FILE          configuration file; --set KEY=VALUE any configuration key\n"
          "  Exit status: 0 ok, 1 Redis unreachable, entity missing or a value that does\n"
          "  not decode, 2 usage error. docs/STATE.md describes the layout.\n");
}

typedef struct show {
  kefu_redis_t *r;
  char ns[KEFU_ID_MAX + 1], shop[KEFU_ID_MAX + 1];
} show_t;

/* Runs one command (arguments as C strings). NULL on a connection error (reported). */
static redisReply *cmd_on(show_t *s, int node, int argc, const char **argv) {
  char errstr[512];
  redisReply *r = kefu_redis_call(s->r, node, argc, argv, errstr, sizeof errstr);
  if (!r) {
    fprintf(stderr, "kefu state show: %s %s\n", argv[0], errstr);
    return NULL;
  }
  if (r->type == REDIS_REPLY_ERROR) {
    fprintf(stderr, "kefu state show: redis %s: %s\n", argv[0], r->str);
    freeReplyObject(r);
    return NULL;
  }
  return r;
}

static redisReply *cmd(show_t *s, int argc, const char **argv) {
  return cmd_on(s, -1, argc, argv);
}

static void key_of(const show_t *s, const char *name, char *out, size_t len) {
  snprintf(out, len, "%s:{%s}:%s", s->ns, s->shop, name);
}

/* HGET/GET of a binary value: 1 found, 0 absent, -1 error. @p r is freed by the caller. */
static int get_value(show_t *s, const char *key, const char *field, redisReply **r) {
  const char *hget[] = {"HGET", key, field};
  const char *get[] = {"GET", key};
  *r = field ? cmd(s, 3, hget) : cmd(s, 2, get);
  if (!*r)
    return -1;
  if ((*r)->type == REDIS_REPLY_NIL)
    return 0;
  if ((*r)->type != REDIS_REPLY_STRING) {
    fprintf(stderr, "kefu state show: %s%s%s: not a string value\n", key, field ? " field " : "",
            field ? field : "");
    return -1;
  }
  return 1;
}

static int bad_value(const char *key, const char *field, const char *why) {
  fprintf(stderr, "kefu state show: %s%s%s: %s\n", key, field ? " field " : "", field ? field : "",
          why);
  return -1;
}

/* An integer reply of a one-key command (HLEN, ZCARD, STRLEN), or -1. */
static long long count_of(show_t *s, const char *verb, const char *key) {
  const char *argv[] = {verb, key};
  redisReply *r = cmd(s, 2, argv);
  long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
  if (r && r->type != REDIS_REPLY_INTEGER)
    fprintf(stderr, "kefu state show: %s %s: unexpected reply\n", verb, key);
  if (r)
    freeReplyObject(r);
  return n;
}

/* ns:{S}:meta's @p field decoded into @p rec, shown with @p view; absent: @p rec as it is
 * (empty). 0, or -1 (reported). */
#define META(field, type, decode, view, clear)                                                     \
  do {                                                                                             \
    type rec_ = {0};                                                                               \
    char err_[512];                                                                                \
    if ((got = get_value(s, meta, field, &r)) < 0)                                                 \
      goto fail;                                                                                   \
    if (got && decode((const uint8_t *)r->str, r->len, &rec_, err_, sizeof err_)) {                \
      bad_value(meta, field, err_);                                                                \
      goto fail;                                                                                   \
    }                                                                                              \
    freeReplyObject(r);                                                                            \
    r = NULL;                                                                                      \
    json_object_set_new(o, field, view(&rec_));                                                    \
    clear(&rec_);                                                                                  \
  } while (0)

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* @p days (SCAN order: any) as a new object with its keys in date order. */
static json_t *sorted_days(json_t *days) {
  size_t n = json_object_size(days), i = 0;
  const char **keys = calloc(n ? n : 1, sizeof *keys);
  const char *k;
  json_t *v, *out = json_object();
  json_object_foreach(days, k, v) keys[i++] = k;
  qsort(keys, n, sizeof *keys, cmp_str);
  for (i = 0; i < n; i++)
    json_object_set(out, keys[i], json_object_get(days, keys[i]));
  free(keys);
  return out;
}

static int scan_node(show_t *s, int node, const char *pattern,
                     int (*fn)(show_t *s, const char *key, void *arg), void *arg);

/* Calls @p fn for every key matching @p pattern (SCAN on every master). 0, or -1
 * (reported). */
static int scan_keys(show_t *s, const char *pattern,
                     int (*fn)(show_t *s, const char *key, void *arg), void *arg) {
  for (int node = 0; node < kefu_redis_nodes(s->r); node++)
    if (scan_node(s, node, pattern, fn, arg))
      return -1;
  return 0;
}

static int scan_node(show_t *s, int node, const char *pattern,
                     int (*fn)(show_t *s, const char *key, void *arg), void *arg) {
  char cursor[32] = "0";
  do {
    const char *scan[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
    redisReply *r = cmd_on(s, node, 6, scan);
    if (!r)
      return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !r->element[0]->str) {
      fprintf(stderr, "kefu state show: SCAN: unexpected reply\n");
      freeReplyObject(r);
      return -1;
    }
    snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
    const redisReply *keys = r->element[1];
    for (size_t i = 0; keys->type == REDIS_REPLY_ARRAY && i < keys->elements; i++)
      if (keys->element[i]->str && fn(s, keys->element[i]->str, arg)) {
        freeReplyObject(r);
        return -1;
      }
    freeReplyObject(r);
  } while (strcmp(cursor, "0") != 0);
  return 0;
}

static int index_entry(show_t *s, const char *key, void *arg) {
  const char *zscore[] = {"ZSCORE", key, s->shop};
  redisReply *r = cmd(s, 3, zscore);
  if (!r)
    return -1;
  const char *open = strchr(key, '{'), *close = open ? strchr(open, '}') : NULL;
  if (r->type == REDIS_REPLY_STRING && r->str && close) /* named by the task: "task-N" */
    json_object_setn_new(arg, open + 1, (size_t)(close - open - 1),
                         json_integer(strtoll(r->str, NULL, 10)));
  freeReplyObject(r);
  return 0;
}

typedef struct seen_arg {
  json_t *days;
  size_t prefix; /* length of "ns:{S}:seen:" */
} seen_arg_t;

static int seen_entry(show_t *s, const char *key, void *arg) {
  seen_arg_t *a = arg;
  long long n = count_of(s, "STRLEN", key);
  if (n < 0)
    return -1;
  json_object_set_new(
      a->days, key + a->prefix,
      json_pack("{s:I, s:I}", "bytes", (json_int_t)n, "events", (json_int_t)(n / 16)));
  return 0;
}

/* The pending due buckets (meta `due`) with the buyer ids each lists, as
 * {"<bucket>": [ids]}; -1 (reported) on a value that does not decode. */
static int show_due(show_t *s, const char *meta, json_t *o) {
  redisReply *r = NULL;
  int64_t *due = NULL;
  uint32_t n = 0;
  char err[512], key[300];
  int got = get_value(s, meta, "due", &r);
  json_t *buckets = json_object();
  if (got < 0)
    goto fail;
  if (got && kefu_state_decode_due((const uint8_t *)r->str, r->len, &due, &n, err, sizeof err)) {
    bad_value(meta, "due", err);
    goto fail;
  }
  for (uint32_t i = 0; i < n; i++) {
    char name[32];
    json_t *ids = json_array();
    snprintf(name, sizeof name, "due:%lld", (long long)due[i]);
    key_of(s, name, key, sizeof key);
    freeReplyObject(r);
    if ((got = get_value(s, key, NULL, &r)) < 0)
      goto fail;
    for (size_t at = 0; got && at < r->len; at += 1 + (uint8_t)r->str[at]) {
      size_t len = (uint8_t)r->str[at];
      if (at + 1 + len > r->len) {
        bad_value(key, NULL, "truncated id");
        json_decref(ids);
        goto fail;
      }
      json_array_append_new(ids, json_stringn(r->str + at + 1, len));
    }
    snprintf(name, sizeof name, "%lld", (long long)due[i]);
    json_object_set_new(buckets, name, ids);
  }
  freeReplyObject(r);
  free(due);
  json_object_set_new(o, "due", buckets);
  return 0;
fail:
  if (r)
    freeReplyObject(r);
  free(due);
  json_decref(buckets);
  return -1;
}

static int show_shop(show_t *s, json_t **out) {
  char key[256], meta[256];
  json_t *o = json_object();
  redisReply *r = NULL;
  int got;
  key_of(s, "meta", meta, sizeof meta);
  json_object_set_new(o, "shop", json_string(s->shop));
  json_object_set_new(o, "namespace", json_string(s->ns));

  /* config: absent means the defaults */
  key_of(s, "cfg", key, sizeof key);
  kefu_shop_config_t cfg;
  kefu_config_defaults(&cfg);
  if ((got = get_value(s, key, NULL, &r)) < 0)
    goto fail;
  if (got) {
    char err[512];
    if (kefu_state_decode_config((const uint8_t *)r->str, r->len, &cfg, err, sizeof err)) {
      bad_value(key, NULL, err);
      goto fail;
    }
  }
  freeReplyObject(r);
  r = NULL;
  json_object_set_new(o, "config_is_default", json_boolean(!got));
  json_object_set_new(o, "config", kefu_state_config_json(&cfg));
  kefu_config_clear(&cfg);

  META("queue", kefu_queue_t, kefu_state_decode_queue, kefu_state_queue_json,
       kefu_state_queue_clear);
  META("rate", kefu_rate_t, kefu_state_decode_rate, kefu_state_rate_json, kefu_state_rate_clear);
  META("timers", kefu_timers_t, kefu_state_decode_timers, kefu_state_timers_json,
       kefu_timers_clear);
  if (show_due(s, meta, o))
    goto fail;

  /* applied offsets */
  key_of(s, "applied", key, sizeof key);
  const char *hgetall[] = {"HGETALL", key};
  if (!(r = cmd(s, 2, hgetall)))
    goto fail;
  json_t *applied = json_object();
  for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
    const redisReply *f = r->element[i], *v = r->element[i + 1];
    char *end;
    long long off = strtoll(v->str ? v->str : "", &end, 10);
    json_t *jv = v->str && *v->str && !*end ? json_integer(off) : json_stringn(v->str, v->len);
    json_object_setn_new(applied, f->str ? f->str : "", f->str ? f->len : 0, jv ? jv : json_null());
  }
  freeReplyObject(r);
  r = NULL;
  json_object_set_new(o, "applied", applied);

  /* counts */
  static const struct {
    const char *name, *verb;
  } counted[] = {{"agents", "HLEN"}, {"buyers", "HLEN"}, {"orders", "HLEN"}, {"shipped", "ZCARD"}};
  json_t *counts = json_object();
  json_object_set_new(o, "counts", counts);
  for (size_t i = 0; i < sizeof counted / sizeof counted[0]; i++) {
    key_of(s, counted[i].name, key, sizeof key);
    long long n = count_of(s, counted[i].verb, key);
    if (n < 0)
      goto fail;
    json_object_set_new(counts, counted[i].name, json_integer(n));
  }

  /* the tasks' timer indexes (ns:{task-N}:timers) that list the shop, with its earliest
   * deadline: normally one, the task of the shop's partition */
  char pattern[256];
  snprintf(pattern, sizeof pattern, "%s:{task-*}:timers", s->ns);
  json_t *tindex = json_object();
  json_object_set_new(o, "timer_index", tindex);
  if (scan_keys(s, pattern, index_entry, tindex))
    goto fail;

  /* dedup days: ns:{S}:seen:<YYYY-MM-DD>, 16 bytes per event id (hash, ts) */
  key_of(s, "seen:*", pattern, sizeof pattern);
  json_t *seen = json_object();
  json_object_set_new(o, "seen", seen); /* replaced by its sorted copy at the end */
  seen_arg_t sa = {seen, strlen(pattern) - 1};
  if (scan_keys(s, pattern, seen_entry, &sa))
    goto fail;
  json_object_set_new(o, "seen", sorted_days(seen));
  *out = o;
  return 0;
fail:
  if (r)
    freeReplyObject(r);
  json_decref(o);
  return -1;
}

static int show_entity(show_t *s, const char *kind, const char *id, json_t **out) {
  char key[256], err[512];
  redisReply *r;
  int got, rc = -1;
  char hash[16];
  snprintf(hash, sizeof hash, "%ss", kind);
  key_of(s, hash, key, sizeof key);
  if ((got = get_value(s, key, id, &r)) <= 0) {
    if (got == 0)
      fprintf(stderr, "kefu state show: no %s '%s' in %s\n", kind, id, key);
    if (r)
      freeReplyObject(r);
    return -1;
  }
  const uint8_t *p = (const uint8_t *)r->str;
  if (strcmp(kind, "buyer") == 0) {
    kefu_buyer_t *b;
    if ((rc = kefu_state_decode_buyer(p, r->len, id, &b, err, sizeof err)) == 0) {
      *out = kefu_state_buyer_json(b);
      kefu_buyer_free(b);
    }
  } else if (strcmp(kind, "agent") == 0) {
    kefu_agent_t *a;
    if ((rc = kefu_state_decode_agent(p, r->len, id, &a, err, sizeof err)) == 0) {
      *out = kefu_state_agent_json(a);
      kefu_agent_free(a);
    }
  } else {
    kefu_order_t *o;
    if ((rc = kefu_state_decode_order(p, r->len, id, &o, err, sizeof err)) == 0) {
      *out = kefu_state_order_json(o);
      kefu_order_free(o);
    }
  }
  if (rc)
    bad_value(key, id, err);
  freeReplyObject(r);
  return rc;
}

/* Every entity of one kind: HGETALL, each value decoded. */
static int show_all(show_t *s, const char *kinds, json_t **out) {
  char key[256], err[512];
  const char *argv[] = {"HGETALL", key};
  key_of(s, kinds, key, sizeof key);
  redisReply *r = cmd(s, 2, argv);
  if (!r)
    return -1;
  json_t *o = json_object();
  int rc = 0;
  for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements && !rc; i += 2) {
    const char *id = r->element[i]->str;
    const uint8_t *p = (const uint8_t *)r->element[i + 1]->str;
    size_t n = r->element[i + 1]->len;
    if (kinds[0] == 'b') {
      kefu_buyer_t *b;
      if (!(rc = kefu_state_decode_buyer(p, n, id, &b, err, sizeof err))) {
        json_object_set_new(o, id, kefu_state_buyer_json(b));
        kefu_buyer_free(b);
      }
    } else if (kinds[0] == 'a') {
      kefu_agent_t *a;
      if (!(rc = kefu_state_decode_agent(p, n, id, &a, err, sizeof err))) {
        json_object_set_new(o, id, kefu_state_agent_json(a));
        kefu_agent_free(a);
      }
    } else {
      kefu_order_t * or ;
      if (!(rc = kefu_state_decode_order(p, n, id, & or, err, sizeof err))) {
        json_object_set_new(o, id, kefu_state_order_json(or));
        kefu_order_free(or);
      }
    }
    if (rc)
      bad_value(key, id, err);
  }
  freeReplyObject(r);
  if (rc) {
    json_decref(o);
    return -1;
  }
  *out = o;
  return 0;
}

/* One day's key of event ids seen: hash (hex) -> ts into @p arg. */
static int seen_day(show_t *s, const char *key, void *arg) {
  const char *get[] = {"GET", key};
  redisReply *v = cmd(s, 2, get);
  for (size_t off = 0; v && v->type == REDIS_REPLY_STRING && off + 16 <= v->len; off += 16) {
    const uint8_t *p = (const uint8_t *)v->str + off;
    uint64_t h = 0, ts = 0;
    char hex[20];
    for (int k = 0; k < 8; k++) {
      h |= (uint64_t)p[k] << (8 * k);
      ts |= (uint64_t)p[8 + k] << (8 * k);
    }
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    json_object_set_new(arg, hex, json_integer((json_int_t)ts));
  }
  if (v)
    freeReplyObject(v);
  return 0;
}

/* The event ids seen, from every day's key: hash (hex) -> ts. */
static int show_seen(show_t *s, json_t **out) {
  char pattern[256];
  key_of(s, "seen:*", pattern, sizeof pattern);
  json_t *o = json_object();
  if (scan_keys(s, pattern, seen_day, o)) {
    json_decref(o);
    return -1;
  }
  *out = o;
  return 0;
}

static bool is_listing(const char *w) {
  return !strcmp(w, "buyers") || !strcmp(w, "agents") || !strcmp(w, "orders") || !strcmp(w, "seen");
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "kefu state: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, " (kefu state --help)\n");
  va_end(ap);
  return KEFU_EXIT_USAGE;
}

/* Applies -c, the environment, then the flags in order (as `kefu run`). */
static int configure(kefu_config_t *cfg, int argc, char **argv) {
  static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                       {"redis", required_argument, 0, 'r'},
                                       {"namespace", required_argument, 0, 'n'},
                                       {"set", required_argument, 0, 's'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  char errstr[512];
  const char *file = NULL;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
    if (c == 'c')
      file = optarg;
    else if (c == 'h') {
      usage(stdout);
      return -1;
    } else if (c == '?')
      return usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
  }
  if (kefu_cli_load_config(cfg, file, errstr, sizeof errstr))
    return usage_error("%s", errstr);
  optind = 1;
  while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
    int rc = 0;
    switch (c) {
    case 'r': rc = kefu_config_set(cfg, "redis.url", optarg, errstr, sizeof errstr); break;
    case 'n': rc = kefu_config_set(cfg, "redis.namespace", optarg, errstr, sizeof errstr); break;
    case 's': rc = kefu_cli_set_pair(cfg, optarg, errstr, sizeof errstr); break;
    default: break;
    }
    if (rc)
      return usage_error("%s", errstr);
  }
  return 0;
}

/* Connects as the redis.* keys say, without loading kefu's functions (it only reads). */
static kefu_redis_t *connect_redis(const kefu_config_t *cfg) {
  char errstr[512];
  kefu_redis_opts_t o = {
      .url = kefu_config_str(cfg, "redis.url"),
      .user = kefu_config_str(cfg, "redis.user"),
      .password = kefu_config_str(cfg, "redis.password"),
      .timeout_ms = (int)kefu_config_int(cfg, "redis.timeout_ms"),
      .cluster = kefu_config_str(cfg, "redis.cluster"),
      .no_functions = true,
  };
  kefu_redis_t *r = kefu_redis_connect(&o, errstr, sizeof errstr);
  if (!r)
    fprintf(stderr, "kefu state show: %s\n", errstr);
  return r;
}

int kefu_cmd_state(int argc, char **argv) {
  if (argc < 2)
    return usage_error("missing subcommand 'show'");
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(stdout);
    return KEFU_EXIT_OK;
  }
  if (strcmp(argv[1], "show") != 0)
    return usage_error("unknown subcommand '%s' (only 'show')", argv[1]);
  argc--;
  argv++;
  kefu_config_t *cfg = kefu_config_new();
  int rc = configure(cfg, argc, argv);
  if (rc) {
    kefu_config_destroy(cfg);
    return rc < 0 ? KEFU_EXIT_OK : rc;
  }
  int npos = argc - optind;
  char **pos = argv + optind;
  if ((npos != 1 && npos != 2 && npos != 3) || (npos == 2 && !is_listing(pos[1]))) {
    kefu_config_destroy(cfg);
    return usage_error("%s", npos == 0   ? "missing SHOP"
                             : npos == 2 ? "an entity needs a kind and an ID (or: buyers, "
                                           "agents, orders, seen)"
                                         : "too many arguments");
  }
  if (!kefu_id_valid(pos[0], KEFU_ID_MAX)) {
    kefu_config_destroy(cfg);
    return usage_error("invalid SHOP '%s': must match [A-Za-z0-9_.-]{1,64}", pos[0]);
  }
  if (npos == 3 && strcmp(pos[1], "buyer") && strcmp(pos[1], "agent") && strcmp(pos[1], "order")) {
    kefu_config_destroy(cfg);
    return usage_error("unknown entity kind '%s' (buyer, agent or order)", pos[1]);
  }
  if (npos == 3 && !kefu_id_valid(pos[2], KEFU_ID_MAX)) {
    kefu_config_destroy(cfg);
    return usage_error("invalid ID '%s': must match [A-Za-z0-9_.-]{1,64}", pos[2]);
  }
  show_t s = {0};
  snprintf(s.ns, sizeof s.ns, "%s", kefu_config_str(cfg, "redis.namespace"));
  snprintf(s.shop, sizeof s.shop, "%s", pos[0]);
  s.r = connect_redis(cfg);
  kefu_config_destroy(cfg);
  if (!s.r)
    return KEFU_EXIT_FAIL;
  json_t *out = NULL;
  rc = npos == 1                     ? show_shop(&s, &out)
       : npos == 3                   ? show_entity(&s, pos[1], pos[2], &out)
       : strcmp(pos[1], "seen") == 0 ? show_seen(&s, &out)
                                     : show_all(&s, pos[1], &out);
  kefu_redis_close(s.r);
  if (rc)
    return KEFU_EXIT_FAIL;
  json_dumpf(out, stdout, JSON_INDENT(2));
  fputc('\n', stdout);
  json_decref(out);
  return fflush(stdout) == 0 ? KEFU_EXIT_OK : KEFU_EXIT_FAIL;
}
