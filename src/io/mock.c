#include "io/mock.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "io/topics.h"

struct kefu_mock {
  rd_kafka_t *rk; /* owns the cluster's threads */
  rd_kafka_mock_cluster_t *cluster;
};

/* The mock brokers' sockets with TCP_NODELAY, as a real Kafka broker's (its acceptor
 * sets it on every connection). librdkafka's mock leaves Nagle on and has no setting for
 * it: a response written while the previous one is not yet acknowledged waits for the
 * client's delayed ACK, 40 ms on Linux, so a producer with two Produce requests in
 * flight (librdkafka pipelines one per partition) stalls ~40 ms at most flushes, e.g.
 * inside every commit_transaction. The mock exposes no descriptors: its listening
 * sockets are found among ours by their ports, and accepted connections inherit the
 * option from them. */
static void mock_nodelay(const char *bootstraps) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  if (!d)
    return;
  while ((e = readdir(d))) {
    int fd = atoi(e->d_name), listening = 0, on = 1;
    socklen_t len = sizeof listening;
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    char port[16];
    if (e->d_name[0] < '0' || e->d_name[0] > '9' || fd == dirfd(d) ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) || !listening ||
        getsockname(fd, (struct sockaddr *)&sa, &salen) || sa.sin_family != AF_INET)
      continue;
    snprintf(port, sizeof port, ":%d", ntohs(sa.sin_port));
    for (const char *h = strstr(bootstraps, port); h; h = strstr(h + 1, port))
      if (h[strlen(port)] == ',' || h[strlen(port)] == '\0') {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        break;
      }
  }
  closedir(d);
}

kefu_mock_t *kefu_mock_start(int brokers, int partitions, const char *prefix, char *errstr,
                             size_t errlen) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  kefu_mock_t *m = calloc(1, sizeof *m);

  rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
  m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errlen);
  if (!m->rk) {
    rd_kafka_conf_destroy(conf);
    free(m);
    return NULL;
  }
  m->cluster = rd_kafka_mock_cluster_new(m->rk, brokers);
  if (!m->cluster) {
    snprintf(errstr, errlen, "could not create the mock cluster");
    goto fail;
  }
  mock_nodelay(rd_kafka_mock_cluster_bootstraps(m->cluster));
  kefu_topics_set_prefix(prefix);
  for (int t = 0; t < KEFU_T__COUNT; t++) {
    /* The courier-status table is read whole by every instance; one partition keeps
     * its records in the order they were written. */
    int n = t == KEFU_T_COURIER_STATUS ? 1 : partitions;
    rd_kafka_resp_err_t err =
        rd_kafka_mock_topic_create(m->cluster, kefu_topic_name((kefu_topic_t)t), n, 1);
    if (err) {
      snprintf(errstr, errlen, "creating %s: %s", kefu_topic_name((kefu_topic_t)t),
               rd_kafka_err2str(err));
      goto fail;
    }
  }
  return m;
fail:
  kefu_mock_stop(m);
  return NULL;
}

const char *kefu_mock_bootstraps(const kefu_mock_t *m) {
  return rd_kafka_mock_cluster_bootstraps(m->cluster);
}

void kefu_mock_stop(kefu_mock_t *m) {
  if (!m)
    return;
  if (m->cluster)
    rd_kafka_mock_cluster_destroy(m->cluster);
  rd_kafka_destroy(m->rk);
  free(m);
}

/* ---------------------------------------------------------------- fault injection
 *
 * Tests drive faults through `kefu broker --control`, one command per line on stdin, so
 * a Python test can break the cluster that kefu and its external clients talk to. Each
 * command maps onto one call of librdkafka's mock API; names of requests and errors are
 * Kafka's (the error table comes from librdkafka itself). */

