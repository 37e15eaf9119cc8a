/* kefu replay (SPEC §7): recorded input through the engine and rules of `kefu run`, from
 * empty state, deterministically; what-if overrides (--set, --shop-config), --flush, and
 * --diff against what was recorded. docs/REPLAY.md is the walkthrough.
 *
 * The input is an archive (kefu archive), or a cluster's topics (-b), which are first
 * archived into a temporary directory. The engine reads it through kefu_replay_io_t
 * (engine/replay.c); this file is the source (archive files, in offset order), the sink
 * (JSON lines, an archive or topics), Redis (a private namespace, or a redis-server of
 * its own) and the diff. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/archive_run.h"
#include "cli/cli.h"
#include "cli/diff.h"
#include "cli/options.h"
#include "cli/redis_child.h"
#include "common/murmur2.h"
#include "engine/event.h"
#include "engine/processor.h"
#include "io/archive.h"
#include "io/codec.h"
#include "io/kafka.h"
#include "io/schemas.h"
#include "io/topics.h"
#include "ops/config.h"
#include "ops/log.h"
#include "store/redis.h"
#include "store/state_codec.h"

#define MAX_RANGES 256
#define MAX_PARTITIONS 1024

static volatile sig_atomic_t no_stop, *stop_requested = &no_stop; /* kefu_cli_stop_on_signals */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *out) {
  fprintf(
      out,
      "usage: kefu replay (--archive DIR | -b BOOTSTRAP [--from TOPIC:PARTITION:OFFSET]...\n"
      "                   [--until TOPIC:PARTITION:OFFSET]...)\n"
      "                   [--redis URL] [-c FILE] [--set KEY=VALUE]... [--shop-config FILE]\n"
      "                   [--flush] (--out DIR | --out-archive DIR | --out-prefix PREFIX)\n"
      "                   [--diff RECORDED] [--diff-out FILE]\n"
      "  Re-runs recorded input through the rules of kefu run, from empty state, byte for\n"
      "  byte deterministic (docs/REPLAY.md).\n"
      "  --archive DIR      input: an archive made by kefu archive (its keyed input topics\n"
      "                     and kefu.courier.status; other topics in it are ignored)\n"
      "  -b BOOTSTRAP       input: the topics on a cluster, from their beginning (or --from)\n"
      "                     to the end offsets at start (or --until, inclusive)\n"
      "  --redis URL        state in a private namespace replay-<run id> there, deleted at\n"
      "                     the end (a Redis Cluster too: a list of seeds); without it\n"
      "                     kefu starts a redis-server of its own\n"
      "  -c FILE, --set KEY=VALUE  configuration as for kefu run (rule parameters: the\n"
      "                     what-if, e.g. --set threshold=0.5); idle_advance is always off\n"
      "  --shop-config FILE JSON lines, each a whole or partial shop config with shop_id\n"
      "                     (\"*\": every shop), overriding the stream's configs from the start\n"
      "  --flush            after the last record, fire every pending timer (cause\n"
      "                     flush-<partition>)\n"
      "  --out DIR          outputs as one JSON-lines file per topic, DIR/<topic>.jsonl\n"
      "  --out-archive DIR  outputs as an archive (as kefu archive writes)\n"
      "  --out-prefix P     outputs to topics P<topic> on the cluster of -b\n"
      "  --diff RECORDED    compare with recorded outputs (an archive or an --out DIR):\n"
      "                     a summary per topic and record kind on stdout\n"
      "  --diff-out FILE    every difference as JSON lines\n"
      "  -X key=value       librdkafka property for -b and --out-prefix\n"
      "  Exit: 0 done (a diff is not an error), 1 runtime failure, 2 usage error.\n");
}

/* ================================================================ options */

typedef struct range {
  char topic[256];
  int32_t partition;
  int64_t offset;
} range_t;

typedef struct replay_opts {
  const char *archive, *bootstrap, *redis, *out_dir, *out_archive, *out_prefix, *diff, *diff_out,
      *shop_config;
  bool flush;
  range_t from[MAX_RANGES], until[MAX_RANGES];
  int nfrom, nuntil;
  char *props[64];
  int nprops;
} replay_opts_t;

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "kefu replay: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (kefu replay --help)\n");
  return KEFU_EXIT_USAGE;
}

/* TOPIC:PARTITION:OFFSET (kefu_archive_parse_position), into @p r. */
static int parse_range(const char *s, range_t *r) {
  char text[512];
  const char *topic;
  if (snprintf(text, sizeof text, "%s", s) >= (int)sizeof text ||
      kefu_archive_parse_position(text, &topic, &r->partition, &r->offset) ||
      r->partition >= MAX_PARTITIONS || strlen(topic) >= sizeof r->topic)
    return -1;
  snprintf(r->topic, sizeof r->topic, "%s", topic);
  return 0;
}

