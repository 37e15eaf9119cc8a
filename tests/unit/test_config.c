/* Configuration (SPEC §7): the key table, its sources and their precedence, validation,
 * kafka.* pass-through, secrets, docs/CONFIG.md kept equal to the table, and every row
 * with a field landing in the processor's options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/options.h"
#include "ops/config.h"
#include "ops/log.h"

static char errbuf[1024];

/* A new temporary config file with @p text, its name in @p path (at least 32 bytes);
 * the caller unlinks it. */
static void write_file(char *path, const char *text) {
  strcpy(path, "/tmp/kefu-config-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
}

/* Everything kefu_config_print() writes, as a malloc'd string. */
static char *printed(const kefu_config_t *c) {
  char *text = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&text, &len);
  kefu_config_print(c, out);
  fclose(out);
  return text;
}

static char *markdown(void) {
  char *text = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&text, &len);
  kefu_config_print_markdown(out);
  fclose(out);
  return text;
}

static int set(kefu_config_t *c, const char *key, const char *value) {
  errbuf[0] = '\0';
  return kefu_config_set(c, key, value, errbuf, sizeof errbuf);
}

static void test_spec7_defaults(void **state) {
  (void)state;
  kefu_config_t *c = kefu_config_new();
  const char **items;
  assert_non_null(c);
  assert_string_equal(kefu_config_str(c, "bootstrap.servers"), "");
  assert_string_equal(kefu_config_str(c, "redis.url"), "redis://127.0.0.1:6379/0");
  assert_string_equal(kefu_config_str(c, "topic.prefix"), "kefu.");
  assert_string_equal(kefu_config_str(c, "group.id"), "kefu");
  assert_string_equal(kefu_config_str(c, "transactional.id.prefix"), "kefu");
  assert_string_equal(kefu_config_str(c, "processing.guarantee"), "exactly_once");
  assert_true(kefu_config_double(c, "threshold") == 0.40);
  assert_int_equal(kefu_config_int(c, "escalate_after"), 3);
  assert_int_equal(kefu_config_int(c, "lateness"), 0);
  assert_int_equal(kefu_config_int(c, "day_close_grace"), 300000);
  assert_true(kefu_config_bool(c, "idle_advance"));
  assert_int_equal(kefu_config_int(c, "idle_advance_ms"), 30000);
  assert_int_equal(kefu_config_int(c, "task_idle_ms"), 500);
  assert_int_equal(kefu_config_int(c, "session_idle_ms"), 900000);
  assert_int_equal(kefu_config_int(c, "invitation_expiry_ms"), 600000);
  assert_int_equal(kefu_config_int(c, "response_wait_ms"), 180000);
  assert_int_equal(kefu_config_list(c, "logistics_couriers", &items), 4);
  assert_string_equal(items[0], "ZTO");
  assert_string_equal(items[3], "YTO");
  assert_null(items[4]);
  assert_int_equal(kefu_config_int(c, "batch.max_records"), 2000);
  assert_int_equal(kefu_config_int(c, "batch.max_ms"), 50);
  assert_string_equal(kefu_config_str(c, "http.listen"), "127.0.0.1:9464");
  assert_string_equal(kefu_config_str(c, "log.level"), "info");
  assert_string_equal(kefu_config_str(c, "schema.registry.url"), "");
  assert_string_equal(kefu_config_str(c, "instance.id"), "");
  assert_int_equal(kefu_config_int(c, "redis.timeout_ms"), 2000);
  assert_int_equal(kefu_config_int(c, "redis.retry_max_ms"), 5000);
  assert_string_equal(kefu_config_str(c, "redis.user"), "");
  assert_string_equal(kefu_config_str(c, "redis.password"), "");
  kefu_config_destroy(c);
}

/* SPEC §7: file, then KEFU_* environment, then --set; a later source wins. */
static void test_spec7_precedence_file_env_set(void **state) {
  (void)state;
  char path[] = "/tmp/kefu-config-XXXXXX";
  char *env[] = {"KEFU_THRESHOLD=0.6", "KEFU_ESCALATE_AFTER=6", "PATH=/bin", NULL};
  kefu_config_t *c = kefu_config_new();
  write_file(path, "threshold = 0.5\nescalate_after = 5\nlateness = 100\n");
  assert_int_equal(kefu_config_load_file(c, path, errbuf, sizeof errbuf), 0);
  assert_int_equal(kefu_config_load_env(c, env, errbuf, sizeof errbuf), 0);
  assert_int_equal(set(c, "threshold", "0.7"), 0);
  assert_true(kefu_config_double(c, "threshold") == 0.7);    /* --set */
  assert_int_equal(kefu_config_int(c, "escalate_after"), 6); /* env over file */
  assert_int_equal(kefu_config_int(c, "lateness"), 100);     /* file only */
  unlink(path);
  kefu_config_destroy(c);
}

