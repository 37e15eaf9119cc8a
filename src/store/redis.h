/* The Redis connection, to one node or to a Redis Cluster, used in pipelines (many
 * commands, one round trip). The engine never sends a command per event: it appends a
 * batch's worth and reads all the replies at once.
 *
 * On a cluster (redis.cluster, src/store/redis.c) each command goes to the master of its
 * first key's hash slot (CRC16 of the {hash tag}); a flush sends every master its
 * pipeline, all of them before reading any reply, and returns the replies in the order
 * the commands were appended. MOVED (the slot map is read again), ASK (ASKING, then the
 * command to the importing node), TRYAGAIN and CLUSTERDOWN are followed inside the flush;
 * a node that cannot be reached fails the flush like a lost connection. */
#ifndef KEFU_STORE_REDIS_H
#define KEFU_STORE_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kefu_redis kefu_redis_t;

/* A command under construction: arguments copied in. */
typedef struct kefu_cmd {
  int argc, cap;
  char **argv;
  size_t *lens;
} kefu_cmd_t;

void kefu_cmd_init(kefu_cmd_t *c);
void kefu_cmd_arg(kefu_cmd_t *c, const char *s, size_t len);
void kefu_cmd_str(kefu_cmd_t *c, const char *s);
void kefu_cmd_fmt(kefu_cmd_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kefu_cmd_clear(kefu_cmd_t *c);

/** @brief From now on, connections never replace library kefu's functions that differ
 *  from this build's (kefu replay on someone's Redis): such a connect fails. */
void kefu_redis_keep_functions(bool keep);

/* How to reach Redis (the redis.* keys). */
typedef struct kefu_redis_opts {
  const char *url;      /* redis://[user[:password]@]host[:port][,host:port...][/db] */
  const char *user;     /* when not empty, overrides the URL's */
  const char *password; /* when not empty, overrides the URL's; a secret */
  int timeout_ms;
  const char *cluster; /* "auto" (NULL too): a cluster if the first seed says so; "on"; "off" */
  int wait_replicas;   /* > 0: WAIT for that many replicas after each node's writes */
  int wait_timeout_ms;
  bool no_functions; /* an inspecting tool (kefu state): the functions are not loaded */
} kefu_redis_opts_t;

/** @brief Connects as @p o says. AUTH and SELECT are sent, the kefu function library is
 *  loaded (on every master of a cluster). NULL with @p errstr (never containing the
 *  password). */
kefu_redis_t *kefu_redis_connect(const kefu_redis_opts_t *o, char *errstr, size_t errlen);

/** @brief True when @p errstr, as kefu_redis_connect wrote it, names a Redis that is not
 *  ready yet rather than one kefu may not use: no answer (refused, reset, timed out, a
 *  name not resolving yet) or an error reply whose code says "later" (LOADING,
 *  NOREPLICAS, CLUSTERDOWN, TRYAGAIN, MASTERDOWN, BUSY). A wrong password, a missing
 *  permission or a configuration error is not transient. */
bool kefu_redis_error_is_transient(const char *errstr);
void kefu_redis_close(kefu_redis_t *r);

/** @brief Queues @p c (arguments copied) in the pipeline. On a cluster it goes to the
 *  master of its first key's slot; a command without a key to the first master. */
void kefu_redis_append(kefu_redis_t *r, const kefu_cmd_t *c);

/** @brief Masters a command can be addressed to with kefu_redis_append_node (1 on a
 *  single node): a SCAN must visit each. */
int kefu_redis_nodes(const kefu_redis_t *r);

/** @brief Queues @p c for master @p node (0 .. kefu_redis_nodes - 1), whatever its keys. */
void kefu_redis_append_node(kefu_redis_t *r, int node, const kefu_cmd_t *c);

/** @brief One command, on its own: @p argc strings of @p argv, to @p node (-1: by its
 *  key), sent and answered. @returns the reply, owned by the caller (freeReplyObject), or
 *  NULL with @p errstr on a connection error. */
redisReply *kefu_redis_call(kefu_redis_t *r, int node, int argc, const char **argv, char *errstr,
                            size_t errlen);

/** @brief The commands appended from now on are sent only once every command before is
 *  answered (on a cluster, where nodes are independent; one connection keeps order by
 *  itself, and then it costs nothing): what must be durable before (remembered outputs
 *  before the state they belong to) is. */
void kefu_redis_barrier(kefu_redis_t *r);

/** @brief The hash slot of @p key (CRC16 of its {hash tag}, or of the whole key, mod
 *  16384), as Redis Cluster computes it. */
int kefu_redis_key_slot(const char *key, size_t len);

/** @brief True on a Redis Cluster. */
bool kefu_redis_is_cluster(const kefu_redis_t *r);

/** @brief MOVED, ASK, TRYAGAIN and CLUSTERDOWN replies followed since the connection was
 *  made. */
uint64_t kefu_redis_redirects(const kefu_redis_t *r);

/** @brief Sends the pipeline and reads every reply, in order, into @p replies (owned by
 *  @p r until the next flush). Returns the number of replies, or -1 on a connection
 *  error (the connection is then dead: reconnect). */
int kefu_redis_flush(kefu_redis_t *r, redisReply ***replies, char *errstr, size_t errlen);

/** @brief Commands sent since start (for the "Redis commands per event" figure). */
uint64_t kefu_redis_commands_sent(const kefu_redis_t *r);

/** @brief Pipelines sent (round trips) since the connection was made. */
uint64_t kefu_redis_round_trips(const kefu_redis_t *r);

#endif