static const struct option long_opts[] = {{"archive", required_argument, 0, 'a'},
                                          {"bootstrap", required_argument, 0, 'b'},
                                          {"from", required_argument, 0, 'F'},
                                          {"until", required_argument, 0, 'U'},
                                          {"redis", required_argument, 0, 'r'},
                                          {"config", required_argument, 0, 'c'},
                                          {"set", required_argument, 0, 's'},
                                          {"shop-config", required_argument, 0, 'S'},
                                          {"flush", no_argument, 0, 'f'},
                                          {"out", required_argument, 0, 'o'},
                                          {"out-archive", required_argument, 0, 'A'},
                                          {"out-prefix", required_argument, 0, 'P'},
                                          {"diff", required_argument, 0, 'd'},
                                          {"diff-out", required_argument, 0, 'D'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};

/* The flags, then the configuration: -c, then --set in order. Not the KEFU_* environment
 * (unlike kefu run): a what-if is what its command line says, wherever it runs
 * (docs/DECISIONS.md). 0, -1 after --help, or an exit code. */
static int parse_args(int argc, char **argv, replay_opts_t *o, kefu_config_t *cfg) {
  const char *file = NULL;
  char errstr[512];
  int c, outs = 0;
  opterr = 0; /* our one line instead of getopt's */
  optind = 1;
  while ((c = getopt_long(argc, argv, ":a:b:c:X:h", long_opts, NULL)) != -1) {
    switch (c) {
    case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
    case 'a': o->archive = optarg; break;
    case 'b': o->bootstrap = optarg; break;
    case 'F':
    case 'U': {
      range_t *r = c == 'F' ? &o->from[o->nfrom] : &o->until[o->nuntil];
      if ((c == 'F' ? o->nfrom : o->nuntil) >= MAX_RANGES)
        return usage_error("too many --%s", c == 'F' ? "from" : "until");
      if (parse_range(optarg, r))
        return usage_error("malformed TOPIC:PARTITION:OFFSET '%s'", optarg);
      if (c == 'F')
        o->nfrom++;
      else
        o->nuntil++;
      break;
    }
    case 'r': o->redis = optarg; break;
    case 'c': file = optarg; break;
    case 's': break; /* below, after -c and the environment */
    case 'S': o->shop_config = optarg; break;
    case 'f': o->flush = true; break;
    case 'o': o->out_dir = optarg, outs++; break;
    case 'A': o->out_archive = optarg, outs++; break;
    case 'P': o->out_prefix = optarg, outs++; break;
    case 'd': o->diff = optarg; break;
    case 'D': o->diff_out = optarg; break;
    case 'X':
      if (o->nprops == 64 || !strchr(optarg, '='))
        return usage_error("-X expects key=value: '%s'", optarg);
      o->props[o->nprops++] = optarg;
      break;
    case 'h': usage(stdout); return -1;
    default: return usage_error("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind != argc)
    return usage_error("unexpected argument '%s'", argv[optind]);
  if (!o->archive == !o->bootstrap)
    return usage_error("%s", o->archive ? "--archive and -b: give one input"
                                        : "no input: give --archive DIR or -b BOOTSTRAP");
  if ((o->nfrom || o->nuntil) && !o->bootstrap)
    return usage_error("%s", "--from and --until need -b");
  if (outs != 1)
    return usage_error("%s",
                       outs ? "give one output: --out, --out-archive or --out-prefix"
                            : "no output: give --out DIR, --out-archive DIR or --out-prefix P");
  if (o->out_prefix && !o->bootstrap)
    return usage_error("%s", "--out-prefix needs -b (the cluster to write to)");
  if (o->out_prefix && !*o->out_prefix)
    return usage_error("%s", "--out-prefix needs a non-empty prefix");
  if (o->diff_out && !o->diff)
    return usage_error("%s", "--diff-out needs --diff");
  for (int i = 0; i < o->nfrom; i++)
    for (int j = 0; j < o->nuntil; j++)
      if (!strcmp(o->from[i].topic, o->until[j].topic) &&
          o->from[i].partition == o->until[j].partition && o->from[i].offset > o->until[j].offset)
        return usage_error("--from is past --until for %s", o->from[i].topic);
  if (o->out_archive) {
    char m[4200];
    struct stat st;
    snprintf(m, sizeof m, "%s/%s", o->out_archive, KEFU_ARCHIVE_MANIFEST);
    if (stat(m, &st) == 0)
      return usage_error("--out-archive %s already holds an archive", o->out_archive);
  }
  if (file && kefu_config_load_file(cfg, file, errstr, sizeof errstr))
    return usage_error("%s", errstr);
  optind = 1;
  while ((c = getopt_long(argc, argv, ":a:b:c:X:h", long_opts, NULL)) != -1) {
    char key[256];
    const char *eq;
    if (c != 's')
      continue;
    eq = strchr(optarg, '=');
    if (!eq || eq == optarg || (size_t)(eq - optarg) >= sizeof key)
      return usage_error("--set expects KEY=VALUE: '%s'", optarg);
    snprintf(key, sizeof key, "%.*s", (int)(eq - optarg), optarg);
    if (kefu_config_set(cfg, key, eq + 1, errstr, sizeof errstr))
      return usage_error("%s", errstr);
  }
  return 0;
}

/* An override must be what a config record of the stream may say: a ShopConfig record of
 * its fields passes the codec (the schema's types and symbols) and the checks a config
 * record gets (ranges, ids), or it is a usage error. */
static int check_override(kefu_codec_t *codec, const char *path, int lineno, const char *shop,
                          const json_t *over, char *errstr, size_t errlen) {
  char err[512], *buf = NULL;
  size_t cap = 0, len = 0;
  const char *id = strcmp(shop, "*") ? shop : "x";
  json_t *rec = json_deep_copy(over);
  json_object_set_new(rec, "shop_id", json_string(id));
  json_object_set_new(rec, "event_id", json_string("shop-config"));
  json_object_set_new(rec, "ts", json_integer(1773072000000)); /* any valid ts */
  kefu_event_t ev;
  int rc = kefu_codec_encode(codec, KEFU_T_SHOP_CONFIG, rec, &buf, &cap, &len, err, sizeof err) ||
           kefu_event_from_json(&ev, KEFU_T_SHOP_CONFIG, rec, id, strlen(id), INT64_MAX / 4, err,
                                sizeof err);
  if (rc == 0)
    kefu_event_clear(&ev);
  else
    snprintf(errstr, errlen, "--shop-config %.400s:%d: %s", path, lineno, err);
  free(buf);
  json_decref(rec);
  return rc ? -1 : 0;
}

/* --shop-config: JSON lines -> {shop_id or "*": fields}. Every field must be one of a
 * shop config's, of its type. */
static json_t *load_shop_config(const char *path, kefu_schemas_t *schemas, char *errstr,
                                size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(errstr, errlen, "--shop-config %.400s: %s", path, strerror(errno));
    return NULL;
  }
  kefu_shop_config_t d;
  kefu_config_defaults(&d);
  json_t *fields = kefu_state_config_json(&d), *all = json_object();
  kefu_config_clear(&d);
  kefu_codec_t *codec = kefu_codec_new(schemas);
  char *line = NULL;
  size_t cap = 0;
  int lineno = 0;
  while (getline(&line, &cap, f) > 0) {
    json_error_t jerr;
    lineno++;
    if (line[strspn(line, " \t\r\n")] == '\0')
      continue;
    json_t *o = json_loads(line, 0, &jerr), *v;
    const char *k, *shop = json_string_value(json_object_get(o, "shop_id"));
    if (!json_is_object(o) || !shop || !*shop) {
      snprintf(errstr, errlen, "--shop-config %.400s:%d: %s", path, lineno,
               !o ? jerr.text : "a JSON object with a shop_id (\"*\": every shop) expected");
      json_decref(o);
      goto fail;
    }
    json_t *over = json_object();
    json_object_foreach(o, k, v) {
      const json_t *want = json_object_get(fields, k);
      if (strcmp(k, "shop_id") == 0 || strcmp(k, "event_id") == 0 || strcmp(k, "ts") == 0)
        continue;
      if (!want ||
          (json_typeof(want) != json_typeof(v) && !(json_is_boolean(want) && json_is_boolean(v)))) {
        snprintf(errstr, errlen, "--shop-config %.400s:%d: %s '%.100s'", path, lineno,
                 want ? "wrong type for field" : "not a shop config field", k);
        json_decref(over);
        json_decref(o);
        goto fail;
      }
      json_object_set(over, k, v);
    }
    if (check_override(codec, path, lineno, shop, over, errstr, errlen)) {
      json_decref(over);
      json_decref(o);
      goto fail;
    }
    json_t *prev = json_object_get(all, shop);
    if (prev)
      json_object_update(prev, over), json_decref(over);
    else
      json_object_set_new(all, shop, over);
    json_decref(o);
  }
  free(line);
  fclose(f);
  json_decref(fields);
  kefu_codec_destroy(codec);
  return all;
fail:
  free(line);
  fclose(f);
  json_decref(fields);
  kefu_codec_destroy(codec);
  json_decref(all);
  return NULL;
}

/* ================================================================ the source */

typedef struct part {
  const kefu_archive_file_t *file; /* NULL: the archive has no such partition */
  kefu_archive_reader_t *r;
  int64_t last; /* offset of the last record read */
} part_t;

typedef struct source {
  kefu_archive_file_t *files;
  size_t nfiles;
  int partitions;
  part_t *parts[KEFU_KEYED_INPUTS]; /* [topic][partition] */
  size_t courier_file;              /* the next courier-status file */
  kefu_archive_reader_t *courier;
  int64_t courier_last;
  uint64_t total, done;
  double t0, last_progress;
  bool tty;
} source_t;

/* The topic of an archived file: its name under the current prefix, or any name that
 * ends with a topic's suffix (an archive made under another topic.prefix). */
static kefu_topic_t topic_of(const char *name) {
  kefu_topic_t t = kefu_topic_by_name(name);
  if (t != KEFU_TOPIC_NONE)
    return t;
  size_t n = strlen(name);
  for (int k = 0; k < KEFU_T__COUNT; k++) {
    size_t m = strlen(kefu_topics[k].suffix);
    if (n >= m && strcmp(name + n - m, kefu_topics[k].suffix) == 0 &&
        (n == m || name[n - m - 1] == '.' || name[n - m - 1] == '-' || name[n - m - 1] == '_'))
      return (kefu_topic_t)k;
  }
  return KEFU_TOPIC_NONE;
}

static int source_open(source_t *s, const char *dir, char *errstr, size_t errlen) {
  memset(s, 0, sizeof *s);
  if (kefu_archive_manifest_read(dir, &s->files, &s->nfiles, errstr, errlen))
    return -1;
  for (size_t i = 0; i < s->nfiles; i++) {
    kefu_topic_t t = topic_of(s->files[i].topic);
    if (s->files[i].partition < 0 || s->files[i].partition >= MAX_PARTITIONS) {
      snprintf(errstr, errlen, "%.400s: %.200s partition %d: at most %d partitions", dir,
               s->files[i].topic, s->files[i].partition, MAX_PARTITIONS);
      return -1;
    }
    if (t != KEFU_TOPIC_NONE && kefu_topics[t].keyed_input &&
        s->files[i].partition >= s->partitions)
      s->partitions = s->files[i].partition + 1;
  }
  if (s->partitions == 0) {
    snprintf(errstr, errlen, "%.400s: the archive holds none of the keyed input topics", dir);
    return -1;
  }
  for (int t = 0; t < KEFU_KEYED_INPUTS; t++)
    s->parts[t] = calloc((size_t)s->partitions, sizeof *s->parts[t]);
  for (size_t i = 0; i < s->nfiles; i++) {
    const kefu_archive_file_t *f = &s->files[i];
    kefu_topic_t t = topic_of(f->topic);
    if (t == KEFU_TOPIC_NONE || !kefu_topics[t].keyed_input)
      continue;
    if (s->parts[t][f->partition].file) {
      snprintf(errstr, errlen, "%.400s: two files for %.200s [%d]", dir, f->topic, f->partition);
      return -1;
    }
    s->parts[t][f->partition].file = f;
    s->parts[t][f->partition].last = -1;
    s->total += (uint64_t)(f->records > 0 ? f->records : 0);
  }
  for (int t = 0; t < KEFU_KEYED_INPUTS; t++) { /* SPEC §5, as kefu run checks */
    int n = 0;
    for (int p = 0; p < s->partitions; p++)
      n += s->parts[t][p].file != NULL;
    if (n && n != s->partitions) {
      snprintf(errstr, errlen,
               "%.400s: %s has %d of %d partitions: the keyed input topics must be "
               "co-partitioned and archived whole",
               dir, kefu_topic_name((kefu_topic_t)t), n, s->partitions);
      return -1;
    }
  }
  s->t0 = s->last_progress = now_s();
  s->tty = isatty(STDERR_FILENO);
  s->courier_last = -1;
  return 0;
}

static void source_close(source_t *s) {
  for (int t = 0; t < KEFU_KEYED_INPUTS; t++) {
    for (int p = 0; s->parts[t] && p < s->partitions; p++)
      kefu_archive_reader_close(s->parts[t][p].r);
    free(s->parts[t]);
  }
  kefu_archive_reader_close(s->courier);
  kefu_archive_files_free(s->files, s->nfiles);
  memset(s, 0, sizeof *s);
}

/* Hands an archived record to the engine (moved: @p a is left empty); checks offset order. */
static int take(kefu_archived_t *a, int64_t *last, const char *path, kefu_rec_t *out, char *errstr,
                size_t errlen) {
  if (a->offset <= *last) {
    snprintf(errstr, errlen, "%.400s: offset %lld after %lld: records out of order", path,
             (long long)a->offset, (long long)*last);
    kefu_archived_clear(a);
    return -1;
  }
  *last = a->offset;
  *out = *a;
  memset(a, 0, sizeof *a);
  return 1;
}

static void progress(source_t *s, bool last) {
  double now = now_s();
  if (!last && (!s->tty || now - s->last_progress < 1.0))
    return;
  s->last_progress = now;
  double secs = now - s->t0, rate = secs > 0 ? (double)s->done / secs : 0;
  if (last) {
    if (s->tty)
      fprintf(stderr, "\r\033[K");
    return;
  }
  fprintf(stderr, "\r\033[Kreplay: %llu of %llu records, %.0f records/s, ETA %.0f s",
          (unsigned long long)s->done, (unsigned long long)s->total, rate,
          rate > 0 && s->total > s->done ? (double)(s->total - s->done) / rate : 0.0);
  fflush(stderr);
}

static int source_next(void *arg, int topic, int partition, kefu_rec_t *out, char *errstr,
                       size_t errlen) {
  source_t *s = arg;
  part_t *p = &s->parts[topic][partition];
  kefu_archived_t a = {0};
  if (*stop_requested) {
    snprintf(errstr, errlen, "interrupted");
    return -1;
  }
  if (!p->file)
    return 0;
  if (!p->r) {
    if (!(p->r = kefu_archive_reader_open(p->file->path, errstr, errlen)))
      return -1;
    kefu_archive_reader_expect(p->r, p->file->records);
  }
  int rc = kefu_archive_reader_next(p->r, &a, errstr, errlen);
  if (rc != 1)
    return rc;
  s->done++;
  progress(s, false);
  return take(&a, &p->last, p->file->path, out, errstr, errlen);
}

static int source_next_courier(void *arg, kefu_rec_t *out, char *errstr, size_t errlen) {
  source_t *s = arg;
  for (;;) {
    if (!s->courier) {
      while (s->courier_file < s->nfiles &&
             topic_of(s->files[s->courier_file].topic) != KEFU_T_COURIER_STATUS)
        s->courier_file++;
      if (s->courier_file == s->nfiles)
        return 0;
      const kefu_archive_file_t *f = &s->files[s->courier_file];
      if (!(s->courier = kefu_archive_reader_open(f->path, errstr, errlen)))
        return -1;
      kefu_archive_reader_expect(s->courier, f->records);
      s->courier_last = -1;
    }
    kefu_archived_t a = {0};
    int rc = kefu_archive_reader_next(s->courier, &a, errstr, errlen);
    if (rc == 1)
      return take(&a, &s->courier_last, s->files[s->courier_file].path, out, errstr, errlen);
    if (rc < 0)
      return -1;
    kefu_archive_reader_close(s->courier);
    s->courier = NULL;
    s->courier_file++;
  }
}

/* ================================================================ the sink */

typedef struct sink {
  kefu_codec_t *codec;
  int partitions;
  FILE *files[KEFU_T__COUNT];          /* --out */
  kefu_archive_dir_t *archive;         /* --out-archive */
  bool archive_made;                   /* this run created it: a failed run removes its manifest */
  int64_t *next_offset[KEFU_T__COUNT]; /* --out-archive: per output partition */
  rd_kafka_t *producer;                /* --out-prefix */
  const char *prefix;
  int undelivered;
  char undelivered_error[256];
  kefu_diff_t *diff; /* --diff: the replayed side */
  uint64_t count[KEFU_T__COUNT];
  char *text;
  size_t text_cap;
} sink_t;

static const char *header(const kefu_rec_t *r, const char *name, char *out, size_t outlen) {
  out[0] = '\0';
  for (size_t i = 0; i < r->nheaders; i++)
    if (strcmp(r->headers[i].name, name) == 0 && r->headers[i].has_value)
      snprintf(out, outlen, "%.*s", (int)r->headers[i].len, (const char *)r->headers[i].value);
  return out;
}

/* A record's value as `kefu consume` prints it (DLQ records as their raw bytes). */
static json_t *record_json(kefu_codec_t *codec, kefu_topic_t t, const kefu_rec_t *r, char *errstr,
                           size_t errlen) {
  json_t *v = NULL;
  if (t == KEFU_T_DLQ) {
    char err[512], src[300];
    return kefu_cli_dlq_json(r->has_key ? r->key : NULL, r->key_len, r->has_value ? r->value : NULL,
                             r->value_len, header(r, "kefu.error", err, sizeof err),
                             header(r, "kefu.source", src, sizeof src));
  }
  if (!r->has_value)
    return json_null();
  if (kefu_codec_decode(codec, t, r->value, r->value_len, &v, errstr, errlen))
    return NULL;
  return v;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  sink_t *s = opaque;
  (void)rk;
  if (m->err && !s->undelivered++)
    snprintf(s->undelivered_error, sizeof s->undelivered_error, "%s [%d]: %s",
             rd_kafka_topic_name(m->rkt), m->partition, rd_kafka_err2str(m->err));
}

static int sink_open(sink_t *s, const replay_opts_t *o, int partitions, kefu_schemas_t *schemas,
                     char *errstr, size_t errlen) {
  memset(s, 0, sizeof *s);
  s->codec = kefu_codec_new(schemas);
  s->partitions = partitions;
  if (o->out_dir) {
    if (mkdir(o->out_dir, 0755) && errno != EEXIST) {
      snprintf(errstr, errlen, "--out %.400s: %s", o->out_dir, strerror(errno));
      return -1;
    }
    for (int t = 0; t < KEFU_T__COUNT; t++) {
      char path[4096];
      if (kefu_topics[t].input)
        continue;
      snprintf(path, sizeof path, "%s/%s.jsonl", o->out_dir, kefu_topic_name((kefu_topic_t)t));
      if (!(s->files[t] = fopen(path, "w"))) {
        snprintf(errstr, errlen, "%.400s: %s", path, strerror(errno));
        return -1;
      }
    }
  } else if (o->out_archive) {
    if (!(s->archive = kefu_archive_dir_create(o->out_archive, errstr, errlen)))
      return -1;
    s->archive_made = true;
    for (int t = 0; t < KEFU_T__COUNT; t++) {
      if (kefu_topics[t].input)
        continue;
      s->next_offset[t] = calloc((size_t)partitions, sizeof *s->next_offset[t]);
      for (int p = 0; p < partitions; p++) /* every output partition has its file */
        if (kefu_archive_dir_add_partition(s->archive, kefu_topic_name((kefu_topic_t)t), p, errstr,
                                           errlen))
          return -1;
    }
  } else {
    rd_kafka_conf_t *conf = kefu_kafka_conf_for(KEFU_KAFKA_PRODUCER, o->bootstrap,
                                                (char **)o->props, o->nprops, errstr, errlen);
    if (!conf || kefu_kafka_set(conf, "enable.idempotence", "true", errstr, errlen) ||
        kefu_kafka_set(conf, "partitioner", "murmur2_random", errstr, errlen)) {
      if (conf)
        rd_kafka_conf_destroy(conf);
      return -1;
    }
    rd_kafka_conf_set_opaque(conf, s);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    if (!(s->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errlen))) {
      rd_kafka_conf_destroy(conf);
      return -1;
    }
    s->prefix = o->out_prefix;
  }
  return 0;
}

static int sink_produce(sink_t *s, kefu_topic_t t, const kefu_rec_t *r, char *errstr,
                        size_t errlen) {
  char topic[512];
  rd_kafka_headers_t *h = rd_kafka_headers_new(r->nheaders);
  for (size_t i = 0; i < r->nheaders; i++)
    rd_kafka_header_add(h, r->headers[i].name, -1,
                        r->headers[i].has_value ? r->headers[i].value : NULL,
                        (ssize_t)r->headers[i].len);
  snprintf(topic, sizeof topic, "%s%s", s->prefix, kefu_topic_name(t));
  for (;;) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        s->producer, RD_KAFKA_V_TOPIC(topic),
        RD_KAFKA_V_KEY(r->has_key ? r->key : NULL, r->has_key ? r->key_len : 0),
        RD_KAFKA_V_VALUE(r->has_value ? r->value : NULL, r->has_value ? r->value_len : 0),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(r->timestamp),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_poll(s->producer, 50);
      continue;
    }
    if (err) {
      rd_kafka_headers_destroy(h);
      snprintf(errstr, errlen, "produce to %s: %s", topic, rd_kafka_err2str(err));
      return -1;
    }
    rd_kafka_poll(s->producer, 0);
    return s->undelivered ? (snprintf(errstr, errlen, "delivery: %s", s->undelivered_error), -1)
                          : 0;
  }
}

