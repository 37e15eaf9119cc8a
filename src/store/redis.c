#include "store/redis.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/embedded.h"
#include "common/redis_url.h"

struct kefu_redis {
  redisContext *ctx;
  int pending;
  redisReply **replies;
  int nreplies, cap;
  uint64_t sent, round_trips;
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
  for (int i = 0; i < r->nreplies; i++)
    freeReplyObject(r->replies[i]);
  r->nreplies = 0;
}

static int command_ok(kefu_redis_t *r, const char *what, int argc, const char **argv, char *errstr,
                      size_t errlen) {
  redisReply *reply = redisCommandArgv(r->ctx, argc, argv, NULL);
  int ok = reply && reply->type != REDIS_REPLY_ERROR;
  if (!ok) /* the reply text never echoes the password */
    snprintf(errstr, errlen, "redis %s: %s", what,
             reply ? reply->str : (r->ctx->err ? r->ctx->errstr : "no reply"));
  if (reply)
    freeReplyObject(reply);
  r->sent++;
  return ok ? 0 : -1;
}

static bool keep_functions; /* kefu_redis_keep_functions */

void kefu_redis_keep_functions(bool keep) {
  keep_functions = keep;
}

/* The code of library kefu in Redis equals @p code (FUNCTION LIST WITHCODE). */
static bool same_library(kefu_redis_t *r, const char *code) {
  const char *list[] = {"FUNCTION", "LIST", "LIBRARYNAME", "kefu", "WITHCODE"};
  redisReply *reply = redisCommandArgv(r->ctx, 5, list, NULL);
  bool same = false;
  r->sent++;
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
static int load_functions(kefu_redis_t *r, const char *code, char *errstr, size_t errlen) {
  const char *load[] = {"FUNCTION", "LOAD", "REPLACE", code};
  const char *load_new[] = {"FUNCTION", "LOAD", code};
  if (!keep_functions)
    return command_ok(r, "FUNCTION LOAD", 4, load, errstr, errlen);
  if (command_ok(r, "FUNCTION LOAD", 3, load_new, errstr, errlen) == 0 || same_library(r, code))
    return 0;
  snprintf(errstr, errlen,
           "this Redis runs the functions of another kefu build (library kefu); a replay does "
           "not replace them: give it a Redis of its own, or none (it then starts one)");
  return -1;
}

static int session_setup(kefu_redis_t *r, const kefu_redis_endpoint_t *u, char *errstr,
                         size_t errlen) {
  char db[16];
  const kefu_embedded_t *lua = kefu_embedded_find("src/store/kefu.lua");
  if (u->password[0]) {
    const char *auth_user[] = {"AUTH", u->user, u->password};
    const char *auth[] = {"AUTH", u->password};
    if (u->user[0] ? command_ok(r, "AUTH", 3, auth_user, errstr, errlen)
                   : command_ok(r, "AUTH", 2, auth, errstr, errlen))
      return -1;
  }
  snprintf(db, sizeof db, "%d", u->db);
  const char *select[] = {"SELECT", db};
  if (u->db && command_ok(r, "SELECT", 2, select, errstr, errlen))
    return -1;
  return load_functions(r, lua ? lua->data : "", errstr, errlen);
}

kefu_redis_t *kefu_redis_connect(const char *url, const char *user, const char *password,
                                 int timeout_ms, char *errstr, size_t errlen) {
  kefu_redis_endpoint_t u;
  char why[256];
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  if (kefu_redis_url_parse(url, &u, why, sizeof why)) {
    memset(&u, 0, sizeof u);
    snprintf(errstr, errlen, "redis.url: %s", why);
    return NULL;
  }
  if (user && *user)
    snprintf(u.user, sizeof u.user, "%s", user);
  if (password && *password)
    snprintf(u.password, sizeof u.password, "%s", password);
  kefu_redis_t *r = calloc(1, sizeof *r);
  r->ctx = redisConnectWithTimeout(u.host, u.port, tv);
  if (!r->ctx || r->ctx->err) {
    snprintf(errstr, errlen, "redis %s:%d: %s", u.host, u.port,
             r->ctx ? r->ctx->errstr : "out of memory");
    goto fail;
  }
  redisSetTimeout(r->ctx, tv);
  if (session_setup(r, &u, errstr, errlen))
    goto fail;
  memset(&u, 0, sizeof u); /* no password lingers on the stack */
  return r;
fail:
  memset(&u, 0, sizeof u);
  kefu_redis_close(r);
  return NULL;
}

void kefu_redis_close(kefu_redis_t *r) {
  if (!r)
    return;
  free_replies(r);
  free(r->replies);
  if (r->ctx)
    redisFree(r->ctx);
  free(r);
}

void kefu_redis_append(kefu_redis_t *r, const kefu_cmd_t *c) {
  redisAppendCommandArgv(r->ctx, c->argc, (const char **)c->argv, c->lens);
  r->pending++;
  r->sent++;
}

int kefu_redis_flush(kefu_redis_t *r, redisReply ***replies, char *errstr, size_t errlen) {
  free_replies(r);
  if (r->pending > r->cap) {
    r->cap = r->pending;
    r->replies = realloc(r->replies, (size_t)r->cap * sizeof *r->replies);
  }
  int want = r->pending;
  r->pending = 0;
  r->round_trips++;
  for (int i = 0; i < want; i++) {
    void *reply = NULL;
    if (redisGetReply(r->ctx, &reply) != REDIS_OK || !reply) {
      snprintf(errstr, errlen, "redis: %s", r->ctx->errstr[0] ? r->ctx->errstr : "no reply");
      return -1;
    }
    r->replies[r->nreplies++] = reply;
  }
  *replies = r->replies;
  return r->nreplies;
}

uint64_t kefu_redis_commands_sent(const kefu_redis_t *r) {
  return r->sent;
}

uint64_t kefu_redis_round_trips(const kefu_redis_t *r) {
  return r->round_trips;
}
