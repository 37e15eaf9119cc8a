/* The metrics registry and the operations HTTP endpoint (SPEC §8): Prometheus text
 * format, cumulative histogram buckets, updates from many threads, and /metrics,
 * /healthz, /readyz served on a free port and read with a plain socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ops/http.h"
#include "ops/log.h"
#include "ops/metrics.h"

static int reset_registry(void **state) {
  (void)state;
  kefu_metrics_reset();
  return 0;
}

/* Number of lines of @p text equal to @p line. */
static int count_lines(const char *text, const char *line) {
  int n = 0;
  size_t len = strlen(line);
  for (const char *p = text; (p = strstr(p, line)) != NULL; p += len)
    if ((p == text || p[-1] == '\n') && p[len] == '\n')
      n++;
  return n;
}

/* The value of the sample line starting with @p series (name and labels), or -1. */
static double sample(const char *text, const char *series) {
  size_t len = strlen(series);
  for (const char *p = text; (p = strstr(p, series)) != NULL; p += len)
    if ((p == text || p[-1] == '\n') && p[len] == ' ')
      return strtod(p + len + 1, NULL);
  return -1;
}

/* Every line is a comment (# HELP/# TYPE) or `name[{labels}] value`, and each family's
 * HELP and TYPE come once, before its samples. */
static void assert_exposition_format(const char *text) {
  char *copy = strdup(text), *save = NULL;
  char family[128] = "";
  assert_true(text[0] == '\0' || text[strlen(text) - 1] == '\n');
  for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char name[128], type[32];
    if (sscanf(line, "# HELP %127s", name) == 1) {
      assert_int_equal(count_lines(text, line), 1);
      snprintf(family, sizeof family, "%s", name);
      continue;
    }
    if (sscanf(line, "# TYPE %127s %31s", name, type) == 2) {
      assert_string_equal(name, family);
      assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                  strcmp(type, "histogram") == 0);
      continue;
    }
    size_t n = strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:");
    assert_true(n > 0);
    assert_memory_equal(line, family, strlen(family)); /* a sample of the current family */
    const char *rest = line + n;
    if (*rest == '{') {
      rest = strchr(rest, '}');
      assert_non_null(rest);
      rest++;
    }
    assert_true(*rest == ' ');
    char *end;
    strtod(rest + 1, &end);
    assert_true(end > rest + 1 && *end == '\0');
  }
  free(copy);
}

static void test_spec8_counters_and_gauges_render(void **state) {
  (void)state;
  kefu_metric_t *chat =
      kefu_metrics_counter("kefu_records_in_total", "Records read.", "topic=\"kefu.chat.events\"");
  kefu_metric_t *order =
      kefu_metrics_counter("kefu_records_in_total", "Records read.", "topic=\"kefu.order.events\"");
  kefu_metric_t *lag = kefu_metrics_gauge("kefu_consumer_lag", "Lag\\in records\nper partition.",
                                          "topic=\"kefu.chat.events\",partition=\"0\"");
  kefu_metric_t *plain = kefu_metrics_counter("kefu_rebalances_total", "Rebalances.", NULL);
  assert_non_null(chat);
  assert_ptr_equal(chat, kefu_metrics_counter("kefu_records_in_total", "other help",
                                              "topic=\"kefu.chat.events\""));
  assert_ptr_not_equal(chat, order);
  kefu_metric_add(chat, 3);
  kefu_metric_add(chat, 0.5);
  kefu_metric_add(chat, -10); /* counters never go down */
  kefu_metric_add(order, 1);
  kefu_metric_set(lag, 42);
  kefu_metric_add(lag, -2);
  kefu_metric_add(plain, 1);
  assert_true(kefu_metric_value(chat) == 3.5);
  assert_true(kefu_metric_value(lag) == 40);

  char *text = kefu_metrics_render(NULL);
  assert_non_null(text);
  assert_exposition_format(text);
  assert_int_equal(count_lines(text, "# HELP kefu_records_in_total Records read."), 1);
  assert_int_equal(count_lines(text, "# TYPE kefu_records_in_total counter"), 1);
  assert_int_equal(count_lines(text, "kefu_records_in_total{topic=\"kefu.chat.events\"} 3.5"), 1);
  assert_int_equal(count_lines(text, "kefu_records_in_total{topic=\"kefu.order.events\"} 1"), 1);
  assert_int_equal(count_lines(text, "# HELP kefu_consumer_lag Lag\\\\in records\\nper partition."),
                   1);
  assert_int_equal(count_lines(text, "# TYPE kefu_consumer_lag gauge"), 1);
  assert_true(sample(text, "kefu_consumer_lag{topic=\"kefu.chat.events\",partition=\"0\"}") == 40);
  assert_int_equal(count_lines(text, "kefu_rebalances_total 1"), 1);
  free(text);
}

