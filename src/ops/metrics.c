/* The metrics registry: families of series, rendered in Prometheus text format 0.0.4.
 *
 * Two sides meet here. The processor thread updates series on its hot path, so an update
 * is one atomic operation on the series itself: a compare-and-swap loop for a double
 * (C11 has no atomic add for floating types) and an atomic increment per histogram
 * bucket. The HTTP thread renders; it walks the lists under the registry mutex, which
 * only registration also takes, and reads the atomics. A render may therefore see an
 * update half-way (a histogram's _sum ahead of its buckets); Prometheus tolerates that,
 * but _count is computed from the buckets so that le="+Inf" always equals _count.
 *
 * Series are never freed while the process runs (only kefu_metrics_reset(), for tests),
 * so a pointer handed out stays valid without reference counting.
 */
#include "ops/metrics.h"

#include "ops/log.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double kefu_metrics_buckets_short[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const int kefu_metrics_buckets_short_n =
    (int)(sizeof kefu_metrics_buckets_short / sizeof kefu_metrics_buckets_short[0]);

const double kefu_metrics_buckets_redis[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                             0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                             1,      2.5,     5,      10};
const int kefu_metrics_buckets_redis_n =
    (int)(sizeof kefu_metrics_buckets_redis / sizeof kefu_metrics_buckets_redis[0]);

const double kefu_metrics_buckets_long[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,    2.5,
                                            5,     10,   30,    60,   120, 300,  600, 1800, 3600};
const int kefu_metrics_buckets_long_n =
    (int)(sizeof kefu_metrics_buckets_long / sizeof kefu_metrics_buckets_long[0]);

typedef enum family_type { FAM_COUNTER, FAM_GAUGE, FAM_HISTOGRAM } family_type_t;

static const char *const family_type_names[] = {"counter", "gauge", "histogram"};

struct kefu_metric {
  kefu_metric_t *next;
  char *labels; /* "" when none */
  bool counter;
  _Atomic double value;
};

struct kefu_histogram {
  kefu_histogram_t *next;
  char *labels;
  double *bounds;
  int n;
  _Atomic unsigned long long *buckets; /* n + 1, the last one +Inf; not cumulative */
  _Atomic double sum;
};

typedef struct family {
  struct family *next;
  char *name;
  char *help;
  family_type_t type;
  kefu_metric_t *metrics, **metrics_tail; /* counters and gauges */
  kefu_histogram_t *hists, **hists_tail;
} family_t;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static family_t *families, **families_tail = &families;

/* ---------------------------------------------------------------------------------- */
/* Registration                                                                        */

static bool valid_name(const char *name) {
  if (!name || !(isalpha((unsigned char)*name) || *name == '_' || *name == ':'))
    return false;
  for (const char *p = name; *p; p++)
    if (!(isalnum((unsigned char)*p) || *p == '_' || *p == ':'))
      return false;
  return true;
}

/* The family @p name, created with @p type and @p help when new; NULL (logged) when it
 * exists with another type or cannot be made. Called with registry_lock held. */
static family_t *family_get(const char *name, const char *help, family_type_t type) {
  for (family_t *f = families; f; f = f->next) {
    if (strcmp(f->name, name) == 0) {
      if (f->type == type)
        return f;
      KEFU_ERROR("metrics", "%s is a %s, not a %s", name, family_type_names[f->type],
                 family_type_names[type]);
      return NULL;
    }
  }
  family_t *f = calloc(1, sizeof *f);
  if (!f || !(f->name = strdup(name)) || !(f->help = strdup(help ? help : ""))) {
    if (f)
      free(f->name);
    free(f);
    return NULL;
  }
  f->type = type;
  f->metrics_tail = &f->metrics;
  f->hists_tail = &f->hists;
  *families_tail = f;
  families_tail = &f->next;
  return f;
}

/* Checks name and labels before anything is registered. */
static bool registration_ok(const char *name, const char *labels) {
  if (!valid_name(name)) {
    KEFU_ERROR("metrics", "invalid metric name \"%s\"", name ? name : "(null)");
    return false;
  }
  if (strpbrk(labels, "\n{}")) { /* would break the exposition line */
    KEFU_ERROR("metrics", "%s: labels must be escaped and have no braces", name);
    return false;
  }
  return true;
}

