/* The connection to one Redis node or to a Redis Cluster (redis.h).
 *
 * A single node is one hiredis context: commands are appended to it as they come and a
 * flush reads the replies in order. A cluster keeps the slot map (CLUSTER SLOTS) and one
 * context per master; a command is formatted once and kept until it is answered, so that
 * a redirection can send it again. A flush goes round by round: each round gives every
 * master its share of the commands of the current phase (kefu_redis_barrier starts a
 * new phase), writes all of them before reading any reply, then reads; what came back
 * MOVED, ASK, TRYAGAIN or CLUSTERDOWN is the next round's. */
#include "store/redis.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/embedded.h"
#include "common/redis_url.h"

#define SLOTS 16384
#define MAX_NODES 64

/* A reply slot of a round that is not a queued command's. */
#define WHO_ASKING (-1)
#define WHO_WAIT (-2)

typedef struct node {
  char host[256];
  int port;
  redisContext *ctx; /* NULL: not connected (yet, or since it failed) */
  bool master;       /* in the current slot map */
  int *who, n, cap;  /* this round: per reply expected, the command's index or WHO_* */
  bool wrote;        /* this round wrote something (WAIT after it) */
} node_t;

typedef struct queued {
  char *buf; /* formatted (cluster only) */
  int len;
  int slot;  /* -1: no key */
  int node;  /* kefu_redis_append_node's, or -1: by slot */
  int ask;   /* ASK: the node to send ASKING and the command to, or -1 */
  int phase; /* kefu_redis_barrier */
  bool write;
} queued_t;

struct kefu_redis {
  bool cluster, no_functions;
  kefu_redis_endpoint_t ep; /* holds the password: zeroed on close */
  int timeout_ms, wait_replicas, wait_timeout_ms;
  node_t nodes[MAX_NODES];
  int nnodes;
  int16_t slot_node[SLOTS]; /* cluster: the master of each slot, -1 unknown */
  queued_t *q;
  int nq, capq, phase;
  bool wrote; /* single node: a write since the last flush */
  redisReply **replies;
  int nreplies, cap;
  uint64_t sent, round_trips, redirects;
};

void kefu_cmd_init(kefu_cmd_t *c) {
  memset(c, 0, sizeof *c);
}

void kefu_cmd_arg(kefu_cmd_t *c, const char *s, size_t len) {
  if (c->argc == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 16;
    c->argv = realloc(c->argv, (size_t)c->cap * sizeof *c->argv);
    c->lens = realloc(c->lens, (size_t)c->cap * sizeof *c->lens);
  }
  c->argv[c->argc] = malloc(len + 1);
  memcpy(c->argv[c->argc], s, len);
  c->argv[c->argc][len] = '\0';
  c->lens[c->argc++] = len;
}

void kefu_cmd_str(kefu_cmd_t *c, const char *s) {
  kefu_cmd_arg(c, s, strlen(s));
}

void kefu_cmd_fmt(kefu_cmd_t *c, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  kefu_cmd_arg(c, buf, n < (int)sizeof buf ? (size_t)n : sizeof buf - 1);
}

void kefu_cmd_clear(kefu_cmd_t *c) {
  for (int i = 0; i < c->argc; i++)
    free(c->argv[i]);
  free(c->argv);
  free(c->lens);
  kefu_cmd_init(c);
}

static void free_replies(kefu_redis_t *r) {
  for (int i = 0; i < r->nreplies; i++) {
    if (r->replies[i])
      freeReplyObject(r->replies[i]);
    r->replies[i] = NULL; /* a caller may look at [0] after a failed flush */
  }
  r->nreplies = 0;
}

static redisReply *call(kefu_redis_t *r, redisContext *ctx, int argc, const char **argv) {
  r->sent++;
  return redisCommandArgv(ctx, argc, argv, NULL);
}

static int command_ok(kefu_redis_t *r, redisContext *ctx, const char *what, int argc,
                      const char **argv, char *errstr, size_t errlen) {
  redisReply *reply = call(r, ctx, argc, argv);
  int ok = reply && reply->type != REDIS_REPLY_ERROR;
  if (!ok) /* the reply text never echoes the password */
    snprintf(errstr, errlen, "redis %s: %s", what,
             reply ? reply->str : (ctx->err ? ctx->errstr : "no reply"));
  if (reply)
    freeReplyObject(reply);
  return ok ? 0 : -1;
}

