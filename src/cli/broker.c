/* kefu broker: the embedded development cluster (librdkafka's mock cluster, which speaks
 * the Kafka protocol over TCP on loopback). Creates every topic of SPEC §1.1, prints the
 * bootstrap servers as the first line of stdout and serves until SIGINT/SIGTERM.
 *
 * With --control it also reads fault-injection commands from stdin, one per line, and
 * answers each with one line on stdout ("ok" or "error: ..."): the fault tests' handle on
 * the cluster (kefu_mock_control in src/io/mock.c). */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "io/mock.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: kefu broker [--brokers N] [--partitions P] [--prefix PREFIX] [--control]\n"
          "  Starts librdkafka's mock cluster on loopback with every kefu topic,\n"
          "  prints the bootstrap servers on the first line of stdout and serves\n"
          "  until SIGINT or SIGTERM. Development and tests only: it keeps no data\n"
          "  on disk, does not compact, and has no Admin API (SPEC §5).\n"
          "  --control: read fault-injection commands from stdin, one per line, and\n"
          "  answer each on stdout with \"ok\" or \"error: REASON\":\n%s",
          kefu_mock_control_help);
}

int kefu_cmd_broker(int argc, char **argv) {
  static const struct option opts[] = {
      {"brokers", required_argument, 0, 'n'}, {"partitions", required_argument, 0, 'p'},
      {"prefix", required_argument, 0, 'x'},  {"control", no_argument, 0, 'c'},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  int brokers = 1, partitions = 4, c;
  bool control = false;
  const char *prefix = "kefu.";
  char errstr[256];

  optind = 1;
  while ((c = getopt_long(argc, argv, "n:p:x:h", opts, NULL)) != -1) {
    switch (c) {
    case 'n': brokers = atoi(optarg); break;
    case 'p': partitions = atoi(optarg); break;
    case 'x': prefix = optarg; break;
    case 'c': control = true; break;
    case 'h': usage(stdout); return KEFU_EXIT_OK;
    default: usage(stderr); return KEFU_EXIT_USAGE;
    }
  }
  if (optind != argc || brokers < 1 || brokers > 16 || partitions < 1 || partitions > 1024) {
    usage(stderr);
    return KEFU_EXIT_USAGE;
  }

  kefu_mock_t *mock = kefu_mock_start(brokers, partitions, prefix, errstr, sizeof errstr);
  if (!mock) {
    fprintf(stderr, "kefu broker: %s\n", errstr);
    return KEFU_EXIT_FAIL;
  }
  struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: a read returns */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  printf("%s\n", kefu_mock_bootstraps(mock));
  fflush(stdout);
  char line[2048], reply[512];
  while (control && !stop_requested && fgets(line, sizeof line, stdin)) {
    kefu_mock_control(mock, line, reply, sizeof reply);
    printf("%s\n", reply);
    fflush(stdout);
  }
  while (!stop_requested) /* no --control, or stdin closed */
    pause();
  kefu_mock_stop(mock);
  return KEFU_EXIT_OK;
}
