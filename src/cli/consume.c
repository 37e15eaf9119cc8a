/* kefu consume: records of a topic -> JSON lines on stdout (diagnostics on stderr).
 * Reads every partition directly (no consumer group), read_committed. DLQ records are
 * raw bytes: they print as {"error", "source", "key", "value_base64"}. --meta wraps each
 * record with its partition, offset, timestamp, key and headers. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/base64.h"
#include "io/codec.h"
#include "io/kafka.h"
#include "io/registry.h"
#include "io/schemas.h"
#include "io/topics.h"

#define MAX_PROPS 64

typedef struct consume_opts {
  const char *bootstrap, *topic, *registry_url;
  int from_beginning, exit_at_end, meta;
  char *props[MAX_PROPS];
  int nprops;
} consume_opts_t;

static void usage(FILE *out) {
  fprintf(out, "usage: kefu consume -b BOOTSTRAP -t TOPIC [--from-beginning] [--exit] [--meta]\n"
               "                    [--schema-registry URL] [-X key=value]...\n"
               "  Prints each record as one JSON line. --exit stops at the end of every\n"
               "  partition; --meta adds partition, offset, timestamp, key and headers.\n"
               "  --schema-registry reads the schema ids of that registry (fetched by id;\n"
               "  basic auth from KEFU_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO, a CA file from\n"
               "  KEFU_SCHEMA_REGISTRY_SSL_CA_LOCATION) instead of the built-in ones.\n");
}

json_t *kefu_cli_dlq_json(const void *key, size_t key_len, const void *val, size_t len,
                          const char *error, const char *source) {
  char *b64 = kefu_base64(val ? val : "", val ? len : 0);
  json_t *o = json_pack("{s:s, s:s, s:s#, s:s}", "error", error, "source", source, "key",
                        key ? (const char *)key : "", key ? (int)key_len : 0, "value_base64", b64);
  free(b64);
  return o;
}

static json_t *dlq_json(const rd_kafka_message_t *m) {
  char err[512], src[256];
  kefu_kafka_header(m, "kefu.error", err, sizeof err);
  kefu_kafka_header(m, "kefu.source", src, sizeof src);
  return kefu_cli_dlq_json(m->key, m->key_len, m->payload, m->len, err, src);
}

static json_t *headers_json(const rd_kafka_message_t *m) {
  rd_kafka_headers_t *hdrs = NULL;
  json_t *o = json_object();
  const char *name;
  const void *val;
  size_t len;
  if (rd_kafka_message_headers(m, &hdrs))
    return o;
  for (size_t i = 0; !rd_kafka_header_get_all(hdrs, i, &name, &val, &len); i++)
    json_object_set_new(o, name, json_stringn(val ? val : "", val ? len : 0));
  return o;
}

static void print_record(const consume_opts_t *o, kefu_registry_t *registry,
                         kefu_schemas_t *schemas, kefu_codec_t *codec, kefu_topic_t t,
                         const rd_kafka_message_t *m) {
  char errstr[512], *text = NULL;
  json_t *value = NULL;

  if (t == KEFU_T_DLQ)
    value = dlq_json(m);
  else if (!m->payload)
    value = json_null();
  else if (kefu_registry_learn_framed(registry, schemas, t, m->payload, m->len, errstr,
                                      sizeof errstr) ||
           kefu_codec_decode(codec, t, m->payload, m->len, &value, errstr, sizeof errstr)) {
    fprintf(stderr, "kefu consume: %s [%d] @%lld: %s\n", o->topic, (int)m->partition,
            (long long)m->offset, errstr);
    return;
  }
  if (o->meta) {
    rd_kafka_timestamp_type_t tstype;
    json_t *w = json_pack("{s:i, s:I, s:I, s:s#, s:o, s:o}", "partition", (int)m->partition,
                          "offset", (json_int_t)m->offset, "timestamp",
                          (json_int_t)rd_kafka_message_timestamp(m, &tstype), "key",
                          m->key ? (const char *)m->key : "", m->key ? (int)m->key_len : 0,
                          "headers", headers_json(m), "value", value);
    value = w;
  }
  kefu_json_dumps_record(value, &text);
  if (text)
    printf("%s\n", text);
  free(text);
  json_decref(value);
}

static int parse_args(int argc, char **argv, consume_opts_t *o) {
  static const struct option opts[] = {{"bootstrap", required_argument, 0, 'b'},
                                       {"topic", required_argument, 0, 't'},
                                       {"from-beginning", no_argument, 0, 'B'},
                                       {"exit", no_argument, 0, 'e'},
                                       {"meta", no_argument, 0, 'm'},
                                       {"schema-registry", required_argument, 0, 'R'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "b:t:X:h", opts, NULL)) != -1) {
    switch (c) {
    case 'b': o->bootstrap = optarg; break;
    case 't': o->topic = optarg; break;
    case 'B': o->from_beginning = 1; break;
    case 'e': o->exit_at_end = 1; break;
    case 'm': o->meta = 1; break;
    case 'R': o->registry_url = optarg; break;
    case 'X':
      if (o->nprops == MAX_PROPS)
        return KEFU_EXIT_USAGE;
      o->props[o->nprops++] = optarg;
      break;
    case 'h': usage(stdout); return -1;
    default: usage(stderr); return KEFU_EXIT_USAGE;
    }
  }
  if (!o->bootstrap || !o->topic || optind != argc) {
    usage(stderr);
    return KEFU_EXIT_USAGE;
  }
  return 0;
}

/* --schema-registry: the built-in ids leave the table (a registry numbers its schemas
 * from 1 too), and ids are fetched as records need them. */
