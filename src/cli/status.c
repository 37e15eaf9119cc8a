/* kefu status: how the processors' group stands, one line per task (docs/OPERATIONS.md
 * "kefu status").
 *
 *   kefu status -b BOOTSTRAP [--redis URL] [--metrics URL]... [--json] [--watch]
 *
 * It reads only what exists, and never joins the group (DECISIONS 62):
 *   - Kafka: the group's committed offsets (OffsetFetch with the processors' group.id, on a
 *     consumer that never subscribes) and each keyed input partition's end offset;
 *   - Redis: each task's positions and watermark (ns:{task-N}:pos) and its timer index
 *     (ns:{task-N}:timers): what kefu itself starts a task from;
 *   - each instance's /metrics, when given: who owns which task, the group's generation,
 *     rebalances, DLQ records, the last commit of each task, queue lengths and open timers.
 *     Not Kafka's DescribeGroups: librdkafka's mock cluster does not answer it, and on a
 *     real Kafka it names the members but not the generation.
 * A task's committed position is the later of Kafka's committed offset and Redis's
 * position, as on assignment (the mock cluster does not store transactional offsets; a
 * real Kafka has both). Lag is the end offset minus it. Rates (events/s, DLQ/s) are the
 * difference of two samples: one second apart for a single report, the refresh interval
 * with --watch.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/options.h"
#include "cli/status_metrics.h"
#include "io/kafka.h"
#include "io/topics.h"
#include "ops/config.h"
#include "store/redis.h"

#define MAX_INSTANCES 64

static void usage(FILE *out) {
  fprintf(out, "usage: kefu status -b BOOTSTRAP [--redis URL] [--metrics URL]... [--json]\n"
               "                   [--watch] [--interval SECONDS] [-c FILE] [--set KEY=VALUE]...\n"
               "  The processors' group: members, generation, rebalances, DLQ rate; then one line\n"
               "  per task: owner, lag, each input partition's committed/end offsets, watermark\n"
               "  and how far it trails the wall clock, events/s, timers, queue, last commit.\n"
               "  It reads Kafka's committed and end offsets, Redis's task positions, and the\n"
               "  instances' /metrics; it never joins the group (group.id says which group).\n"
               "  --metrics URL    an instance's http.listen (http://host:port[/metrics]); repeat\n"
               "                   for each instance. Without: owner, generation, commit show '-'\n"
               "  --json           one JSON object per report\n"
               "  --watch          report every --interval seconds (default 2) until SIGINT or\n"
               "                   SIGTERM; on a terminal the screen is redrawn in place\n"
               "  -c FILE, --set KEY=VALUE, --redis URL: configuration as kefu run's\n"
               "  Exit status: 0 ok, 1 Kafka or Redis unreachable, 2 usage error.\n");
}

/* One look at everything, at time_ms (wall clock). */
typedef struct sample {
  int64_t time_ms;
  int64_t *end, *kafka, *redis, *low; /* [task * KEFU_KEYED_INPUTS + k]; -1: none */
  int64_t *watermark, *timer_shops, *earliest;
  scrape_t inst[MAX_INSTANCES];
} sample_t;

typedef struct status {
  int tasks, ninst;
  const char *urls[MAX_INSTANCES];
  const char *group, *ns;
  rd_kafka_t *rk;
  kefu_redis_t *redis;
  CURL *curl;
  bool json, watch, tty;
  int interval_s;
} status_t;

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ samples */

