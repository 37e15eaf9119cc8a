/* libFuzzer target: the Redis URL (redis.url, `kefu run --redis URL`).
 *
 * The input is the URL. It is read the way kefu_redis_connect reads it
 * (kefu_redis_url_parse) and the way the configuration does (kefu_config_set checks
 * redis.url, kefu_config_redis_endpoint reads it). A URL the configuration accepts must
 * be one the connection reads as the same endpoint, and --list-config's redaction
 * (kefu_config_redact_url) must keep its password out: the redacted URL reads as the
 * same endpoint with password "***". */
#include "fuzz.h"
#include "ops/config.h"
#include "common/redis_url.h"

/* One configuration for all inputs: kefu_config_set leaves it unchanged when it refuses
 * a value, and it is read only after a value was accepted. */
static kefu_config_t *config;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_quiet_logs();
  config = kefu_config_new();
  FUZZ_CHECK(config != NULL);
  return 0;
}

static void check_redacted(const char *url, const kefu_redis_endpoint_t *ep) {
  char errstr[512];
  size_t n = strlen(url) + 8;
  char *shown = malloc(n);
  kefu_redis_endpoint_t seen;
  FUZZ_CHECK(shown != NULL);
  kefu_config_redact_url(url, shown, n);
  FUZZ_CHECK(kefu_config_set(config, "redis.url", shown, errstr, sizeof errstr) == 0);
  FUZZ_CHECK(kefu_config_redis_endpoint(config, &seen, errstr, sizeof errstr) == 0);
  FUZZ_CHECK(strcmp(seen.host, ep->host) == 0 && seen.port == ep->port && seen.db == ep->db);
  FUZZ_CHECK(strcmp(seen.user, ep->user) == 0);
  FUZZ_CHECK(strcmp(seen.password, "***") == 0);
  free(shown);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char errstr[512];
  char *url = fuzz_strndup(data, size);
  kefu_redis_endpoint_t u, ep;
  bool parsed = kefu_redis_url_parse(url, &u, errstr, sizeof errstr) == 0;

  if (parsed)
    FUZZ_CHECK(u.host[0] != '\0' && u.port > 0);
  if (kefu_config_set(config, "redis.url", url, errstr, sizeof errstr) == 0) {
    FUZZ_CHECK(parsed); /* accepted by the configuration, read alike when connecting */
    FUZZ_CHECK(kefu_config_redis_endpoint(config, &ep, errstr, sizeof errstr) == 0);
    FUZZ_CHECK(strcmp(ep.host, u.host) == 0 && ep.port == u.port && ep.db == u.db);
    FUZZ_CHECK(strcmp(ep.user, u.user) == 0 && strcmp(ep.password, u.password) == 0);
    if (ep.password[0])
      check_redacted(url, &ep);
  }
  memset(&u, 0, sizeof u);
  free(url);
  return 0;
}