static void test_registration_errors_are_harmless(void **state) {
  (void)state;
  kefu_log_level_t saved = kefu_log_min_level;
  kefu_log_min_level = KEFU_LOG_ERROR + 1; /* the errors below are expected */
  assert_non_null(kefu_metrics_counter("kefu_x_total", "x", NULL));
  assert_null(kefu_metrics_gauge("kefu_x_total", "x", NULL)); /* another type */
  assert_null(kefu_metrics_counter("9bad", "x", NULL));
  assert_null(kefu_metrics_counter("bad-name", "x", NULL));
  assert_null(kefu_metrics_counter("kefu_y_total", "x", "{topic=\"a\"}"));
  static const double descending[] = {1, 0.5};
  assert_null(kefu_metrics_histogram("kefu_h", "h", NULL, descending, 2));
  kefu_log_min_level = saved;
  kefu_metric_add(NULL, 1); /* a failed registration never crashes an update */
  kefu_metric_set(NULL, 1);
  kefu_histogram_observe(NULL, 1);
  assert_true(kefu_metric_value(NULL) == 0);
  assert_int_equal(kefu_histogram_count(NULL), 0);
}

static void test_spec8_histogram_buckets_are_cumulative(void **state) {
  (void)state;
  static const double bounds[] = {0.1, 0.5, 1};
  kefu_histogram_t *h = kefu_metrics_histogram("kefu_redis_latency_seconds", "Redis call latency.",
                                               "op=\"apply\"", bounds, 3);
  kefu_histogram_t *plain =
      kefu_metrics_histogram("kefu_batch_latency_seconds", "Batch latency.", NULL,
                             kefu_metrics_buckets_short, kefu_metrics_buckets_short_n);
  assert_non_null(h);
  assert_ptr_equal(
      h, kefu_metrics_histogram("kefu_redis_latency_seconds", "", "op=\"apply\"", bounds, 3));
  kefu_histogram_observe(h, 0.05);
  kefu_histogram_observe(h, 0.1); /* le is inclusive */
  kefu_histogram_observe(h, 0.3);
  kefu_histogram_observe(h, 2);
  kefu_histogram_observe(plain, 0.0001);
  assert_int_equal(kefu_histogram_count(h), 4);

  char *text = kefu_metrics_render(NULL);
  assert_exposition_format(text);
  assert_int_equal(count_lines(text, "# TYPE kefu_redis_latency_seconds histogram"), 1);
  assert_true(sample(text, "kefu_redis_latency_seconds_bucket{op=\"apply\",le=\"0.1\"}") == 2);
  assert_true(sample(text, "kefu_redis_latency_seconds_bucket{op=\"apply\",le=\"0.5\"}") == 3);
  assert_true(sample(text, "kefu_redis_latency_seconds_bucket{op=\"apply\",le=\"1\"}") == 3);
  assert_true(sample(text, "kefu_redis_latency_seconds_bucket{op=\"apply\",le=\"+Inf\"}") == 4);
  assert_true(sample(text, "kefu_redis_latency_seconds_sum{op=\"apply\"}") == 2.45);
  assert_true(sample(text, "kefu_redis_latency_seconds_count{op=\"apply\"}") == 4);
  assert_true(sample(text, "kefu_batch_latency_seconds_bucket{le=\"0.0005\"}") == 1);
  assert_true(sample(text, "kefu_batch_latency_seconds_bucket{le=\"+Inf\"}") == 1);
  assert_true(sample(text, "kefu_batch_latency_seconds_count") == 1);
  /* +Inf comes last, after the finite bounds in ascending order */
  assert_true(strstr(text, "le=\"1\"") < strstr(text, "op=\"apply\",le=\"+Inf\""));
  free(text);
}