static int sink_emit(void *arg, int topic, const kefu_rec_t *r, char *errstr, size_t errlen) {
  sink_t *s = arg;
  kefu_topic_t t = (kefu_topic_t)topic;
  s->count[t]++;
  if (s->files[t] || s->diff) {
    json_t *j = record_json(s->codec, t, r, errstr, errlen);
    if (!j)
      return -1;
    if (s->files[t]) {
      int n = kefu_json_dumpb_record(j, &s->text, &s->text_cap);
      if (n < 0 || fwrite(s->text, 1, (size_t)n, s->files[t]) != (size_t)n ||
          fputc('\n', s->files[t]) == EOF) {
        json_decref(j);
        snprintf(errstr, errlen, "writing %s.jsonl: %s", kefu_topic_name(t), strerror(errno));
        return -1;
      }
    }
    if (s->diff)
      kefu_diff_add(s->diff, 1, t, j);
    else
      json_decref(j);
  }
  if (s->archive) {
    int32_t part = r->has_key ? kefu_murmur2_partition(r->key, r->key_len, s->partitions) : 0;
    kefu_archived_t a = *r; /* borrowed, with the output's topic, partition and offset */
    a.topic = (char *)kefu_topic_name(t);
    a.partition = part;
    a.offset = s->next_offset[t][part]++;
    return kefu_archive_dir_append(s->archive, &a, errstr, errlen);
  }
  if (s->producer)
    return sink_produce(s, t, r, errstr, errlen);
  return 0;
}

