/* kefu_archive_topics (see archive_run.h): Kafka partitions -> an archive directory.
 *
 * Where a partition stops. Its end is read once, at the start, with a watermark query
 * (ListOffsets with the consumer's read_committed isolation: the last stable offset);
 * the partition is done at the first record at or past its stop, at a record at its last
 * offset, or at a partition EOF at or past its stop. The EOF matters: the offsets just
 * below the end may be transaction markers or aborted records, which read_committed
 * never delivers, and librdkafka reports the end it reached (the last stable offset)
 * with the EOF. A partition done is paused, so nothing more is fetched for it. */
#include "cli/archive_run.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "io/archive.h"
#include "io/kafka.h"

#define NO_STOP INT64_MAX
#define TIMEOUT_MS 10000

typedef struct part {
  const char *topic; /* borrowed from the spec */
  int32_t partition;
  int64_t start;  /* an offset or RD_KAFKA_OFFSET_BEGINNING/END */
  int64_t stop;   /* the first offset not to archive, NO_STOP */
  bool before_ts; /* skipping records older than --from-ts (see from_timestamp) */
  bool done;
} part_t;

typedef struct run {
  const kefu_archive_spec_t *s;
  rd_kafka_t *rk;
  kefu_archive_dir_t *dir;
  part_t *parts;
  int nparts, ndone;
  int *first_part; /* per topic of the spec: its first partition's index in parts */
  kefu_archived_header_t *hdrs;
  size_t hdr_cap;
} run_t;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int topic_index(const kefu_archive_spec_t *s, const char *topic) {
  for (int i = 0; i < s->ntopics; i++)
    if (!strcmp(s->topics[i], topic))
      return i;
  return -1;
}

static part_t *find_part(run_t *r, const char *topic, int32_t partition) {
  int t = topic_index(r->s, topic);
  if (t < 0)
    return NULL;
  int i = r->first_part[t] + partition;
  int end = t + 1 < r->s->ntopics ? r->first_part[t + 1] : r->nparts;
  return partition >= 0 && i < end ? &r->parts[i] : NULL;
}

static int open_consumer(run_t *r, char *err, size_t errlen) {
  rd_kafka_conf_t *conf = kefu_kafka_conf(r->s->bootstrap, r->s->props, r->s->nprops, err, errlen);
  if (!conf || kefu_kafka_set(conf, "group.id", "kefu-archive", err, errlen) ||
      kefu_kafka_set(conf, "enable.partition.eof", "true", err, errlen) ||
      kefu_kafka_set(conf, "enable.auto.commit", "false", err, errlen) ||
      kefu_kafka_set(conf, "enable.auto.offset.store", "false", err, errlen) ||
      kefu_kafka_set(conf, "auto.offset.reset", "earliest", err, errlen) ||
      kefu_kafka_set(conf, "isolation.level", "read_committed", err, errlen)) {
    if (conf)
      rd_kafka_conf_destroy(conf);
    return -1;
  }
  if (!(r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen))) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  rd_kafka_poll_set_consumer(r->rk);
  return 0;
}

/* Every partition of every topic, in topic order: KEFU_ARCHIVE_USAGE for a topic the
 * cluster does not have. */
static int list_parts(run_t *r, char *err, size_t errlen) {
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t e = rd_kafka_metadata(r->rk, 1, NULL, &md, TIMEOUT_MS);
  int rc = 0, n = 0;
  if (e) {
    snprintf(err, errlen, "metadata: %s", rd_kafka_err2str(e));
    return KEFU_ARCHIVE_FAILED;
  }
  r->first_part = calloc((size_t)r->s->ntopics, sizeof *r->first_part);
  for (int t = 0; t < r->s->ntopics && rc == 0; t++) {
    const struct rd_kafka_metadata_topic *mt = NULL;
    for (int i = 0; i < md->topic_cnt; i++)
      if (!strcmp(md->topics[i].topic, r->s->topics[t]) && !md->topics[i].err)
        mt = &md->topics[i];
    if (!mt || mt->partition_cnt <= 0) {
      snprintf(err, errlen, "unknown topic %s", r->s->topics[t]);
      rc = KEFU_ARCHIVE_USAGE;
      break;
    }
    part_t *grown = realloc(r->parts, (size_t)(n + mt->partition_cnt) * sizeof *grown);
    if (!grown || !r->first_part) {
      snprintf(err, errlen, "out of memory");
      rc = KEFU_ARCHIVE_FAILED;
      break;
    }
    r->parts = grown;
    r->first_part[t] = n;
    for (int p = 0; p < mt->partition_cnt; p++)
      r->parts[n++] = (part_t){.topic = r->s->topics[t], .partition = p, .stop = NO_STOP};
  }
  r->nparts = n;
  rd_kafka_metadata_destroy(md);
  return rc;
}