static bool keep_functions; /* kefu_redis_keep_functions */

void kefu_redis_keep_functions(bool keep) {
  keep_functions = keep;
}

/* The code of library kefu in Redis equals @p code (FUNCTION LIST WITHCODE). */
static bool same_library(kefu_redis_t *r, redisContext *ctx, const char *code) {
  const char *list[] = {"FUNCTION", "LIST", "LIBRARYNAME", "kefu", "WITHCODE"};
  redisReply *reply = call(r, ctx, 5, list);
  bool same = false;
  for (size_t i = 0; reply && reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
    const redisReply *lib = reply->element[i];
    for (size_t k = 0; lib->type == REDIS_REPLY_ARRAY && k + 1 < lib->elements; k += 2)
      if (lib->element[k]->type == REDIS_REPLY_STRING &&
          strcmp(lib->element[k]->str, "library_code") == 0 &&
          lib->element[k + 1]->type == REDIS_REPLY_STRING)
        same |= strcmp(lib->element[k + 1]->str, code) == 0;
  }
  if (reply)
    freeReplyObject(reply);
  return same;
}

/* The functions: loaded with REPLACE (an upgrade replaces the old build's), or, with
 * kefu_redis_keep_functions (a replay on someone's Redis), loaded only where none are
 * or the same are, never replacing a live deployment's. */
static int load_functions(kefu_redis_t *r, redisContext *ctx, char *errstr, size_t errlen) {
  if (r->no_functions)
    return 0;
  const kefu_embedded_t *lua = kefu_embedded_find("src/store/kefu.lua");
  const char *code = lua ? lua->data : "";
  const char *load[] = {"FUNCTION", "LOAD", "REPLACE", code};
  const char *load_new[] = {"FUNCTION", "LOAD", code};
  if (!keep_functions)
    return command_ok(r, ctx, "FUNCTION LOAD", 4, load, errstr, errlen);
  if (command_ok(r, ctx, "FUNCTION LOAD", 3, load_new, errstr, errlen) == 0 ||
      same_library(r, ctx, code))
    return 0;
  snprintf(errstr, errlen,
           "this Redis runs the functions of another kefu build (library kefu); a replay does "
           "not replace them: give it a Redis of its own, or none (it then starts one)");
  return -1;
}

/* A context to @p host:@p port, authenticated. NULL with @p errstr. */
static redisContext *open_context(kefu_redis_t *r, const char *host, int port, char *errstr,
                                  size_t errlen) {
  struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
  redisContext *ctx = redisConnectWithTimeout(host, port, tv);
  if (!ctx || ctx->err) {
    snprintf(errstr, errlen, "redis %s:%d: %s", host, port, ctx ? ctx->errstr : "out of memory");
    if (ctx)
      redisFree(ctx);
    return NULL;
  }
  redisSetTimeout(ctx, tv);
  const kefu_redis_endpoint_t *u = &r->ep;
  if (u->password[0]) {
    const char *auth_user[] = {"AUTH", u->user, u->password};
    const char *auth[] = {"AUTH", u->password};
    if (u->user[0] ? command_ok(r, ctx, "AUTH", 3, auth_user, errstr, errlen)
                   : command_ok(r, ctx, "AUTH", 2, auth, errstr, errlen)) {
      redisFree(ctx);
      return NULL;
    }
  }
  return ctx;
}

/* ------------------------------------------------------------------ slots */

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), as the cluster specification's
 * key distribution model uses. Keys are short: bit by bit is fast enough. */
static uint16_t crc16(const char *s, size_t len) {
  uint16_t crc = 0;
  for (size_t i = 0; i < len; i++) {
    crc ^= (uint16_t)((uint8_t)s[i] << 8);
    for (int b = 0; b < 8; b++)
      crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
  }
  return crc;
}

int kefu_redis_key_slot(const char *key, size_t len) {
  const char *open = memchr(key, '{', len);
  if (open) {
    const char *close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
    if (close && close > open + 1) /* "{}" is no tag: the whole key is hashed */
      return crc16(open + 1, (size_t)(close - open - 1)) & (SLOTS - 1);
  }
  return crc16(key, len) & (SLOTS - 1);
}