/* Closes what the sink wrote: -1 when the last of it could not be written. */
static int sink_close(sink_t *s, char *errstr, size_t errlen) {
  int rc = 0;
  for (int t = 0; t < KEFU_T__COUNT; t++) {
    if (s->files[t] && fclose(s->files[t]) && !rc) {
      snprintf(errstr, errlen, "writing %s.jsonl: %s", kefu_topic_name((kefu_topic_t)t),
               strerror(errno));
      rc = -1;
    }
    free(s->next_offset[t]);
  }
  if (s->archive && kefu_archive_dir_close(s->archive, errstr, errlen))
    rc = -1;
  if (s->producer) {
    rd_kafka_resp_err_t err = rd_kafka_flush(s->producer, 60000);
    if (!rc && (err || s->undelivered)) {
      snprintf(errstr, errlen, "--out-prefix: %s",
               err ? rd_kafka_err2str(err) : s->undelivered_error);
      rc = -1;
    }
    rd_kafka_destroy(s->producer);
  }
  if (s->codec)
    kefu_codec_destroy(s->codec);
  free(s->text);
  return rc;
}

/* ================================================================ Redis */

/* Deletes every key of namespace @p ns: SCAN on each master, and an UNLINK per key (keys
 * of a cluster's SCAN page may lie in many slots), a few thousand at a time. */
