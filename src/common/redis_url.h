/* Parsing redis:// URLs (src/common/redis_url.c). */
#ifndef KEFU_COMMON_REDIS_URL_H
#define KEFU_COMMON_REDIS_URL_H
#include <stddef.h>

/* A Redis endpoint: where to connect and as whom. */
typedef struct kefu_redis_endpoint {
  char host[256];
  int port;
  int db;
  char user[128];     /* "" when none: AUTH with the password only, or no AUTH */
  char password[256]; /* "" when none; a secret: never log it */
} kefu_redis_endpoint_t;

/** @brief Parses @p url, redis://[user[:password]@]host[:port][/db] (user and password
 *  %-decoded and ending at the last '@', port default 6379, db default 0), into @p ep
 *  (zeroed first; clear it after use, it may hold a password).
 *  @returns 0, or -1 with a reason in @p why that never contains the password. */
int kefu_redis_url_parse(const char *url, kefu_redis_endpoint_t *ep, char *why, size_t whylen);

#endif