static void test_long_buckets_ascend(void **state) {
  (void)state;
  for (int i = 1; i < kefu_metrics_buckets_long_n; i++)
    assert_true(kefu_metrics_buckets_long[i] > kefu_metrics_buckets_long[i - 1]);
  assert_non_null(kefu_metrics_histogram("kefu_event_to_output_latency_seconds", "e2e", NULL,
                                         kefu_metrics_buckets_long, kefu_metrics_buckets_long_n));
}

/* Redis round trips of a local server take tens of µs: the buckets start at 100 µs and a
 * 300 µs observation lands in le="0.0005", not in the first ms bucket. */
static void test_spec8_redis_buckets_are_sub_millisecond(void **state) {
  (void)state;
  for (int i = 1; i < kefu_metrics_buckets_redis_n; i++)
    assert_true(kefu_metrics_buckets_redis[i] > kefu_metrics_buckets_redis[i - 1]);
  assert_true(kefu_metrics_buckets_redis[0] <= 0.0001);
  assert_true(kefu_metrics_buckets_redis[kefu_metrics_buckets_redis_n - 1] >= 10);
  kefu_histogram_t *h = kefu_metrics_histogram(
      "kefu_redis_seconds", "r", NULL, kefu_metrics_buckets_redis, kefu_metrics_buckets_redis_n);
  kefu_histogram_observe(h, 0.0003);
  char *text = kefu_metrics_render(NULL);
  assert_int_equal(sample(text, "kefu_redis_seconds_bucket{le=\"0.00025\"}"), 0);
  assert_int_equal(sample(text, "kefu_redis_seconds_bucket{le=\"0.0005\"}"), 1);
  assert_int_equal(sample(text, "kefu_redis_seconds_bucket{le=\"0.0001\"}"), 0);
  assert_true(sample(text, "kefu_redis_seconds_sum") == 0.0003);
  assert_exposition_format(text);
  free(text);
}

/* A rank slot keeps its series while its shop changes: the family has as many series as
 * were registered (bounded cardinality), each rendered with its current labels. */
static void test_spec8_relabel_keeps_the_series_count(void **state) {
  (void)state;
  kefu_metric_t *m =
      kefu_metrics_gauge("kefu_queue_length_top", "q", "task=\"3\",rank=\"1\",shop=\"s42\"");
  kefu_metric_set(m, 5);
  assert_int_equal(kefu_metric_relabel(m, "task=\"3\",rank=\"1\",shop=\"s7\""), 0);
  kefu_metric_set(m, 9);
  char *text = kefu_metrics_render(NULL);
  assert_int_equal(sample(text, "kefu_queue_length_top{task=\"3\",rank=\"1\",shop=\"s7\"}"), 9);
  assert_null(strstr(text, "s42"));
  assert_exposition_format(text);
  free(text);
  /* Registering the new label set finds the same series; bad labels change nothing. */
  assert_ptr_equal(
      kefu_metrics_gauge("kefu_queue_length_top", "q", "task=\"3\",rank=\"1\",shop=\"s7\""), m);
  kefu_log_level_t saved = kefu_log_min_level;
  kefu_log_min_level = KEFU_LOG_ERROR + 1;
  assert_int_equal(kefu_metric_relabel(m, "shop=\"a}\""), -1);
  assert_int_equal(kefu_metric_relabel(NULL, "shop=\"a\""), -1);
  kefu_log_min_level = saved;
  text = kefu_metrics_render(NULL);
  assert_int_equal(sample(text, "kefu_queue_length_top{task=\"3\",rank=\"1\",shop=\"s7\"}"), 9);
  free(text);
}