static void sample_init(sample_t *s, const status_t *st) {
  size_t n = (size_t)st->tasks * KEFU_KEYED_INPUTS, t = (size_t)st->tasks;
  memset(s, 0, sizeof *s);
  s->end = calloc(n, sizeof *s->end);
  s->kafka = calloc(n, sizeof *s->kafka);
  s->redis = calloc(n, sizeof *s->redis);
  s->low = calloc(n, sizeof *s->low);
  s->watermark = calloc(t, sizeof *s->watermark);
  s->timer_shops = calloc(t, sizeof *s->timer_shops);
  s->earliest = calloc(t, sizeof *s->earliest);
  for (int i = 0; i < st->ninst; i++) {
    scrape_t *m = &s->inst[i];
    m->url = st->urls[i];
    for (int k = 0; k < PER_TASK; k++)
      m->per_task[k] = calloc(t, sizeof *m->per_task[k]);
  }
}

static void sample_clear(sample_t *s) {
  free(s->end);
  free(s->kafka);
  free(s->redis);
  free(s->low);
  free(s->watermark);
  free(s->timer_shops);
  free(s->earliest);
  for (int i = 0; i < MAX_INSTANCES; i++)
    for (int k = 0; k < PER_TASK; k++)
      free(s->inst[i].per_task[k]);
  memset(s, 0, sizeof *s);
}

/* Kafka: committed offsets of the group (one OffsetFetch, no join) and end offsets. */
static int read_kafka(status_t *st, sample_t *s, char *errstr, size_t errlen) {
  rd_kafka_topic_partition_list_t *l =
      rd_kafka_topic_partition_list_new(st->tasks * KEFU_KEYED_INPUTS);
  for (int t = 0; t < st->tasks; t++)
    for (int k = 0; k < KEFU_KEYED_INPUTS; k++)
      rd_kafka_topic_partition_list_add(l, kefu_topic_name((kefu_topic_t)k), t);
  rd_kafka_resp_err_t err = rd_kafka_committed(st->rk, l, 10000);
  for (int i = 0; !err && i < l->cnt; i++) {
    const rd_kafka_topic_partition_t *tp = &l->elems[i];
    size_t at = (size_t)tp->partition * KEFU_KEYED_INPUTS + (size_t)kefu_topic_by_name(tp->topic);
    s->kafka[at] = tp->err || tp->offset < 0 ? -1 : tp->offset;
    err = rd_kafka_query_watermark_offsets(st->rk, tp->topic, tp->partition, &s->low[at],
                                           &s->end[at], 10000);
  }
  if (err)
    snprintf(errstr, errlen, "kafka: %s", rd_kafka_err2str(err));
  rd_kafka_topic_partition_list_destroy(l);
  return err ? -1 : 0;
}

static redisReply *redis_cmd(status_t *st, int argc, const char **argv, int type, char *errstr,
                             size_t errlen) {
  redisReply *r = kefu_redis_call(st->redis, -1, argc, argv, errstr, errlen);
  if (r && r->type != type) {
    snprintf(errstr, errlen, "redis %s %s: %s", argv[0], argv[1],
             r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return NULL;
  }
  return r;
}

/* Redis: one task's positions and watermark, and its timer index. */
static int read_task(status_t *st, sample_t *s, int t, char *errstr, size_t errlen) {
  char pos[256], timers[256];
  snprintf(pos, sizeof pos, "%s:{task-%d}:pos", st->ns, t);
  snprintf(timers, sizeof timers, "%s:{task-%d}:timers", st->ns, t);
  const char *hgetall[] = {"HGETALL", pos}, *zcard[] = {"ZCARD", timers},
             *first[] = {"ZRANGE", timers, "0", "0", "WITHSCORES"};
  redisReply *r = redis_cmd(st, 2, hgetall, REDIS_REPLY_ARRAY, errstr, errlen);
  if (!r)
    return -1;
  s->watermark[t] = -1;
  for (int k = 0; k < KEFU_KEYED_INPUTS; k++)
    s->redis[(size_t)t * KEFU_KEYED_INPUTS + (size_t)k] = -1;
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    const char *f = r->element[i]->str, *v = r->element[i + 1]->str;
    if (strcmp(f, "wm") == 0)
      s->watermark[t] = strtoll(v, NULL, 10) < 0 ? -1 : strtoll(v, NULL, 10);
    for (int k = 0; k < KEFU_KEYED_INPUTS; k++)
      if (strcmp(f, kefu_topics[k].suffix) == 0)
        s->redis[(size_t)t * KEFU_KEYED_INPUTS + (size_t)k] = strtoll(v, NULL, 10);
  }
  freeReplyObject(r);
  if (!(r = redis_cmd(st, 2, zcard, REDIS_REPLY_INTEGER, errstr, errlen)))
    return -1;
  s->timer_shops[t] = r->integer;
  freeReplyObject(r);
  if (!(r = redis_cmd(st, 5, first, REDIS_REPLY_ARRAY, errstr, errlen)))
    return -1;
  s->earliest[t] = r->elements == 2 ? strtoll(r->element[1]->str, NULL, 10) : -1;
  freeReplyObject(r);
  return 0;
}

