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
#include "cli/options.h"
#include "engine/processor.h"
#include "io/topics.h"
#include "ops/config.h"
#include "ops/http.h"
#include "ops/log.h"

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
               "  --redis URL      redis://[user[:password]@]host:port[/db] (redis.url); a Redis\n"
               "                   Cluster: a list of seeds, redis://h1:p1,h2:p2 (redis.cluster)\n"
               "  --set KEY=VALUE  any configuration key; kafka.* keys go to librdkafka\n"
               "  --list-config    print every key with its value and default, secrets redacted\n"
               "  --exit-when-idle stop once every assigned partition is read to its end\n"
               "  Environment: KEFU_<KEY> with dots as underscores, e.g. KEFU_REDIS_URL.\n");
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
  if (kefu_cli_load_config(cfg, file, errstr, sizeof errstr))
    goto bad;
  optind = 1;
  while ((c = getopt_long(argc, argv, "c:b:h", opts, NULL)) != -1) {
    int rc = 0;
    switch (c) {
    case 'b': rc = kefu_config_set(cfg, "bootstrap.servers", optarg, errstr, sizeof errstr); break;
    case 'r': rc = kefu_config_set(cfg, "redis.url", optarg, errstr, sizeof errstr); break;
    case 'l': *list = true; break;
    case 'e': *until_idle = true; break;
    case 's': rc = kefu_cli_set_pair(cfg, optarg, errstr, sizeof errstr); break;
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

int kefu_cmd_run(int argc, char **argv) {
  kefu_config_t *cfg = kefu_config_new();
  kefu_cli_options_t st = {0};
  char errstr[512];
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
  if (kefu_cli_options_init(&st, cfg, errstr, sizeof errstr) != 0) {
    fprintf(stderr, "kefu run: %s\n", errstr);
    rc = KEFU_EXIT_FAIL;
    goto done;
  }
  st.o.exit_when_idle_polls = until_idle ? 10 : 0;
  if (!*st.o.bootstrap) {
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
  st.o.stop = &stop_requested;
  kefu_processor_t *p = kefu_processor_new(&st.o, errstr, sizeof errstr);
  if (!p) {
    KEFU_ERROR("run", "%s", errstr);
    rc = stop_requested ? KEFU_EXIT_OK : KEFU_EXIT_FAIL;
  } else {
    KEFU_INFO("run", "instance %s processing (%s)", st.o.instance_id,
              st.o.exactly_once ? "exactly_once" : "at_least_once");
    rc = kefu_processor_run(p, &stop_requested) ? KEFU_EXIT_FAIL : KEFU_EXIT_OK;
    kefu_processor_destroy(p);
  }
  kefu_http_stop();
done:
  kefu_cli_options_clear(&st);
  kefu_config_destroy(cfg);
  return rc;
}
