/* redis://[user[:password]@]host[:port][,host[:port]...][/db]: the one parser of Redis URLs, used
 * by the configuration (to validate redis.url when it is set) and by the connection (to connect),
 * so that both read a URL the same way. The user information ends at the last '@', so a password
 * may contain '@' and '/' unescaped; %XX escapes are decoded. */
#include "common/redis_url.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Copies @p len bytes of @p s into @p out, decoding %XX; -1 on a bad escape or when it
 * does not fit. */
static int percent_decode(const char *s, size_t len, char *out, size_t outlen) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = s[i];
    if (ch == '%') {
      char hex[3] = {0};
      if (i + 2 >= len || !isxdigit((unsigned char)s[i + 1]) || !isxdigit((unsigned char)s[i + 2]))
        return -1;
      hex[0] = s[i + 1];
      hex[1] = s[i + 2];
      ch = (char)strtol(hex, NULL, 16);
      i += 2;
    }
    if (n + 1 >= outlen)
      return -1;
    out[n++] = ch;
  }
  out[n] = '\0';
  return 0;
}

/* Reads decimal digits s[0..len) into *out within [lo, hi]; -1 otherwise. */
static int parse_number(const char *s, size_t len, long lo, long hi, int *out) {
  long v = 0;
  if (len == 0 || len > 10)
    return -1;
  for (size_t i = 0; i < len; i++) {
    if (!isdigit((unsigned char)s[i]))
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  if (v < lo || v > hi)
    return -1;
  *out = (int)v;
  return 0;
}

static int url_fail(char *why, size_t whylen, const char *msg) {
  snprintf(why, whylen, "%s (expected redis://[user[:password]@]host[:port][,host:port...][/db])",
           msg);
  return -1;
}

/* host[:port] or [v6]:port, @p len bytes, into @p ep. */
static int parse_hostport(const char *s, size_t len, struct kefu_redis_seed *ep, char *why,
                          size_t whylen) {
  const char *host = s, *port = NULL;
  size_t hostlen = len;
  if (len && s[0] == '[') {
    const char *close = memchr(s, ']', len);
    if (!close)
      return url_fail(why, whylen, "unclosed [ in the host");
    host = s + 1;
    hostlen = (size_t)(close - host);
    if (close + 1 < s + len && close[1] != ':')
      return url_fail(why, whylen, "unexpected text after ]");
    port = close + 1 < s + len ? close + 2 : NULL;
  } else {
    const char *colon = memchr(s, ':', len);
    if (colon) {
      hostlen = (size_t)(colon - s);
      port = colon + 1;
    }
  }
  if (hostlen == 0 || hostlen >= sizeof ep->host)
    return url_fail(why, whylen, "missing or too long host");
  memcpy(ep->host, host, hostlen);
  ep->host[hostlen] = '\0';
  ep->port = 6379;
  if (port && parse_number(port, (size_t)(s + len - port), 1, 65535, &ep->port) != 0)
    return url_fail(why, whylen, "bad port");
  return 0;
}

int kefu_redis_url_parse(const char *url, kefu_redis_endpoint_t *ep, char *why, size_t whylen) {
  static const char scheme[] = "redis://";
  memset(ep, 0, sizeof *ep);
  if (strncasecmp(url, "rediss://", 9) == 0)
    return url_fail(why, whylen,
                    "rediss:// needs TLS, which Debian 12's hiredis lacks: use "
                    "a TLS tunnel (deploy/) and redis:// to it");
  if (strncasecmp(url, scheme, sizeof scheme - 1) != 0)
    return url_fail(why, whylen, "not a redis:// URL");
  const char *rest = url + sizeof scheme - 1;
  const char *at = strrchr(rest, '@');
  if (at) {
    const char *colon = memchr(rest, ':', (size_t)(at - rest));
    const char *user_end = colon ? colon : at;
    if (percent_decode(rest, (size_t)(user_end - rest), ep->user, sizeof ep->user) != 0 ||
        (colon && percent_decode(colon + 1, (size_t)(at - colon - 1), ep->password,
                                 sizeof ep->password) != 0))
      return url_fail(why, whylen, "bad %-escape or too long user or password");
    rest = at + 1;
  }
  if (strpbrk(rest, "?#"))
    return url_fail(why, whylen, "query parameters are not supported");
  const char *slash = strchr(rest, '/');
  const char *end = slash ? slash : rest + strlen(rest);
  while (rest <= end) { /* the seeds, comma-separated */
    const char *comma = memchr(rest, ',', (size_t)(end - rest));
    const char *stop = comma ? comma : end;
    if (ep->nseeds == KEFU_REDIS_MAX_SEEDS)
      return url_fail(why, whylen, "too many hosts");
    if (parse_hostport(rest, (size_t)(stop - rest), &ep->seeds[ep->nseeds++], why, whylen) != 0)
      return -1;
    rest = stop + 1;
  }
  memcpy(ep->host, ep->seeds[0].host, sizeof ep->host);
  ep->port = ep->seeds[0].port;
  if (slash && slash[1] && parse_number(slash + 1, strlen(slash + 1), 0, 1000000, &ep->db) != 0)
    return url_fail(why, whylen, "bad database number");
  return 0;
}
