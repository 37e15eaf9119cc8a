/* kefu: one binary, one subcommand per file in src/cli/. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

typedef struct subcommand {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *summary;
} subcommand_t;

static const subcommand_t subcommands[] = {
    {"broker", kefu_cmd_broker, "embedded development Kafka cluster (librdkafka mock)"},
    {"produce", kefu_cmd_produce, "JSON lines -> Avro records on a topic"},
    {"consume", kefu_cmd_consume, "records of a topic -> JSON lines"},
    {"run", kefu_cmd_run, "the stream processor"},
    {"demo", kefu_cmd_demo, "cluster + redis-server + a generated day of traffic + processor"},
    {"state", kefu_cmd_state, "a shop's state in Redis as JSON (kefu state show)"},
    {"replay", kefu_cmd_replay, "recorded input through the rules again: what-ifs, --diff"},
    {"archive", kefu_cmd_archive, "topics -> Avro files and a manifest (one per partition)"},
    {"status", kefu_cmd_status, "the group, and per task: owner, lag, watermark, timers, commit"},
};

static void usage(FILE *out) {
  fprintf(out, "usage: kefu <command> [options]   (kefu <command> --help for more)\n\n");
  for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
    fprintf(out, "  %-9s %s\n", subcommands[i].name, subcommands[i].summary);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return KEFU_EXIT_USAGE;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(stdout);
    return KEFU_EXIT_OK;
  }
  for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
    if (strcmp(argv[1], subcommands[i].name) == 0)
      return subcommands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "kefu: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return KEFU_EXIT_USAGE;
}
