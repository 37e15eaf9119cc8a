/* kefu demo: everything on one machine. The embedded cluster (librdkafka's mock) and a
 * local redis-server are started, a day of generated traffic is produced, the processor
 * runs until it has read everything, and a readable summary of what went in and what
 * came out is printed on stdout. `--generate-only PREFIX` writes the traffic as JSON
 * lines instead (one file per topic, for `kefu produce` and the bench). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <unistd.h>

#include "cli/cli.h"
#include "engine/processor.h"
#include "engine/shop.h"
#include "io/codec.h"
#include "io/kafka.h"
#include "io/mock.h"
#include "io/schemas.h"
#include "io/topics.h"
#include "ops/log.h"
#include "sim/traffic.h"

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void usage(FILE *out) {
  fprintf(out, "usage: kefu demo [--events N] [--shops N] [--seed N] [--generate-only PREFIX]\n"
               "  Starts the embedded cluster and a local redis-server, produces a generated\n"
               "  day of traffic (default 20000 events over 20 shops), runs the processor\n"
               "  over it and prints a summary. --generate-only writes PREFIX<topic>.jsonl\n"
               "  files instead and starts nothing.\n");
}

static double now_s(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* ------------------------------------------------------------------ redis-server */

typedef struct redis_child {
  pid_t pid;
  int port;
  char dir[64];
} redis_child_t;

static int free_port(void) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

static int start_redis(redis_child_t *r) {
  char port[16];
  snprintf(r->dir, sizeof r->dir, "/tmp/kefu-demo-XXXXXX");
  if (!mkdtemp(r->dir) || (r->port = free_port()) < 0)
    return -1;
  snprintf(port, sizeof port, "%d", r->port);
  r->pid = fork();
  if (r->pid == 0) {
    int devnull = open("/dev/null", 1);
    dup2(devnull, 1);
    execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--dir", r->dir, (char *)NULL);
    _exit(127);
  }
  return r->pid > 0 ? 0 : -1;
}

static void stop_redis(redis_child_t *r) {
  char cmd[128];
  if (r->pid > 0) {
    kill(r->pid, SIGTERM);
    waitpid(r->pid, NULL, 0);
  }
  snprintf(cmd, sizeof cmd, "rm -rf %s", r->dir);
  if (r->dir[0] && system(cmd) != 0)
    KEFU_WARN("demo", "could not remove %s", r->dir);
}

/* ------------------------------------------------------------------ producing */

