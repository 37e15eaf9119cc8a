/* The operations HTTP endpoint (SPEC §8), on libmicrohttpd's own thread:
 *   /metrics  the metrics registry in Prometheus text format 0.0.4
 *   /healthz  200 "ok" while the processor loop is alive (it calls kefu_http_heartbeat()
 *             at least every heartbeat timeout, 30 s by default), else 503
 *   /readyz   200 "ready" once the processor called kefu_http_set_ready(true, ...) and
 *             holds nothing (kefu_http_hold), else 503 with the reason given
 *             ("starting", "redis unavailable", "waiting for the schema registry"...)
 *   anything else 404; methods other than GET and HEAD 405.
 *
 * One server per process (like the metrics registry). The heartbeat and readiness
 * setters may be called from any thread at any time, also when no server runs: they only
 * store a timestamp or a flag.
 */
#ifndef KEFU_OPS_HTTP_H
#define KEFU_OPS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/** @brief Starts serving on @p listen ("host:port", "[v6addr]:port"; port 0 picks a
 *  free port, see kefu_http_port()). An empty @p listen disables the endpoint: returns 0
 *  and serves nothing. Readiness starts as false with reason "starting"; the heartbeat
 *  clock starts now.
 *  @returns 0, or -1 with @p errstr (bad address, port in use, already started). */
int kefu_http_start(const char *listen, char *errstr, size_t errlen);

/** @brief Stops the server and waits for its thread; a no-op when none runs. */
void kefu_http_stop(void);

/** @brief The TCP port the server is bound to, or 0 when none runs. */
int kefu_http_port(void);

/** @brief Records that the processor loop is alive. @locality any thread (an atomic
 *  store: cheap enough to call once per poll). */
void kefu_http_heartbeat(void);

/** @brief /healthz fails once the last heartbeat is older than @p ms (default 30000;
 *  tests shorten it). */
void kefu_http_set_heartbeat_timeout(int ms);

/** @brief Marks the start (true) or end (false) of a step that may block on Kafka or
 *  Redis (one attempt at a batch). While one has lasted longer than the busy limit,
 *  /readyz answers 503 even when ready: a transaction commit blocked by a broker outage
 *  cannot say so itself. @locality any thread. */
void kefu_http_busy(bool busy);

/* Steps of different threads are kept apart: the loop's (0, kefu_http_busy) and the
 * committer's (1), so one ending does not hide the other. */
#define KEFU_HTTP_BUSY_STEPS 2

/** @brief kefu_http_busy for step kind @p step (0 .. KEFU_HTTP_BUSY_STEPS - 1). */
void kefu_http_busy_step(int step, bool busy);

/** @brief The busy limit of kefu_http_busy (default 10000 ms; <= 0 restores it). */
void kefu_http_set_busy_limit(int ms);

/** @brief Sets what /readyz answers: ready, or not ready because of @p reason (copied;
 *  may be NULL; ignored when ready). @locality any thread. */
void kefu_http_set_ready(bool ready, const char *reason);

/** @brief Holds /readyz at 503 with @p reason (copied), and kefu_ready at 0, whatever
 *  kefu_http_set_ready says meanwhile, until kefu_http_hold(NULL) releases it: for a
 *  condition that outlasts the batches that set the ready flag (records waiting for the
 *  Schema Registry while other tasks go on). @locality any thread. */
void kefu_http_hold(const char *reason);

/** @brief Splits @p listen ("host:port" or "[v6addr]:port", port 0..65535) into
 *  @p host (without brackets) and @p port. Also used by config.c to validate
 *  http.listen. @returns 0, or -1 with @p errstr. */
int kefu_http_parse_listen(const char *listen, char *host, size_t hostlen, int *port, char *errstr,
                           size_t errlen);

#endif
