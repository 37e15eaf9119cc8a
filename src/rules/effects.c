#include "rules/effects.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const kefu_record_kind_info_t kefu_record_kinds[KEFU_REC__COUNT] = {
    [KEFU_REC_DECISION] = {"routing.decisions", 'd', "decision_id"},
    [KEFU_REC_CARD] = {"service.cards", 'c', "card_id"},
    [KEFU_REC_INVITATION] = {"logistics.invitations", 'i', "invitation_id"},
    [KEFU_REC_RESPONSE_EVENT] = {"response.events", 'e', "response_event_id"},
    [KEFU_REC_RATE_RECORD] = {"response.violations", 'r', "record_id"},
    [KEFU_REC_INSIGHT] = {"inquiry.insights", 's', "insight_id"},
};

void kefu_emitter_init(kefu_emitter_t *e, const char *cause_event_id) {
  memset(e, 0, sizeof *e);
  e->cause_event_id = cause_event_id;
}

void kefu_emitter_clear(kefu_emitter_t *e) {
  for (size_t i = 0; i < e->n; i++)
    json_decref(e->records[i].rec);
  free(e->records);
  e->records = NULL;
  e->n = e->cap = 0;
}

static void append(kefu_emitter_t *e, kefu_record_kind_t kind, json_t *rec) {
  json_object_set_new(rec, "cause_event_id", json_string(e->cause_event_id));
  if (e->n == e->cap) {
    e->cap = e->cap ? e->cap * 2 : 4;
    e->records = realloc(e->records, e->cap * sizeof *e->records);
  }
  e->records[e->n++] = (kefu_output_t){kind, rec};
}

const char *kefu_emit(kefu_emitter_t *e, kefu_record_kind_t kind, json_t *rec) {
  char id[160];
  const kefu_record_kind_info_t *k = &kefu_record_kinds[kind];
  snprintf(id, sizeof id, "%s-%c%d", e->cause_event_id, k->letter, e->counters[kind]++);
  json_object_set_new(rec, k->id_field, json_string(id));
  append(e, kind, rec);
  return json_string_value(json_object_get(rec, k->id_field));
}

void kefu_emit_keep_id(kefu_emitter_t *e, kefu_record_kind_t kind, json_t *rec) {
  append(e, kind, rec);
}

void kefu_schedule(kefu_emitter_t *e, kefu_shop_t *shop, const char *buyer_id, int64_t deadline,
                   kefu_timer_kind_t kind, int64_t a, int64_t b, int32_t ref_kind,
                   const char *ref) {
  kefu_timer_t t = {.deadline = deadline,
                    .order = {e->cause_ts, e->cause_rank, e->cause_offset, e->timers_made++},
                    .kind = kind,
                    .a = a,
                    .b = b,
                    .ref_kind = ref_kind,
                    .ref = (char *)ref};
  kefu_timers_add(kefu_shop_timers_of(shop, buyer_id), &t);
  if (buyer_id)
    kefu_buyer_touch(shop, kefu_shop_buyer(shop, buyer_id));
  else
    shop->timers_changed = true;
  if (e->on_timer)
    e->on_timer(e->on_timer_arg, shop, buyer_id, &t);
}
