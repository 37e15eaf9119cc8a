/* kefu produce: JSON lines (a file or stdin) -> Avro records (Confluent framing) on a topic.
 * Keys and partitions are those a Java producer would choose (murmur2_random on the key
 * of SPEC §1.1). The Kafka timestamp is the record's ts (valid_from for courier status).
 * A line {"$key": "K", "$value": null} writes a tombstone for key K. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "cli/cli.h"
#include "cli/produce.h"
#include "cli/progress.h"
#include "io/codec.h"
#include "io/kafka.h"
#include "io/registry.h"
#include "io/schemas.h"
#include "io/topics.h"

#define MAX_PROPS 64

typedef struct produce_ctx {
  rd_kafka_t *rk;
  kefu_codec_t *codec;
  kefu_topic_t topic;
  const char *topic_name;
  char *buf;
  size_t cap;
  long produced, failed;
} produce_ctx_t;

static void usage(FILE *out) {
  fprintf(out, "usage: kefu produce -b BOOTSTRAP -t TOPIC [--schema-registry URL] [-X key=value]..."
               " [FILE]\n"
               "  Reads JSON lines (SPEC §1.2 JSON form) from FILE or stdin and writes them\n"
               "  as Avro records. -X passes a property to librdkafka. --schema-registry\n"
               "  registers the topic's schema under <topic>-value and writes its id\n"
               "  (basic auth from KEFU_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO).\n"
               "  {\"$key\": \"K\", \"$value\": null} writes a tombstone for key K.\n");
}

static int64_t record_timestamp(const json_t *rec) {
  json_t *ts = json_object_get(rec, "ts");
  struct timeval tv;
  if (!json_is_integer(ts))
    ts = json_object_get(rec, "valid_from");
  if (json_is_integer(ts))
    return json_integer_value(ts);
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static int send_one(produce_ctx_t *p, const char *key, size_t keylen, const void *val,
                    size_t vallen, int64_t ts, char *errstr, size_t errlen) {
  rd_kafka_resp_err_t err;
  for (;;) {
    err = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(p->topic_name), RD_KAFKA_V_KEY(key, keylen),
                            RD_KAFKA_V_VALUE((void *)val, vallen),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(ts),
                            RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
      break;
    rd_kafka_poll(p->rk, 100);
  }
  if (err) {
    snprintf(errstr, errlen, "%s", rd_kafka_err2str(err));
    return -1;
  }
  return 0;
}

int kefu_produce_record_from_line(kefu_produce_record_t *r, kefu_codec_t *codec, kefu_topic_t topic,
                                  const char *line, char **buf, size_t *cap, char *errstr,
                                  size_t errlen) {
  json_error_t jerr;
  int keylen;

  memset(r, 0, sizeof *r);
  r->rec = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
  if (!json_is_object(r->rec)) {
    snprintf(errstr, errlen, "not a JSON object: %s", r->rec ? "wrong type" : jerr.text);
    return -1;
  }
  if (json_object_get(r->rec, "$key")) {
    const char *k = json_string_value(json_object_get(r->rec, "$key"));
    if (!k || !json_is_null(json_object_get(r->rec, "$value")) || json_object_size(r->rec) != 2) {
      snprintf(errstr, errlen, "a tombstone is {\"$key\": \"K\", \"$value\": null}");
      return -1;
    }
    r->key = k;
    r->keylen = strlen(k);
    r->tombstone = true;
    r->ts = record_timestamp(r->rec);
    return 0;
  }
  if ((keylen = kefu_topic_key(topic, r->rec, r->keybuf, sizeof r->keybuf)) < 0) {
    snprintf(errstr, errlen, "record lacks its key field(s)");
    return -1;
  }
  r->key = r->keybuf;
  r->keylen = (size_t)keylen;
  if (kefu_codec_encode(codec, topic, r->rec, buf, cap, &r->len, errstr, errlen))
    return -1;
  r->ts = record_timestamp(r->rec);
  return 0;
}

void kefu_produce_record_clear(kefu_produce_record_t *r) {
  json_decref(r->rec);
  memset(r, 0, sizeof *r);
}

static int produce_line(produce_ctx_t *p, const char *line, char *errstr, size_t errlen) {
  kefu_produce_record_t r;
  int rc =
      kefu_produce_record_from_line(&r, p->codec, p->topic, line, &p->buf, &p->cap, errstr, errlen);
  if (rc == 0)
    rc = send_one(p, r.key, r.keylen, r.tombstone ? NULL : p->buf, r.tombstone ? 0 : r.len, r.ts,
                  errstr, errlen);
  kefu_produce_record_clear(&r);
  return rc;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  produce_ctx_t *p = opaque;
  if (m->err) {
    fprintf(stderr, "kefu produce: delivery failed: %s\n", rd_kafka_err2str(m->err));
    p->failed++;
  } else {
    p->produced++;
  }
}

static int parse_args(int argc, char **argv, const char **bootstrap, const char **topic,
                      char **props, int *nprops, const char **file, const char **registry) {
  static const struct option opts[] = {{"bootstrap", required_argument, 0, 'b'},
                                       {"schema-registry", required_argument, 0, 'R'},
                                       {"topic", required_argument, 0, 't'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "b:t:X:h", opts, NULL)) != -1) {
    switch (c) {
    case 'b': *bootstrap = optarg; break;
    case 't': *topic = optarg; break;
    case 'R': *registry = optarg; break;
    case 'X':
      if (*nprops == MAX_PROPS)
        return KEFU_EXIT_USAGE;
      props[(*nprops)++] = optarg;
      break;
    case 'h': usage(stdout); return -1;
    default: usage(stderr); return KEFU_EXIT_USAGE;
    }
  }
  if (!*bootstrap || !*topic || argc - optind > 1) {
    usage(stderr);
    return KEFU_EXIT_USAGE;
  }
  *file = optind < argc ? argv[optind] : NULL;
  return 0;
}

/* --schema-registry: kefu's schema of @p topic registered under "<topic>-value", and its
 * id the one the records carry (what a registry-aware consumer looks up). The basic-auth
 * user info comes from KEFU_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO, never a flag. */