/* The verbs kefu sends that have no key, and those that only read. */
static const char *const keyless[] = {"PING",   "SCAN", "INFO", "FUNCTION", "CLUSTER", "WAIT",
                                      "DBSIZE", "TIME", "KEYS", "ASKING",   NULL};
static const char *const reads[] = {"GET",    "MGET", "HGET",   "HMGET",    "HGETALL",
                                    "HKEYS",  "HLEN", "ZRANGE", "ZSCORE",   "ZCARD",
                                    "EXISTS", "TYPE", "STRLEN", "FCALL_RO", NULL};

static bool among(const char *verb, const char *const *list) {
  for (int i = 0; list[i]; i++)
    if (strcasecmp(verb, list[i]) == 0)
      return true;
  return false;
}

/* The first key of @p c (its index in argv), or -1. */
static int first_key(const kefu_cmd_t *c) {
  if (c->argc < 2 || among(c->argv[0], keyless))
    return -1;
  if (strncasecmp(c->argv[0], "FCALL", 5) == 0 || strncasecmp(c->argv[0], "EVAL", 4) == 0)
    return c->argc > 3 && atoi(c->argv[2]) > 0 ? 3 : -1;
  return 1;
}

static bool is_write(const kefu_cmd_t *c) {
  if (among(c->argv[0], reads) || among(c->argv[0], keyless))
    return false;
  /* kefu_due_read only reads (kefu.lua); it is called with FCALL, not FCALL_RO */
  return !(c->argc > 1 && strcasecmp(c->argv[0], "FCALL") == 0 &&
           strcmp(c->argv[1], "kefu_due_read") == 0);
}

/* ------------------------------------------------------------------ nodes */

static int node_index(kefu_redis_t *r, const char *host, int port) {
  for (int i = 0; i < r->nnodes; i++)
    if (r->nodes[i].port == port && strcmp(r->nodes[i].host, host) == 0)
      return i;
  if (r->nnodes == MAX_NODES)
    return -1;
  node_t *n = &r->nodes[r->nnodes];
  memset(n, 0, sizeof *n);
  snprintf(n->host, sizeof n->host, "%s", host);
  n->port = port;
  return r->nnodes++;
}

static void node_close(node_t *n) {
  if (n->ctx)
    redisFree(n->ctx);
  n->ctx = NULL;
}

/* Connects node @p i when it is not: authenticated and with kefu's functions (a node
 * seen for the first time may be a new master, or a replica promoted since). */
static int node_connect(kefu_redis_t *r, int i, char *errstr, size_t errlen) {
  node_t *n = &r->nodes[i];
  if (n->ctx)
    return 0;
  if (!(n->ctx = open_context(r, n->host, n->port, errstr, errlen)))
    return -1;
  if (load_functions(r, n->ctx, errstr, errlen)) {
    node_close(n);
    return -1;
  }
  return 0;
}

/* Reads the slot map from @p ctx (CLUSTER SLOTS): 0, or -1 with @p errstr. */
static int read_slots(kefu_redis_t *r, redisContext *ctx, const char *asked_host, char *errstr,
                      size_t errlen) {
  const char *slots[] = {"CLUSTER", "SLOTS"};
  redisReply *reply = call(r, ctx, 2, slots);
  int rc = -1;
  if (!reply || reply->type != REDIS_REPLY_ARRAY) {
    snprintf(errstr, errlen, "redis CLUSTER SLOTS: %s",
             reply && reply->type == REDIS_REPLY_ERROR ? reply->str
             : reply                                   ? "unexpected reply"
                     : (ctx->errstr[0] ? ctx->errstr : "no reply"));
    goto done;
  }
  for (int i = 0; i < SLOTS; i++)
    r->slot_node[i] = -1;
  for (int i = 0; i < r->nnodes; i++)
    r->nodes[i].master = false;
  for (size_t i = 0; i < reply->elements; i++) {
    const redisReply *e = reply->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
        e->element[0]->type != REDIS_REPLY_INTEGER || e->element[1]->type != REDIS_REPLY_INTEGER ||
        e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
        e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
        e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
      continue;
    const char *host = e->element[2]->element[0]->str;
    int node = node_index(r, *host ? host : asked_host, (int)e->element[2]->element[1]->integer);
    long long from = e->element[0]->integer, to = e->element[1]->integer;
    if (node < 0 || from < 0 || to >= SLOTS)
      continue;
    r->nodes[node].master = true;
    for (long long s = from; s <= to; s++)
      r->slot_node[s] = (int16_t)node;
  }
  for (int i = 0; i < r->nnodes; i++) /* a master no longer: its connection goes */
    if (!r->nodes[i].master)
      node_close(&r->nodes[i]);
  rc = 0;
done:
  if (reply)
    freeReplyObject(reply);
  return rc;
}