const char kefu_mock_control_help[] =
    "  errors REQUEST ERROR...        the next requests of that kind fail, one per ERROR\n"
    "  broker-errors ID REQUEST ERROR[:RTT_MS]...  the same on broker ID, with delays\n"
    "  clear REQUEST                  drop the errors still queued for REQUEST\n"
    "  rtt ID MS                      broker ID answers MS ms late\n"
    "  down ID | up ID                broker ID stops / resumes answering\n"
    "  leader TOPIC PARTITION ID      broker ID leads TOPIC [PARTITION]\n"
    "  coordinator group|transaction KEY ID   broker ID coordinates KEY\n"
    "  REQUEST: Produce Fetch ListOffsets Metadata OffsetCommit OffsetFetch\n"
    "    FindCoordinator JoinGroup Heartbeat LeaveGroup SyncGroup InitProducerId\n"
    "    AddPartitionsToTxn AddOffsetsToTxn EndTxn TxnOffsetCommit, or a number;\n"
    "  ERROR: a Kafka error name (REBALANCE_IN_PROGRESS, PRODUCER_FENCED...) or a number\n";

static const struct {
  const char *name;
  int16_t key;
} api_keys[] = {{"Produce", 0},
                {"Fetch", 1},
                {"ListOffsets", 2},
                {"Metadata", 3},
                {"OffsetCommit", 8},
                {"OffsetFetch", 9},
                {"FindCoordinator", 10},
                {"JoinGroup", 11},
                {"Heartbeat", 12},
                {"LeaveGroup", 13},
                {"SyncGroup", 14},
                {"InitProducerId", 22},
                {"AddPartitionsToTxn", 24},
                {"AddOffsetsToTxn", 25},
                {"EndTxn", 26},
                {"TxnOffsetCommit", 28}};