static void test_spec7_file_syntax(void **state) {
  (void)state;
  char path[] = "/tmp/kefu-config-XXXXXX";
  kefu_config_t *c = kefu_config_new();
  write_file(path, "# a comment\n\n   \t\n"
                   "  processing.guarantee=at_least_once  \r\n"
                   "http.listen = \"\"\n"
                   "redis.password = a#b=c\n"
                   "group.id = \"kefu-live\"\n");
  assert_int_equal(kefu_config_load_file(c, path, errbuf, sizeof errbuf), 0);
  assert_string_equal(kefu_config_str(c, "processing.guarantee"), "at_least_once");
  assert_string_equal(kefu_config_str(c, "http.listen"), "");
  assert_string_equal(kefu_config_str(c, "redis.password"), "a#b=c");
  assert_string_equal(kefu_config_str(c, "group.id"), "kefu-live");
  unlink(path);
  kefu_config_destroy(c);
}

/* A bad line is reported as file:line. */
static void test_spec7_file_errors_name_file_and_line(void **state) {
  (void)state;
  char path[] = "/tmp/kefu-config-XXXXXX";
  char want[256];
  kefu_config_t *c = kefu_config_new();
  write_file(path, "threshold = 0.5\n# fine\nthreshhold = 0.6\n");
  assert_int_equal(kefu_config_load_file(c, path, errbuf, sizeof errbuf), -1);
  snprintf(want, sizeof want, "%s:3: unknown configuration key \"threshhold\"", path);
  assert_non_null(strstr(errbuf, want));
  unlink(path);

  write_file(path, "escalate_after 4\n");
  assert_int_equal(kefu_config_load_file(c, path, errbuf, sizeof errbuf), -1);
  snprintf(want, sizeof want, "%s:1: expected", path);
  assert_non_null(strstr(errbuf, want));
  unlink(path);

  write_file(path, "\n\nescalate_after = 0\n");
  assert_int_equal(kefu_config_load_file(c, path, errbuf, sizeof errbuf), -1);
  snprintf(want, sizeof want, "%s:3: escalate_after = \"0\": out of range 1..365", path);
  assert_string_equal(errbuf, want);
  unlink(path);

  assert_int_equal(kefu_config_load_file(c, "/nonexistent/kefu.conf", errbuf, sizeof errbuf), -1);
  assert_non_null(strstr(errbuf, "/nonexistent/kefu.conf: "));
  kefu_config_destroy(c);
}

static void test_validation_numbers(void **state) {
  (void)state;
  kefu_config_t *c = kefu_config_new();
  assert_int_equal(set(c, "escalate_after", "366"), -1);
  assert_string_equal(errbuf, "escalate_after = \"366\": out of range 1..365");
  assert_int_equal(set(c, "escalate_after", "3x"), -1);
  assert_non_null(strstr(errbuf, "not an integer"));
  assert_int_equal(set(c, "escalate_after", ""), -1);
  assert_int_equal(set(c, "escalate_after", " 4"), -1);
  assert_int_equal(set(c, "lateness", "-1"), -1);
  assert_int_equal(set(c, "escalate_after", "365"), 0);
  assert_int_equal(kefu_config_int(c, "escalate_after"), 365);
  /* a rejected value leaves the old one */
  assert_int_equal(set(c, "escalate_after", "0"), -1);
  assert_int_equal(kefu_config_int(c, "escalate_after"), 365);
  kefu_config_destroy(c);
}

/* RATE-6: the threshold has at most 4 decimals, in 0..1. */
static void test_rate6_threshold_at_most_4_decimals(void **state) {
  (void)state;
  kefu_config_t *c = kefu_config_new();
  assert_int_equal(set(c, "threshold", "0.12345"), -1);
  assert_string_equal(errbuf, "threshold = \"0.12345\": more than 4 decimals");
  assert_int_equal(set(c, "threshold", "1.5"), -1);
  assert_int_equal(set(c, "threshold", "-0.1"), -1);
  assert_int_equal(set(c, "threshold", "nan"), -1);
  assert_int_equal(set(c, "threshold", "0.4x"), -1);
  assert_int_equal(set(c, "threshold", "0.1234"), 0);
  assert_true(kefu_config_double(c, "threshold") == 0.1234);
  assert_int_equal(set(c, "threshold", "0.50000"), 0); /* trailing zeros are no decimals */
  assert_true(kefu_config_double(c, "threshold") == 0.5);
  assert_int_equal(set(c, "threshold", "1"), 0);
  assert_int_equal(set(c, "threshold", "0"), 0);
  kefu_config_destroy(c);
}