static kefu_registry_t *open_registry(const char *url, kefu_schemas_t *schemas, char *errstr,
                                      size_t errlen) {
  const char *auth = getenv("KEFU_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO");
  const char *ca = getenv("KEFU_SCHEMA_REGISTRY_SSL_CA_LOCATION");
  kefu_registry_opts_t ro = {
      .url = url, .user_info = auth ? auth : "", .ca_location = ca, .timeout_ms = 10000};
  kefu_registry_t *r = kefu_registry_new(&ro, errstr, errlen);
  if (r)
    kefu_schemas_unlist(schemas);
  return r;
}

static rd_kafka_t *open_consumer(const consume_opts_t *o, int *npart, char *errstr, size_t errlen) {
  rd_kafka_conf_t *conf =
      kefu_kafka_conf(o->bootstrap, (char **)o->props, o->nprops, errstr, errlen);
  rd_kafka_t *rk = NULL;
  if (!conf || kefu_kafka_set(conf, "group.id", "kefu-consume-cli", errstr, errlen) ||
      kefu_kafka_set(conf, "enable.partition.eof", "true", errstr, errlen) ||
      kefu_kafka_set(conf, "enable.auto.commit", "false", errstr, errlen) ||
      kefu_kafka_set(conf, "isolation.level", "read_committed", errstr, errlen))
    goto fail;
  if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errlen)))
    goto fail;
  conf = NULL;
  rd_kafka_poll_set_consumer(rk);
  if ((*npart = kefu_kafka_partition_count(rk, o->topic, 10000, errstr, errlen)) < 0)
    goto fail;
  rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(*npart);
  for (int i = 0; i < *npart; i++)
    rd_kafka_topic_partition_list_add(parts, o->topic, i)->offset =
        o->from_beginning ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
  rd_kafka_resp_err_t err = rd_kafka_assign(rk, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  if (err) {
    snprintf(errstr, errlen, "assign: %s", rd_kafka_err2str(err));
    goto fail;
  }
  return rk;
fail:
  if (conf)
    rd_kafka_conf_destroy(conf);
  if (rk)
    rd_kafka_destroy(rk);
  return NULL;
}

int kefu_cmd_consume(int argc, char **argv) {
  consume_opts_t o = {0};
  char errstr[512];
  int npart = 0, at_end = 0, rc = parse_args(argc, argv, &o);
  kefu_schemas_t *schemas = NULL;
  kefu_codec_t *codec = NULL;
  kefu_registry_t *registry = NULL;
  rd_kafka_t *rk = NULL;

  if (rc)
    return rc < 0 ? KEFU_EXIT_OK : rc;
  kefu_topic_t t = kefu_topic_by_name(o.topic);
  if (t == KEFU_TOPIC_NONE) {
    fprintf(stderr, "kefu consume: '%s' is not a kefu topic\n", o.topic);
    return KEFU_EXIT_USAGE;
  }
  if (!(schemas = kefu_schemas_new(errstr, sizeof errstr)) ||
      (o.registry_url &&
       !(registry = open_registry(o.registry_url, schemas, errstr, sizeof errstr))) ||
      !(rk = open_consumer(&o, &npart, errstr, sizeof errstr))) {
    fprintf(stderr, "kefu consume: %s\n", errstr);
    rc = KEFU_EXIT_FAIL;
    goto done;
  }
  codec = kefu_codec_new(schemas);
  volatile sig_atomic_t *stop_requested = kefu_cli_stop_on_signals();
  char *eof = calloc((size_t)npart, 1);
  while (!*stop_requested && !(o.exit_at_end && at_end == npart)) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
    if (!m)
      continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (m->partition < npart && !eof[m->partition]) {
        eof[m->partition] = 1;
        at_end++;
      }
    } else if (m->err) {
      fprintf(stderr, "kefu consume: %s\n", rd_kafka_message_errstr(m));
    } else {
      print_record(&o, registry, schemas, codec, t, m);
    }
    rd_kafka_message_destroy(m);
  }
  free(eof);
  fflush(stdout);
  rd_kafka_consumer_close(rk);
done:
  if (rk)
    rd_kafka_destroy(rk);
  if (codec)
    kefu_codec_destroy(codec);
  kefu_registry_destroy(registry);
  if (schemas)
    kefu_schemas_destroy(schemas);
  return rc;
}
