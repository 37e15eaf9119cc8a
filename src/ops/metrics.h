/* The process's Prometheus metrics registry (SPEC §8).
 *
 * One registry per process. Code registers a series once (at start, or the first time it
 * meets a topic/partition) and keeps the returned pointer; updating it afterwards is a
 * lock-free atomic operation, so the processor thread never waits for the HTTP thread
 * rendering /metrics. Registration and rendering share a mutex.
 *
 * A series is a family name plus a fixed label set given as Prometheus label text, e.g.
 * `topic="kefu.chat.events",partition="3"` (label values must already be escaped:
 * backslash, double quote and newline as \\, \" and \n). Registering the same name and
 * labels again returns the same series, so callers need not cache pointers to be correct.
 *
 * Every update function accepts NULL (a registration that failed) and does nothing, so a
 * registry problem can never crash the data path.
 */
#ifndef KEFU_OPS_METRICS_H
#define KEFU_OPS_METRICS_H

#include <stddef.h>

typedef struct kefu_metric kefu_metric_t;       /* a counter or gauge series */
typedef struct kefu_histogram kefu_histogram_t; /* a histogram series */

/** @brief The counter series @p name{@p labels} (@p labels may be NULL or "" for none),
 *  created at 0 on first use. @p help is used by the first registration of the family.
 *  @returns the series, owned by the registry and valid until kefu_metrics_reset(); NULL
 *  (logged) when @p name is not a valid metric name or is already a different type. */
kefu_metric_t *kefu_metrics_counter(const char *name, const char *help, const char *labels);

/** @brief The gauge series @p name{@p labels}; as kefu_metrics_counter(). */
kefu_metric_t *kefu_metrics_gauge(const char *name, const char *help, const char *labels);

/** @brief The histogram series @p name{@p labels} with the @p n ascending upper bounds
 *  @p bounds (copied; +Inf is implicit). A later registration of the same series returns
 *  the first one, with its bounds. @returns as kefu_metrics_counter(). */
kefu_histogram_t *kefu_metrics_histogram(const char *name, const char *help, const char *labels,
                                         const double *bounds, int n);

/** @brief Adds @p v to a counter (v >= 0; a negative v is ignored) or a gauge (any v).
 *  @locality any thread. */
void kefu_metric_add(kefu_metric_t *m, double v);

/** @brief Sets a gauge, or a counter mirrored from a monotonic source (librdkafka's
 *  statistics). @locality any thread. */
void kefu_metric_set(kefu_metric_t *m, double v);

/** @brief Gives the series @p m the label set @p labels (as at registration): a fixed slot
 *  whose subject changes, such as the rank-1 shop of a task's queues, so that the number
 *  of series stays what was registered. The caller keeps the family's label sets unique.
 *  @returns 0, or -1 (logged; the labels stay) when @p labels is invalid or out of memory.
 *  @locality any thread; takes the registry mutex. */
int kefu_metric_relabel(kefu_metric_t *m, const char *labels);

/** @brief The current value (0 for NULL). */
double kefu_metric_value(const kefu_metric_t *m);

/** @brief Counts @p v in its bucket, the sum and the count. @locality any thread. */
void kefu_histogram_observe(kefu_histogram_t *h, double v);

/** @brief The number of observations so far (0 for NULL). */
unsigned long long kefu_histogram_count(const kefu_histogram_t *h);

/** @brief Every series in text exposition format 0.0.4: families in registration order,
 *  each with one HELP and TYPE line; histograms as _bucket (cumulative, le="+Inf" last),
 *  _sum and _count. @returns a NUL-terminated string owned by the caller (free()), its
 *  length in *@p len when @p len is not NULL; NULL when out of memory. */
char *kefu_metrics_render(size_t *len);

/** @brief Forgets every series (tests only: every pointer handed out becomes invalid, so
 *  no other thread may be using one). */
void kefu_metrics_reset(void);

/** Bucket bounds in seconds for short operations: a batch. */
extern const double kefu_metrics_buckets_short[];
extern const int kefu_metrics_buckets_short_n;

/** Bucket bounds in seconds for a Redis round trip: from 100 µs (a local Redis answers a
 *  small pipeline in tens of µs) to 10 s. */
extern const double kefu_metrics_buckets_redis[];
extern const int kefu_metrics_buckets_redis_n;

/** Bucket bounds in seconds for event-to-output latency (includes timers that fire
 *  minutes after their event). */
extern const double kefu_metrics_buckets_long[];
extern const int kefu_metrics_buckets_long_n;

#endif