static int drop_namespace(const kefu_cli_options_t *st, char *errstr, size_t errlen) {
  const kefu_processor_opts_t *o = &st->o;
  kefu_redis_t *r = kefu_redis_connect(&o->redis, errstr, errlen);
  char match[128];
  uint64_t n = 0;
  if (!r)
    return -1;
  snprintf(match, sizeof match, "%s:*", o->redis_namespace);
  for (int node = 0; node < kefu_redis_nodes(r); node++) {
    char cursor[32] = "0";
    do {
      redisReply **rep;
      kefu_cmd_t c;
      kefu_cmd_init(&c);
      kefu_cmd_str(&c, "SCAN");
      kefu_cmd_str(&c, cursor);
      kefu_cmd_str(&c, "MATCH");
      kefu_cmd_str(&c, match);
      kefu_cmd_str(&c, "COUNT");
      kefu_cmd_str(&c, "2000");
      kefu_redis_append_node(r, node, &c);
      kefu_cmd_clear(&c);
      if (kefu_redis_flush(r, &rep, errstr, errlen) != 1 || rep[0]->type != REDIS_REPLY_ARRAY ||
          rep[0]->elements != 2) {
        if (rep && rep[0] && rep[0]->type == REDIS_REPLY_ERROR)
          snprintf(errstr, errlen, "%s", rep[0]->str);
        kefu_redis_close(r);
        return -1;
      }
      snprintf(cursor, sizeof cursor, "%s", rep[0]->element[0]->str);
      const redisReply *keys = rep[0]->element[1];
      for (size_t i = 0; i < keys->elements; i++) {
        kefu_cmd_init(&c);
        kefu_cmd_str(&c, "UNLINK");
        kefu_cmd_arg(&c, keys->element[i]->str, keys->element[i]->len);
        kefu_redis_append(r, &c);
        kefu_cmd_clear(&c);
      }
      n += keys->elements;
      int want = (int)keys->elements;
      if (want && kefu_redis_flush(r, &rep, errstr, errlen) != want) {
        kefu_redis_close(r);
        return -1;
      }
      for (int i = 0; i < want; i++)
        if (rep[i]->type == REDIS_REPLY_ERROR) {
          snprintf(errstr, errlen, "%s", rep[i]->str);
          kefu_redis_close(r);
          return -1;
        }
    } while (strcmp(cursor, "0") != 0);
  }
  KEFU_INFO("replay", "deleted namespace %s (%llu keys)", o->redis_namespace,
            (unsigned long long)n);
  kefu_redis_close(r);
  return 0;
}

