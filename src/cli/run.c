/* kefu run: the stream processor. Configuration comes from the file (-c), then KEFU_*
 * environment variables, then --set KEY=VALUE (and -b, --redis), later sources winning
 * (SPEC §7). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "engine/processor.h"
#include "io/topics.h"
#include "ops/config.h"
#include "ops/http.h"
#include "ops/log.h"

extern char **environ;

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void usage(FILE *out) {
  fprintf(out, "usage: kefu run [-c FILE] [-b BOOTSTRAP] [--redis URL] [--set KEY=VALUE]...\n"
               "                [--list-config] [--exit-when-idle]\n"
               "  Runs the processor as a member of the consumer group group.id.\n"
               "  -c FILE          configuration file (key = value lines)\n"
               "  -b BOOTSTRAP     Kafka bootstrap servers (bootstrap.servers)\n"
               "  --redis URL      redis://[user[:password]@]host:port[/db] (redis.url)\n"
               "  --set KEY=VALUE  any configuration key; kafka.* keys go to librdkafka\n"
               "  --list-config    print every key with its value and default, secrets redacted\n"
               "  --exit-when-idle stop once every assigned partition is read to its end\n"
               "  Environment: KEFU_<KEY> with dots as underscores, e.g. KEFU_REDIS_URL.\n");
}

typedef struct kafka_props {
  char **items;
  int n;
} kafka_props_t;

static void collect_kafka(const char *k, const char *v, void *arg) {
  kafka_props_t *kp = arg;
  size_t len = strlen(k) + strlen(v) + 2;
  kp->items = realloc(kp->items, (size_t)(kp->n + 1) * sizeof *kp->items);
  kp->items[kp->n] = malloc(len);
  snprintf(kp->items[kp->n++], len, "%s=%s", k, v);
}

/* Applies -c, the environment, then the flags in order. 0, or an exit code. */
static int configure(kefu_config_t *cfg, int argc, char **argv, bool *list, bool *until_idle) {
  static const struct option opts[] = {
      {"config", required_argument, 0, 'c'}, {"bootstrap", required_argument, 0, 'b'},
      {"redis", required_argument, 0, 'r'},  {"set", required_argument, 0, 's'},
      {"list-config", no_argument, 0, 'l'},  {"exit-when-idle", no_argument, 0, 'e'},
      {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
  char errstr[512];
  const char *file = NULL;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "c:b:h", opts, NULL)) != -1) {
    if (c == 'c')
      file = optarg;
    else if (c == 'h') {
      usage(stdout);
      return -1;
    } else if (c == '?') {
      usage(stderr);
      return KEFU_EXIT_USAGE;
    }
  }
  if (optind != argc) {
    usage(stderr);
    return KEFU_EXIT_USAGE;
  }
  if ((file && kefu_config_load_file(cfg, file, errstr, sizeof errstr)) ||
      kefu_config_load_env(cfg, environ, errstr, sizeof errstr))
    goto bad;
  optind = 1;
  while ((c = getopt_long(argc, argv, "c:b:h", opts, NULL)) != -1) {
    char key[256];
    const char *eq;
    int rc = 0;
    switch (c) {
    case 'b': rc = kefu_config_set(cfg, "bootstrap.servers", optarg, errstr, sizeof errstr); break;
    case 'r': rc = kefu_config_set(cfg, "redis.url", optarg, errstr, sizeof errstr); break;
    case 'l': *list = true; break;
    case 'e': *until_idle = true; break;
    case 's':
      eq = strchr(optarg, '=');
      if (!eq || (size_t)(eq - optarg) >= sizeof key) {
        snprintf(errstr, sizeof errstr, "--set expects KEY=VALUE");
        goto bad;
      }
      snprintf(key, sizeof key, "%.*s", (int)(eq - optarg), optarg);
      rc = kefu_config_set(cfg, key, eq + 1, errstr, sizeof errstr);
      break;
    default: break;
    }
    if (rc)
      goto bad;
  }
  return 0;
bad:
  fprintf(stderr, "kefu run: %s\n", errstr);
  return KEFU_EXIT_USAGE;
}

/* logistics_couriers as the NULL-terminated list the rules take; the strings stay the
 * config's. */
static const char **courier_list(const kefu_config_t *cfg) {
  const char **items;
  size_t n = kefu_config_list(cfg, "logistics_couriers", &items);
  const char **list = calloc(n + 1, sizeof *list);
  for (size_t i = 0; i < n; i++)
    list[i] = items[i];
  return list;
}