static void test_validation_enum_bool_list(void **state) {
  (void)state;
  kefu_config_t *c = kefu_config_new();
  const char **items;
  assert_int_equal(set(c, "processing.guarantee", "exactly-once"), -1);
  assert_string_equal(errbuf, "processing.guarantee = \"exactly-once\": must be one of: "
                              "exactly_once, at_least_once");
  assert_int_equal(set(c, "processing.guarantee", "AT_LEAST_ONCE"), 0);
  assert_string_equal(kefu_config_str(c, "processing.guarantee"), "at_least_once");
  assert_int_equal(set(c, "log.level", "verbose"), -1);

  static const char *const yes[] = {"true", "1", "yes", "on", "TRUE", "Yes"};
  static const char *const no[] = {"false", "0", "no", "off", "OFF", "False"};
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    assert_int_equal(set(c, "idle_advance", no[i]), 0);
    assert_false(kefu_config_bool(c, "idle_advance"));
    assert_int_equal(set(c, "idle_advance", yes[i]), 0);
    assert_true(kefu_config_bool(c, "idle_advance"));
  }
  assert_int_equal(set(c, "idle_advance", "2"), -1);

  /* LOGI-1c: the supported couriers, JT, EMS and CHINA_POST can be added */
  assert_int_equal(set(c, "logistics_couriers", " zto, JT ,china_post"), 0);
  assert_int_equal(kefu_config_list(c, "logistics_couriers", &items), 3);
  assert_string_equal(items[0], "ZTO");
  assert_string_equal(items[1], "JT");
  assert_string_equal(items[2], "CHINA_POST");
  assert_int_equal(set(c, "logistics_couriers", "ZTO,SUNING"), -1);
  assert_non_null(strstr(errbuf, "unknown item \"SUNING\""));
  assert_int_equal(set(c, "logistics_couriers", "ZTO,,STO"), -1);
  assert_int_equal(set(c, "logistics_couriers", "ZTO,zto"), -1);
  assert_non_null(strstr(errbuf, "listed twice"));
  assert_int_equal(kefu_config_list(c, "logistics_couriers", &items), 3); /* unchanged */
  assert_int_equal(set(c, "logistics_couriers", ""), 0);
  assert_int_equal(kefu_config_list(c, "logistics_couriers", &items), 0);
  assert_null(items[0]);
  kefu_config_destroy(c);
}

static void test_validation_strings(void **state) {
  (void)state;
  kefu_config_t *c = kefu_config_new();
  assert_int_equal(set(c, "no.such.key", "1"), -1);
  assert_non_null(strstr(errbuf, "unknown configuration key \"no.such.key\""));
  assert_int_equal(set(c, "http.listen", "9464"), -1);
  assert_int_equal(set(c, "http.listen", "127.0.0.1:70000"), -1);
  assert_int_equal(set(c, "http.listen", "[::1]:9464"), 0);
  assert_int_equal(set(c, "http.listen", "0.0.0.0:0"), 0);
  assert_int_equal(set(c, "topic.prefix", "bad prefix"), -1);
  assert_int_equal(set(c, "topic.prefix", ""), 0);
  assert_int_equal(set(c, "group.id", ""), -1);
  assert_int_equal(set(c, "instance.id", "a/b"), -1);
  assert_int_equal(set(c, "schema.registry.url", "localhost:8081"), -1);
  assert_int_equal(set(c, "schema.registry.url", "http://localhost:8081"), 0);
  assert_int_equal(set(c, "schema.registry.url", "https:///x"), -1);
  assert_true(kefu_config_is_secret("schema.registry.basic.auth.user.info"));
  assert_int_equal(set(c, "schema.registry.url", ""), 0);
  assert_int_equal(set(c, "redis.url", "http://localhost"), -1);
  assert_int_equal(set(c, "redis.url", "rediss://localhost"), -1);
  assert_non_null(strstr(errbuf, "tunnel"));
  assert_int_equal(set(c, "redis.url", "redis://localhost:99999"), -1);
  assert_int_equal(set(c, "redis.url", "redis://localhost/x"), -1);
  kefu_config_destroy(c);
}