/* Applies the from_* or until_* list (@p offsets of @p n entries) to the parts. */
static int apply_list(run_t *r, const char **topics, const int32_t *parts, const int64_t *offsets,
                      int n, bool until, char *err, size_t errlen) {
  for (int i = 0; i < n; i++) {
    part_t *p = find_part(r, topics[i], parts[i]);
    if (!p || offsets[i] < 0) {
      snprintf(err, errlen, "%s %s:%d:%" PRId64 ": not a partition of the topics archived",
               until ? "until" : "from", topics[i], (int)parts[i], offsets[i]);
      return KEFU_ARCHIVE_USAGE;
    }
    if (until)
      p->stop = offsets[i] + 1;
    else
      p->start = offsets[i];
  }
  return 0;
}

/* Start offsets from --from-ts for the parts @p listed does not mark: the first offset
 * whose record has a timestamp at or after it (offsetsForTimes). Where the answer is -1
 * (no such record, says Kafka; librdkafka's mock cluster says so for every time), the
 * partition is read from its beginning and records are skipped up to the first one at
 * or after the time: the same start where Kafka is right, one full read where not. */
static int from_timestamp(run_t *r, const bool *listed, char *err, size_t errlen) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(r->nparts);
  for (int i = 0; i < r->nparts; i++)
    if (!listed[i])
      rd_kafka_topic_partition_list_add(l, r->parts[i].topic, r->parts[i].partition)->offset =
          r->s->from_ts;
  rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(r->rk, l, TIMEOUT_MS);
  for (int i = 0; !e && i < l->cnt; i++) {
    part_t *p = find_part(r, l->elems[i].topic, l->elems[i].partition);
    if (l->elems[i].err)
      e = l->elems[i].err;
    else if (p && l->elems[i].offset >= 0)
      p->start = l->elems[i].offset;
    else if (p) /* see below */
      p->before_ts = true;
  }
  rd_kafka_topic_partition_list_destroy(l);
  if (e)
    snprintf(err, errlen, "offsets for time %" PRId64 ": %s", r->s->from_ts, rd_kafka_err2str(e));
  return e ? KEFU_ARCHIVE_FAILED : 0;
}

/* Where every part starts and stops, and which are done before they start. */
static int plan(run_t *r, char *err, size_t errlen) {
  const kefu_archive_spec_t *s = r->s;
  bool *listed = calloc((size_t)r->nparts + 1, sizeof *listed);
  int rc = 0;
  if (!listed) {
    snprintf(err, errlen, "out of memory");
    return KEFU_ARCHIVE_FAILED;
  }
  for (int i = 0; i < r->nparts; i++)
    r->parts[i].start = s->from_end ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING;
  if ((rc = apply_list(r, s->from_topic, s->from_partition, s->from_offset, s->nfrom, false, err,
                       errlen)) ||
      (rc = apply_list(r, s->until_topic, s->until_partition, s->until_offset, s->nuntil, true, err,
                       errlen)))
    goto done;
  for (int i = 0; i < s->nfrom; i++)
    listed[find_part(r, s->from_topic[i], s->from_partition[i]) - r->parts] = true;
  if (s->has_from_ts && (rc = from_timestamp(r, listed, err, errlen)))
    goto done;
  for (int i = 0; i < r->nparts; i++) {
    part_t *p = &r->parts[i];
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(r->rk, p->topic, p->partition, &lo, &hi, TIMEOUT_MS);
    if (e) {
      snprintf(err, errlen, "end offset of %s [%d]: %s", p->topic, (int)p->partition,
               rd_kafka_err2str(e));
      rc = KEFU_ARCHIVE_FAILED;
      goto done;
    }
    if (!s->follow && hi < p->stop)
      p->stop = hi;
    int64_t first = p->start == RD_KAFKA_OFFSET_BEGINNING ? lo
                    : p->start == RD_KAFKA_OFFSET_END     ? hi
                                                          : p->start;
    if (first >= p->stop || (first >= hi && !s->follow)) {
      p->done = true;
      r->ndone++;
    }
  }
done:
  free(listed);
  return rc;
}

