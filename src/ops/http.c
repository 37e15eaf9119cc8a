/* The operations HTTP endpoint: /metrics, /healthz, /readyz on libmicrohttpd.
 *
 * We bind the listening socket ourselves and hand it to libmicrohttpd
 * (MHD_OPTION_LISTEN_SOCKET): that way a failure says which address and why ("Address
 * already in use"), and getsockname() tells which port "port 0" picked.
 *
 * The processor and the HTTP thread share only four things, all safe without the
 * processor ever blocking: the last heartbeat (an atomic timestamp), the ready flag (an
 * atomic), the not-ready reason (a short string under a mutex, written rarely) and a
 * hold with its own reason. The hold is apart from the flag because the loop sets the
 * flag ready after every batch that goes through, while a hold (records waiting for the
 * Schema Registry) lasts across batches of the other tasks until its owner releases it.
 * Liveness uses CLOCK_MONOTONIC so that a wall-clock jump cannot fail /healthz.
 */
#include "ops/http.h"

#include "ops/log.h"
#include "ops/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_HEARTBEAT_TIMEOUT_MS 30000
#define DEFAULT_BUSY_LIMIT_MS 10000

static struct MHD_Daemon *http_daemon; /* touched only by start/stop (the main thread) */
static int http_port;
static _Atomic long long last_heartbeat_ms;
static _Atomic int heartbeat_timeout_ms = DEFAULT_HEARTBEAT_TIMEOUT_MS;
static _Atomic bool is_ready;
/* Per step kind (kefu_http_busy_step): when it started; 0: none under way. */
static _Atomic long long busy_since_ms[KEFU_HTTP_BUSY_STEPS];
static _Atomic int busy_limit_ms = DEFAULT_BUSY_LIMIT_MS;
static pthread_mutex_t reason_lock = PTHREAD_MUTEX_INITIALIZER;
static char not_ready_reason[256] = "starting";
static _Atomic bool is_held;  /* kefu_http_hold: not ready whatever is_ready says */
static char hold_reason[256]; /* under reason_lock */

static long long monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------------------- */
/* Shared state                                                                        */

void kefu_http_heartbeat(void) {
  atomic_store_explicit(&last_heartbeat_ms, monotonic_ms(), memory_order_relaxed);
}

void kefu_http_set_heartbeat_timeout(int ms) {
  atomic_store(&heartbeat_timeout_ms, ms > 0 ? ms : DEFAULT_HEARTBEAT_TIMEOUT_MS);
}

void kefu_http_busy_step(int step, bool busy) {
  if (step >= 0 && step < KEFU_HTTP_BUSY_STEPS)
    atomic_store_explicit(&busy_since_ms[step], busy ? monotonic_ms() : 0, memory_order_relaxed);
}

void kefu_http_busy(bool busy) {
  kefu_http_busy_step(0, busy);
}

/* How long the oldest step under way has lasted (ms); 0 when none is. */
static long long busy_for(void) {
  long long now = monotonic_ms(), longest = 0;
  for (int i = 0; i < KEFU_HTTP_BUSY_STEPS; i++) {
    long long since = atomic_load(&busy_since_ms[i]);
    if (since && now - since > longest)
      longest = now - since;
  }
  return longest;
}

void kefu_http_set_busy_limit(int ms) {
  atomic_store(&busy_limit_ms, ms > 0 ? ms : DEFAULT_BUSY_LIMIT_MS);
}

void kefu_http_set_ready(bool ready, const char *reason) {
  if (!ready) {
    pthread_mutex_lock(&reason_lock);
    snprintf(not_ready_reason, sizeof not_ready_reason, "%s",
             reason && *reason ? reason : "not ready");
    pthread_mutex_unlock(&reason_lock);
  }
  atomic_store(&is_ready, ready);
}

void kefu_http_hold(const char *reason) {
  if (reason) {
    pthread_mutex_lock(&reason_lock);
    snprintf(hold_reason, sizeof hold_reason, "%s", *reason ? reason : "held");
    pthread_mutex_unlock(&reason_lock);
  }
  atomic_store(&is_held, reason != NULL);
}

/* ---------------------------------------------------------------------------------- */
/* Requests                                                                            */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, char *body, size_t len,
                               enum MHD_ResponseMemoryMode mode, const char *content_type) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
  if (!resp) {
    if (mode == MHD_RESPMEM_MUST_FREE)
      free(body);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  enum MHD_Result rc = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return rc;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned status, const char *fmt,
                                    ...) __attribute__((format(printf, 3, 4)));

/* A short text/plain answer, formatted into a buffer libmicrohttpd frees. */
static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned status, const char *fmt,
                                    ...) {
  char *body = NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&body, fmt, ap);
  va_end(ap);
  if (n < 0)
    return MHD_NO;
  return respond(conn, status, body, (size_t)n, MHD_RESPMEM_MUST_FREE, "text/plain; charset=utf-8");
}

/* What /readyz answers: true when ready, else false with the reason in @p reason. One
 * function for /readyz and the kefu_ready gauge, so that the two never disagree. */
static bool readiness(char *reason, size_t len) {
  long long busy = busy_for();
  if (atomic_load(&is_held)) { /* first: the ready flag may say ready meanwhile */
    pthread_mutex_lock(&reason_lock);
    snprintf(reason, len, "%s", hold_reason);
    pthread_mutex_unlock(&reason_lock);
    return false;
  }
  if (atomic_load(&is_ready) && busy > atomic_load(&busy_limit_ms)) {
    snprintf(reason, len, "a batch has been waiting on Kafka or Redis for %lld ms", busy);
    return false;
  }
  if (atomic_load(&is_ready))
    return true;
  pthread_mutex_lock(&reason_lock);
  snprintf(reason, len, "%s", not_ready_reason);
  pthread_mutex_unlock(&reason_lock);
  return false;
}

