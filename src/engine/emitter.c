#include "engine/emitter.h"

#include <stdio.h>

void kefu_emitter_init(kefu_emitter_t *e, const char *cause_event_id) {
  e->cause_event_id = cause_event_id;
  for (int i = 0; i < 26; i++)
    e->counters[i] = 0;
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
