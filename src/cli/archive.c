/* kefu archive (SPEC §7): topics -> Avro object container files, one per topic and
 * partition, and a manifest (io/archive.h); the work is kefu_archive_topics
 * (cli/archive_run.h). This file reads the command line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/archive_run.h"
#include "cli/cli.h"

#define MAX_PROPS 64
#define MAX_TOPICS 256
#define MAX_POSITIONS 1024

/* The --from or the --until positions. */
typedef struct positions {
  const char *topic[MAX_POSITIONS];
  int32_t partition[MAX_POSITIONS];
  int64_t offset[MAX_POSITIONS];
  int n;
} positions_t;

typedef struct archive_opts {
  kefu_archive_spec_t spec;
  const char *dir;
  const char *topics[MAX_TOPICS];
  char *props[MAX_PROPS];
  positions_t from, until;
  bool from_beginning;
} archive_opts_t;

static void usage(FILE *out) {
  fprintf(out,
          "usage: kefu archive -b BOOTSTRAP -t TOPIC... -o DIR\n"
          "                    (--from-beginning | --from-ts MS | --from T:P:O... | --follow)\n"
          "                    [--until-ts MS] [--until T:P:O]... [--follow] [-q]\n"
          "                    [-X key=value]...\n"
          "  Copies every partition of each topic into DIR/<topic>-<partition>.avro (Avro\n"
          "  object container files, deflate, record kefu.ArchivedRecord: topic, partition,\n"
          "  offset, timestamp, key, value (null: a tombstone), headers) and writes\n"
          "  DIR/manifest.json with each file's offsets and record count. Reads with\n"
          "  read_committed, without a consumer group.\n"
          "  -b, --bootstrap BOOTSTRAP  Kafka bootstrap servers\n"
          "  -t, --topic TOPIC          a topic to archive; repeat it or give a comma list\n"
          "  -o, --out DIR              the archive directory (created; must not hold a\n"
          "                             manifest.json)\n"
          "  --from-beginning           start at each partition's first record\n"
          "  --from-ts MS               start at each partition's first record with\n"
          "                             timestamp >= MS (epoch ms)\n"
          "  --until-ts MS              stop a partition at its first record with\n"
          "                             timestamp > MS\n"
          "  --from TOPIC:PARTITION:OFFSET\n"
          "                             start that partition at OFFSET (repeatable); the\n"
          "                             others start at their beginning, or at --from-ts\n"
          "  --until TOPIC:PARTITION:OFFSET\n"
          "                             the last offset of that partition to archive\n"
          "                             (repeatable; inclusive)\n"
          "  --follow                   do not stop at the end offsets seen at start: run\n"
          "                             until SIGINT/SIGTERM, then close the files and write\n"
          "                             the manifest (alone: start at the end)\n"
          "  -q, --quiet                no progress and no summary on stderr\n"
          "  -X key=value               a librdkafka property\n"
          "  -h, --help                 this text\n"
          "  Exit codes: 0 ok, 1 runtime failure, 2 usage error.\n");
}

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "kefu archive: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (kefu archive --help)\n");
  return KEFU_EXIT_USAGE;
}

static int parse_ms(const char *text, const char *flag, int64_t *out) {
  if (kefu_cli_parse_int64(text, INT64_MAX, out) == 0)
    return 0;
  fprintf(stderr, "kefu archive: %s: not a time in epoch milliseconds: '%s'\n", flag, text);
  return -1;
}

