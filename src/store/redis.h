/* The Redis connection: one hiredis context, used in pipelines (many commands, one
 * round trip). The engine never sends a command per event: it appends a batch's worth
 * and reads all the replies at once. */
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

/** @brief Connects to @p url (redis://[user[:password]@]host[:port][/db]); @p user and
 *  @p password, when not empty, override the URL's. AUTH and SELECT are sent; the kefu
 *  function library is loaded. NULL with @p errstr (never containing the password). */
kefu_redis_t *kefu_redis_connect(const char *url, const char *user, const char *password,
                                 int timeout_ms, char *errstr, size_t errlen);
void kefu_redis_close(kefu_redis_t *r);

/** @brief Queues @p c (arguments copied) in the pipeline. */
void kefu_redis_append(kefu_redis_t *r, const kefu_cmd_t *c);

/** @brief Sends the pipeline and reads every reply, in order, into @p replies (owned by
 *  @p r until the next flush). Returns the number of replies, or -1 on a connection
 *  error (the connection is then dead: reconnect). */
int kefu_redis_flush(kefu_redis_t *r, redisReply ***replies, char *errstr, size_t errlen);

/** @brief Commands sent since start (for the "Redis commands per event" figure). */
uint64_t kefu_redis_commands_sent(const kefu_redis_t *r);

/** @brief Pipelines sent (round trips) since the connection was made. */
uint64_t kefu_redis_round_trips(const kefu_redis_t *r);

#endif