#define THREADS 4
#define ADDS 100000

static void *hammer(void *arg) {
  kefu_histogram_t *h = kefu_metrics_histogram(
      "kefu_t_seconds", "t", NULL, kefu_metrics_buckets_short, kefu_metrics_buckets_short_n);
  for (int i = 0; i < ADDS; i++) {
    kefu_metric_add(arg, 1);
    kefu_histogram_observe(h, 0.001);
  }
  return NULL;
}

/* Updates from several threads lose nothing while another thread renders. */
static void test_concurrent_updates(void **state) {
  (void)state;
  pthread_t t[THREADS];
  kefu_metric_t *m = kefu_metrics_counter("kefu_t_total", "t", NULL);
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, hammer, m), 0);
  for (int i = 0; i < 20; i++)
    free(kefu_metrics_render(NULL));
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  assert_true(kefu_metric_value(m) == THREADS * ADDS);
  char *text = kefu_metrics_render(NULL);
  assert_true(sample(text, "kefu_t_seconds_count") == THREADS * ADDS);
  free(text);
}

/* ---------------------------------------------------------------------------------- */
/* HTTP                                                                                */

typedef struct reply {
  int status;
  char *head; /* status line and headers, in raw */
  char *body; /* in raw */
  char raw[65536];
} reply_t;

/* One HTTP/1.0 request to 127.0.0.1:@p port; the server closes after answering. */
static void http_request(int port, const char *method, const char *path, reply_t *r) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  char req[256];
  size_t len = 0;
  ssize_t n;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: localhost\r\n\r\n", method, path);
  assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
  while ((n = read(fd, r->raw + len, sizeof r->raw - 1 - len)) > 0)
    len += (size_t)n;
  close(fd);
  r->raw[len] = '\0';
  char *sep = strstr(r->raw, "\r\n\r\n");
  assert_non_null(sep);
  *sep = '\0';
  r->head = r->raw;
  r->body = sep + 4;
  assert_int_equal(sscanf(r->head, "HTTP/1.%*d %d", &r->status), 1);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int stop_http(void **state) {
  (void)state;
  kefu_http_stop();
  kefu_http_set_heartbeat_timeout(0);
  return 0;
}

/* kefu_ready is what /readyz answers at the same moment (SPEC §8). */
static void assert_ready_gauge(int port, double want) {
  static reply_t m;
  http_request(port, "GET", "/metrics", &m);
  assert_int_equal(m.status, 200);
  assert_true(sample(m.body, "kefu_ready") == want);
}