/* Accessor misuse is a bug: logged once, zero value, no crash. */
static void test_accessor_misuse_returns_zero_values(void **state) {
  (void)state;
  kefu_config_t *c = kefu_config_new();
  const char **items;
  kefu_log_level_t saved = kefu_log_min_level;
  kefu_log_min_level = KEFU_LOG_ERROR + 1; /* keep the test output quiet */
  assert_string_equal(kefu_config_str(c, "no.such.key"), "");
  assert_int_equal(kefu_config_int(c, "threshold"), 0);
  assert_true(kefu_config_double(c, "escalate_after") == 0.0);
  assert_false(kefu_config_bool(c, "lateness"));
  assert_int_equal(kefu_config_list(c, "group.id", &items), 0);
  assert_null(items[0]);
  kefu_log_min_level = saved;
  kefu_config_destroy(c);
}

static void collect_kafka(const char *k, const char *v, void *arg) {
  char *out = arg;
  size_t n = strlen(out);
  snprintf(out + n, 512 - n, "%s=%s;", k, v);
}

/* kafka.* keys reach librdkafka without the prefix, in first-set order; librdkafka
 * itself rejects unknown properties and bad values. */
static void test_kafka_passthrough(void **state) {
  (void)state;
  char seen[512] = "";
  kefu_config_t *c = kefu_config_new();
  assert_int_equal(set(c, "kafka.acks", "all"), 0);
  assert_int_equal(set(c, "kafka.linger.ms", "5"), 0);
  assert_int_equal(set(c, "kafka.acks", "1"), 0);
  assert_int_equal(set(c, "kafka.no.such.property", "x"), -1);
  assert_non_null(strstr(errbuf, "no.such.property"));
  assert_int_equal(set(c, "kafka.linger.ms", "not-a-number"), -1);
  assert_int_equal(set(c, "kafka.", "x"), -1);
  /* what kefu run sets itself is refused, not silently overridden */
  assert_int_equal(set(c, "kafka.auto.offset.reset", "latest"), -1);
  assert_non_null(strstr(errbuf, "kefu sets auto.offset.reset itself"));
  assert_int_equal(set(c, "kafka.isolation.level", "read_uncommitted"), -1);
  assert_int_equal(set(c, "kafka.transactional.id", "x"), -1);
  kefu_config_each_kafka(c, collect_kafka, seen);
  assert_string_equal(seen, "acks=1;linger.ms=5;");
  assert_string_equal(kefu_config_str(c, "kafka.linger.ms"), "5");
  assert_null(kefu_config_str(c, "kafka.fetch.max.bytes"));
  kefu_config_destroy(c);
}

static void test_spec7_env_name_mapping(void **state) {
  (void)state;
  char seen[512] = "";
  char *env[] = {"KEFU_PROCESSING_GUARANTEE=at_least_once",
                 "KEFU_BATCH_MAX_MS=20",
                 "KEFU_IDLE_ADVANCE=off",
                 "KEFU_IDLE_ADVANCE_MS=1000",
                 "KEFU_TRANSACTIONAL_ID_PREFIX=kefu-tx",
                 "KEFU_KAFKA_SASL_PASSWORD=pw",
                 "KEFU_KAFKA_STATISTICS_INTERVAL_MS=1000",
                 "KEFU_BIN=/usr/bin/kefu", /* not configuration: skipped */
                 "KEFU_threshold=0.9",     /* names are upper case */
                 "HOME=/root",
                 "KEFU_NOEQUALS",
                 NULL};
  kefu_config_t *c = kefu_config_new();
  kefu_log_level_t saved = kefu_log_min_level;
  kefu_log_min_level = KEFU_LOG_ERROR; /* the skipped names WARN */
  assert_int_equal(kefu_config_load_env(c, env, errbuf, sizeof errbuf), 0);
  kefu_log_min_level = saved;
  assert_string_equal(kefu_config_str(c, "processing.guarantee"), "at_least_once");
  assert_int_equal(kefu_config_int(c, "batch.max_ms"), 20);
  assert_false(kefu_config_bool(c, "idle_advance"));
  assert_int_equal(kefu_config_int(c, "idle_advance_ms"), 1000);
  assert_string_equal(kefu_config_str(c, "transactional.id.prefix"), "kefu-tx");
  assert_true(kefu_config_double(c, "threshold") == 0.4);
  kefu_config_each_kafka(c, collect_kafka, seen);
  assert_string_equal(seen, "sasl.password=pw;statistics.interval.ms=1000;");

  char *bad[] = {"KEFU_ESCALATE_AFTER=0", NULL};
  assert_int_equal(kefu_config_load_env(c, bad, errbuf, sizeof errbuf), -1);
  assert_string_equal(errbuf, "KEFU_ESCALATE_AFTER: escalate_after = \"0\": out of range 1..365");
  kefu_config_destroy(c);
}

