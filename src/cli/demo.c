/* kefu demo: everything on one machine (SPEC §7).
 *
 *   1. the embedded cluster (librdkafka's mock, in this process) with every topic;
 *   2. a redis-server child on a free port in a temporary directory, no persistence;
 *   3. a generated day of traffic (src/sim), produced as a Java producer would: Avro in
 *      the Confluent framing, murmur2 partitioning on the topic's key, Kafka timestamp =
 *      ts (valid_from for courier status);
 *   4. the processor, in this process, configured like `kefu run` but from a
 *      configuration of its own: no idle advance (a replayed day must not be closed by
 *      today's wall clock), no HTTP endpoint and a stop once every input is read (the
 *      merge holds a task while a partition's records are still on their way, so the
 *      same seed gives the same summary);
 *   5. every output topic read back from the beginning and summarised on stdout.
 * The redis-server and the cluster are stopped at the end, also on SIGINT/SIGTERM;
 * with --keep-running they stay up (and the processor keeps consuming) until then.
 *
 * `--generate-only PREFIX` writes the traffic as JSON lines instead, one file per topic
 * (PREFIX<topic>.jsonl, usable with `kefu produce`), and starts nothing. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/archive_run.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "cli/redis_child.h"
#include "engine/processor.h"
#include "io/codec.h"
#include "io/kafka.h"
#include "io/mock.h"
#include "io/schemas.h"
#include "io/topics.h"
#include "ops/config.h"
#include "ops/log.h"
#include "sim/traffic.h"

#define DEMO_PARTITIONS 4
#define TOP_LABELS 10 /* lines of breakdown per output family */

/* A field of an output record for printing: "-" when absent. */
static const char *kefu_json_str_or(const json_t *o, const char *field) {
  const char *v = json_string_value(json_object_get(o, field));
  return v ? v : "-";
}

static int64_t kefu_json_int(const json_t *o, const char *field, int64_t dflt) {
  json_t *v = json_object_get(o, field);
  return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: kefu demo [--events N] [--shops N] [--seed N] [--set KEY=VALUE]...\n"
          "                 [--keep-running] [--generate-only PREFIX]\n"
          "                 [--huge-shop AGENTS:BUYERS[:SHARE]] [--what-if KEY=VALUE]...\n"
          "  Starts the embedded cluster (%d partitions) and a local redis-server, produces a\n"
          "  generated day of traffic, runs the processor over it until every input is read,\n"
          "  and prints a summary of inputs, dead letters and outputs on stdout.\n"
          "  --events N        about N input records (default 20000)\n"
          "  --shops N         N shops, a few busy and many quiet (default 20)\n"
          "  --seed N          seed of the generator: same seed, same traffic (default 1)\n"
          "  --set KEY=VALUE   a processor setting, as for kefu run (e.g. threshold=0.5);\n"
          "                    the demo does not read KEFU_* variables\n"
          "  --keep-running    after the summary, keep the cluster, redis-server and the\n"
          "                    processor running until Ctrl-C (connection details on stderr)\n"
          "  --generate-only PREFIX  write the traffic to PREFIX<topic>.jsonl, one file per\n"
          "                    input topic (for kefu produce), and start nothing\n"
          "  --huge-shop AGENTS:BUYERS[:SHARE]  add shop \"huge\" with AGENTS agents and\n"
          "                    BUYERS buyers, SHARE of the conversations (default 0.5);\n"
          "                    --events then counts what comes after the shops' setup\n"
          "  --what-if KEY=VALUE  after the summary, replay the day with this setting too\n"
          "                    (e.g. threshold=0.5) and print what changes (kefu replay --diff;\n"
          "                    docs/REPLAY.md); may repeat\n"
          "  Needs redis-server in PATH or /usr/bin (Debian: apt-get install redis-server).\n",
          DEMO_PARTITIONS);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ================================================================ producing */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  if (m->err && (*(long *)opaque)++ == 0)
    KEFU_ERROR("demo", "delivery failed: %s", rd_kafka_err2str(m->err));
}

