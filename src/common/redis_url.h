/* Parsing redis:// URLs (src/common/redis_url.c). */
#ifndef KEFU_COMMON_REDIS_URL_H
#define KEFU_COMMON_REDIS_URL_H
#include <stddef.h>

#define KEFU_REDIS_MAX_SEEDS 16

/* A Redis endpoint: where to connect and as whom. A Redis Cluster is named by several
 * seeds (any of its nodes); host and port are the first. */
typedef struct kefu_redis_endpoint {
  char host[256];
  int port;
  int nseeds;
  struct kefu_redis_seed {
    char host[256];
    int port;
  } seeds[KEFU_REDIS_MAX_SEEDS];
  int db;
  char user[128];     /* "" when none: AUTH with the password only, or no AUTH */
  char password[256]; /* "" when none; a secret: never log it */
} kefu_redis_endpoint_t;

/** @brief Parses @p url, redis://[user[:password]@]host[:port][,host[:port]...][/db]
 *  (user and password %-decoded and ending at the last '@', port default 6379, db
 *  default 0; up to KEFU_REDIS_MAX_SEEDS comma-separated seeds), into @p ep
 *  (zeroed first; clear it after use, it may hold a password).
 *  @returns 0, or -1 with a reason in @p why that never contains the password. */
int kefu_redis_url_parse(const char *url, kefu_redis_endpoint_t *ep, char *why, size_t whylen);

#endif