/* Every key of docs/CONFIG.md: its env name is unique and sets it; its default
 * validates. */
static void test_spec7_every_key_has_a_working_env_name(void **state) {
  (void)state;
  char *md = markdown(), *save = NULL;
  char names[64][64];
  int n = 0;
  kefu_config_t *c = kefu_config_new();
  for (char *line = strtok_r(md, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char key[64], def[128], env[64], var[256];
    /* | `key` | type | `default` | allowed | `KEFU_X` | help | */
    if (sscanf(line, "| `%63[^`]` | %*s | `%127[^`]` |", key, def) != 2)
      continue;
    char *envp = strstr(line, "| `KEFU_");
    assert_non_null(envp);
    assert_int_equal(sscanf(envp, "| `%63[^`]`", env), 1);
    for (int i = 0; i < n; i++)
      assert_string_not_equal(names[i], env);
    snprintf(names[n++], sizeof names[0], "%s", env);
    snprintf(var, sizeof var, "%s=%s", env, strcmp(def, "\"\"") == 0 ? "" : def);
    char *one[] = {var, NULL};
    assert_int_equal(kefu_config_load_env(c, one, errbuf, sizeof errbuf), 0);
  }
  assert_true(n >= 27);
  free(md);
  kefu_config_destroy(c);
}

/* SPEC §6: secrets never appear in --list-config or in error messages. */
static void test_spec6_secrets_redacted(void **state) {
  (void)state;
  kefu_config_t *c = kefu_config_new();
  assert_int_equal(set(c, "redis.url", "redis://kefu:urlpw4711@redis.internal:6380/2"), 0);
  assert_int_equal(set(c, "redis.password", "redispw4711"), 0);
  assert_int_equal(set(c, "kafka.sasl.password", "saslpw4711"), 0);
  assert_int_equal(set(c, "kafka.ssl.key.password", "keypw4711"), 0);
  assert_int_equal(set(c, "kafka.sasl.username", "kefu-user"), 0);
  char *text = printed(c);
  assert_null(strstr(text, "4711"));
  assert_non_null(strstr(text, "redis://kefu:***@redis.internal:6380/2"));
  assert_non_null(strstr(text, "[redacted]"));
  assert_non_null(strstr(text, "kefu-user")); /* not a secret */
  assert_non_null(strstr(text, "threshold"));
  free(text);

  assert_int_equal(set(c, "redis.url", "redis://kefu:urlpw4711@redis.internal:bad/2"), -1);
  assert_null(strstr(errbuf, "4711"));
  assert_non_null(strstr(errbuf, "bad port"));
  /* mistyped URLs: no "://" to find the password by */
  assert_int_equal(set(c, "redis.url", "redis:/kefu:urlpw4711@redis.internal:6380"), -1);
  assert_null(strstr(errbuf, "4711"));
  assert_non_null(strstr(errbuf, "***@redis.internal:6380"));
  assert_int_equal(set(c, "redis.url", "kefu:urlpw4711@redis.internal"), -1);
  assert_null(strstr(errbuf, "4711"));
  assert_int_equal(set(c, "kafka.sasl.password", "x"), 0);
  assert_true(kefu_config_is_secret("kafka.sasl.jaas.config"));
  assert_true(kefu_config_is_secret("kafka.ssl.key.pem"));
  assert_true(kefu_config_is_secret("kafka.sasl.oauthbearer.client.secret"));
  assert_true(kefu_config_is_secret("redis.password"));
  assert_false(kefu_config_is_secret("redis.url"));
  assert_false(kefu_config_is_secret("threshold"));
  kefu_config_destroy(c);
}

static void test_redact_url(void **state) {
  (void)state;
  char out[256];
  kefu_config_redact_url("redis://u:p@h:1/0", out, sizeof out);
  assert_string_equal(out, "redis://u:***@h:1/0");
  kefu_config_redact_url("redis://:p@ss@h:1", out, sizeof out);
  assert_string_equal(out, "redis://:***@h:1");
  kefu_config_redact_url("redis://u@h:1/0", out, sizeof out);
  assert_string_equal(out, "redis://u@h:1/0");
  kefu_config_redact_url("redis://h:6379/0", out, sizeof out);
  assert_string_equal(out, "redis://h:6379/0");
}

static void test_redis_endpoint(void **state) {
  (void)state;
  kefu_redis_endpoint_t ep;
  kefu_config_t *c = kefu_config_new();
  assert_int_equal(kefu_config_redis_endpoint(c, &ep, errbuf, sizeof errbuf), 0);
  assert_string_equal(ep.host, "127.0.0.1");
  assert_int_equal(ep.port, 6379);
  assert_int_equal(ep.db, 0);
  assert_string_equal(ep.user, "");
  assert_string_equal(ep.password, "");

  assert_int_equal(set(c, "redis.url", "redis://kefu:p%40ss@cache:7000/3"), 0);
  assert_int_equal(kefu_config_redis_endpoint(c, &ep, errbuf, sizeof errbuf), 0);
  assert_string_equal(ep.host, "cache");
  assert_int_equal(ep.port, 7000);
  assert_int_equal(ep.db, 3);
  assert_string_equal(ep.user, "kefu");
  assert_string_equal(ep.password, "p@ss");

  assert_int_equal(set(c, "redis.password", "override"), 0);
  assert_int_equal(set(c, "redis.user", "ops"), 0);
  assert_int_equal(kefu_config_redis_endpoint(c, &ep, errbuf, sizeof errbuf), 0);
  assert_string_equal(ep.user, "ops");
  assert_string_equal(ep.password, "override");

  assert_int_equal(set(c, "redis.url", "redis://[::1]:6390"), 0);
  assert_int_equal(kefu_config_redis_endpoint(c, &ep, errbuf, sizeof errbuf), 0);
  assert_string_equal(ep.host, "::1");
  assert_int_equal(ep.port, 6390);
  assert_int_equal(set(c, "redis.url", "redis://localhost"), 0);
  assert_int_equal(kefu_config_redis_endpoint(c, &ep, errbuf, sizeof errbuf), 0);
  assert_int_equal(ep.port, 6379);
  assert_int_equal(ep.nseeds, 1);

  /* a Redis Cluster's seeds: any of its nodes, the first one also as host:port */
  assert_int_equal(set(c, "redis.url", "redis://k:p%2Cw@n0:7001,n1:7002,[::1]:7003,n3"), 0);
  assert_int_equal(kefu_config_redis_endpoint(c, &ep, errbuf, sizeof errbuf), 0);
  assert_int_equal(ep.nseeds, 4);
  assert_string_equal(ep.host, "n0");
  assert_int_equal(ep.port, 7001);
  assert_string_equal(ep.seeds[1].host, "n1");
  assert_int_equal(ep.seeds[1].port, 7002);
  assert_string_equal(ep.seeds[2].host, "::1");
  assert_int_equal(ep.seeds[3].port, 6379);
  assert_string_equal(ep.password, "override"); /* redis.password still wins */
  assert_int_not_equal(set(c, "redis.url", "redis://n0:7001,,n1:7002"), 0);
  assert_int_not_equal(set(c, "redis.url", "redis://n0:7001,"), 0);
  assert_int_not_equal(set(c, "redis.url", "redis://n0:7001,n1:x"), 0);
  char many[512] = "redis://n";
  for (int i = 0; i < KEFU_REDIS_MAX_SEEDS; i++)
    strcat(many, ",n");
  assert_int_not_equal(set(c, "redis.url", many), 0);
  kefu_config_destroy(c);
}

/* docs/CONFIG.md is the table's output, byte for byte, so the doc cannot drift.
 * KEFU_UPDATE_DOCS=1 rewrites it instead. */
static void test_docs_config_md_matches_table(void **state) {
  (void)state;
  char path[4096];
  const char *marker = strstr(__FILE__, "tests/unit/");
  assert_non_null(marker);
  snprintf(path, sizeof path, "%.*sdocs/CONFIG.md", (int)(marker - __FILE__), __FILE__);
  char *want = markdown();
  if (getenv("KEFU_UPDATE_DOCS")) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(want, f);
    fclose(f);
  }
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char *have = calloc(1, strlen(want) + 2);
  size_t n = fread(have, 1, strlen(want) + 1, f);
  fclose(f);
  have[n] = '\0';
  bool same = strcmp(have, want) == 0;
  free(have);
  free(want);
  if (!same)
    fail_msg("%s differs from kefu_config_print_markdown(); regenerate it with "
             "KEFU_UPDATE_DOCS=1 tests/test_config",
             path);
}