static int use_registry(kefu_schemas_t *schemas, kefu_topic_t topic, const char *url, char *errstr,
                        size_t errlen) {
  const char *auth = getenv("KEFU_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO");
  kefu_registry_opts_t o = {.url = url, .user_info = auth ? auth : "", .timeout_ms = 10000};
  kefu_registry_t *r = kefu_registry_new(&o, errstr, errlen);
  const char *text = kefu_schemas_current_text(schemas, topic);
  char subject[300], why[512];
  int32_t id = -1;
  int rc = -1;
  snprintf(subject, sizeof subject, "%s-value", kefu_topic_name(topic));
  if (r && kefu_registry_register(r, subject, text, &id, errstr, errlen) == KEFU_REGISTRY_OK) {
    kefu_schemas_unlist(schemas);
    if (kefu_schemas_add(schemas, id, topic, text, strlen(text), why, sizeof why) ||
        kefu_schemas_set_current(schemas, topic, id))
      snprintf(errstr, errlen, "subject %.200s: id %d: %.200s", subject, (int)id, why);
    else
      rc = 0;
  }
  kefu_registry_destroy(r);
  return rc;
}

int kefu_cmd_produce(int argc, char **argv) {
  const char *bootstrap = NULL, *topic = NULL, *file = NULL, *registry_url = NULL;
  char *props[MAX_PROPS], errstr[512], *line = NULL;
  int nprops = 0,
      rc = parse_args(argc, argv, &bootstrap, &topic, props, &nprops, &file, &registry_url);
  produce_ctx_t p = {0};
  kefu_schemas_t *schemas = NULL;
  FILE *in = stdin;
  size_t linecap = 0;
  long lineno = 0, bad = 0;

  if (rc)
    return rc < 0 ? KEFU_EXIT_OK : rc;
  p.topic = kefu_topic_by_name(topic);
  if (p.topic == KEFU_TOPIC_NONE || p.topic == KEFU_T_DLQ) {
    fprintf(stderr, "kefu produce: '%s' is not a kefu topic with a schema\n", topic);
    return KEFU_EXIT_USAGE;
  }
  p.topic_name = topic;
  if (file && !(in = fopen(file, "r"))) {
    perror(file);
    return KEFU_EXIT_FAIL;
  }
  rd_kafka_conf_t *conf = kefu_kafka_conf(bootstrap, props, nprops, errstr, sizeof errstr);
  if (!conf || kefu_kafka_set(conf, "partitioner", "murmur2_random", errstr, sizeof errstr) ||
      kefu_kafka_set(conf, "enable.idempotence", "true", errstr, sizeof errstr) ||
      kefu_kafka_set(conf, "linger.ms", "5", errstr, sizeof errstr))
    goto fail;
  rd_kafka_conf_set_opaque(conf, &p);
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  if (!(p.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr)))
    goto fail;
  conf = NULL;
  if (!(schemas = kefu_schemas_new(errstr, sizeof errstr)))
    goto fail;
  p.codec = kefu_codec_new(schemas);
  if (registry_url && *registry_url &&
      use_registry(schemas, p.topic, registry_url, errstr, sizeof errstr))
    goto fail;

  struct stat st;
  kefu_progress_t prog; /* by bytes of a file (a pipe has no size) */
  kefu_progress_start(&prog, "kefu produce", "bytes",
                      fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode) ? (int64_t)st.st_size
                                                                         : -1);
  int64_t bytes = 0;
  ssize_t got;
  while ((got = getline(&line, &linecap, in)) > 0) {
    lineno++;
    bytes += got;
    kefu_progress_update(&prog, bytes, p.produced);
    if (strspn(line, " \t\r\n") == strlen(line))
      continue;
    if (produce_line(&p, line, errstr, sizeof errstr)) {
      fprintf(stderr, "kefu produce: %s:%ld: %s\n", file ? file : "stdin", lineno, errstr);
      bad++;
    }
    rd_kafka_poll(p.rk, 0);
  }
  kefu_progress_end(&prog);
  rd_kafka_flush(p.rk, 60000);
  rc = bad || p.failed || rd_kafka_outq_len(p.rk) ? KEFU_EXIT_FAIL : KEFU_EXIT_OK;
  fprintf(stderr, "kefu produce: %ld records written to %s, %ld rejected, %ld failed\n", p.produced,
          topic, bad, p.failed);
  goto done;
fail:
  fprintf(stderr, "kefu produce: %s\n", errstr);
  rc = KEFU_EXIT_FAIL;
  if (conf)
    rd_kafka_conf_destroy(conf);
done:
  free(line);
  free(p.buf);
  if (p.codec)
    kefu_codec_destroy(p.codec);
  if (schemas)
    kefu_schemas_destroy(schemas);
  if (p.rk)
    rd_kafka_destroy(p.rk);
  if (in && in != stdin)
    fclose(in);
  return rc;
}