/* ================================================================ the diff */

/* RECORDED: an archive (its output topics) or an --out directory. */
static int load_recorded(kefu_diff_t *d, const char *path, kefu_schemas_t *schemas, char *errstr,
                         size_t errlen) {
  char manifest[4096];
  struct stat st;
  snprintf(manifest, sizeof manifest, "%s/manifest.json", path);
  if (stat(manifest, &st) != 0) { /* an --out directory: at least one topic's file */
    bool any = false;
    for (int t = 0; t < KEFU_T__COUNT && !any; t++) {
      char f[4300];
      snprintf(f, sizeof f, "%s/%s.jsonl", path, kefu_topic_name((kefu_topic_t)t));
      any = !kefu_topics[t].input && stat(f, &st) == 0;
    }
    if (!any) {
      snprintf(errstr, errlen,
               "--diff %.400s: neither an archive (no %s) nor a --out directory (no "
               "<topic>.jsonl)",
               path, KEFU_ARCHIVE_MANIFEST);
      return -1;
    }
    return kefu_diff_load_dir(d, 0, path, errstr, errlen);
  }
  kefu_archive_file_t *files;
  size_t n;
  int rc = 0;
  if (kefu_archive_manifest_read(path, &files, &n, errstr, errlen))
    return -1;
  kefu_codec_t *codec = kefu_codec_new(schemas);
  for (size_t i = 0; i < n && !rc; i++) {
    kefu_topic_t t = topic_of(files[i].topic);
    kefu_archive_reader_t *r;
    if (t == KEFU_TOPIC_NONE || kefu_topics[t].input)
      continue;
    if (!(r = kefu_archive_reader_open(files[i].path, errstr, errlen))) {
      rc = -1;
      break;
    }
    kefu_archive_reader_expect(r, files[i].records);
    kefu_archived_t a = {0};
    while ((rc = kefu_archive_reader_next(r, &a, errstr, errlen)) == 1) {
      json_t *j = record_json(codec, t, &a, errstr, errlen);
      kefu_archived_clear(&a);
      if (!j) {
        rc = -1;
        break;
      }
      kefu_diff_add(d, 0, t, j);
    }
    kefu_archive_reader_close(r);
  }
  kefu_codec_destroy(codec);
  kefu_archive_files_free(files, n);
  return rc < 0 ? -1 : 0;
}