/* The slot map again, from any master that answers (after MOVED or CLUSTERDOWN). */
static int refresh_slots(kefu_redis_t *r, char *errstr, size_t errlen) {
  for (int i = 0; i < r->nnodes; i++) {
    node_t *n = &r->nodes[i];
    if (n->ctx && read_slots(r, n->ctx, n->host, errstr, errlen) == 0)
      return 0;
  }
  for (int i = 0; i < r->nnodes; i++) { /* every connection failed: a fresh one */
    redisContext *ctx = open_context(r, r->nodes[i].host, r->nodes[i].port, errstr, errlen);
    char host[256];
    snprintf(host, sizeof host, "%s", r->nodes[i].host);
    int rc = ctx ? read_slots(r, ctx, host, errstr, errlen) : -1;
    if (ctx)
      redisFree(ctx);
    if (rc == 0)
      return 0;
  }
  return -1;
}

/* ------------------------------------------------------------------ connect */

/* A single node: @p ctx, with SELECT and the functions. */
static int single_setup(kefu_redis_t *r, redisContext *ctx, const char *host, int port,
                        char *errstr, size_t errlen) {
  char db[16];
  snprintf(db, sizeof db, "%d", r->ep.db);
  const char *select[] = {"SELECT", db};
  r->nnodes = 1;
  snprintf(r->nodes[0].host, sizeof r->nodes[0].host, "%s", host);
  r->nodes[0].port = port;
  r->nodes[0].ctx = ctx;
  r->nodes[0].master = true;
  if (r->ep.db && command_ok(r, ctx, "SELECT", 2, select, errstr, errlen))
    return -1;
  return load_functions(r, ctx, errstr, errlen);
}

/* A cluster: the slot map from @p ctx, then every master connected. */
static int cluster_setup(kefu_redis_t *r, redisContext *ctx, const char *host, char *errstr,
                         size_t errlen) {
  int rc = read_slots(r, ctx, host, errstr, errlen);
  redisFree(ctx);
  if (rc)
    return -1;
  if (r->ep.db) {
    snprintf(errstr, errlen, "redis.url: a Redis Cluster has database 0 only, not /%d", r->ep.db);
    return -1;
  }
  int masters = 0;
  for (int i = 0; i < r->nnodes; i++)
    if (r->nodes[i].master && (masters++, node_connect(r, i, errstr, errlen)))
      return -1;
  for (int s = 0; s < SLOTS; s++)
    if (r->slot_node[s] < 0) {
      snprintf(errstr, errlen, "redis cluster: slot %d has no master (the cluster is not ok)", s);
      return -1;
    }
  return masters ? 0 : -1;
}