/* Splits the comma list @p arg (kept by the caller) into o->topics, once each. */
static int add_topics(archive_opts_t *o, char *arg) {
  char *save = NULL;
  for (char *t = strtok_r(arg, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    bool seen = false;
    for (int i = 0; i < o->spec.ntopics; i++)
      seen |= !strcmp(o->topics[i], t);
    if (seen)
      continue;
    if (o->spec.ntopics == MAX_TOPICS)
      return -1;
    o->topics[o->spec.ntopics++] = t;
  }
  return 0;
}

enum { OPT_FROM_BEGINNING = 256, OPT_FROM_TS, OPT_UNTIL_TS, OPT_FOLLOW, OPT_FROM, OPT_UNTIL };

static int add_position(positions_t *l, char *arg, const char *flag) {
  if (l->n == MAX_POSITIONS)
    return usage_error("too many %s positions", flag);
  if (kefu_archive_parse_position(arg, &l->topic[l->n], &l->partition[l->n], &l->offset[l->n])) {
    fprintf(stderr, "kefu archive: %s: want TOPIC:PARTITION:OFFSET, got '%s'\n", flag, arg);
    return KEFU_EXIT_USAGE;
  }
  l->n++;
  return 0;
}

static int parse_args(int argc, char **argv, archive_opts_t *o) {
  static const struct option opts[] = {{"bootstrap", required_argument, 0, 'b'},
                                       {"topic", required_argument, 0, 't'},
                                       {"out", required_argument, 0, 'o'},
                                       {"from-beginning", no_argument, 0, OPT_FROM_BEGINNING},
                                       {"from-ts", required_argument, 0, OPT_FROM_TS},
                                       {"until-ts", required_argument, 0, OPT_UNTIL_TS},
                                       {"follow", no_argument, 0, OPT_FOLLOW},
                                       {"from", required_argument, 0, OPT_FROM},
                                       {"until", required_argument, 0, OPT_UNTIL},
                                       {"quiet", no_argument, 0, 'q'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  kefu_archive_spec_t *s = &o->spec;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":b:t:o:qX:h", opts, NULL)) != -1) {
    switch (c) {
    case 'b': s->bootstrap = optarg; break;
    case 't':
      if (add_topics(o, optarg))
        return usage_error("more than %s topics", "256");
      break;
    case 'o': o->dir = optarg; break;
    case OPT_FROM_BEGINNING: o->from_beginning = true; break;
    case OPT_FROM_TS:
      if (parse_ms(optarg, "--from-ts", &s->from_ts))
        return KEFU_EXIT_USAGE;
      s->has_from_ts = true;
      break;
    case OPT_UNTIL_TS:
      if (parse_ms(optarg, "--until-ts", &s->until_ts))
        return KEFU_EXIT_USAGE;
      s->has_until_ts = true;
      break;
    case OPT_FOLLOW: s->follow = true; break;
    case OPT_FROM:
      if (add_position(&o->from, optarg, "--from"))
        return KEFU_EXIT_USAGE;
      break;
    case OPT_UNTIL:
      if (add_position(&o->until, optarg, "--until"))
        return KEFU_EXIT_USAGE;
      break;
    case 'q': s->quiet = true; break;
    case 'X':
      if (s->nprops == MAX_PROPS)
        return usage_error("more than %s -X properties", "64");
      o->props[s->nprops++] = optarg;
      break;
    case 'h': usage(stdout); return -1;
    case ':': return usage_error("%s needs a value", argv[optind - 1]);
    default: return usage_error("unknown option %s", argv[optind - 1]);
    }
  }
  if (optind != argc)
    return usage_error("unexpected argument '%s'", argv[optind]);
  if (!s->bootstrap || !s->ntopics || !o->dir)
    return usage_error("%s", "-b BOOTSTRAP, -t TOPIC and -o DIR are required");
  if (o->from_beginning && s->has_from_ts)
    return usage_error("%s", "--from-beginning and --from-ts exclude each other");
  if (!o->from_beginning && !s->has_from_ts && !o->from.n && !s->follow)
    return usage_error("%s", "nothing to archive: give --from-beginning, --from-ts MS, --from "
                             "TOPIC:PARTITION:OFFSET or --follow");
  s->from_end = !o->from_beginning && !s->has_from_ts && !o->from.n;
  s->from_topic = o->from.topic;
  s->from_partition = o->from.partition;
  s->from_offset = o->from.offset;
  s->nfrom = o->from.n;
  s->until_topic = o->until.topic;
  s->until_partition = o->until.partition;
  s->until_offset = o->until.offset;
  s->nuntil = o->until.n;
  s->topics = o->topics;
  s->props = o->props;
  return 0;
}

int kefu_cmd_archive(int argc, char **argv) {
  archive_opts_t o = {0};
  char err[1024];
  int rc = parse_args(argc, argv, &o);
  if (rc)
    return rc < 0 ? KEFU_EXIT_OK : rc;
  o.spec.stop = kefu_cli_stop_on_signals();
  rc = kefu_archive_topics(&o.spec, o.dir, err, sizeof err);
  if (rc == 0)
    return KEFU_EXIT_OK;
  fprintf(stderr, "kefu archive: %s\n", err);
  return rc == KEFU_ARCHIVE_USAGE ? KEFU_EXIT_USAGE : KEFU_EXIT_FAIL;
}