/* ================================================================ the command */

/* What the engine's callbacks get: the source (next, next_courier) and the sink (emit). */
typedef struct replay_ctx {
  source_t src;
  sink_t sink;
} replay_ctx_t;

static int ctx_next(void *arg, int topic, int partition, kefu_rec_t *out, char *errstr,
                    size_t errlen) {
  return source_next(&((replay_ctx_t *)arg)->src, topic, partition, out, errstr, errlen);
}

static int ctx_next_courier(void *arg, kefu_rec_t *out, char *errstr, size_t errlen) {
  return source_next_courier(&((replay_ctx_t *)arg)->src, out, errstr, errlen);
}

static int ctx_emit(void *arg, int topic, const kefu_rec_t *r, char *errstr, size_t errlen) {
  return sink_emit(&((replay_ctx_t *)arg)->sink, topic, r, errstr, errlen);
}

/* -b: the input topics' ranges archived into a temporary directory first. */
static int archive_input(const replay_opts_t *o, char *dir, size_t dirlen, char *errstr,
                         size_t errlen) {
  const char *topics[KEFU_KEYED_INPUTS + 1];
  const char *ft[MAX_RANGES], *ut[MAX_RANGES];
  int32_t fp[MAX_RANGES], up[MAX_RANGES];
  int64_t fo[MAX_RANGES], uo[MAX_RANGES];
  if (kefu_cli_temp_dir("kefu-replay-in", dir, dirlen, errstr, errlen))
    return -1;
  for (int t = 0; t < KEFU_KEYED_INPUTS; t++)
    topics[t] = kefu_topic_name((kefu_topic_t)t);
  topics[KEFU_KEYED_INPUTS] = kefu_topic_name(KEFU_T_COURIER_STATUS);
  for (int i = 0; i < o->nfrom; i++)
    ft[i] = o->from[i].topic, fp[i] = o->from[i].partition, fo[i] = o->from[i].offset;
  for (int i = 0; i < o->nuntil; i++)
    ut[i] = o->until[i].topic, up[i] = o->until[i].partition, uo[i] = o->until[i].offset;
  char sub[4200];
  snprintf(sub, sizeof sub, "%s/in", dir);
  kefu_archive_spec_t spec = {.bootstrap = o->bootstrap,
                              .topics = topics,
                              .ntopics = KEFU_KEYED_INPUTS + 1,
                              .from_topic = ft,
                              .from_partition = fp,
                              .from_offset = fo,
                              .nfrom = o->nfrom,
                              .until_topic = ut,
                              .until_partition = up,
                              .until_offset = uo,
                              .nuntil = o->nuntil,
                              .props = (char **)o->props,
                              .nprops = o->nprops,
                              .quiet = true,
                              .stop = stop_requested};
  return kefu_archive_topics(&spec, sub, errstr, errlen);
}

