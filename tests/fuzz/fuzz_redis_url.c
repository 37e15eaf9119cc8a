/* libFuzzer target: the Redis URL (redis.url, `kefu run --redis URL`).
 *
 * The input is the URL. Both parsers read it: kefu_redis_parse_url (what
 * kefu_redis_connect connects with) and the configuration's (kefu_config_set checks
 * redis.url, kefu_config_redis_endpoint reads it). A URL the configuration accepts must
 * give an endpoint, and --list-config's redaction (kefu_config_redact_url) must keep
 * its password out: the redacted URL reads as the same endpoint with password "***". */
#include "fuzz.h"
#include "ops/config.h"
#include "store/redis.h"

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
  kefu_redis_url_t u;
  kefu_redis_endpoint_t ep;

  if (kefu_redis_parse_url(url, &u, errstr, sizeof errstr) == 0)
    FUZZ_CHECK(u.host[0] != '\0' && u.port > 0);
  if (kefu_config_set(config, "redis.url", url, errstr, sizeof errstr) == 0) {
    FUZZ_CHECK(kefu_config_redis_endpoint(config, &ep, errstr, sizeof errstr) == 0);
    FUZZ_CHECK(ep.host[0] != '\0' && ep.port > 0);
    if (ep.password[0])
      check_redacted(url, &ep);
  }
  free(url);
  return 0;
}