static kefu_metric_t *scalar_register(const char *name, const char *help, const char *labels,
                                      family_type_t type) {
  kefu_metric_t *m = NULL;
  labels = labels ? labels : "";
  if (!registration_ok(name, labels))
    return NULL;
  pthread_mutex_lock(&registry_lock);
  family_t *f = family_get(name, help, type);
  for (m = f ? f->metrics : NULL; m; m = m->next)
    if (strcmp(m->labels, labels) == 0)
      goto done;
  if (f && (m = calloc(1, sizeof *m)) != NULL) {
    if (!(m->labels = strdup(labels))) {
      free(m);
      m = NULL;
      goto done;
    }
    m->counter = type == FAM_COUNTER;
    atomic_init(&m->value, 0.0);
    *f->metrics_tail = m;
    f->metrics_tail = &m->next;
  }
done:
  pthread_mutex_unlock(&registry_lock);
  return m;
}

kefu_metric_t *kefu_metrics_counter(const char *name, const char *help, const char *labels) {
  return scalar_register(name, help, labels, FAM_COUNTER);
}

kefu_metric_t *kefu_metrics_gauge(const char *name, const char *help, const char *labels) {
  return scalar_register(name, help, labels, FAM_GAUGE);
}

static void histogram_free(kefu_histogram_t *h) {
  if (!h)
    return;
  free(h->labels);
  free(h->bounds);
  free((void *)h->buckets);
  free(h);
}

/* A new histogram series, or NULL when out of memory. */
static kefu_histogram_t *histogram_new(const char *labels, const double *bounds, int n) {
  kefu_histogram_t *h = calloc(1, sizeof *h);
  if (!h)
    return NULL;
  h->n = n;
  h->labels = strdup(labels);
  h->bounds = malloc((size_t)(n ? n : 1) * sizeof *h->bounds);
  h->buckets = malloc((size_t)(n + 1) * sizeof *h->buckets);
  if (!h->labels || !h->bounds || !h->buckets) {
    histogram_free(h);
    return NULL;
  }
  if (n)
    memcpy(h->bounds, bounds, (size_t)n * sizeof *bounds);
  for (int i = 0; i <= n; i++)
    atomic_init(&h->buckets[i], 0);
  atomic_init(&h->sum, 0.0);
  return h;
}

static bool bounds_ok(const char *name, const double *bounds, int n) {
  for (int i = 0; i < n; i++) {
    if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1])) {
      KEFU_ERROR("metrics", "%s: bucket bounds must be finite and ascending", name);
      return false;
    }
  }
  return n >= 0 && (n == 0 || bounds);
}

kefu_histogram_t *kefu_metrics_histogram(const char *name, const char *help, const char *labels,
                                         const double *bounds, int n) {
  kefu_histogram_t *h = NULL;
  labels = labels ? labels : "";
  if (!registration_ok(name, labels) || !bounds_ok(name, bounds, n))
    return NULL;
  pthread_mutex_lock(&registry_lock);
  family_t *f = family_get(name, help, FAM_HISTOGRAM);
  for (h = f ? f->hists : NULL; h; h = h->next)
    if (strcmp(h->labels, labels) == 0)
      goto done;
  if (f && (h = histogram_new(labels, bounds, n)) != NULL) {
    *f->hists_tail = h;
    f->hists_tail = &h->next;
  }
done:
  pthread_mutex_unlock(&registry_lock);
  return h;
}

/* ---------------------------------------------------------------------------------- */
/* Updates: lock-free                                                                  */

static void atomic_add_double(_Atomic double *a, double v) {
  double old = atomic_load_explicit(a, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(a, &old, old + v, memory_order_relaxed,
                                                memory_order_relaxed))
    ;
}

void kefu_metric_add(kefu_metric_t *m, double v) {
  if (!m || (m->counter && !(v >= 0))) /* a counter never goes down */
    return;
  atomic_add_double(&m->value, v);
}

void kefu_metric_set(kefu_metric_t *m, double v) {
  if (m)
    atomic_store_explicit(&m->value, v, memory_order_relaxed);
}

int kefu_metric_relabel(kefu_metric_t *m, const char *labels) {
  labels = labels ? labels : "";
  if (!m || !registration_ok("relabel", labels))
    return -1;
  char *copy = strdup(labels);
  if (!copy)
    return -1;
  pthread_mutex_lock(&registry_lock); /* a render may be reading the old labels */
  free(m->labels);
  m->labels = copy;
  pthread_mutex_unlock(&registry_lock);
  return 0;
}

double kefu_metric_value(const kefu_metric_t *m) {
  return m ? atomic_load_explicit(&((kefu_metric_t *)m)->value, memory_order_relaxed) : 0.0;
}

void kefu_histogram_observe(kefu_histogram_t *h, double v) {
  int i = 0;
  if (!h)
    return;
  while (i < h->n && !(v <= h->bounds[i])) /* le is inclusive; NaN goes to +Inf */
    i++;
  atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
  atomic_add_double(&h->sum, v);
}