void kefu_cli_remove_tree(const char *path) {
  DIR *d = opendir(path);
  struct dirent *e;
  char p[4096];
  while (d && (e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      snprintf(p, sizeof p, "%s/%s", path, e->d_name);
      if (e->d_type == DT_DIR)
        kefu_cli_remove_tree(p);
      else
        unlink(p);
    }
  if (d)
    closedir(d);
  rmdir(path);
}

static void summary(const source_t *src, const sink_t *sink, double secs) {
  fprintf(stderr, "replay: %llu records in %.1f s (%.0f records/s); outputs:",
          (unsigned long long)src->done, secs, secs > 0 ? (double)src->done / secs : 0.0);
  for (int t = 0; t < KEFU_T__COUNT; t++)
    if (!kefu_topics[t].input)
      fprintf(stderr, " %s %llu", kefu_topics[t].suffix, (unsigned long long)sink->count[t]);
  fprintf(stderr, "\n");
}

int kefu_cmd_replay(int argc, char **argv) {
  return kefu_replay_main(argc, argv, kefu_cli_stop_on_signals());
}

int kefu_replay_main(int argc, char **argv, volatile sig_atomic_t *stop) {
  replay_opts_t o = {0};
  kefu_config_t *cfg = kefu_config_new();
  kefu_cli_options_t st = {0};
  kefu_redis_child_t redis = {0};
  kefu_schemas_t *schemas = NULL;
  replay_ctx_t ctx = {0};
  source_t *src = &ctx.src;
  sink_t *sink = &ctx.sink;
  kefu_replay_io_t io = {0};
  json_t *overrides = NULL;
  FILE *diff_out = NULL;
  char errstr[1024], ns[64], url[64], in_dir[4096] = "", archive_dir[4300];
  bool ns_made = false;
  int rc = parse_args(argc, argv, &o, cfg);
  if (rc) {
    kefu_config_destroy(cfg);
    return rc < 0 ? KEFU_EXIT_OK : rc;
  }
  kefu_log_min_level = (kefu_log_level_t)kefu_log_level_parse(kefu_config_str(cfg, "log.level"));
  kefu_topics_set_prefix(kefu_config_str(cfg, "topic.prefix"));
  if (!(schemas = kefu_schemas_new(errstr, sizeof errstr))) {
    fprintf(stderr, "kefu replay: %s\n", errstr);
    kefu_config_destroy(cfg);
    return KEFU_EXIT_FAIL;
  }
  if (o.shop_config &&
      !(overrides = load_shop_config(o.shop_config, schemas, errstr, sizeof errstr))) {
    fprintf(stderr, "kefu replay: %s\n", errstr);
    kefu_schemas_destroy(schemas);
    kefu_config_destroy(cfg);
    return KEFU_EXIT_USAGE;
  }
  stop_requested = stop;
  signal(SIGPIPE, SIG_IGN);
  rc = KEFU_EXIT_FAIL;
  double t0 = now_s();

  /* Redis: a private namespace on --redis, or a redis-server of our own. */
  uint64_t rnd = 0;
  if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
    rnd = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
  snprintf(ns, sizeof ns, "replay-%016llx", (unsigned long long)rnd);
  if (o.redis) {
    kefu_redis_keep_functions(true); /* never a live deployment's functions replaced */
    if (kefu_config_set(cfg, "redis.url", o.redis, errstr, sizeof errstr)) {
      fprintf(stderr, "kefu replay: %s\n", errstr);
      rc = KEFU_EXIT_USAGE;
      goto done;
    }
  } else {
    if (kefu_redis_child_start(&redis, "kefu-replay", errstr, sizeof errstr) ||
        kefu_redis_child_wait(&redis, stop_requested, errstr, sizeof errstr))
      goto fail;
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", redis.port);
    kefu_config_set(cfg, "redis.url", url, errstr, sizeof errstr);
  }
  if (kefu_config_set(cfg, "redis.namespace", ns, errstr, sizeof errstr) ||
      kefu_config_set(cfg, "idle_advance", "false", errstr, sizeof errstr) ||
      kefu_cli_options_init(&st, cfg, errstr, sizeof errstr))
    goto fail;

  /* The input. */
  if (o.bootstrap) {
    int arc = archive_input(&o, in_dir, sizeof in_dir, errstr, sizeof errstr);
    if (arc) {
      if (arc == KEFU_ARCHIVE_USAGE) /* a --from or --until of no such topic */
        rc = KEFU_EXIT_USAGE;
      goto fail;
    }
    snprintf(archive_dir, sizeof archive_dir, "%s/in", in_dir);
  } else {
    snprintf(archive_dir, sizeof archive_dir, "%s", o.archive);
  }
  if (source_open(src, archive_dir, errstr, sizeof errstr) ||
      sink_open(sink, &o, src->partitions, schemas, errstr, sizeof errstr))
    goto fail;
  if (o.diff_out && !(diff_out = fopen(o.diff_out, "w"))) {
    snprintf(errstr, sizeof errstr, "--diff-out %.400s: %s", o.diff_out, strerror(errno));
    goto fail;
  }
  if (o.diff)
    sink->diff = kefu_diff_new();
  if (o.diff && load_recorded(sink->diff, o.diff, schemas, errstr, sizeof errstr))
    goto fail;

  io = (kefu_replay_io_t){.partitions = src->partitions,
                          .next = ctx_next,
                          .next_courier = ctx_next_courier,
                          .emit = ctx_emit,
                          .arg = &ctx};
  st.o.replay = &io;
  st.o.replay_flush = o.flush;
  st.o.shop_overrides = overrides;
  st.o.idle_advance = false;
  kefu_processor_t *p = kefu_processor_new(&st.o, errstr, sizeof errstr);
  if (!p)
    goto fail;
  ns_made = true; /* connected: its keys are ours to delete */
  KEFU_INFO("replay", "replaying %s: %d partitions, %llu records, state in %s namespace %s",
            archive_dir, src->partitions, (unsigned long long)src->total,
            o.redis ? o.redis : "a redis-server of its own,", ns);
  int prc = kefu_processor_run(p, stop_requested);
  kefu_processor_destroy(p);
  progress(src, true);
  if (prc) {
    snprintf(errstr, sizeof errstr, "the replay failed (see the log above)");
    goto fail;
  }
  if (sink_close(sink, errstr, sizeof errstr))
    goto fail_closed;
  summary(src, sink, now_s() - t0);
  if (sink->diff) {
    FILE *out = diff_out;
    diff_out = NULL;
    if (kefu_diff_report(sink->diff, stdout, out) || (out && fclose(out))) {
      snprintf(errstr, sizeof errstr, "writing the diff: %s", strerror(errno));
      goto fail_closed;
    }
  }
  rc = KEFU_EXIT_OK;
  goto closed;
fail : {
  char ignored[256], manifest[4200];
  sink_close(sink, ignored, sizeof ignored);
  if (sink->archive_made) { /* not a finished archive: no manifest */
    snprintf(manifest, sizeof manifest, "%s/%s", o.out_archive, KEFU_ARCHIVE_MANIFEST);
    unlink(manifest);
  }
}
fail_closed:
  fprintf(stderr, "kefu replay: %s\n", errstr);
closed:
  if (diff_out)
    fclose(diff_out);
  source_close(src);
  if (sink->diff)
    kefu_diff_free(sink->diff);
  if (ns_made && o.redis && drop_namespace(&st, errstr, sizeof errstr))
    fprintf(stderr, "kefu replay: could not delete namespace %s: %s\n", ns, errstr);
  kefu_redis_child_stop(&redis);
  if (in_dir[0])
    kefu_cli_remove_tree(in_dir);
done:
  if (schemas)
    kefu_schemas_destroy(schemas);
  json_decref(overrides);
  kefu_cli_options_clear(&st);
  kefu_config_destroy(cfg);
  return rc;
}