kefu_redis_t *kefu_redis_connect(const kefu_redis_opts_t *o, char *errstr, size_t errlen) {
  char why[256];
  const char *mode = o->cluster && *o->cluster ? o->cluster : "auto";
  kefu_redis_t *r = calloc(1, sizeof *r);
  r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 2000;
  r->wait_replicas = o->wait_replicas;
  r->wait_timeout_ms = o->wait_timeout_ms;
  r->no_functions = o->no_functions;
  if (kefu_redis_url_parse(o->url, &r->ep, why, sizeof why)) {
    snprintf(errstr, errlen, "redis.url: %s", why);
    goto fail;
  }
  if (o->user && *o->user)
    snprintf(r->ep.user, sizeof r->ep.user, "%s", o->user);
  if (o->password && *o->password)
    snprintf(r->ep.password, sizeof r->ep.password, "%s", o->password);
  if (strcmp(mode, "off") == 0 && r->ep.nseeds > 1) {
    snprintf(errstr, errlen,
             "redis.url names %d hosts: a list of seeds needs redis.cluster=on "
             "or auto",
             r->ep.nseeds);
    goto fail;
  }
  /* the first seed that answers says what Redis this is */
  for (int i = 0; i < r->ep.nseeds; i++) {
    const struct kefu_redis_seed *seed = &r->ep.seeds[i];
    redisContext *ctx = open_context(r, seed->host, seed->port, errstr, errlen);
    if (!ctx)
      continue;
    bool cluster = strcmp(mode, "on") == 0;
    if (strcmp(mode, "auto") == 0) {
      /* CLUSTER SLOTS, not INFO: the ACL user needs it on a cluster anyway, and a
       * node without cluster support says so in its error (any other error, such as
       * NOPERM, is reported: guessing could take a cluster for a single node) */
      const char *slots[] = {"CLUSTER", "SLOTS"};
      redisReply *reply = call(r, ctx, 2, slots);
      bool single = reply && reply->type == REDIS_REPLY_ERROR &&
                    strstr(reply->str, "cluster support disabled");
      if (!single && (!reply || reply->type != REDIS_REPLY_ARRAY)) {
        snprintf(errstr, errlen, "redis %s:%d: CLUSTER SLOTS: %s", seed->host, seed->port,
                 reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "no reply");
        if (reply)
          freeReplyObject(reply);
        redisFree(ctx);
        continue;
      }
      cluster = !single;
      freeReplyObject(reply);
    }
    if (!cluster && r->ep.nseeds > 1) {
      snprintf(errstr, errlen, "redis %s:%d is not a cluster node, and redis.url names %d hosts",
               seed->host, seed->port, r->ep.nseeds);
      redisFree(ctx);
      goto fail;
    }
    r->cluster = cluster;
    if (cluster ? cluster_setup(r, ctx, seed->host, errstr, errlen)
                : single_setup(r, ctx, seed->host, seed->port, errstr, errlen))
      goto fail;
    return r;
  }
fail:
  kefu_redis_close(r);
  return NULL;
}

bool kefu_redis_error_is_transient(const char *errstr) {
  /* hiredis's texts for a connection that got no answer (strerror and its own), and
   * the codes of Redis's error replies that mean "try again later" */
  static const char *const later[] = {"Connection refused",
                                      "Connection reset",
                                      "timed out",
                                      "Resource temporarily unavailable",
                                      "Server closed the connection",
                                      "No route to host",
                                      "Name or service not known",
                                      "Temporary failure in name resolution",
                                      "Network is unreachable"};
  static const char *const codes[] = {"LOADING",  "NOREPLICAS", "CLUSTERDOWN",
                                      "TRYAGAIN", "MASTERDOWN", "BUSY"};
  if (strncmp(errstr, "redis ", 6) != 0) /* "redis.url: ...": the configuration's */
    return false;
  for (size_t i = 0; i < sizeof later / sizeof *later; i++)
    if (strstr(errstr, later[i]))
      return true;
  /* a reply's code follows "redis WHAT: " (command_ok, read_slots) */
  const char *reply = strstr(errstr, ": ");
  for (; reply; reply = strstr(reply + 2, ": "))
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
      if (strncmp(reply + 2, codes[i], strlen(codes[i])) == 0 &&
          (reply[2 + strlen(codes[i])] == ' ' || reply[2 + strlen(codes[i])] == '\0'))
        return true;
  return strstr(errstr, "(the cluster is not ok)") != NULL; /* a slot without a master */
}

void kefu_redis_close(kefu_redis_t *r) {
  if (!r)
    return;
  free_replies(r);
  free(r->replies);
  for (int i = 0; i < r->nq; i++)
    free(r->q[i].buf);
  free(r->q);
  for (int i = 0; i < r->nnodes; i++) {
    node_close(&r->nodes[i]);
    free(r->nodes[i].who);
  }
  memset(&r->ep, 0, sizeof r->ep); /* no password lingers */
  free(r);
}

/* ------------------------------------------------------------------ pipelines */

static queued_t *queue(kefu_redis_t *r, const kefu_cmd_t *c, int node) {
  if (r->nq == r->capq) {
    r->capq = r->capq ? r->capq * 2 : 64;
    r->q = realloc(r->q, (size_t)r->capq * sizeof *r->q);
  }
  queued_t *q = &r->q[r->nq++];
  int k = first_key(c);
  *q = (queued_t){.slot = k < 0 ? -1 : kefu_redis_key_slot(c->argv[k], c->lens[k]),
                  .node = node,
                  .ask = -1,
                  .phase = r->phase,
                  .write = is_write(c)};
  r->sent++;
  return q;
}