/* Values to try on a key whose field has C type [t], first to last: the first that the
 * key accepts and that changes the field is used (redis.url needs a URL; a default may
 * equal the first try). */
static const char *const tries[][5] = {
    [KEFU_CONFIG_C_INT] = {"1", "2", NULL},
    [KEFU_CONFIG_C_INT64] = {"1", "2", NULL},
    [KEFU_CONFIG_C_DOUBLE] = {"0.5", "0.25", NULL},
    [KEFU_CONFIG_C_BOOL] = {"false", "true", NULL},
    [KEFU_CONFIG_C_STR] = {"kefu-test", "redis://kefu-test:6380/3", "off", "http://kefu-test:8081",
                           NULL}, /* off: an enum; a URL */
    [KEFU_CONFIG_C_LIST] = {"JT", "ZTO", NULL},
};

/* Whether the fields of type @p t at @p a and @p b hold the same value. */
static bool same_field(kefu_config_ctype_t t, const void *a, const void *b) {
  switch (t) {
  case KEFU_CONFIG_C_INT: return *(const int *)a == *(const int *)b;
  case KEFU_CONFIG_C_INT64: return *(const int64_t *)a == *(const int64_t *)b;
  case KEFU_CONFIG_C_DOUBLE: return *(const double *)a == *(const double *)b;
  case KEFU_CONFIG_C_BOOL: return *(const bool *)a == *(const bool *)b;
  case KEFU_CONFIG_C_STR: return strcmp(*(const char *const *)a, *(const char *const *)b) == 0;
  case KEFU_CONFIG_C_LIST: {
    const char *const *x = *(const char *const *const *)a, *const *y =
                                                               *(const char *const *const *)b;
    for (; *x && *y; x++, y++)
      if (strcmp(*x, *y) != 0)
        return false;
    return !*x && !*y;
  }
  case KEFU_CONFIG_C_NONE: break;
  }
  return true;
}