static int assign(run_t *r, char *err, size_t errlen) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(r->nparts);
  for (int i = 0; i < r->nparts; i++)
    if (!r->parts[i].done)
      rd_kafka_topic_partition_list_add(l, r->parts[i].topic, r->parts[i].partition)->offset =
          r->parts[i].start;
  rd_kafka_resp_err_t e = rd_kafka_assign(r->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (e)
    snprintf(err, errlen, "assign: %s", rd_kafka_err2str(e));
  return e ? KEFU_ARCHIVE_FAILED : 0;
}

static void part_done(run_t *r, part_t *p) {
  if (p->done)
    return;
  p->done = true;
  r->ndone++;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
  rd_kafka_pause_partitions(r->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
}

/* The message's headers in r->hdrs (borrowed from the message). */
static int message_headers(run_t *r, const rd_kafka_message_t *m, size_t *n) {
  rd_kafka_headers_t *h = NULL;
  const char *name;
  const void *val;
  size_t len;
  *n = 0;
  if (rd_kafka_message_headers(m, &h))
    return 0;
  size_t cnt = rd_kafka_header_cnt(h);
  if (cnt > r->hdr_cap) {
    kefu_archived_header_t *grown = realloc(r->hdrs, cnt * sizeof *grown);
    if (!grown)
      return -1;
    r->hdrs = grown;
    r->hdr_cap = cnt;
  }
  for (size_t i = 0; i < cnt && !rd_kafka_header_get_all(h, i, &name, &val, &len); i++)
    r->hdrs[(*n)++] = (kefu_archived_header_t){
        .name = (char *)name, .value = (void *)val, .len = val ? len : 0, .has_value = val != NULL};
  return 0;
}

static int on_record(run_t *r, part_t *p, const rd_kafka_message_t *m, char *err, size_t errlen) {
  rd_kafka_timestamp_type_t tstype;
  int64_t ts = rd_kafka_message_timestamp(m, &tstype);
  size_t nh = 0;
  if (m->offset >= p->stop || (r->s->has_until_ts && ts > r->s->until_ts)) {
    part_done(r, p);
    return 0;
  }
  if (p->before_ts && ts < r->s->from_ts) {
    if (m->offset + 1 >= p->stop)
      part_done(r, p);
    return 0;
  }
  p->before_ts = false;
  if (message_headers(r, m, &nh)) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  kefu_archived_t a = {.topic = (char *)p->topic,
                       .partition = p->partition,
                       .offset = m->offset,
                       .timestamp = ts,
                       .key = m->key,
                       .key_len = m->key ? m->key_len : 0,
                       .has_key = m->key != NULL,
                       .value = m->payload,
                       .value_len = m->payload ? m->len : 0,
                       .has_value = m->payload != NULL,
                       .headers = r->hdrs,
                       .nheaders = nh};
  if (kefu_archive_dir_append(r->dir, &a, err, errlen))
    return -1;
  if (m->offset + 1 >= p->stop)
    part_done(r, p);
  return 0;
}

static int on_message(run_t *r, const rd_kafka_message_t *m, char *err, size_t errlen) {
  part_t *p = m->rkt ? find_part(r, rd_kafka_topic_name(m->rkt), m->partition) : NULL;
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    if (p && m->offset >= p->stop)
      part_done(r, p);
    return 0;
  }
  if (m->err) {
    char fatal[256];
    if (rd_kafka_fatal_error(r->rk, fatal, sizeof fatal)) {
      snprintf(err, errlen, "%s", fatal);
      return -1;
    }
    if (!r->s->quiet)
      fprintf(stderr, "kefu archive: %s\n", rd_kafka_message_errstr(m));
    return 0;
  }
  return p && !p->done ? on_record(r, p, m, err, errlen) : 0;
}

