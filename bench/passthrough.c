/* The bench's baseline: consume the four keyed input topics as a consumer group and
 * produce every record, unchanged, to one output topic — what kefu's loop costs with no
 * Redis and no rules. Same batch limits as kefu run. Two modes, one per guarantee:
 *   transactional  the consumer offsets in the same Kafka transaction as the batch's
 *                  records (kefu's exactly_once);
 *   idempotent     an idempotent producer, no transaction: the batch's records are
 *                  flushed (every delivery confirmed), then the offsets committed
 *                  synchronously (kefu's at_least_once).
 * Prints one JSON line of figures on stdout.
 *
 * usage: kefu-passthrough BOOTSTRAP OUTPUT_TOPIC EXPECTED_RECORDS [BATCH_MAX_RECORDS]
 *                         [transactional|idempotent] [GROUP_ID] [FETCH_WAIT_MAX_MS]
 * (defaults 2000, transactional, kefu-passthrough, librdkafka's default fetch wait);
 * the transactional.id is GROUP_ID. */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static const char *const inputs[] = {"kefu.chat.events", "kefu.order.events", "kefu.agent.events",
                                     "kefu.shop.config"};

static double now_s(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void die(const char *what, const char *why) {
  fprintf(stderr, "kefu-passthrough: %s: %s\n", what, why);
  exit(1);
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v) {
  char err[256];
  if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK)
    die(k, err);
}

static void check(rd_kafka_error_t *e, const char *what) {
  if (e)
    die(what, rd_kafka_error_string(e));
}

int main(int argc, char **argv) {
  if (argc < 4)
    die("usage", "kefu-passthrough BOOTSTRAP OUTPUT_TOPIC EXPECTED_RECORDS [BATCH_MAX] "
                 "[transactional|idempotent] [GROUP_ID] [FETCH_WAIT_MAX_MS]");
  const char *bootstrap = argv[1], *out = argv[2];
  long expected = atol(argv[3]), batch_max = argc > 4 ? atol(argv[4]) : 2000, done = 0;
  const char *mode = argc > 5 ? argv[5] : "transactional";
  const char *group = argc > 6 ? argv[6] : "kefu-passthrough";
  const char *fetch_wait = argc > 7 ? argv[7] : NULL;
  int txn = strcmp(mode, "transactional") == 0;
  if (!txn && strcmp(mode, "idempotent") != 0)
    die("mode", "transactional or idempotent");
  char err[256];

  rd_kafka_conf_t *cc = rd_kafka_conf_new(), *pc = rd_kafka_conf_new();
  set(cc, "bootstrap.servers", bootstrap);
  set(cc, "group.id", group);
  if (fetch_wait)
    set(cc, "fetch.wait.max.ms", fetch_wait);
  set(cc, "partition.assignment.strategy", "range");
  set(cc, "enable.auto.commit", "false");
  set(cc, "auto.offset.reset", "earliest");
  set(cc, "isolation.level", "read_committed");
  set(pc, "bootstrap.servers", bootstrap);
  if (txn)
    set(pc, "transactional.id", group);
  else {
    set(pc, "enable.idempotence", "true");
  }
  set(pc, "linger.ms", "5");
  set(pc, "partitioner", "murmur2_random");
  rd_kafka_t *consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof err);
  rd_kafka_t *producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err);
  if (!consumer || !producer)
    die("client", err);
  rd_kafka_poll_set_consumer(consumer);
  if (txn)
    check(rd_kafka_init_transactions(producer, 60000), "init_transactions");
  rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(4);
  for (int i = 0; i < 4; i++)
    rd_kafka_topic_partition_list_add(topics, inputs[i], RD_KAFKA_PARTITION_UA);
  rd_kafka_subscribe(consumer, topics);
  rd_kafka_topic_partition_list_destroy(topics);

  double first = 0, start = now_s();
  long batches = 0;
  while (done < expected && now_s() - start < 600) {
    rd_kafka_message_t *msgs[4096];
    long n = 0;
    double deadline = now_s() + 0.05;
    while (n < batch_max && n < 4096 && now_s() < deadline) {
      rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 20);
      if (!m)
        continue;
      if (m->err) {
        rd_kafka_message_destroy(m);
        continue;
      }
      msgs[n++] = m;
    }
    if (n == 0)
      continue;
    if (first == 0)
      first = now_s();
    if (txn)
      check(rd_kafka_begin_transaction(producer), "begin");
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(16);
    for (long i = 0; i < n; i++) {
      rd_kafka_message_t *m = msgs[i];
      while (rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(out), RD_KAFKA_V_KEY(m->key, m->key_len),
                               RD_KAFKA_V_VALUE(m->payload, m->len),
                               RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                               RD_KAFKA_V_TIMESTAMP(rd_kafka_message_timestamp(m, NULL)),
                               RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(producer, 10);
      const char *t = rd_kafka_topic_name(m->rkt);
      rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(offs, t, m->partition);
      if (!tp)
        tp = rd_kafka_topic_partition_list_add(offs, t, m->partition);
      if (m->offset + 1 > tp->offset)
        tp->offset = m->offset + 1;
      rd_kafka_message_destroy(m);
    }
    if (txn) {
      rd_kafka_consumer_group_metadata_t *md = rd_kafka_consumer_group_metadata(consumer);
      check(rd_kafka_send_offsets_to_transaction(producer, offs, md, 30000), "send_offsets");
      rd_kafka_consumer_group_metadata_destroy(md);
      check(rd_kafka_commit_transaction(producer, 60000), "commit");
    } else {
      if (rd_kafka_flush(producer, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        die("flush", "deliveries not confirmed in 60 s");
      rd_kafka_resp_err_t e = rd_kafka_commit(consumer, offs, 0);
      if (e)
        die("commit offsets", rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(offs);
    done += n;
    batches++;
  }
  double elapsed = now_s() - first;
  printf("{\"records\": %ld, \"batches\": %ld, \"seconds\": %.3f, \"records_per_s\": %.1f}\n", done,
         batches, elapsed, elapsed > 0 ? (double)done / elapsed : 0.0);
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  rd_kafka_destroy(producer);
  return done >= expected ? 0 : 1;
}