static int produce_all(const char *bootstrap, kefu_codec_t *codec, const json_t *traffic,
                       long counts[KEFU_T__COUNT], char *errstr, size_t errlen) {
  rd_kafka_conf_t *conf = kefu_kafka_conf(bootstrap, NULL, 0, errstr, errlen);
  char *buf = NULL, key[160];
  size_t cap = 0, len = 0, i;
  json_t *item;
  if (!conf || kefu_kafka_set(conf, "partitioner", "murmur2_random", errstr, errlen) ||
      kefu_kafka_set(conf, "linger.ms", "20", errstr, errlen))
    return -1;
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errlen);
  if (!rk)
    return -1;
  json_array_foreach(traffic, i, item) {
    kefu_topic_t t = (kefu_topic_t)json_integer_value(json_array_get(item, 0));
    json_t *rec = json_array_get(item, 1);
    json_t *ts = json_object_get(rec, "ts");
    int keylen = kefu_topic_key(t, rec, key, sizeof key);
    if (keylen < 0 || kefu_codec_encode(codec, t, rec, &buf, &cap, &len, errstr, errlen))
      continue;
    while (rd_kafka_producev(
               rk, RD_KAFKA_V_TOPIC(kefu_topic_name(t)), RD_KAFKA_V_KEY(key, (size_t)keylen),
               RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
               RD_KAFKA_V_TIMESTAMP(ts ? json_integer_value(ts)
                                       : json_integer_value(json_object_get(rec, "valid_from"))),
               RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(rk, 10);
    counts[t]++;
  }
  rd_kafka_flush(rk, 60000);
  free(buf);
  rd_kafka_destroy(rk);
  return 0;
}

/* ------------------------------------------------------------------ reading back */

typedef struct summary {
  long out[KEFU_T__COUNT];
  json_t *by[KEFU_T__COUNT]; /* topic -> {label: count} */
} summary_t;

static void bump(json_t *counter, const char *label) {
  json_t *n = json_object_get(counter, label ? label : "(none)");
  json_object_set_new(counter, label ? label : "(none)",
                      json_integer(n ? json_integer_value(n) + 1 : 1));
}

/* What each output family is best summarised by. */
static void classify(summary_t *s, kefu_topic_t t, const rd_kafka_message_t *m, json_t *rec) {
  char label[256];
  switch (t) {
  case KEFU_T_ROUTING_DECISIONS:
    snprintf(label, sizeof label, "%-14s %-26s -> %s", kefu_json_str_or(rec, "trigger"),
             kefu_json_str_or(rec, "step"), kefu_json_str_or(rec, "target"));
    break;
  case KEFU_T_SERVICE_CARDS:
    snprintf(label, sizeof label, "%s", kefu_json_str_or(rec, "card"));
    break;
  case KEFU_T_DLQ: kefu_kafka_header(m, "kefu.error", label, sizeof label); break;
  default: snprintf(label, sizeof label, "%s", kefu_json_str_or(rec, "type")); break;
  }
  bump(s->by[t], label);
}

static int read_outputs(const char *bootstrap, kefu_codec_t *codec, summary_t *s, char *errstr,
                        size_t errlen) {
  rd_kafka_conf_t *conf = kefu_kafka_conf(bootstrap, NULL, 0, errstr, errlen);
  if (!conf || kefu_kafka_set(conf, "group.id", "kefu-demo-reader", errstr, errlen) ||
      kefu_kafka_set(conf, "enable.partition.eof", "true", errstr, errlen))
    return -1;
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errlen);
  if (!rk)
    return -1;
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(64);
  int total = 0, eofs = 0;
  for (int t = KEFU_T_ROUTING_DECISIONS; t <= KEFU_T_DLQ; t++) {
    int n = kefu_kafka_partition_count(rk, kefu_topic_name((kefu_topic_t)t), 10000, errstr, errlen);
    for (int p = 0; p < n; p++, total++)
      rd_kafka_topic_partition_list_add(parts, kefu_topic_name((kefu_topic_t)t), p)->offset =
          RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  double deadline = now_s() + 60;
  while (eofs < total && now_s() < deadline) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
    if (!m)
      continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
      eofs++;
    else if (!m->err) {
      kefu_topic_t t = kefu_topic_by_name(rd_kafka_topic_name(m->rkt));
      json_t *rec = NULL;
      char err[256];
      s->out[t]++;
      if (t == KEFU_T_DLQ ||
          !kefu_codec_decode(codec, t, m->payload, m->len, &rec, err, sizeof err))
        classify(s, t, m, rec);
      json_decref(rec);
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return 0;
}

static void print_summary(const long in[KEFU_T__COUNT], const summary_t *s, double produce_s,
                          double process_s) {
  long total_in = 0;
  printf("\nkefu demo — one generated day through the embedded cluster and Redis\n\n");
  printf("input records\n");
  for (int t = 0; t <= KEFU_T_COURIER_STATUS; t++) {
    printf("  %-28s %8ld\n", kefu_topic_name((kefu_topic_t)t), in[t]);
    total_in += in[t];
  }
  printf("  %-28s %8ld  (produced in %.1f s)\n\n", "total", total_in, produce_s);
  printf("output records\n");
  for (int t = KEFU_T_ROUTING_DECISIONS; t <= KEFU_T_DLQ; t++) {
    printf("  %-28s %8ld\n", kefu_topic_name((kefu_topic_t)t), s->out[t]);
    const char *label;
    json_t *n;
    json_object_foreach(s->by[t], label, n)
        printf("      %-52s %7lld\n", label, (long long)json_integer_value(n));
  }
  printf("\nprocessed %ld input records in %.1f s (%.0f records/s, group join included)\n",
         total_in - in[KEFU_T_COURIER_STATUS], process_s,
         process_s > 0 ? (double)(total_in - in[KEFU_T_COURIER_STATUS]) / process_s : 0.0);
}

/* ------------------------------------------------------------------ the command */

static int generate_only(const kefu_traffic_opts_t *o, const char *prefix) {
  json_t *traffic = json_array(), *item;
  FILE *files[KEFU_T__COUNT] = {0};
  size_t i;
  char path[4096];
  kefu_traffic_generate(o, traffic);
  json_array_foreach(traffic, i, item) {
    kefu_topic_t t = (kefu_topic_t)json_integer_value(json_array_get(item, 0));
    if (!files[t]) {
      snprintf(path, sizeof path, "%s%s.jsonl", prefix, kefu_topic_name(t));
      if (!(files[t] = fopen(path, "w"))) {
        perror(path);
        return KEFU_EXIT_FAIL;
      }
    }
    char *line = json_dumps(json_array_get(item, 1), JSON_COMPACT);
    fprintf(files[t], "%s\n", line);
    free(line);
  }
  for (int t = 0; t < KEFU_T__COUNT; t++)
    if (files[t])
      fclose(files[t]);
  fprintf(stderr, "kefu demo: wrote %zu records under %s*\n", json_array_size(traffic), prefix);
  json_decref(traffic);
  return KEFU_EXIT_OK;
}

static int parse_args(int argc, char **argv, kefu_traffic_opts_t *o, const char **generate) {
  static const struct option opts[] = {
      {"events", required_argument, 0, 'n'}, {"shops", required_argument, 0, 's'},
      {"seed", required_argument, 0, 'r'},   {"generate-only", required_argument, 0, 'g'},
      {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'n': o->events = atoi(optarg); break;
    case 's': o->shops = atoi(optarg); break;
    case 'r': o->seed = strtoull(optarg, NULL, 10); break;
    case 'g': *generate = optarg; break;
    case 'h': usage(stdout); return -1;
    default: usage(stderr); return KEFU_EXIT_USAGE;
    }
  }
  if (optind != argc || o->events < 1 || o->shops < 1) {
    usage(stderr);
    return KEFU_EXIT_USAGE;
  }
  return 0;
}

static int run_processor(const char *bootstrap, const char *redis_url, char *errstr,
                         size_t errlen) {
  kefu_processor_opts_t o = {.bootstrap = bootstrap,
                             .group_id = "kefu-demo",
                             .instance_id = "demo",
                             .transactional_id_prefix = "kefu-demo",
                             .redis_url = redis_url,
                             .redis_user = "",
                             .redis_password = "",
                             .redis_namespace = "kefu",
                             .exactly_once = true,
                             .task_idle_ms = 500,
                             .batch_max_records = 2000,
                             .batch_max_ms = 50,
                             .redis_timeout_ms = 5000,
                             .redis_retry_max_ms = 2000,
                             .params = {.threshold = 0.4,
                                        .escalate_after = 3,
                                        .session_idle_ms = 900000,
                                        .invitation_expiry_ms = 600000,
                                        .response_wait_ms = 180000},
                             .exit_when_idle_polls = 20};
  kefu_processor_t *p = NULL;
  for (int attempt = 0; attempt < 50 && !p; attempt++) { /* redis-server may still start */
    if (!(p = kefu_processor_new(&o, errstr, errlen)))
      usleep(100000);
  }
  if (!p)
    return -1;
  int rc = kefu_processor_run(p, &stop_requested);
  kefu_processor_destroy(p);
  return rc;
}

int kefu_cmd_demo(int argc, char **argv) {
  kefu_traffic_opts_t topts;
  const char *generate = NULL;
  char errstr[512], redis_url[64];
  long in[KEFU_T__COUNT] = {0};
  summary_t sum = {0};
  redis_child_t redis = {0};
  kefu_traffic_defaults(&topts);
  int rc = parse_args(argc, argv, &topts, &generate);
  if (rc)
    return rc < 0 ? KEFU_EXIT_OK : rc;
  if (generate)
    return generate_only(&topts, generate);

  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  kefu_log_min_level = KEFU_LOG_WARN;
  kefu_mock_t *mock = kefu_mock_start(1, 4, "kefu.", errstr, sizeof errstr);
  kefu_schemas_t *schemas = kefu_schemas_new(errstr, sizeof errstr);
  kefu_codec_t *codec = schemas ? kefu_codec_new(schemas) : NULL;
  json_t *traffic = json_array();
  rc = KEFU_EXIT_FAIL;
  if (!mock || !codec || start_redis(&redis)) {
    fprintf(stderr, "kefu demo: %s\n", mock && codec ? "cannot start redis-server" : errstr);
    goto done;
  }
  for (int t = 0; t < KEFU_T__COUNT; t++)
    sum.by[t] = json_object();
  snprintf(redis_url, sizeof redis_url, "redis://127.0.0.1:%d/0", redis.port);
  fprintf(stderr, "kefu demo: cluster %s, redis %s, generating %d events over %d shops\n",
          kefu_mock_bootstraps(mock), redis_url, topts.events, topts.shops);
  kefu_traffic_generate(&topts, traffic);
  double t0 = now_s();
  if (produce_all(kefu_mock_bootstraps(mock), codec, traffic, in, errstr, sizeof errstr))
    goto fail;
  double t1 = now_s();
  if (run_processor(kefu_mock_bootstraps(mock), redis_url, errstr, sizeof errstr))
    goto fail;
  double t2 = now_s();
  if (read_outputs(kefu_mock_bootstraps(mock), codec, &sum, errstr, sizeof errstr))
    goto fail;
  print_summary(in, &sum, t1 - t0, t2 - t1);
  rc = KEFU_EXIT_OK;
  goto done;
fail:
  fprintf(stderr, "kefu demo: %s\n", errstr);
done:
  for (int t = 0; t < KEFU_T__COUNT; t++)
    json_decref(sum.by[t]);
  json_decref(traffic);
  stop_redis(&redis);
  if (codec)
    kefu_codec_destroy(codec);
  if (schemas)
    kefu_schemas_destroy(schemas);
  kefu_mock_stop(mock);
  return rc;
}