/* The bound fields of @p a and @p b that differ, as a count; *@p which is the last. */
static int fields_changed(const kefu_config_binding_t *b, size_t n, const kefu_processor_opts_t *a,
                          const kefu_processor_opts_t *o, size_t *which) {
  int changed = 0;
  for (size_t j = 0; j < n; j++) {
    if (b[j].ctype == KEFU_CONFIG_C_NONE)
      continue;
    if (!same_field(b[j].ctype, (const char *)a + b[j].offset, (const char *)o + b[j].offset)) {
      changed++;
      *which = j;
    }
  }
  return changed;
}

/* Whether setting row @p i to one of its tries changes its field, and only its field. */
static bool lands_alone(const kefu_config_binding_t *b, size_t n, size_t i,
                        const kefu_processor_opts_t *def) {
  for (int t = 0; tries[b[i].ctype][t]; t++) {
    kefu_config_t *c = kefu_config_new();
    kefu_cli_options_t st;
    size_t which = n;
    int changed = -1;
    if (set(c, b[i].key, tries[b[i].ctype][t]) == 0) {
      assert_int_equal(kefu_cli_options_init(&st, c, errbuf, sizeof errbuf), 0);
      changed = fields_changed(b, n, def, &st.o, &which);
      kefu_cli_options_clear(&st);
    }
    kefu_config_destroy(c);
    if (changed > 1 || (changed == 1 && which != i))
      fail_msg("%s = %s changed another field too", b[i].key, tries[b[i].ctype][t]);
    if (changed == 1)
      return true;
  }
  return false;
}

/* Every row of the table with a FIELD() lands in that field of kefu_processor_opts_t
 * through kefu_cli_options_init, and in no other; no two rows share a field. */
static void test_spec7_every_bound_key_lands_in_its_field(void **state) {
  (void)state;
  size_t n, bound = 0;
  const kefu_config_binding_t *b = kefu_cli_options_bindings(&n);
  kefu_config_t *c = kefu_config_new();
  kefu_cli_options_t def;
  assert_int_equal(kefu_cli_options_init(&def, c, errbuf, sizeof errbuf), 0);
  for (size_t i = 0; i < n; i++) {
    if (b[i].ctype == KEFU_CONFIG_C_NONE)
      continue;
    bound++;
    for (size_t j = i + 1; j < n; j++)
      if (b[j].ctype != KEFU_CONFIG_C_NONE && b[j].offset == b[i].offset)
        fail_msg("%s and %s share a field", b[i].key, b[j].key);
    if (!lands_alone(b, n, i, &def.o))
      fail_msg("%s: no value tried changed its field", b[i].key);
  }
  assert_true(bound > 0);
  kefu_cli_options_clear(&def);
  kefu_config_destroy(c);
}