/* kefu_ready is set from readiness() at each scrape rather than by the processor: the
 * busy limit makes an instance not ready without any call from it. */
static enum MHD_Result serve_metrics(struct MHD_Connection *conn) {
  size_t len;
  char reason[sizeof not_ready_reason + 64];
  kefu_metric_set(kefu_metrics_gauge("kefu_ready", "1 when /readyz answers 200, else 0", NULL),
                  readiness(reason, sizeof reason) ? 1 : 0);
  char *text = kefu_metrics_render(&len);
  if (!text)
    return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
  return respond(conn, MHD_HTTP_OK, text, len, MHD_RESPMEM_MUST_FREE,
                 "text/plain; version=0.0.4; charset=utf-8");
}

static enum MHD_Result serve_healthz(struct MHD_Connection *conn) {
  long long age = monotonic_ms() - atomic_load(&last_heartbeat_ms);
  if (age > atomic_load(&heartbeat_timeout_ms))
    return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                        "stalled: no heartbeat from the processor loop for %lld ms\n", age);
  return respond_text(conn, MHD_HTTP_OK, "ok\n");
}

static enum MHD_Result serve_readyz(struct MHD_Connection *conn) {
  char reason[sizeof not_ready_reason + 64];
  if (readiness(reason, sizeof reason))
    return respond_text(conn, MHD_HTTP_OK, "ready\n");
  return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: %s\n", reason);
}

static enum MHD_Result handle_request(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls) {
  (void)cls, (void)version, (void)upload_data, (void)upload_data_size, (void)con_cls;
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
    return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
  if (strcmp(url, "/metrics") == 0)
    return serve_metrics(conn);
  if (strcmp(url, "/healthz") == 0)
    return serve_healthz(conn);
  if (strcmp(url, "/readyz") == 0)
    return serve_readyz(conn);
  return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* ---------------------------------------------------------------------------------- */
/* Start and stop                                                                      */

int kefu_http_parse_listen(const char *listen, char *host, size_t hostlen, int *port, char *errstr,
                           size_t errlen) {
  const char *colon, *hstart = listen;
  size_t hlen;
  if (listen[0] == '[') { /* [v6addr]:port */
    const char *close = strchr(listen, ']');
    colon = close && close[1] == ':' ? close + 1 : NULL;
    hstart = listen + 1;
    hlen = close ? (size_t)(close - hstart) : 0;
  } else {
    colon = strrchr(listen, ':');
    hlen = colon ? (size_t)(colon - listen) : 0;
    if (colon && memchr(listen, ':', hlen)) /* a bare v6 address needs brackets */
      colon = NULL;
  }
  char *end;
  long p = colon ? strtol(colon + 1, &end, 10) : -1;
  if (!colon || hlen == 0 || hlen >= hostlen || !colon[1] || *end || p < 0 || p > 65535) {
    snprintf(errstr, errlen, "\"%s\": expected host:port or [v6addr]:port, port 0..65535", listen);
    return -1;
  }
  memcpy(host, hstart, hlen);
  host[hlen] = '\0';
  *port = (int)p;
  return 0;
}

/* A listening TCP socket on @p host:@p port, or -1 with errstr. */
static int listen_socket(const char *host, int port, char *errstr, size_t errlen) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
  struct addrinfo *ai = NULL;
  char service[8];
  int fd = -1, one = 1, rc;
  snprintf(service, sizeof service, "%d", port);
  if ((rc = getaddrinfo(host, service, &hints, &ai)) != 0) {
    snprintf(errstr, errlen, "http.listen %s: %s", host, gai_strerror(rc));
    return -1;
  }
  fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
    snprintf(errstr, errlen, "http.listen %s:%d: %s", host, port, strerror(errno));
    if (fd >= 0)
      close(fd);
    fd = -1;
  }
  freeaddrinfo(ai);
  return fd;
}

static int bound_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
    return 0;
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int kefu_http_start(const char *listen, char *errstr, size_t errlen) {
  char host[256];
  int port, fd;
  if (http_daemon) {
    snprintf(errstr, errlen, "the HTTP endpoint is already running");
    return -1;
  }
  kefu_http_heartbeat(); /* the loop gets a full timeout to send its first beat */
  kefu_http_set_ready(false, "starting");
  if (!listen || !*listen)
    return 0;
  if (kefu_http_parse_listen(listen, host, sizeof host, &port, errstr, errlen) != 0)
    return -1;
  if ((fd = listen_socket(host, port, errstr, errlen)) < 0)
    return -1;
  http_port = bound_port(fd);
  /* MHD owns fd from here and closes it in MHD_stop_daemon(). */
  http_daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
                                 handle_request, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
                                 MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_CONNECTION_LIMIT,
                                 64u, MHD_OPTION_END);
  if (!http_daemon) {
    close(fd);
    http_port = 0;
    snprintf(errstr, errlen, "http.listen %s: libmicrohttpd could not start", listen);
    return -1;
  }
  KEFU_INFO("http", "serving /metrics, /healthz, /readyz on %s (port %d)", listen, http_port);
  return 0;
}

void kefu_http_stop(void) {
  if (!http_daemon)
    return;
  MHD_stop_daemon(http_daemon);
  http_daemon = NULL;
  http_port = 0;
}

int kefu_http_port(void) {
  return http_port;
}
