#include "engine/emitter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kefu_emitter_init(kefu_emitter_t *e, const char *cause_event_id) {
  memset(e, 0, sizeof *e);
  e->cause_event_id = cause_event_id;
  e->records = json_array();
}

void kefu_emitter_clear(kefu_emitter_t *e) {
  json_decref(e->records);
  e->records = NULL;
}

void kefu_emit(kefu_emitter_t *e, kefu_topic_t topic, char letter, const char *id_field,
               json_t *rec) {
  char id[160];
  int *n = &e->counters[(letter - 'a') % 26];
  snprintf(id, sizeof id, "%s-%c%d", e->cause_event_id, letter, (*n)++);
  json_object_set_new(rec, id_field, json_string(id));
  json_object_set_new(rec, "cause_event_id", json_string(e->cause_event_id));
  json_array_append_new(e->records, json_pack("[i, o]", (int)topic, rec));
}

void kefu_schedule(kefu_emitter_t *e, kefu_shop_t *shop, int64_t deadline, const char *kind,
                   const char *buyer_id, json_t *payload) {
  kefu_timer_t *t = calloc(1, sizeof *t);
  t->deadline = deadline;
  kefu_timer_order(t->order, sizeof t->order, e->cause_ts, e->cause_rank, e->cause_offset,
                   e->timers_made++);
  snprintf(t->kind, sizeof t->kind, "%s", kind);
  snprintf(t->shop_id, sizeof t->shop_id, "%s", shop->id);
  snprintf(t->buyer_id, sizeof t->buyer_id, "%s", buyer_id ? buyer_id : "");
  t->payload = payload ? payload : json_object();
  char *member = kefu_timer_member(t);
  json_object_set_new(shop->timers_added, member, json_integer(deadline));
  free(member);
  if (e->timers)
    kefu_timer_queue_add(e->timers, t);
  else
    kefu_timer_free(t);
}

void kefu_emit_keep_id(kefu_emitter_t *e, kefu_topic_t topic, json_t *rec) {
  json_object_set_new(rec, "cause_event_id", json_string(e->cause_event_id));
  json_array_append_new(e->records, json_pack("[i, o]", (int)topic, rec));
}