/* ------------------------------------------------------------------ /metrics */

typedef struct body {
  char *text;
  size_t len;
} body_t;

static size_t on_body(char *data, size_t size, size_t n, void *arg) {
  body_t *b = arg;
  char *grown = realloc(b->text, b->len + size * n + 1);
  if (!grown)
    return 0; /* curl fails the transfer */
  memcpy(grown + b->len, data, size * n);
  b->text = grown;
  b->len += size * n;
  b->text[b->len] = '\0';
  return size * n;
}

/* GET of the instance's /metrics; an instance that does not answer is shown down. */
static void scrape(status_t *st, scrape_t *m) {
  char url[1024];
  const char *path = strstr(m->url, "://");
  path = strchr(path ? path + 3 : m->url, '/');
  snprintf(url, sizeof url, "%s%s%s", strstr(m->url, "://") ? "" : "http://", m->url,
           path && path[1] ? ""
           : path          ? "metrics"
                           : "/metrics");
  body_t body = {0};
  long code = 0;
  curl_easy_reset(st->curl);
  curl_easy_setopt(st->curl, CURLOPT_URL, url);
  curl_easy_setopt(st->curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(st->curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(st->curl, CURLOPT_TIMEOUT_MS, 2000L);
  curl_easy_setopt(st->curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(st->curl, CURLOPT_PROTOCOLS_STR, "http,https");
  m->up = curl_easy_perform(st->curl) == CURLE_OK &&
          curl_easy_getinfo(st->curl, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200;
  char empty[1] = "";
  kefu_status_parse_metrics(m, st->tasks, m->up && body.text ? body.text : empty);
  free(body.text);
}

static int take_sample(status_t *st, sample_t *s, char *errstr, size_t errlen) {
  s->time_ms = wall_ms();
  if (read_kafka(st, s, errstr, errlen))
    return -1;
  for (int t = 0; t < st->tasks; t++)
    if (read_task(st, s, t, errstr, errlen))
      return -1;
  for (int i = 0; i < st->ninst; i++)
    scrape(st, &s->inst[i]);
  return 0;
}

/* ------------------------------------------------------------------ the report */

static int64_t committed_of(const sample_t *s, size_t at) {
  return s->kafka[at] > s->redis[at] ? s->kafka[at] : s->redis[at];
}

/* End minus committed; a partition nothing was committed for lags by all it holds. */
static int64_t lag_of(const sample_t *s, size_t at) {
  int64_t c = committed_of(s, at);
  return s->end[at] - (c >= 0 ? c : s->low[at]);
}

static int64_t task_position(const sample_t *s, int t) {
  int64_t sum = 0;
  for (int k = 0; k < KEFU_KEYED_INPUTS; k++) {
    int64_t c = committed_of(s, (size_t)t * KEFU_KEYED_INPUTS + (size_t)k);
    sum += c > 0 ? c : 0;
  }
  return sum;
}

/* Over the instances that answered: the largest of a per-task series (NO_VALUE: none).
 * A task's last commit is its latest owner's; queues and timers are its owner's (one
 * that gave it up shows 0). */
static double max_of(const sample_t *s, int n, int series, int t) {
  double best = NO_VALUE;
  for (int i = 0; i < n; i++)
    if (s->inst[i].up && s->inst[i].per_task[series][t] > best)
      best = s->inst[i].per_task[series][t];
  return best;
}

/* Counts, generations and times of /metrics are whole numbers. */
static json_t *opt_num(double v) {
  return v < 0 ? json_null() : json_integer((json_int_t)v);
}

static json_t *opt_int(int64_t v) {
  return v < 0 ? json_null() : json_integer(v);
}

static json_t *owners_json(const status_t *st, const sample_t *s, int t) {
  json_t *owners = json_array();
  for (int i = 0; i < st->ninst; i++)
    if (s->inst[i].up && s->inst[i].per_task[ASSIGNED][t] > 0)
      json_array_append_new(
          owners, json_string(*s->inst[i].instance ? s->inst[i].instance : s->inst[i].url));
  return owners;
}

static json_t *partitions_json(const sample_t *s, int t, int64_t *lag) {
  json_t *parts = json_array();
  *lag = 0;
  for (int k = 0; k < KEFU_KEYED_INPUTS; k++) {
    size_t at = (size_t)t * KEFU_KEYED_INPUTS + (size_t)k;
    *lag += lag_of(s, at);
    json_array_append_new(
        parts,
        json_pack("{s:s, s:i, s:o, s:o, s:o, s:I, s:I}", "topic", kefu_topic_name((kefu_topic_t)k),
                  "partition", t, "committed", opt_int(committed_of(s, at)), "kafka_committed",
                  opt_int(s->kafka[at]), "redis_position", opt_int(s->redis[at]), "end",
                  (json_int_t)s->end[at], "lag", (json_int_t)lag_of(s, at)));
  }
  return parts;
}

static json_t *task_json(const status_t *st, const sample_t *s, const sample_t *prev, int t,
                         int64_t *lag) {
  double dt = (double)(s->time_ms - prev->time_ms) / 1000.0;
  json_t *parts = partitions_json(s, t, lag);
  int64_t wm = s->watermark[t];
  double overdue = max_of(s, st->ninst, OVERDUE, t);
  return json_pack(
      "{s:i, s:o, s:I, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:o, s:o, s:o}", "task", t, "owners",
      owners_json(st, s, t), "lag", (json_int_t)*lag, "partitions", parts, "watermark_ms",
      opt_int(wm), "watermark_behind_ms", opt_int(wm < 0 ? -1 : s->time_ms - wm), "events_per_s",
      json_real(dt > 0 ? (double)(task_position(s, t) - task_position(prev, t)) / dt : 0),
      "timer_shops", (json_int_t)s->timer_shops[t], "earliest_deadline_ms", opt_int(s->earliest[t]),
      "open_timers", opt_num(max_of(s, st->ninst, OPEN_TIMERS, t)), "queue_length",
      opt_num(max_of(s, st->ninst, QUEUE, t)), "last_commit_ms",
      opt_num(max_of(s, st->ninst, COMMITTED_AT, t) > 0 ? max_of(s, st->ninst, COMMITTED_AT, t)
                                                        : NO_VALUE),
      "oldest_overdue_timer_s", overdue < 0 ? json_null() : json_real(overdue));
}

static json_t *group_json(const status_t *st, const sample_t *s, const sample_t *prev,
                          int64_t lag) {
  json_t *members = json_array(), *down = json_array(), *not_ready = json_array();
  double generation = NO_VALUE, rebalances = 0, dlq = 0, dlq_before = 0;
  int up = 0;
  for (int i = 0; i < st->ninst; i++) {
    const scrape_t *m = &s->inst[i];
    if (!m->up) {
      json_array_append_new(down, json_string(m->url));
      continue;
    }
    json_array_append_new(members, json_string(*m->instance ? m->instance : m->url));
    up++;
    if (m->ready == 0) /* kefu_ready, when the instance has it */
      json_array_append_new(not_ready, json_string(*m->instance ? m->instance : m->url));
    generation = m->generation > generation ? m->generation : generation;
    rebalances += m->rebalances > 0 ? m->rebalances : 0;
    dlq += m->dlq > 0 ? m->dlq : 0;
    dlq_before += prev->inst[i].up && prev->inst[i].dlq > 0 ? prev->inst[i].dlq : 0;
  }
  double dt = (double)(s->time_ms - prev->time_ms) / 1000.0;
  return json_pack(
      "{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:I}", "id", st->group, "members", members, "down", down,
      "not_ready", not_ready, "generation", opt_num(generation), "rebalances",
      up ? json_integer((json_int_t)rebalances) : json_null(), "dlq_per_s",
      up && dt > 0 ? json_real(dlq > dlq_before ? (dlq - dlq_before) / dt : 0) : json_null(), "lag",
      (json_int_t)lag);
}

static json_t *report_json(const status_t *st, const sample_t *s, const sample_t *prev) {
  json_t *tasks = json_array();
  int64_t total = 0, lag;
  for (int t = 0; t < st->tasks; t++) {
    json_array_append_new(tasks, task_json(st, s, prev, t, &lag));
    total += lag;
  }
  return json_pack("{s:I, s:o, s:o}", "time_ms", (json_int_t)s->time_ms, "group",
                   group_json(st, s, prev, total), "tasks", tasks);
}

/* ------------------------------------------------------------------ text */

/* A number of a report, or "-" for null, into @p out. */
static const char *num(const json_t *v, const char *fmt, double scale, char *out, size_t len) {
  if (!v || json_is_null(v))
    return "-";
  snprintf(out, len, fmt, json_number_value(v) / scale);
  return out;
}

static void print_group(FILE *f, const json_t *g) {
  char gen[32], reb[32], dlq[32];
  const json_t *m;
  size_t i;
  fprintf(f, "group %s  members %zu", json_string_value(json_object_get(g, "id")),
          json_array_size(json_object_get(g, "members")));
  json_array_foreach(json_object_get(g, "members"), i, m)
      fprintf(f, "%s%s", i ? "," : " (", json_string_value(m));
  fprintf(f, "%s", json_array_size(json_object_get(g, "members")) ? ")" : "");
  json_array_foreach(json_object_get(g, "down"), i, m)
      fprintf(f, "%s%s", i ? "," : "  down ", json_string_value(m));
  json_array_foreach(json_object_get(g, "not_ready"), i, m)
      fprintf(f, "%s%s", i ? "," : "  not ready ", json_string_value(m));
  fprintf(f, "  generation %s  rebalances %s  dlq %s/s  lag %lld\n",
          num(json_object_get(g, "generation"), "%.0f", 1, gen, sizeof gen),
          num(json_object_get(g, "rebalances"), "%.0f", 1, reb, sizeof reb),
          num(json_object_get(g, "dlq_per_s"), "%.1f", 1, dlq, sizeof dlq),
          (long long)json_integer_value(json_object_get(g, "lag")));
}

/* A duration of @p ms for a person: 4.2s, 12m, 3.5h, 268d. */
static const char *duration(double ms, char *out, size_t len) {
  double s = ms / 1000, a = s < 0 ? -s : s;
  if (a < 120)
    snprintf(out, len, "%.1fs", s);
  else if (a < 7200)
    snprintf(out, len, "%.0fm", s / 60);
  else if (a < 172800)
    snprintf(out, len, "%.1fh", s / 3600);
  else
    snprintf(out, len, "%.0fd", s / 86400);
  return out;
}

/* A duration of a report, or "-" for null. */
static const char *duration_of(const json_t *ms, char *out, size_t len) {
  return !ms || json_is_null(ms) ? "-" : duration(json_number_value(ms), out, len);
}

/* "HH:MM:SS" (UTC) of an epoch ms, or "-". */
static const char *clock_of(const json_t *ms, char *out, size_t len) {
  if (!ms || json_is_null(ms))
    return "-";
  time_t sec = (time_t)(json_integer_value(ms) / 1000);
  struct tm tm;
  gmtime_r(&sec, &tm);
  strftime(out, len, "%H:%M:%S", &tm);
  return out;
}

static void print_task(FILE *f, const json_t *t, int64_t now) {
  char owner[128] = "-", wm[16], behind[32], ops[32], tim[64], due[32], q[32], commit[32];
  const json_t *o, *p, *at = json_object_get(t, "last_commit_ms"),
                       *dl = json_object_get(t, "earliest_deadline_ms"),
                       *w = json_object_get(t, "watermark_ms");
  size_t i, n = 0;
  json_array_foreach(json_object_get(t, "owners"), i, o) n +=
      (size_t)snprintf(owner + n, n < sizeof owner ? sizeof owner - n : 0, "%s%s", i ? "," : "",
                       json_string_value(o));
  fprintf(f, "%-4lld %-12s %7lld ", (long long)json_integer_value(json_object_get(t, "task")),
          owner, (long long)json_integer_value(json_object_get(t, "lag")));
  json_array_foreach(json_object_get(t, "partitions"), i, p) {
    char pos[48];
    char done[24] = "-";
    if (!json_is_null(json_object_get(p, "committed")))
      snprintf(done, sizeof done, "%lld",
               (long long)json_integer_value(json_object_get(p, "committed")));
    snprintf(pos, sizeof pos, "%s/%lld", done,
             (long long)json_integer_value(json_object_get(p, "end")));
    fprintf(f, " %13s", pos);
  }
  snprintf(tim, sizeof tim, "%s/%lld",
           num(json_object_get(t, "open_timers"), "%.0f", 1, q, sizeof q),
           (long long)json_integer_value(json_object_get(t, "timer_shops")));
  if (!json_is_null(dl) && !json_is_null(w)) { /* fires when the watermark has moved this far */
    due[0] = json_integer_value(dl) >= json_integer_value(w) ? '+' : '-';
    duration(fabs((double)(json_integer_value(dl) - json_integer_value(w))), due + 1,
             sizeof due - 1);
  } else
    snprintf(due, sizeof due, "-");
  fprintf(f, "  %8s %7s %7s %9s %8s %6s %s\n", clock_of(w, wm, sizeof wm),
          duration_of(json_object_get(t, "watermark_behind_ms"), behind, sizeof behind),
          num(json_object_get(t, "events_per_s"), "%.1f", 1, ops, sizeof ops), tim, due,
          num(json_object_get(t, "queue_length"), "%.0f", 1, q, sizeof q),
          json_is_null(at)
              ? "-"
              : duration(fmax(0, (double)(now - json_integer_value(at))), commit, sizeof commit));
}

static void print_text(FILE *f, const json_t *report) {
  const json_t *t;
  size_t i;
  int64_t now = json_integer_value(json_object_get(report, "time_ms"));
  print_group(f, json_object_get(report, "group"));
  fprintf(f, "%-4s %-12s %7s ", "task", "owner", "lag");
  for (int k = 0; k < KEFU_KEYED_INPUTS; k++)
    fprintf(f, " %13s", kefu_topics[k].suffix);
  fprintf(f, "  %8s %7s %7s %9s %8s %6s %s\n", "wm", "behind", "ev/s", "timers", "next", "queue",
          "commit ago");
  json_array_foreach(json_object_get(report, "tasks"), i, t) print_task(f, t, now);
}

static int report(status_t *st, const sample_t *s, const sample_t *prev) {
  json_t *r = report_json(st, s, prev);
  if (st->json) {
    json_dumpf(r, stdout, JSON_COMPACT);
    fputc('\n', stdout);
  } else {
    if (st->watch && st->tty)
      fputs("\033[H\033[2J", stdout); /* home, clear: redrawn in place, as top does */
    print_text(stdout, r);
    if (st->watch && !st->tty)
      fputc('\n', stdout);
  }
  json_decref(r);
  return fflush(stdout) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ command line */

/* The flags of status itself, and -c: 0, or -1 (a usage error). */
static int status_flag(status_t *st, int c, const char **file) {
  int64_t secs;
  switch (c) {
  case 'c': *file = optarg; return 0;
  case 'j': st->json = true; return 0;
  case 'w': st->watch = true; return 0;
  case 'm':
    if (st->ninst == MAX_INSTANCES)
      return -1;
    st->urls[st->ninst++] = optarg;
    return 0;
  case 'i':
    if (kefu_cli_parse_int64(optarg, 3600, &secs) || secs == 0)
      return -1;
    st->interval_s = (int)secs;
    return 0;
  case 'b':
  case 'r':
  case 's': return 0; /* the second pass */
  default: return -1;
  }
}

/* Applies -c, the environment, then the flags in order (as kefu run). 0, -1 after
 * --help, or an exit code. */
static int configure(kefu_config_t *cfg, status_t *st, int argc, char **argv) {
  static const struct option opts[] = {
      {"config", required_argument, 0, 'c'},  {"bootstrap", required_argument, 0, 'b'},
      {"redis", required_argument, 0, 'r'},   {"set", required_argument, 0, 's'},
      {"metrics", required_argument, 0, 'm'}, {"json", no_argument, 0, 'j'},
      {"watch", no_argument, 0, 'w'},         {"interval", required_argument, 0, 'i'},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  char errstr[512] = "";
  const char *file = NULL;
  int c, rc = 0;
  for (optind = 1; (c = getopt_long(argc, argv, "c:b:h", opts, NULL)) != -1;) {
    if (c == 'h') {
      usage(stdout);
      return -1;
    }
    if (status_flag(st, c, &file))
      goto usage;
  }
  if (optind != argc)
    goto usage;
  if (kefu_cli_load_config(cfg, file, errstr, sizeof errstr))
    goto bad;
  for (optind = 1; !rc && (c = getopt_long(argc, argv, "c:b:h", opts, NULL)) != -1;)
    rc = c == 'b'   ? kefu_config_set(cfg, "bootstrap.servers", optarg, errstr, sizeof errstr)
         : c == 'r' ? kefu_config_set(cfg, "redis.url", optarg, errstr, sizeof errstr)
         : c == 's' ? kefu_cli_set_pair(cfg, optarg, errstr, sizeof errstr)
                    : 0;
  if (rc)
    goto bad;
  return 0;
usage:
  usage(stderr);
  return KEFU_EXIT_USAGE;
bad:
  fprintf(stderr, "kefu status: %s\n", errstr);
  return KEFU_EXIT_USAGE;
}

/* A consumer handle with the processors' group.id that never subscribes: OffsetFetch and
 * ListOffsets only, so the group never sees it. Also finds how many tasks there are. */
static int open_kafka(status_t *st, const kefu_cli_options_t *opt, char *errstr, size_t errlen) {
  rd_kafka_conf_t *conf = kefu_kafka_conf_for(KEFU_KAFKA_CONSUMER, opt->o.bootstrap,
                                              opt->kafka_props, opt->nkafka_props, errstr, errlen);
  if (!conf || kefu_kafka_set(conf, "group.id", st->group, errstr, errlen) ||
      kefu_kafka_set(conf, "enable.auto.commit", "false", errstr, errlen)) {
    if (conf)
      rd_kafka_conf_destroy(conf);
    return -1;
  }
  if (!(st->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errlen))) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  st->tasks =
      kefu_kafka_partition_count(st->rk, kefu_topic_name((kefu_topic_t)0), 10000, errstr, errlen);
  return st->tasks > 0 ? 0 : -1;
}

static int open_all(status_t *st, const kefu_cli_options_t *opt, char *errstr, size_t errlen) {
  kefu_redis_opts_t ro = opt->o.redis;
  ro.no_functions = true; /* it only reads */
  if (open_kafka(st, opt, errstr, errlen) || !(st->redis = kefu_redis_connect(&ro, errstr, errlen)))
    return -1;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (!(st->curl = curl_easy_init())) {
    snprintf(errstr, errlen, "libcurl: cannot create a handle");
    return -1;
  }
  return 0;
}

static void close_all(status_t *st) {
  if (st->curl)
    curl_easy_cleanup(st->curl);
  if (st->redis)
    kefu_redis_close(st->redis);
  if (st->rk)
    rd_kafka_destroy(st->rk);
}

/* Sleeps @p ms unless a signal comes: 0, or -1 when told to stop. */
static int nap(int ms, volatile sig_atomic_t *stop) {
  for (int slept = 0; slept < ms && !*stop; slept += 50)
    usleep(50 * 1000);
  return *stop ? -1 : 0;
}

/* Reports until stopped (--watch) or once, each from a sample and the one before it. */
static int loop(status_t *st, volatile sig_atomic_t *stop) {
  sample_t a, b, *prev = &a, *cur = &b, *swap;
  char errstr[512];
  int rc = KEFU_EXIT_OK;
  sample_init(&a, st);
  sample_init(&b, st);
  if (take_sample(st, prev, errstr, sizeof errstr))
    goto fail;
  while (nap(st->watch ? st->interval_s * 1000 : 1000, stop) == 0) {
    if (take_sample(st, cur, errstr, sizeof errstr)) {
      if (!st->watch)
        goto fail;
      fprintf(stderr, "kefu status: %s\n", errstr); /* --watch keeps watching */
      continue;
    }
    if (report(st, cur, prev) || !st->watch)
      break;
    swap = prev;
    prev = cur;
    cur = swap;
  }
  goto done;
fail:
  fprintf(stderr, "kefu status: %s\n", errstr);
  rc = KEFU_EXIT_FAIL;
done:
  sample_clear(&a);
  sample_clear(&b);
  return rc;
}

int kefu_cmd_status(int argc, char **argv) {
  kefu_config_t *cfg = kefu_config_new();
  kefu_cli_options_t opt = {0};
  status_t st = {.interval_s = 2, .tty = isatty(STDOUT_FILENO)};
  char errstr[512];
  int rc = configure(cfg, &st, argc, argv);
  if (rc) {
    kefu_config_destroy(cfg);
    return rc < 0 ? KEFU_EXIT_OK : rc;
  }
  kefu_topics_set_prefix(kefu_config_str(cfg, "topic.prefix"));
  if (kefu_cli_options_init(&opt, cfg, errstr, sizeof errstr)) {
    rc = KEFU_EXIT_FAIL;
    goto fail;
  }
  st.group = opt.o.group_id;
  st.ns = opt.o.redis_namespace;
  if (!*opt.o.bootstrap) {
    fprintf(stderr, "kefu status: no bootstrap servers (-b or bootstrap.servers)\n");
    rc = KEFU_EXIT_USAGE;
    goto done;
  }
  volatile sig_atomic_t *stop = kefu_cli_stop_on_signals();
  if (open_all(&st, &opt, errstr, sizeof errstr)) {
    rc = KEFU_EXIT_FAIL;
    goto fail;
  }
  rc = loop(&st, stop);
  goto done;
fail:
  fprintf(stderr, "kefu status: %s\n", errstr);
done:
  close_all(&st);
  kefu_cli_options_clear(&opt);
  kefu_config_destroy(cfg);
  return rc;
}
