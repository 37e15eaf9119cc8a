#include "io/mock.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>

#include "io/topics.h"

struct kefu_mock {
  rd_kafka_t *rk; /* owns the cluster's threads */
  rd_kafka_mock_cluster_t *cluster;
};

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