static void fill_opts(const kefu_config_t *cfg, kefu_processor_opts_t *o, char *instance,
                      size_t instlen, kafka_props_t *kp) {
  const char *inst = kefu_config_str(cfg, "instance.id");
  char host[128] = "kefu";
  gethostname(host, sizeof host - 1);
  if (*inst)
    snprintf(instance, instlen, "%s", inst);
  else
    snprintf(instance, instlen, "%s-%d", host, (int)getpid());
  kefu_config_each_kafka(cfg, collect_kafka, kp);
  *o = (kefu_processor_opts_t){
      .bootstrap = kefu_config_str(cfg, "bootstrap.servers"),
      .group_id = kefu_config_str(cfg, "group.id"),
      .instance_id = instance,
      .transactional_id_prefix = kefu_config_str(cfg, "transactional.id.prefix"),
      .redis_url = kefu_config_str(cfg, "redis.url"),
      .redis_user = kefu_config_str(cfg, "redis.user"),
      .redis_password = kefu_config_str(cfg, "redis.password"),
      .redis_namespace = kefu_config_str(cfg, "redis.namespace"),
      .exactly_once = strcmp(kefu_config_str(cfg, "processing.guarantee"), "exactly_once") == 0,
      .task_idle_ms = (int)kefu_config_int(cfg, "task_idle_ms"),
      .batch_max_records = (int)kefu_config_int(cfg, "batch.max_records"),
      .batch_max_ms = (int)kefu_config_int(cfg, "batch.max_ms"),
      .redis_timeout_ms = (int)kefu_config_int(cfg, "redis.timeout_ms"),
      .redis_retry_max_ms = (int)kefu_config_int(cfg, "redis.retry_max_ms"),
      .lateness_ms = kefu_config_int(cfg, "lateness"),
      .idle_advance = kefu_config_bool(cfg, "idle_advance"),
      .idle_advance_ms = kefu_config_int(cfg, "idle_advance_ms"),
      .params = {.threshold = kefu_config_double(cfg, "threshold"),
                 .escalate_after = (int)kefu_config_int(cfg, "escalate_after"),
                 .session_idle_ms = kefu_config_int(cfg, "session_idle_ms"),
                 .invitation_expiry_ms = kefu_config_int(cfg, "invitation_expiry_ms"),
                 .response_wait_ms = kefu_config_int(cfg, "response_wait_ms"),
                 .day_close_grace_ms = kefu_config_int(cfg, "day_close_grace"),
                 .logistics_couriers = courier_list(cfg)},
      .kafka_props = kp->items,
      .nkafka_props = kp->n,
  };
}

int kefu_cmd_run(int argc, char **argv) {
  kefu_config_t *cfg = kefu_config_new();
  kefu_processor_opts_t o = {0};
  kafka_props_t kp = {0};
  char errstr[512], instance[256];
  bool list = false, until_idle = false;
  int rc = configure(cfg, argc, argv, &list, &until_idle);

  if (rc || list) {
    if (list)
      kefu_config_print(cfg, stdout);
    kefu_config_destroy(cfg);
    return rc < 0 ? KEFU_EXIT_OK : rc;
  }
  kefu_log_min_level = (kefu_log_level_t)kefu_log_level_parse(kefu_config_str(cfg, "log.level"));
  kefu_topics_set_prefix(kefu_config_str(cfg, "topic.prefix"));
  fill_opts(cfg, &o, instance, sizeof instance, &kp);
  o.exit_when_idle_polls = until_idle ? 10 : 0;
  if (!*o.bootstrap) {
    fprintf(stderr, "kefu run: no bootstrap servers (-b or bootstrap.servers)\n");
    rc = KEFU_EXIT_USAGE;
    goto done;
  }
  if (*kefu_config_str(cfg, "http.listen") &&
      kefu_http_start(kefu_config_str(cfg, "http.listen"), errstr, sizeof errstr)) {
    fprintf(stderr, "kefu run: http: %s\n", errstr);
    rc = KEFU_EXIT_FAIL;
    goto done;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);
  kefu_processor_t *p = kefu_processor_new(&o, errstr, sizeof errstr);
  if (!p) {
    KEFU_ERROR("run", "%s", errstr);
    rc = KEFU_EXIT_FAIL;
  } else {
    KEFU_INFO("run", "instance %s processing (%s)", instance,
              o.exactly_once ? "exactly_once" : "at_least_once");
    rc = kefu_processor_run(p, &stop_requested) ? KEFU_EXIT_FAIL : KEFU_EXIT_OK;
    kefu_processor_destroy(p);
  }
  kefu_http_stop();
done:
  free((void *)o.params.logistics_couriers);
  for (int i = 0; i < kp.n; i++)
    free(kp.items[i]);
  free(kp.items);
  kefu_config_destroy(cfg);
  return rc;
}