static void test_spec8_http_endpoints(void **state) {
  (void)state;
  static reply_t r;
  char err[256];
  kefu_log_level_t saved = kefu_log_min_level;
  kefu_log_min_level = KEFU_LOG_WARN; /* no "serving on" line in the test output */
  assert_int_equal(kefu_http_start("127.0.0.1:0", err, sizeof err), 0);
  kefu_log_min_level = saved;
  int port = kefu_http_port();
  assert_true(port > 0);

  kefu_metric_add(kefu_metrics_counter("kefu_dlq_records_total", "DLQ records.", NULL), 7);
  http_request(port, "GET", "/metrics", &r);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.head, "text/plain; version=0.0.4"));
  assert_int_equal(count_lines(r.body, "kefu_dlq_records_total 7"), 1);
  assert_exposition_format(r.body);

  http_request(port, "GET", "/healthz", &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "ok\n");
  kefu_http_set_heartbeat_timeout(50);
  sleep_ms(120);
  http_request(port, "GET", "/healthz", &r);
  assert_int_equal(r.status, 503);
  kefu_http_heartbeat();
  http_request(port, "GET", "/healthz", &r);
  assert_int_equal(r.status, 200);

  http_request(port, "GET", "/readyz", &r);
  assert_int_equal(r.status, 503);
  assert_non_null(strstr(r.body, "starting"));
  assert_ready_gauge(port, 0);
  kefu_http_set_ready(false, "redis unavailable");
  http_request(port, "GET", "/readyz", &r);
  assert_int_equal(r.status, 503);
  assert_string_equal(r.body, "not ready: redis unavailable\n");
  kefu_http_set_ready(true, NULL);
  http_request(port, "GET", "/readyz", &r);
  assert_int_equal(r.status, 200);
  assert_ready_gauge(port, 1);
  /* A batch blocked on Kafka or Redis past the busy limit is not ready, even though
   * nothing failed yet (SPEC §6: a transaction commit blocked by a broker outage). */
  kefu_http_set_busy_limit(600000);
  kefu_http_busy(true);
  http_request(port, "GET", "/readyz", &r);
  assert_int_equal(r.status, 200); /* within the limit: normal work */
  kefu_http_set_busy_limit(1);
  sleep_ms(20);
  http_request(port, "GET", "/readyz", &r);
  assert_int_equal(r.status, 503);
  assert_non_null(strstr(r.body, "waiting on Kafka or Redis"));
  assert_ready_gauge(port, 0); /* the busy limit alone: no call from the processor */
  kefu_http_busy(false);
  assert_ready_gauge(port, 1);
  http_request(port, "GET", "/readyz", &r);
  assert_int_equal(r.status, 200);
  kefu_http_set_busy_limit(0);
  kefu_http_heartbeat();

  http_request(port, "GET", "/nothing", &r);
  assert_int_equal(r.status, 404);
  http_request(port, "POST", "/metrics", &r);
  assert_int_equal(r.status, 405);
  http_request(port, "HEAD", "/healthz", &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "");

  assert_int_equal(kefu_http_start("127.0.0.1:0", err, sizeof err), -1); /* one per process */
  kefu_http_stop();
  assert_int_equal(kefu_http_port(), 0);
}

static void test_spec8_http_start_errors(void **state) {
  (void)state;
  char err[256];
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t len = sizeof sa;
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(fd, 1), 0);
  getsockname(fd, (struct sockaddr *)&sa, &len);
  char busy[64];
  snprintf(busy, sizeof busy, "127.0.0.1:%d", ntohs(sa.sin_port));
  assert_int_equal(kefu_http_start(busy, err, sizeof err), -1);
  assert_non_null(strstr(err, "in use"));
  close(fd);
  assert_int_equal(kefu_http_start("nonsense", err, sizeof err), -1);
  assert_int_equal(kefu_http_start("", err, sizeof err), 0); /* disabled */
  assert_int_equal(kefu_http_port(), 0);

  /* the port is free again after a stop: the listening socket was closed */
  kefu_log_level_t saved = kefu_log_min_level;
  kefu_log_min_level = KEFU_LOG_WARN;
  assert_int_equal(kefu_http_start("127.0.0.1:0", err, sizeof err), 0);
  int port = kefu_http_port();
  kefu_http_stop();
  snprintf(busy, sizeof busy, "127.0.0.1:%d", port);
  assert_int_equal(kefu_http_start(busy, err, sizeof err), 0);
  kefu_log_min_level = saved;
  kefu_http_stop();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_spec8_counters_and_gauges_render, reset_registry),
      cmocka_unit_test_setup(test_registration_errors_are_harmless, reset_registry),
      cmocka_unit_test_setup(test_spec8_histogram_buckets_are_cumulative, reset_registry),
      cmocka_unit_test_setup(test_long_buckets_ascend, reset_registry),
      cmocka_unit_test_setup(test_spec8_redis_buckets_are_sub_millisecond, reset_registry),
      cmocka_unit_test_setup(test_spec8_relabel_keeps_the_series_count, reset_registry),
      cmocka_unit_test_setup(test_concurrent_updates, reset_registry),
      cmocka_unit_test_setup_teardown(test_spec8_http_endpoints, reset_registry, stop_http),
      cmocka_unit_test_teardown(test_spec8_http_start_errors, stop_http),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