unsigned long long kefu_histogram_count(const kefu_histogram_t *h) {
  unsigned long long total = 0;
  for (int i = 0; h && i <= h->n; i++)
    total += atomic_load_explicit(&((kefu_histogram_t *)h)->buckets[i], memory_order_relaxed);
  return total;
}

/* ---------------------------------------------------------------------------------- */
/* Rendering                                                                           */

typedef struct text {
  char *s;
  size_t len, cap;
  bool failed;
} text_t;

static void text_printf(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_printf(text_t *t, const char *fmt, ...) {
  va_list ap;
  for (int attempt = 0; attempt < 2 && !t->failed; attempt++) {
    va_start(ap, fmt);
    int n = vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->failed = true;
    } else if ((size_t)n < t->cap - t->len) {
      t->len += (size_t)n;
      return;
    } else {
      size_t cap = (t->cap + (size_t)n + 1) * 2;
      char *grown = realloc(t->s, cap);
      if (!grown)
        t->failed = true;
      else
        t->s = grown, t->cap = cap;
    }
  }
}

/* A sample value as Prometheus reads it: integers without exponent, others in the
 * shortest form that reads back exactly, and +Inf/-Inf/NaN spelled its way. */
static void format_value(char *buf, size_t len, double v) {
  if (isnan(v))
    snprintf(buf, len, "NaN");
  else if (isinf(v))
    snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
  else if (v == floor(v) && fabs(v) < 9007199254740992.0)
    snprintf(buf, len, "%.0f", v);
  else
    for (int prec = 1; prec <= 17; prec++) {
      snprintf(buf, len, "%.*g", prec, v);
      if (strtod(buf, NULL) == v)
        break;
    }
}

/* HELP text escapes backslash and newline. */
static void render_help(text_t *t, const family_t *f) {
  text_printf(t, "# HELP %s ", f->name);
  for (const char *p = f->help; *p; p++) {
    if (*p == '\\')
      text_printf(t, "\\\\");
    else if (*p == '\n')
      text_printf(t, "\\n");
    else
      text_printf(t, "%c", *p);
  }
  text_printf(t, "\n# TYPE %s %s\n", f->name, family_type_names[f->type]);
}

/* name{labels} or name when there are none. */
static void render_series_name(text_t *t, const char *name, const char *suffix,
                               const char *labels) {
  text_printf(t, *labels ? "%s%s{%s}" : "%s%s%.0s", name, suffix, labels);
}

static void render_histogram(text_t *t, const family_t *f, kefu_histogram_t *h) {
  char le[40], val[40];
  unsigned long long cum = 0;
  const char *sep = *h->labels ? "," : "";
  for (int i = 0; i <= h->n; i++) {
    cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
    format_value(le, sizeof le, i < h->n ? h->bounds[i] : INFINITY);
    text_printf(t, "%s_bucket{%s%sle=\"%s\"} %llu\n", f->name, h->labels, sep, le, cum);
  }
  format_value(val, sizeof val, atomic_load_explicit(&h->sum, memory_order_relaxed));
  render_series_name(t, f->name, "_sum", h->labels);
  text_printf(t, " %s\n", val);
  render_series_name(t, f->name, "_count", h->labels);
  text_printf(t, " %llu\n", cum);
}

static void render_family(text_t *t, const family_t *f) {
  char val[40];
  render_help(t, f);
  for (kefu_metric_t *m = f->metrics; m; m = m->next) {
    format_value(val, sizeof val, atomic_load_explicit(&m->value, memory_order_relaxed));
    render_series_name(t, f->name, "", m->labels);
    text_printf(t, " %s\n", val);
  }
  for (kefu_histogram_t *h = f->hists; h; h = h->next)
    render_histogram(t, f, h);
}

char *kefu_metrics_render(size_t *len) {
  text_t t = {.cap = 4096};
  if (!(t.s = malloc(t.cap)))
    return NULL;
  t.s[0] = '\0';
  pthread_mutex_lock(&registry_lock);
  for (family_t *f = families; f; f = f->next)
    render_family(&t, f);
  pthread_mutex_unlock(&registry_lock);
  if (t.failed) {
    free(t.s);
    return NULL;
  }
  if (len)
    *len = t.len;
  return t.s;
}

void kefu_metrics_reset(void) {
  pthread_mutex_lock(&registry_lock);
  while (families) {
    family_t *f = families;
    families = f->next;
    while (f->metrics) {
      kefu_metric_t *m = f->metrics;
      f->metrics = m->next;
      free(m->labels);
      free(m);
    }
    while (f->hists) {
      kefu_histogram_t *h = f->hists;
      f->hists = h->next;
      histogram_free(h);
    }
    free(f->name);
    free(f->help);
    free(f);
  }
  families_tail = &families;
  pthread_mutex_unlock(&registry_lock);
}