static void progress(const run_t *r, double *last, int64_t *last_n, bool end) {
  double t = now_s();
  int64_t n = kefu_archive_dir_records(r->dir);
  if (r->s->quiet || !isatty(STDERR_FILENO) || (!end && t - *last < 1.0))
    return;
  fprintf(stderr, "\rkefu archive: %" PRId64 " records, %.0f records/s, %d of %d partitions done%s",
          n, t > *last ? (double)(n - *last_n) / (t - *last) : 0.0, r->ndone, r->nparts,
          end ? "\n" : "");
  *last = t;
  *last_n = n;
}

/* With --follow, the files get what was read each second, so a reader (or a crash)
 * sees all but the last second. */
static int consume(run_t *r, char *err, size_t errlen) {
  double last = now_s(), flushed = last;
  int64_t last_n = 0, flushed_n = 0;
  while (r->ndone < r->nparts && !(r->s->stop && *r->s->stop)) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, 100);
    int rc = m ? on_message(r, m, err, errlen) : 0;
    if (m)
      rd_kafka_message_destroy(m);
    if (rc)
      return KEFU_ARCHIVE_FAILED;
    progress(r, &last, &last_n, false);
    if (r->s->follow && now_s() - flushed >= 1.0 && kefu_archive_dir_records(r->dir) > flushed_n) {
      if (kefu_archive_dir_flush(r->dir, err, errlen))
        return KEFU_ARCHIVE_FAILED;
      flushed = now_s();
      flushed_n = kefu_archive_dir_records(r->dir);
    }
  }
  progress(r, &last, &last_n, true);
  if (r->ndone < r->nparts && !r->s->follow) {
    snprintf(err, errlen, "interrupted before the end offsets (%d of %d partitions done)", r->ndone,
             r->nparts);
    return KEFU_ARCHIVE_FAILED;
  }
  return 0;
}

int kefu_archive_parse_position(char *text, const char **topic, int32_t *partition,
                                int64_t *offset) {
  char *last = strrchr(text, ':'), *mid;
  int64_t p;
  if (!last || last == text)
    return -1;
  *last = '\0';
  mid = strrchr(text, ':');
  *last = ':';
  if (!mid || mid == text)
    return -1;
  *mid = *last = '\0';
  if (kefu_cli_parse_int64(mid + 1, INT32_MAX, &p) ||
      kefu_cli_parse_int64(last + 1, INT64_MAX, offset)) {
    *mid = *last = ':';
    return -1;
  }
  *topic = text;
  *partition = (int32_t)p;
  return 0;
}

int kefu_archive_topics(const kefu_archive_spec_t *s, const char *dir, char *err, size_t errlen) {
  run_t r = {.s = s};
  double started = now_s();
  char why[512] = "";
  int rc;

  if (!s->bootstrap || s->ntopics <= 0) {
    snprintf(err, errlen, "a bootstrap server and at least one topic are needed");
    return KEFU_ARCHIVE_USAGE;
  }
  if (open_consumer(&r, err, errlen))
    return KEFU_ARCHIVE_FAILED;
  if ((rc = list_parts(&r, err, errlen)) || (rc = plan(&r, err, errlen)))
    goto done;
  if (!(r.dir = kefu_archive_dir_create(dir, err, errlen))) {
    rc = KEFU_ARCHIVE_FAILED;
    goto done;
  }
  for (int i = 0; i < r.nparts; i++)
    if (kefu_archive_dir_add_partition(r.dir, r.parts[i].topic, r.parts[i].partition, err,
                                       errlen)) {
      rc = KEFU_ARCHIVE_FAILED;
      goto done;
    }
  if (!(rc = assign(&r, err, errlen)))
    rc = consume(&r, err, errlen);
done:
  if (r.dir) {
    int64_t n = kefu_archive_dir_records(r.dir);
    if (kefu_archive_dir_close(r.dir, why, sizeof why) && !rc) {
      snprintf(err, errlen, "%s", why);
      rc = KEFU_ARCHIVE_FAILED;
    }
    if (!rc && !s->quiet)
      fprintf(stderr, "archived %" PRId64 " records of %d topics into %s in %.1f s\n", n,
              s->ntopics, dir, now_s() - started);
  }
  rd_kafka_consumer_close(r.rk);
  rd_kafka_destroy(r.rk);
  free(r.parts);
  free(r.first_part);
  free(r.hdrs);
  return rc;
}