void kefu_redis_append(kefu_redis_t *r, const kefu_cmd_t *c) {
  kefu_redis_append_node(r, -1, c);
}

void kefu_redis_append_node(kefu_redis_t *r, int node, const kefu_cmd_t *c) {
  queued_t *q = queue(r, c, node);
  if (!r->cluster) {
    redisAppendCommandArgv(r->nodes[0].ctx, c->argc, (const char **)c->argv, c->lens);
    r->wrote |= q->write;
    return;
  }
  q->len = redisFormatCommandArgv(&q->buf, c->argc, (const char **)c->argv, c->lens);
}

void kefu_redis_barrier(kefu_redis_t *r) {
  if (r->nq && r->q[r->nq - 1].phase == r->phase)
    r->phase++;
}

int kefu_redis_nodes(const kefu_redis_t *r) {
  int n = 0;
  for (int i = 0; i < r->nnodes; i++)
    n += r->nodes[i].master;
  return n;
}

/* The @p k-th master (kefu_redis_append_node's numbering). */
static int master_index(const kefu_redis_t *r, int k) {
  for (int i = 0; i < r->nnodes; i++)
    if (r->nodes[i].master && k-- == 0)
      return i;
  return -1;
}

bool kefu_redis_is_cluster(const kefu_redis_t *r) {
  return r->cluster;
}

static void reset_queue(kefu_redis_t *r) {
  for (int i = 0; i < r->nq; i++)
    free(r->q[i].buf);
  r->nq = 0;
  r->phase = 0;
  r->wrote = false;
}

static int fail_flush(kefu_redis_t *r, char *errstr, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_flush(kefu_redis_t *r, char *errstr, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errstr, errlen, fmt, ap);
  va_end(ap);
  reset_queue(r);
  return -1;
}