static int parse_int(const char *s, long lo, long hi, long *out) {
  char *end;
  long v;
  if (!s)
    return -1;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

static int parse_api(const char *s, int16_t *out) {
  long v;
  for (size_t i = 0; s && i < sizeof api_keys / sizeof api_keys[0]; i++)
    if (strcasecmp(s, api_keys[i].name) == 0) {
      *out = api_keys[i].key;
      return 0;
    }
  if (parse_int(s, 0, 1000, &v))
    return -1;
  *out = (int16_t)v;
  return 0;
}

static int parse_err(const char *s, rd_kafka_resp_err_t *out) {
  const struct rd_kafka_err_desc *descs;
  size_t n;
  long v;
  if (!s)
    return -1;
  rd_kafka_get_err_descs(&descs, &n);
  for (size_t i = 0; i < n; i++)
    if (descs[i].name && descs[i].code >= 0 && strcasecmp(s, descs[i].name) == 0) {
      *out = descs[i].code;
      return 0;
    }
  if (parse_int(s, 0, 1000, &v))
    return -1;
  *out = (rd_kafka_resp_err_t)v;
  return 0;
}

#define CTL_MAX_WORDS 64

static int reply_err(rd_kafka_resp_err_t err, char *reply, size_t replylen) {
  if (err) {
    snprintf(reply, replylen, "error: %s", rd_kafka_err2str(err));
    return -1;
  }
  snprintf(reply, replylen, "ok");
  return 0;
}

/* errors REQUEST ERROR... | broker-errors ID REQUEST ERROR[:RTT]... */
static int ctl_errors(kefu_mock_t *m, char **w, int n, bool per_broker, char *reply,
                      size_t replylen) {
  rd_kafka_resp_err_t errs[CTL_MAX_WORDS];
  int rtts[CTL_MAX_WORDS];
  long id = -1, rtt;
  int16_t api;
  int first = per_broker ? 3 : 2, cnt = 0;
  if ((per_broker && parse_int(w[1], 0, 1000, &id)) || parse_api(w[first - 1], &api) ||
      n <= first) {
    snprintf(reply, replylen, "error: usage: %s",
             per_broker ? "broker-errors ID REQUEST ERROR..." : "errors REQUEST ERROR...");
    return -1;
  }
  for (int i = first; i < n; i++, cnt++) {
    char *colon = strchr(w[i], ':');
    rtts[cnt] = 0;
    if (colon) {
      *colon = '\0';
      if (!per_broker || parse_int(colon + 1, 0, 600000, &rtt)) {
        snprintf(reply, replylen, "error: bad delay in %s:%s", w[i], colon + 1);
        return -1;
      }
      rtts[cnt] = (int)rtt;
    }
    if (parse_err(w[i], &errs[cnt])) {
      snprintf(reply, replylen, "error: unknown Kafka error %s", w[i]);
      return -1;
    }
  }
  if (!per_broker) {
    rd_kafka_mock_push_request_errors_array(m->cluster, api, (size_t)cnt, errs);
    return reply_err(0, reply, replylen);
  }
  for (int i = 0; i < cnt; i++) { /* one call per error: the API is variadic only */
    rd_kafka_resp_err_t e = rd_kafka_mock_broker_push_request_error_rtts(m->cluster, (int32_t)id,
                                                                         api, 1, errs[i], rtts[i]);
    if (e)
      return reply_err(e, reply, replylen);
  }
  return reply_err(0, reply, replylen);
}

int kefu_mock_control(kefu_mock_t *m, const char *line, char *reply, size_t replylen) {
  char buf[2048], *w[CTL_MAX_WORDS], *save = NULL;
  int n = 0;
  long id, v, part;
  int16_t api;
  snprintf(buf, sizeof buf, "%s", line);
  for (char *t = strtok_r(buf, " \t\r\n", &save); t && n < CTL_MAX_WORDS;
       t = strtok_r(NULL, " \t\r\n", &save))
    w[n++] = t;
  for (int i = n; i < CTL_MAX_WORDS; i++)
    w[i] = NULL;
  if (n == 0) {
    snprintf(reply, replylen, "error: empty command");
    return -1;
  }
  if (strcmp(w[0], "errors") == 0)
    return ctl_errors(m, w, n, false, reply, replylen);
  if (strcmp(w[0], "broker-errors") == 0)
    return ctl_errors(m, w, n, true, reply, replylen);
  if (strcmp(w[0], "clear") == 0 && n == 2 && !parse_api(w[1], &api)) {
    rd_kafka_mock_clear_request_errors(m->cluster, api);
    return reply_err(0, reply, replylen);
  }
  if (strcmp(w[0], "rtt") == 0 && n == 3 && !parse_int(w[1], 0, 1000, &id) &&
      !parse_int(w[2], 0, 600000, &v))
    return reply_err(rd_kafka_mock_broker_set_rtt(m->cluster, (int32_t)id, (int)v), reply,
                     replylen);
  if ((strcmp(w[0], "down") == 0 || strcmp(w[0], "up") == 0) && n == 2 &&
      !parse_int(w[1], 0, 1000, &id))
    return reply_err(w[0][0] == 'd' ? rd_kafka_mock_broker_set_down(m->cluster, (int32_t)id)
                                    : rd_kafka_mock_broker_set_up(m->cluster, (int32_t)id),
                     reply, replylen);
  if (strcmp(w[0], "leader") == 0 && n == 4 && !parse_int(w[2], 0, 100000, &part) &&
      !parse_int(w[3], -1, 1000, &id))
    return reply_err(
        rd_kafka_mock_partition_set_leader(m->cluster, w[1], (int32_t)part, (int32_t)id), reply,
        replylen);
  if (strcmp(w[0], "coordinator") == 0 && n == 4 &&
      (strcmp(w[1], "group") == 0 || strcmp(w[1], "transaction") == 0) &&
      !parse_int(w[3], 0, 1000, &id))
    return reply_err(rd_kafka_mock_coordinator_set(m->cluster, w[1], w[2], (int32_t)id), reply,
                     replylen);
  snprintf(reply, replylen, "error: unknown or malformed command: %s", w[0]);
  return -1;
}