/* The compiler refuses a row whose field cannot hold its key (cli/options.c); a binding
 * built any other way is refused by kefu_config_fill, which then writes nothing. */
static void test_spec7_fill_refuses_a_field_that_cannot_hold_the_key(void **state) {
  (void)state;
  kefu_config_t *c = kefu_config_new();
  kefu_processor_opts_t o = {0};
  const size_t escalate = offsetof(kefu_processor_opts_t, params.escalate_after);
  const kefu_config_binding_t bad[][1] = {
      {{"threshold", escalate, KEFU_CONFIG_C_INT}},    /* double key, int field */
      {{"group.id", escalate, KEFU_CONFIG_C_INT}},     /* string key */
      {{"idle_advance", escalate, KEFU_CONFIG_C_INT}}, /* bool key */
      {{"logistics_couriers", offsetof(kefu_processor_opts_t, redis.user), KEFU_CONFIG_C_STR}},
      {{"no.such.key", escalate, KEFU_CONFIG_C_INT}},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    errbuf[0] = '\0';
    assert_int_equal(kefu_config_fill(c, &o, bad[i], 1, errbuf, sizeof errbuf), -1);
    assert_non_null(strstr(errbuf, bad[i][0].key));
  }
  assert_int_equal(o.params.escalate_after, 0);
  assert_null(o.redis.user);
  /* An enum may land in a string field: its canonical symbol. */
  const kefu_config_binding_t level = {"log.level", offsetof(kefu_processor_opts_t, redis.user),
                                       KEFU_CONFIG_C_STR};
  assert_int_equal(kefu_config_fill(c, &o, &level, 1, errbuf, sizeof errbuf), 0);
  assert_string_equal(o.redis.user, "info");
  kefu_config_destroy(c);
}

/* The keys kefu_cli_options_init maps by hand: processing.guarantee (SPEC §5) becomes
 * exactly_once, an empty instance.id becomes hostname-pid, kafka.* pairs pass through. */
static void test_spec7_options_the_table_cannot_express(void **state) {
  (void)state;
  kefu_config_t *c = kefu_config_new();
  kefu_cli_options_t st;
  char pid[32];
  assert_int_equal(kefu_cli_options_init(&st, c, errbuf, sizeof errbuf), 0);
  assert_true(st.o.exactly_once);
  snprintf(pid, sizeof pid, "-%d", (int)getpid());
  assert_true(strlen(st.o.instance_id) > strlen(pid));
  assert_string_equal(st.o.instance_id + strlen(st.o.instance_id) - strlen(pid), pid);
  assert_int_equal(st.o.nkafka_props, 0);
  kefu_cli_options_clear(&st);
  assert_int_equal(set(c, "processing.guarantee", "AT_LEAST_ONCE"), 0);
  assert_int_equal(set(c, "kafka.linger.ms", "5"), 0);
  assert_int_equal(kefu_cli_options_init(&st, c, errbuf, sizeof errbuf), 0);
  assert_false(st.o.exactly_once);
  assert_int_equal(st.o.nkafka_props, 1);
  assert_string_equal(st.o.kafka_props[0], "linger.ms=5");
  kefu_cli_options_clear(&st);
  kefu_config_destroy(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spec7_defaults),
      cmocka_unit_test(test_spec7_precedence_file_env_set),
      cmocka_unit_test(test_spec7_file_syntax),
      cmocka_unit_test(test_spec7_file_errors_name_file_and_line),
      cmocka_unit_test(test_validation_numbers),
      cmocka_unit_test(test_rate6_threshold_at_most_4_decimals),
      cmocka_unit_test(test_validation_enum_bool_list),
      cmocka_unit_test(test_validation_strings),
      cmocka_unit_test(test_accessor_misuse_returns_zero_values),
      cmocka_unit_test(test_kafka_passthrough),
      cmocka_unit_test(test_spec7_env_name_mapping),
      cmocka_unit_test(test_spec7_every_key_has_a_working_env_name),
      cmocka_unit_test(test_spec6_secrets_redacted),
      cmocka_unit_test(test_redact_url),
      cmocka_unit_test(test_redis_endpoint),
      cmocka_unit_test(test_docs_config_md_matches_table),
      cmocka_unit_test(test_spec7_every_bound_key_lands_in_its_field),
      cmocka_unit_test(test_spec7_fill_refuses_a_field_that_cannot_hold_the_key),
      cmocka_unit_test(test_spec7_options_the_table_cannot_express),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