/* A WAIT reply: 0 when enough replicas acknowledged. */
static int wait_ok(const kefu_redis_t *r, const redisReply *reply, const char *where, char *errstr,
                   size_t errlen) {
  if (reply->type == REDIS_REPLY_INTEGER && reply->integer >= r->wait_replicas)
    return 0;
  if (reply->type == REDIS_REPLY_INTEGER)
    snprintf(errstr, errlen, "redis %s: WAIT: %lld of %d replicas acknowledged within %d ms", where,
             reply->integer, r->wait_replicas, r->wait_timeout_ms);
  else
    snprintf(errstr, errlen, "redis %s: WAIT: %s", where,
             reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
  return -1;
}

static void append_wait(kefu_redis_t *r, redisContext *ctx) {
  char n[16], ms[16];
  snprintf(n, sizeof n, "%d", r->wait_replicas);
  snprintf(ms, sizeof ms, "%d", r->wait_timeout_ms);
  const char *wait[] = {"WAIT", n, ms};
  redisAppendCommandArgv(ctx, 3, wait, NULL);
  r->sent++;
}

static int flush_single(kefu_redis_t *r, char *errstr, size_t errlen) {
  redisContext *ctx = r->nodes[0].ctx;
  r->round_trips++;
  bool wait = r->wrote && r->wait_replicas > 0;
  int want = r->nq;
  if (wait)
    append_wait(r, ctx);
  for (int i = 0; i < want + wait; i++) {
    void *reply = NULL;
    if (redisGetReply(ctx, &reply) != REDIS_OK || !reply)
      return fail_flush(r, errstr, errlen, "redis: %s", ctx->errstr[0] ? ctx->errstr : "no reply");
    if (i < want) {
      r->replies[r->nreplies++] = reply;
      continue;
    }
    int rc = wait_ok(r, reply, "", errstr, errlen);
    freeReplyObject(reply);
    if (rc)
      return fail_flush(r, errstr, errlen, "%s", errstr);
  }
  reset_queue(r);
  return r->nreplies;
}

/* What a cluster's reply asks for: 0 an answer, 1 MOVED, 2 ASK, 3 try again later. */
static int redirection(const redisReply *reply, int *slot, char *host, size_t hostlen, int *port) {
  if (reply->type != REDIS_REPLY_ERROR || !reply->str)
    return 0;
  if (strncmp(reply->str, "TRYAGAIN", 8) == 0 || strncmp(reply->str, "CLUSTERDOWN", 11) == 0)
    return 3;
  int moved = strncmp(reply->str, "MOVED ", 6) == 0;
  if (!moved && strncmp(reply->str, "ASK ", 4) != 0)
    return 0;
  const char *p = reply->str + (moved ? 6 : 4);
  char *end;
  long s = strtol(p, &end, 10);
  const char *colon = strrchr(end, ':');
  if (s < 0 || s >= SLOTS || *end != ' ' || !colon || (size_t)(colon - end - 1) >= hostlen)
    return 0;
  memcpy(host, end + 1, (size_t)(colon - end - 1));
  host[colon - end - 1] = '\0';
  *slot = (int)s;
  *port = atoi(colon + 1);
  return moved ? 1 : 2;
}

static int cmp_int(const void *a, const void *b) {
  return *(const int *)a - *(const int *)b;
}

static void node_expect(node_t *n, int who) {
  if (n->n == n->cap) {
    n->cap = n->cap ? n->cap * 2 : 64;
    n->who = realloc(n->who, (size_t)n->cap * sizeof *n->who);
  }
  n->who[n->n++] = who;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One round: @p todo's commands to their masters, every pipeline written before any reply
 * is read. What must go again is left in @p todo (*n). 0, 1 (some must wait: TRYAGAIN,
 * CLUSTERDOWN), or -1 with @p errstr. */
static int cluster_round(kefu_redis_t *r, int *todo, int *n, bool *stale, char *errstr,
                         size_t errlen) {
  int again = 0, later = 0;
  r->round_trips++;
  for (int i = 0; i < *n; i++) {
    queued_t *q = &r->q[todo[i]];
    int node = q->ask >= 0    ? q->ask
               : q->node >= 0 ? master_index(r, q->node)
               : q->slot >= 0 ? r->slot_node[q->slot]
                              : master_index(r, 0);
    if (node < 0)
      return snprintf(errstr, errlen, "redis cluster: no master for slot %d", q->slot), -1;
    if (node_connect(r, node, errstr, errlen))
      return -1;
    node_t *nd = &r->nodes[node];
    if (q->ask >= 0) {
      const char *asking[] = {"ASKING"};
      redisAppendCommandArgv(nd->ctx, 1, asking, NULL);
      node_expect(nd, WHO_ASKING);
      r->sent++;
    }
    redisAppendFormattedCommand(nd->ctx, q->buf, (size_t)q->len);
    node_expect(nd, todo[i]);
    nd->wrote |= q->write;
  }
  for (int k = 0; k < r->nnodes; k++) { /* every pipeline out, then the replies */
    node_t *nd = &r->nodes[k];
    int done = 0;
    if (nd->wrote && r->wait_replicas > 0) {
      append_wait(r, nd->ctx);
      node_expect(nd, WHO_WAIT);
    }
    while (nd->n && !done)
      if (redisBufferWrite(nd->ctx, &done) != REDIS_OK)
        return snprintf(errstr, errlen, "redis %s:%d: %s", nd->host, nd->port, nd->ctx->errstr), -1;
  }
  for (int k = 0; k < r->nnodes; k++) {
    node_t *nd = &r->nodes[k];
    for (int i = 0; i < nd->n; i++) {
      void *v = NULL;
      if (redisGetReply(nd->ctx, &v) != REDIS_OK || !v)
        return snprintf(errstr, errlen, "redis %s:%d: %s", nd->host, nd->port,
                        nd->ctx->errstr[0] ? nd->ctx->errstr : "no reply"),
               -1;
      redisReply *reply = v;
      int who = nd->who[i], slot, port, kind;
      char host[256], where[300];
      if (who == WHO_WAIT) {
        snprintf(where, sizeof where, "%s:%d", nd->host, nd->port);
        kind = wait_ok(r, reply, where, errstr, errlen);
        freeReplyObject(reply);
        if (kind)
          return -1;
        continue;
      }
      if (who == WHO_ASKING) {
        freeReplyObject(reply);
        continue;
      }
      queued_t *q = &r->q[who];
      kind = redirection(reply, &slot, host, sizeof host, &port);
      if (kind == 0) {
        r->replies[who] = reply;
        continue;
      }
      r->redirects++;
      *stale |= kind == 3 && strncmp(reply->str, "CLUSTERDOWN", 11) == 0;
      freeReplyObject(reply);
      q->ask = -1;
      if (kind == 1 || kind == 2) {
        int to = node_index(r, host, port);
        if (to < 0)
          return snprintf(errstr, errlen, "redis cluster: more than %d nodes", MAX_NODES), -1;
        if (kind == 1) {
          r->slot_node[slot] = (int16_t)to;
          r->nodes[to].master = true;
          *stale = true;
        } else
          q->ask = to;
      } else
        later = 1;
      todo[again++] = who;
    }
    nd->n = 0;
    nd->wrote = false;
  }
  /* the redirected, in their original order (a slot's commands stay in order) */
  qsort(todo, (size_t)again, sizeof *todo, cmp_int);
  *n = again;
  return later;
}

/* A failed round leaves replies unread: every connection goes (node_connect makes them
 * again when next needed). */
static void drop_connections(kefu_redis_t *r) {
  for (int i = 0; i < r->nnodes; i++) {
    node_close(&r->nodes[i]);
    r->nodes[i].n = 0;
    r->nodes[i].wrote = false;
  }
}

/* Phase by phase; in each, rounds until nothing is redirected, for at most the timeout
 * (a slot migrating or a failover in progress), with a short pause before a round that
 * follows TRYAGAIN or CLUSTERDOWN. */
static int flush_cluster(kefu_redis_t *r, char *errstr, size_t errlen) {
  int *todo = malloc((size_t)(r->nq ? r->nq : 1) * sizeof *todo), rc = 0;
  for (int i = 0; i < r->nq; i++)
    r->replies[i] = NULL;
  r->nreplies = r->nq;
  int64_t deadline = now_ms() + r->timeout_ms;
  for (int phase = 0, from = 0; phase <= r->phase && !rc; phase++) {
    int n = 0, pause = 1;
    while (from < r->nq && r->q[from].phase == phase)
      todo[n++] = from++;
    while (n && !rc) {
      bool stale = false;
      int later = cluster_round(r, todo, &n, &stale, errstr, errlen);
      if (later < 0) {
        rc = -1;
        break;
      }
      if (stale && refresh_slots(r, errstr, errlen)) {
        rc = -1;
        break;
      }
      if (n && now_ms() > deadline) {
        snprintf(errstr, errlen,
                 "redis cluster: %d commands still redirected after %d ms (slot %d)", n,
                 r->timeout_ms, r->q[todo[0]].slot);
        rc = -1;
      } else if (n && later) {
        sleep_ms(pause);
        pause = pause < 64 ? pause * 2 : 100;
      }
    }
  }
  free(todo);
  if (rc) {
    drop_connections(r);
    free_replies(r);
    reset_queue(r);
    return -1;
  }
  reset_queue(r);
  return r->nreplies;
}

int kefu_redis_flush(kefu_redis_t *r, redisReply ***replies, char *errstr, size_t errlen) {
  free_replies(r);
  if (r->nq > r->cap) {
    r->cap = r->nq;
    r->replies = realloc(r->replies, (size_t)r->cap * sizeof *r->replies);
  }
  int n = r->cluster ? flush_cluster(r, errstr, errlen) : flush_single(r, errstr, errlen);
  *replies = r->replies;
  return n;
}

uint64_t kefu_redis_commands_sent(const kefu_redis_t *r) {
  return r->sent;
}

uint64_t kefu_redis_round_trips(const kefu_redis_t *r) {
  return r->round_trips;
}

uint64_t kefu_redis_redirects(const kefu_redis_t *r) {
  return r->redirects;
}

redisReply *kefu_redis_call(kefu_redis_t *r, int node, int argc, const char **argv, char *errstr,
                            size_t errlen) {
  kefu_cmd_t c;
  redisReply **replies;
  kefu_cmd_init(&c);
  for (int i = 0; i < argc; i++)
    kefu_cmd_str(&c, argv[i]);
  kefu_redis_append_node(r, node, &c);
  kefu_cmd_clear(&c);
  if (kefu_redis_flush(r, &replies, errstr, errlen) != 1)
    return NULL;
  redisReply *reply = replies[0];
  replies[0] = NULL; /* the caller's now */
  return reply;
}
