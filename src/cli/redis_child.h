/* A redis-server child for commands that need a Redis of their own (kefu demo, kefu
 * replay without --redis): on a free port of 127.0.0.1, in a temporary directory, without
 * persistence; it dies with its parent. */
#ifndef KEFU_CLI_REDIS_CHILD_H
#define KEFU_CLI_REDIS_CHILD_H

#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct kefu_redis_child {
  pid_t pid;
  int port;
  char dir[PATH_MAX];
  char log[PATH_MAX + 16];
} kefu_redis_child_t;

/** @brief Starts redis-server (from PATH or /usr/bin) in a new directory $TMPDIR/NAME-XXXXXX. */
int kefu_redis_child_start(kefu_redis_child_t *r, const char *name, char *errstr, size_t errlen);
/** @brief Waits (up to 10 s, or until *@p stop) for it to answer PING. */
int kefu_redis_child_wait(kefu_redis_child_t *r, volatile sig_atomic_t *stop, char *errstr,
                          size_t errlen);
/** @brief Stops it and removes its directory; a child not started is a no-op. */
void kefu_redis_child_stop(kefu_redis_child_t *r);

#endif