static int produce_one(rd_kafka_t *rk, kefu_codec_t *codec, kefu_topic_t t, const json_t *rec,
                       char **buf, size_t *cap, char *errstr, size_t errlen) {
  char key[192];
  size_t len = 0;
  json_t *ts = json_object_get(rec, "ts");
  int keylen = kefu_topic_key(t, rec, key, sizeof key);
  if (keylen < 0 || kefu_codec_encode(codec, t, rec, buf, cap, &len, errstr, errlen)) {
    if (keylen < 0)
      snprintf(errstr, errlen, "a generated record has no key");
    return -1;
  }
  int64_t kafka_ts = json_integer_value(ts ? ts : json_object_get(rec, "valid_from"));
  rd_kafka_resp_err_t err;
  while ((err = rd_kafka_producev(
              rk, RD_KAFKA_V_TOPIC(kefu_topic_name(t)), RD_KAFKA_V_KEY(key, (size_t)keylen),
              RD_KAFKA_V_VALUE(*buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
              RD_KAFKA_V_TIMESTAMP(kafka_ts), RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
    rd_kafka_poll(rk, 10);
  if (err)
    snprintf(errstr, errlen, "produce: %s", rd_kafka_err2str(err));
  return err ? -1 : 0;
}

/* Produces every [topic, record] of @p traffic; counts them per topic in @p counts. */
static int produce_traffic(const char *bootstrap, kefu_codec_t *codec, const json_t *traffic,
                           long counts[KEFU_T__COUNT], char *errstr, size_t errlen) {
  rd_kafka_conf_t *conf = kefu_kafka_conf(bootstrap, NULL, 0, errstr, errlen);
  rd_kafka_t *rk = NULL;
  char *buf = NULL;
  size_t cap = 0, i;
  long failed = 0;
  json_t *pair;
  int rc = -1;
  if (!conf)
    return -1;
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_opaque(conf, &failed);
  if (kefu_kafka_set(conf, "partitioner", "murmur2_random", errstr, errlen) ||
      kefu_kafka_set(conf, "linger.ms", "20", errstr, errlen) ||
      !(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errlen))) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  kefu_progress_t prog;
  kefu_progress_start(&prog, "kefu demo: producing", "records", (int64_t)json_array_size(traffic));
  json_array_foreach(traffic, i, pair) {
    kefu_topic_t t = (kefu_topic_t)json_integer_value(json_array_get(pair, 0));
    if (stop_requested ||
        produce_one(rk, codec, t, json_array_get(pair, 1), &buf, &cap, errstr, errlen))
      goto done;
    counts[t]++;
    kefu_progress_update(&prog, (int64_t)i + 1, (int64_t)i + 1);
  }
  kefu_progress_end(&prog);
  for (double deadline = now_s() + 60; rd_kafka_outq_len(rk) > 0 && now_s() < deadline;)
    if (stop_requested)
      goto done;
    else
      rd_kafka_poll(rk, 50);
  if (rd_kafka_outq_len(rk) > 0 || failed)
    snprintf(errstr, errlen, "%ld records not delivered", failed + rd_kafka_outq_len(rk));
  else
    rc = 0;
done:
  if (stop_requested)
    snprintf(errstr, errlen, "interrupted");
  free(buf);
  rd_kafka_destroy(rk);
  return rc;
}

/* ================================================================ processing */

static void on_progress(void *arg, uint64_t records) {
  kefu_progress_t *prog = arg;
  kefu_progress_update(prog, (int64_t)records, (int64_t)records);
}

/* Runs the processor until every input is read (@p until_idle; @p inputs of them: the
 * progress line's total), or until SIGINT. */
static int run_processor(const kefu_config_t *cfg, bool until_idle, int64_t inputs, char *errstr,
                         size_t errlen) {
  kefu_cli_options_t st;
  kefu_progress_t prog;
  int rc = -1;
  if (kefu_cli_options_init(&st, cfg, errstr, errlen) != 0)
    return -1;
  /* about a second of idle polls at the end: nothing more is coming */
  st.o.exit_when_idle_polls = until_idle ? 20 : 0;
  kefu_progress_start(&prog, "kefu demo: processing", "input records", inputs);
  if (until_idle && prog.out) {
    st.o.on_progress = on_progress;
    st.o.progress_arg = &prog;
  }
  kefu_processor_t *p = kefu_processor_new(&st.o, errstr, errlen);
  if (p) {
    rc = kefu_processor_run(p, &stop_requested);
    if (rc)
      snprintf(errstr, errlen, "the processor stopped on an error (see the log above)");
    kefu_processor_destroy(p);
  }
  kefu_progress_end(&prog);
  kefu_cli_options_clear(&st);
  return rc;
}

/* ================================================================ reading back */

typedef struct tally {
  char label[120];
  long n;
} tally_t;

typedef struct counter {
  tally_t *items;
  size_t n, cap;
} counter_t;

typedef struct summary {
  long in[KEFU_T__COUNT], out[KEFU_T__COUNT];
  counter_t by[KEFU_T__COUNT];
  counter_t deliverability; /* DELIVERABILITY_RESULT cards: one per courier result */
  counter_t rates;          /* one line per shop and day: its rate and verdicts (RATE) */
  long undeliverable_orders;
  double generate_s, produce_s, process_s, read_s;
} summary_t;

static void bump(counter_t *c, const char *label) {
  for (size_t i = 0; i < c->n; i++)
    if (strcmp(c->items[i].label, label) == 0) {
      c->items[i].n++;
      return;
    }
  if (c->n == c->cap) {
    c->cap = c->cap ? 2 * c->cap : 16;
    c->items = realloc(c->items, c->cap * sizeof *c->items);
  }
  snprintf(c->items[c->n].label, sizeof c->items[c->n].label, "%s", label);
  c->items[c->n++].n = 1;
}

static void tally_deliverability(summary_t *s, const json_t *card) {
  char label[120];
  json_t *r;
  size_t i;
  if (json_is_string(json_object_get(card, "error")))
    bump(&s->deliverability, kefu_json_str_or(card, "error"));
  json_array_foreach(json_object_get(card, "results"), i, r) {
    json_t *d = json_object_get(r, "deliverable");
    snprintf(label, sizeof label, "%-10s %s%s%s", kefu_json_str_or(r, "courier"),
             json_is_true(d)    ? "deliverable"
             : json_is_false(d) ? "undeliverable"
                                : "unknown",
             json_is_true(d) ? "" : ": ", json_is_true(d) ? "" : kefu_json_str_or(r, "reason"));
    bump(&s->deliverability, label);
  }
  s->undeliverable_orders += (long)json_array_size(json_object_get(card, "undeliverable_orders"));
}

static int by_label(const void *a, const void *b) {
  return strcmp(((const tally_t *)a)->label, ((const tally_t *)b)->label);
}

/* RATE: a line per shop and day with the day's rate; verdicts as lines of their own. */
static void tally_rate(summary_t *s, const json_t *rec) {
  char label[120];
  const char *type = kefu_json_str_or(rec, "type");
  json_t *rate = json_object_get(rec, "rate");
  if (strcmp(type, "DAILY_REPORT") == 0) {
    char pct[16] = "-";
    if (json_is_number(rate))
      snprintf(pct, sizeof pct, "%.1f%%", 100.0 * json_number_value(rate));
    snprintf(label, sizeof label, "%-8s %s  DAILY_REPORT %6s  (%lld of %lld effective)",
             kefu_json_str_or(rec, "shop_id"), kefu_json_str_or(rec, "day"), pct,
             (long long)kefu_json_int(rec, "effective", 0),
             (long long)kefu_json_int(rec, "consultations", 0));
  } else {
    snprintf(label, sizeof label, "%-8s %s  %s", kefu_json_str_or(rec, "shop_id"),
             kefu_json_str_or(rec, "day"), type);
  }
  bump(&s->rates, label);
}

/* Each output family by what tells most about it. */
static void tally_record(summary_t *s, kefu_topic_t t, const rd_kafka_message_t *m,
                         const json_t *rec) {
  char label[120];
  const char *type = kefu_json_str_or(rec, "type");
  switch (t) {
  case KEFU_T_ROUTING_DECISIONS:
    snprintf(label, sizeof label, "%-26s -> %s", kefu_json_str_or(rec, "step"),
             kefu_json_str_or(rec, "target"));
    break;
  case KEFU_T_SERVICE_CARDS:
    snprintf(label, sizeof label, "%s%s%s", kefu_json_str_or(rec, "card"),
             json_is_string(json_object_get(rec, "reason")) ? ": " : "",
             json_is_string(json_object_get(rec, "reason")) ? kefu_json_str_or(rec, "reason") : "");
    if (strcmp(kefu_json_str_or(rec, "card"), "DELIVERABILITY_RESULT") == 0)
      tally_deliverability(s, rec);
    break;
  case KEFU_T_LOGISTICS_INVITATIONS:
    snprintf(label, sizeof label, "%-20s %s", type,
             strcmp(type, "INVITATION_SKIPPED") == 0 ? kefu_json_str_or(rec, "skip_rule")
                                                     : kefu_json_str_or(rec, "initiator"));
    break;
  case KEFU_T_RESPONSE_VIOLATIONS:
    tally_rate(s, rec);
    snprintf(label, sizeof label, "%s", type);
    break;
  case KEFU_T_RESPONSE_EVENTS:
    snprintf(label, sizeof label, "%s to %s", type, kefu_json_str_or(rec, "responder_kind"));
    break;
  case KEFU_T_INQUIRY_INSIGHTS:
    snprintf(label, sizeof label, "%-22s (%s)", kefu_json_str_or(rec, "cause"),
             kefu_json_str_or(rec, "factor"));
    break;
  case KEFU_T_DLQ: kefu_kafka_header(m, "kefu.error", label, sizeof label); break;
  default: snprintf(label, sizeof label, "%s", type); break;
  }
  bump(&s->by[t], label);
}

static void take_message(summary_t *s, kefu_codec_t *codec, const rd_kafka_message_t *m) {
  kefu_topic_t t = kefu_topic_by_name(rd_kafka_topic_name(m->rkt));
  json_t *rec = NULL;
  char err[256];
  if (t == KEFU_TOPIC_NONE)
    return;
  s->out[t]++;
  if (t == KEFU_T_DLQ) /* raw bytes as received: the reason is in the header */
    tally_record(s, t, m, NULL);
  else if (kefu_codec_decode(codec, t, m->payload, m->len, &rec, err, sizeof err) == 0)
    tally_record(s, t, m, rec);
  else
    bump(&s->by[t], "(not decodable)");
  json_decref(rec);
}

static int assign_outputs(rd_kafka_t *rk, int *partitions, char *errstr, size_t errlen) {
  rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(64);
  *partitions = 0;
  for (int t = KEFU_T_ROUTING_DECISIONS; t <= KEFU_T_DLQ; t++) {
    const char *name = kefu_topic_name((kefu_topic_t)t);
    int n = kefu_kafka_partition_count(rk, name, 10000, errstr, errlen);
    if (n < 0) {
      rd_kafka_topic_partition_list_destroy(parts);
      return -1;
    }
    for (int p = 0; p < n; p++, (*partitions)++)
      rd_kafka_topic_partition_list_add(parts, name, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_resp_err_t err = rd_kafka_assign(rk, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  if (err)
    snprintf(errstr, errlen, "assign: %s", rd_kafka_err2str(err));
  return err ? -1 : 0;
}

/* Reads every output partition from the beginning to its end (partition EOF). */
static int read_outputs(const char *bootstrap, kefu_codec_t *codec, summary_t *s, char *errstr,
                        size_t errlen) {
  rd_kafka_conf_t *conf = kefu_kafka_conf(bootstrap, NULL, 0, errstr, errlen);
  rd_kafka_t *rk = NULL;
  int partitions = 0, eofs = 0, rc = -1;
  if (!conf)
    return -1;
  if (kefu_kafka_set(conf, "group.id", "kefu-demo-reader", errstr, errlen) ||
      kefu_kafka_set(conf, "enable.auto.commit", "false", errstr, errlen) ||
      kefu_kafka_set(conf, "enable.partition.eof", "true", errstr, errlen) ||
      !(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errlen))) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  rd_kafka_poll_set_consumer(rk);
  if (assign_outputs(rk, &partitions, errstr, errlen))
    goto done;
  for (double deadline = now_s() + 60;
       eofs < partitions && now_s() < deadline && !stop_requested;) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
    if (!m)
      continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
      eofs++;
    else if (!m->err)
      take_message(s, codec, m);
    else
      KEFU_WARN("demo", "reading outputs: %s", rd_kafka_message_errstr(m));
    rd_kafka_message_destroy(m);
  }
  if (eofs < partitions)
    snprintf(errstr, errlen, "%s",
             stop_requested ? "interrupted" : "outputs not read to their end in 60 s");
  else
    rc = 0;
done:
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return rc;
}

/* ================================================================ printing */

static int by_count(const void *a, const void *b) {
  const tally_t *x = a, *y = b;
  if (x->n != y->n)
    return x->n > y->n ? -1 : 1;
  return strcmp(x->label, y->label);
}

static void print_counter(counter_t *c, const char *indent) {
  if (c->n == 0) /* items is NULL then, which qsort must not see */
    return;
  qsort(c->items, c->n, sizeof *c->items, by_count);
  for (size_t i = 0; i < c->n && i < TOP_LABELS; i++)
    printf("%s%8ld  %s\n", indent, c->items[i].n, c->items[i].label);
  if (c->n > TOP_LABELS)
    printf("%s%8s  ... and %zu more kinds\n", indent, "", c->n - TOP_LABELS);
}

static void print_header(const kefu_traffic_opts_t *o) {
  char utc[32], china[16];
  time_t start = (time_t)(o->start_ts / 1000), local = start + 8 * 3600;
  struct tm tm;
  strftime(utc, sizeof utc, "%Y-%m-%d %H:%M UTC", gmtime_r(&start, &tm));
  strftime(china, sizeof china, "%H:%M", gmtime_r(&local, &tm));
  printf("kefu demo: %d shops, %.1f h of traffic from %s (%s in the shops' UTC+8), seed %llu\n\n",
         o->shops, (double)o->duration_ms / 3600000.0, utc, china, (unsigned long long)o->seed);
}

static void print_inputs(const summary_t *s) {
  static const kefu_topic_t order[] = {KEFU_T_SHOP_CONFIG, KEFU_T_AGENT, KEFU_T_ORDER, KEFU_T_CHAT,
                                       KEFU_T_COURIER_STATUS};
  long total = 0;
  printf("input records\n");
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    printf("  %-30s %8ld\n", kefu_topic_name(order[i]), s->in[order[i]]);
    total += s->in[order[i]];
  }
  printf("  %-30s %8ld\n\n", "total", total);
}

static void print_outputs(summary_t *s) {
  printf("output records\n");
  for (int t = KEFU_T_ROUTING_DECISIONS; t <= KEFU_T_DLQ; t++) {
    printf("  %-30s %8ld%s\n", kefu_topic_name((kefu_topic_t)t), s->out[t],
           t == KEFU_T_DLQ ? "  (dead letters, by reason)" : "");
    print_counter(&s->by[t], "    ");
    if (t == KEFU_T_RESPONSE_VIOLATIONS && s->rates.n) {
      /* records arrive from several partitions in no fixed order: sort for a stable
       * summary (shop, day, then the report before its verdicts) */
      qsort(s->rates.items, s->rates.n, sizeof *s->rates.items, by_label);
      printf("    daily 3-minute response rates and verdicts, by shop\n");
      for (size_t i = 0; i < s->rates.n; i++)
        printf("      %s\n", s->rates.items[i].label);
    }
    if (t == KEFU_T_SERVICE_CARDS && s->deliverability.n) {
      printf("    deliverability results (per courier; %ld undeliverable orders listed)\n",
             s->undeliverable_orders);
      print_counter(&s->deliverability, "      ");
    }
  }
}

static void print_summary(const kefu_traffic_opts_t *o, summary_t *s, double total_s) {
  long keyed =
      s->in[KEFU_T_CHAT] + s->in[KEFU_T_ORDER] + s->in[KEFU_T_AGENT] + s->in[KEFU_T_SHOP_CONFIG];
  print_header(o);
  print_inputs(s);
  print_outputs(s);
  printf("\ntime: %.1f s in all; generated in %.1f s, produced in %.1f s, read back in %.1f s\n",
         total_s, s->generate_s, s->produce_s, s->read_s);
  printf("processed %ld events in %.1f s: %.0f events/s (the first seconds are the group join)\n",
         keyed, s->process_s, s->process_s > 0 ? (double)keyed / s->process_s : 0.0);
  fflush(stdout);
}

static void summary_free(summary_t *s) {
  for (int t = 0; t < KEFU_T__COUNT; t++)
    free(s->by[t].items);
  free(s->deliverability.items);
  free(s->rates.items);
}

/* ================================================================ the command */

#define DEMO_MAX_SETS 64

typedef struct demo_args {
  kefu_traffic_opts_t traffic;
  const char *generate_prefix;
  bool keep_running;
  const char *sets[DEMO_MAX_SETS]; /* --set, for the what-if replay too */
  int nsets;
  const char *what_if[DEMO_MAX_SETS]; /* --what-if KEY=VALUE */
  int nwhat_if;
} demo_args_t;

static int generate_only(const kefu_traffic_opts_t *o, const char *prefix) {
  json_t *traffic = json_array(), *pair;
  FILE *files[KEFU_T__COUNT] = {0};
  char path[PATH_MAX], errstr[256];
  size_t i;
  int rc = KEFU_EXIT_FAIL;
  if (kefu_traffic_generate(o, traffic, errstr, sizeof errstr) < 0) {
    fprintf(stderr, "kefu demo: %s\n", errstr);
    goto done;
  }
  json_array_foreach(traffic, i, pair) {
    kefu_topic_t t = (kefu_topic_t)json_integer_value(json_array_get(pair, 0));
    if (!files[t]) {
      snprintf(path, sizeof path, "%s%s.jsonl", prefix, kefu_topic_name(t));
      if (!(files[t] = fopen(path, "w"))) {
        fprintf(stderr, "kefu demo: %s: %s\n", path, strerror(errno));
        goto done;
      }
    }
    /* keys sorted, as in the conformance streams: easy to diff and to read */
    if (json_dumpf(json_array_get(pair, 1), files[t], JSON_COMPACT | JSON_SORT_KEYS) ||
        fputc('\n', files[t]) == EOF)
      goto done;
  }
  rc = KEFU_EXIT_OK;
  fprintf(stderr, "kefu demo: wrote %zu records to %s<topic>.jsonl\n", json_array_size(traffic),
          prefix);
done:
  for (int t = 0; t < KEFU_T__COUNT; t++)
    if (files[t] && fclose(files[t]) != 0)
      rc = KEFU_EXIT_FAIL;
  json_decref(traffic);
  return rc;
}

static int parse_long(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

static int apply_set(kefu_config_t *cfg, const char *kv, char *errstr, size_t errlen) {
  char key[256];
  const char *eq = strchr(kv, '=');
  if (!eq || (size_t)(eq - kv) >= sizeof key) {
    snprintf(errstr, errlen, "--set expects KEY=VALUE");
    return -1;
  }
  snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
  return kefu_config_set(cfg, key, eq + 1, errstr, errlen);
}

/* --huge-shop AGENTS:BUYERS[:SHARE] (SHARE of the journeys, default 0.5). */
static int parse_huge_shop(const char *s, kefu_traffic_opts_t *t) {
  char *end;
  errno = 0;
  long agents = strtol(s, &end, 10);
  if (errno || end == s || *end != ':' || agents < 1 || agents > 100000)
    return -1;
  s = end + 1;
  long buyers = strtol(s, &end, 10);
  if (errno || end == s || (*end && *end != ':') || buyers < 10 || buyers > 10000000)
    return -1;
  double share = 0.5;
  if (*end == ':') {
    s = end + 1;
    share = strtod(s, &end);
    if (errno || end == s || *end || !(share >= 0 && share <= 1))
      return -1;
  }
  t->huge_agents = (int)agents;
  t->huge_buyers = (int)buyers;
  t->huge_share = share;
  return 0;
}

/* 0 to go on, -1 after --help, or an exit code. */
static int parse_args(int argc, char **argv, demo_args_t *a, kefu_config_t *cfg) {
  static const struct option opts[] = {{"events", required_argument, 0, 'n'},
                                       {"shops", required_argument, 0, 's'},
                                       {"seed", required_argument, 0, 'r'},
                                       {"set", required_argument, 0, 'S'},
                                       {"keep-running", no_argument, 0, 'k'},
                                       {"generate-only", required_argument, 0, 'g'},
                                       {"huge-shop", required_argument, 0, 'H'},
                                       {"what-if", required_argument, 0, 'w'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  char errstr[512] = "";
  long v = 0;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    int bad = 0;
    switch (c) {
    case 'n':
      if (!(bad = parse_long(optarg, 1, 50000000, &v)))
        a->traffic.events = (int)v;
      break;
    case 's':
      if (!(bad = parse_long(optarg, 1, 10000, &v)))
        a->traffic.shops = (int)v;
      break;
    case 'r':
      if (!(bad = parse_long(optarg, 0, LONG_MAX, &v)))
        a->traffic.seed = (uint64_t)v;
      break;
    case 'S':
      if (!(bad = apply_set(cfg, optarg, errstr, sizeof errstr)) && a->nsets < DEMO_MAX_SETS)
        a->sets[a->nsets++] = optarg;
      break;
    case 'w': { /* checked now, applied to the replay after the day */
      kefu_config_t *scratch = kefu_config_new();
      bad = apply_set(scratch, optarg, errstr, sizeof errstr);
      kefu_config_destroy(scratch);
      if (!bad && a->nwhat_if < DEMO_MAX_SETS)
        a->what_if[a->nwhat_if++] = optarg;
      break;
    }
    case 'k': a->keep_running = true; break;
    case 'g': a->generate_prefix = optarg; break;
    case 'H': bad = parse_huge_shop(optarg, &a->traffic); break;
    case 'h': usage(stdout); return -1;
    default: usage(stderr); return KEFU_EXIT_USAGE;
    }
    if (bad) {
      fprintf(stderr, "kefu demo: %s\n", *errstr ? errstr : "bad number");
      return KEFU_EXIT_USAGE;
    }
  }
  if (optind != argc) {
    usage(stderr);
    return KEFU_EXIT_USAGE;
  }
  return 0;
}

/* What the demo fixes whatever --set says: its own cluster and Redis, and event time
 * only (see the top of this file). */
static int demo_settings(kefu_config_t *cfg, const char *bootstrap, int redis_port, char *errstr,
                         size_t errlen) {
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", redis_port);
  return kefu_config_set(cfg, "bootstrap.servers", bootstrap, errstr, errlen) ||
                 kefu_config_set(cfg, "redis.url", url, errstr, errlen) ||
                 kefu_config_set(cfg, "idle_advance", "false", errstr, errlen) ||
                 kefu_config_set(cfg, "http.listen", "", errstr, errlen) ||
                 kefu_config_set(cfg, "instance.id", "demo", errstr, errlen)
             ? -1
             : 0;
}

static void keep_running(const kefu_config_t *cfg) {
  char errstr[512];
  fprintf(stderr,
          "kefu demo: still running until Ctrl-C: cluster %s, redis %s, topics %s*\n"
          "  e.g. kefu consume -b %s -t %s --from-beginning\n",
          kefu_config_str(cfg, "bootstrap.servers"), kefu_config_str(cfg, "redis.url"),
          kefu_config_str(cfg, "topic.prefix"), kefu_config_str(cfg, "bootstrap.servers"),
          kefu_topic_name(KEFU_T_ROUTING_DECISIONS));
  if (run_processor(cfg, false, -1, errstr, sizeof errstr))
    fprintf(stderr, "kefu demo: %s\n", errstr);
}

/* What the demo runs on: the cluster, redis-server and a codec to read and write with. */
typedef struct demo_env {
  kefu_mock_t *mock;
  kefu_redis_child_t redis;
  kefu_schemas_t *schemas;
  kefu_codec_t *codec;
} demo_env_t;

/* Schemas, cluster, redis-server, then the settings that point the processor at them.
 * (kefu_mock_start now and then takes a few whole seconds: librdkafka's mock thread,
 * not the demo; `kefu broker` shows it too.) */
static int demo_start(demo_env_t *env, kefu_config_t *cfg, char *errstr, size_t errlen) {
  const char *prefix = kefu_config_str(cfg, "topic.prefix");
  double t0 = now_s();
  kefu_topics_set_prefix(prefix);
  if (!(env->schemas = kefu_schemas_new(errstr, errlen)) ||
      !(env->codec = kefu_codec_new(env->schemas)) ||
      !(env->mock = kefu_mock_start(1, DEMO_PARTITIONS, prefix, errstr, errlen)) ||
      kefu_redis_child_start(&env->redis, "kefu-demo", errstr, errlen) ||
      kefu_redis_child_wait(&env->redis, &stop_requested, errstr, errlen) ||
      demo_settings(cfg, kefu_mock_bootstraps(env->mock), env->redis.port, errstr, errlen))
    return -1;
  KEFU_INFO("demo", "cluster %s and redis-server %s ready in %.2f s",
            kefu_mock_bootstraps(env->mock), kefu_config_str(cfg, "redis.url"), now_s() - t0);
  return 0;
}

static void demo_stop(demo_env_t *env) {
  kefu_redis_child_stop(&env->redis);
  kefu_mock_stop(env->mock);
  kefu_codec_destroy(env->codec);
  kefu_schemas_destroy(env->schemas);
}

/* Seconds since *@p t, which moves on to now. */
static double lap(double *t) {
  double now = now_s(), d = now - *t;
  *t = now;
  return d;
}

/* Generate, produce, process, read back: each phase timed into @p s. */
static int run_pipeline(const demo_args_t *a, const kefu_config_t *cfg, const demo_env_t *env,
                        summary_t *s, char *errstr, size_t errlen) {
  const char *bootstrap = kefu_mock_bootstraps(env->mock);
  json_t *traffic = json_array();
  double t = now_s();
  int rc = -1;
  if (kefu_traffic_generate(&a->traffic, traffic, errstr, errlen) < 0)
    goto done;
  s->generate_s = lap(&t);
  if (produce_traffic(bootstrap, env->codec, traffic, s->in, errstr, errlen))
    goto done;
  s->produce_s = lap(&t);
  int64_t inputs = 0;
  for (int k = 0; k < KEFU_T__COUNT; k++)
    inputs += kefu_topics[k].input && k != KEFU_T_COURIER_STATUS ? s->in[k] : 0;
  if (run_processor(cfg, true, inputs, errstr, errlen) || stop_requested)
    goto done;
  s->process_s = lap(&t);
  if (read_outputs(bootstrap, env->codec, s, errstr, errlen))
    goto done;
  s->read_s = lap(&t);
  rc = 0;
done:
  json_decref(traffic);
  return rc;
}

/* --what-if: the day's input and output topics archived, the input replayed with the
 * demo's settings and the what-ifs (kefu replay, on the demo's redis-server in a private
 * namespace), and the diff against what the demo recorded, on stdout. */
static int what_if(const demo_args_t *a, demo_env_t *env, char *errstr, size_t errlen) {
  const char *in_topics[KEFU_KEYED_INPUTS + 1], *out_topics[KEFU_T__COUNT];
  char dir[PATH_MAX], in[PATH_MAX + 8], rec[PATH_MAX + 8], out[PATH_MAX + 8], url[64];
  int nin = 0, nout = 0, rc = -1;
  if (kefu_cli_temp_dir("kefu-demo-whatif", dir, sizeof dir, errstr, errlen))
    return -1;
  snprintf(in, sizeof in, "%s/in", dir);
  snprintf(rec, sizeof rec, "%s/rec", dir);
  snprintf(out, sizeof out, "%s/out", dir);
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", env->redis.port);
  for (int t = 0; t < KEFU_T__COUNT; t++) {
    if (kefu_topics[t].input)
      in_topics[nin++] = kefu_topic_name((kefu_topic_t)t);
    else
      out_topics[nout++] = kefu_topic_name((kefu_topic_t)t);
  }
  kefu_archive_spec_t spec = {.bootstrap = kefu_mock_bootstraps(env->mock),
                              .topics = in_topics,
                              .ntopics = nin,
                              .quiet = true,
                              .stop = &stop_requested};
  if (kefu_archive_topics(&spec, in, errstr, errlen))
    goto done;
  spec.topics = out_topics;
  spec.ntopics = nout;
  if (kefu_archive_topics(&spec, rec, errstr, errlen))
    goto done;
  char *argv[16 + 4 * DEMO_MAX_SETS];
  int argc = 0;
  argv[argc++] = "replay";
  argv[argc++] = "--archive";
  argv[argc++] = in;
  argv[argc++] = "--redis";
  argv[argc++] = url;
  argv[argc++] = "--set";
  argv[argc++] = "log.level=warn";
  for (int i = 0; i < a->nsets; i++)
    argv[argc++] = "--set", argv[argc++] = (char *)a->sets[i];
  printf("\nWhat if");
  for (int i = 0; i < a->nwhat_if; i++) {
    argv[argc++] = "--set", argv[argc++] = (char *)a->what_if[i];
    printf("%s %s", i ? "," : "", a->what_if[i]);
  }
  printf("? The same day replayed (kefu replay --diff), against what it recorded:\n\n");
  fflush(stdout);
  argv[argc++] = "--out";
  argv[argc++] = out;
  argv[argc++] = "--diff";
  argv[argc++] = rec;
  argv[argc] = NULL;
  if (kefu_replay_main(argc, argv, &stop_requested) != KEFU_EXIT_OK)
    snprintf(errstr, errlen, "kefu replay failed");
  else
    rc = 0;
done:
  kefu_cli_remove_tree(dir);
  return rc;
}

static int run_demo(const demo_args_t *a, kefu_config_t *cfg, summary_t *s) {
  char errstr[512] = "";
  demo_env_t env = {0};
  double t0 = now_s();
  int rc = KEFU_EXIT_FAIL;
  if (demo_start(&env, cfg, errstr, sizeof errstr) ||
      run_pipeline(a, cfg, &env, s, errstr, sizeof errstr)) {
    fprintf(stderr, "kefu demo: %s\n", stop_requested ? "interrupted" : errstr);
    goto done;
  }
  print_summary(&a->traffic, s, now_s() - t0);
  if (a->nwhat_if && what_if(a, &env, errstr, sizeof errstr)) {
    fprintf(stderr, "kefu demo: what-if: %s\n", errstr);
    goto done;
  }
  if (!a->nwhat_if)
    printf("\nWhat if the threshold were 0.5? kefu demo --what-if threshold=0.5 replays this day\n"
           "with it and shows what changes; docs/REPLAY.md records, archives and replays a day.\n");
  if (a->keep_running)
    keep_running(cfg);
  rc = KEFU_EXIT_OK;
done:
  demo_stop(&env);
  return rc;
}

int kefu_cmd_demo(int argc, char **argv) {
  demo_args_t a = {0};
  summary_t s = {0};
  kefu_config_t *cfg = kefu_config_new();
  struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: waits wake up */
  kefu_traffic_defaults(&a.traffic);
  /* quieter than `kefu run` by default: stdout has the summary, stderr only what matters */
  char errstr[256];
  /* A default of the demo's own, before --set: quieter than `kefu run` (stdout has the
   * summary, stderr only what matters). */
  if (kefu_config_set(cfg, "log.level", "warn", errstr, sizeof errstr))
    KEFU_WARN("demo", "%s", errstr);
  int rc = parse_args(argc, argv, &a, cfg);
  if (rc == 0 && a.generate_prefix)
    rc = generate_only(&a.traffic, a.generate_prefix);
  else if (rc == 0) {
    kefu_log_min_level = (kefu_log_level_t)kefu_log_level_parse(kefu_config_str(cfg, "log.level"));
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = run_demo(&a, cfg, &s);
  }
  summary_free(&s);
  kefu_config_destroy(cfg);
  return rc < 0 ? KEFU_EXIT_OK : rc;
}
