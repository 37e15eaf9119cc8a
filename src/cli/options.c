#include "cli/options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void collect_kafka(const char *k, const char *v, void *arg) {
  kefu_cli_options_t *st = arg;
  size_t len = strlen(k) + strlen(v) + 2;
  st->kafka_props =
      realloc(st->kafka_props, (size_t)(st->nkafka_props + 1) * sizeof *st->kafka_props);
  st->kafka_props[st->nkafka_props] = malloc(len);
  snprintf(st->kafka_props[st->nkafka_props++], len, "%s=%s", k, v);
}

void kefu_cli_options_init(kefu_cli_options_t *st, const kefu_config_t *cfg) {
  const char **items, *inst = kefu_config_str(cfg, "instance.id");
  char host[128] = "kefu";
  size_t n = kefu_config_list(cfg, "logistics_couriers", &items);
  memset(st, 0, sizeof *st);
  gethostname(host, sizeof host - 1);
  if (*inst)
    snprintf(st->instance, sizeof st->instance, "%s", inst);
  else
    snprintf(st->instance, sizeof st->instance, "%s-%d", host, (int)getpid());
  st->couriers = calloc(n + 1, sizeof *st->couriers);
  for (size_t i = 0; i < n; i++)
    st->couriers[i] = items[i];
  kefu_config_each_kafka(cfg, collect_kafka, st);
  st->o = (kefu_processor_opts_t){
      .bootstrap = kefu_config_str(cfg, "bootstrap.servers"),
      .group_id = kefu_config_str(cfg, "group.id"),
      .instance_id = st->instance,
      .transactional_id_prefix = kefu_config_str(cfg, "transactional.id.prefix"),
      .redis_url = kefu_config_str(cfg, "redis.url"),
      .redis_user = kefu_config_str(cfg, "redis.user"),
      .redis_password = kefu_config_str(cfg, "redis.password"),
      .redis_namespace = kefu_config_str(cfg, "redis.namespace"),
      .exactly_once = strcmp(kefu_config_str(cfg, "processing.guarantee"), "exactly_once") == 0,
      .task_idle_ms = (int)kefu_config_int(cfg, "task_idle_ms"),
      .batch_max_records = (int)kefu_config_int(cfg, "batch.max_records"),
      .batch_max_ms = (int)kefu_config_int(cfg, "batch.max_ms"),
      .redis_timeout_ms = (int)kefu_config_int(cfg, "redis.timeout_ms"),
      .redis_retry_max_ms = (int)kefu_config_int(cfg, "redis.retry_max_ms"),
      .lateness_ms = kefu_config_int(cfg, "lateness"),
      .idle_advance = kefu_config_bool(cfg, "idle_advance"),
      .idle_advance_ms = kefu_config_int(cfg, "idle_advance_ms"),
      .params = {.threshold = kefu_config_double(cfg, "threshold"),
                 .escalate_after = (int)kefu_config_int(cfg, "escalate_after"),
                 .session_idle_ms = kefu_config_int(cfg, "session_idle_ms"),
                 .invitation_expiry_ms = kefu_config_int(cfg, "invitation_expiry_ms"),
                 .response_wait_ms = kefu_config_int(cfg, "response_wait_ms"),
                 .day_close_grace_ms = kefu_config_int(cfg, "day_close_grace"),
                 .logistics_couriers = st->couriers},
      .kafka_props = st->kafka_props,
      .nkafka_props = st->nkafka_props,
  };
}

void kefu_cli_options_clear(kefu_cli_options_t *st) {
  for (int i = 0; i < st->nkafka_props; i++)
    free(st->kafka_props[i]);
  free(st->kafka_props);
  free((void *)st->couriers);
  memset(st, 0, sizeof *st);
}
