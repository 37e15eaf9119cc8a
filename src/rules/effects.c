#include "rules/effects.h"

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
    kefu_record_clear(&e->records[i].rec);
  free(e->records);
  e->records = NULL;
  e->n = e->cap = 0;
}

static kefu_record_t *append(kefu_emitter_t *e, kefu_record_kind_t kind, kefu_record_t *rec) {
  kefu_record_str(rec, "cause_event_id", e->cause_event_id);
  if (e->n == e->cap) {
    e->cap = e->cap ? e->cap * 2 : 4;
    e->records = realloc(e->records, e->cap * sizeof *e->records);
  }
  kefu_output_t *o = &e->records[e->n++];
  o->kind = kind;
  o->rec = *rec;
  kefu_record_init(rec);
  return &o->rec;
}

/* "<cause_event_id>-<letter><n>", cut at 159 bytes as snprintf into 160 would, without
 * printf (one per record). */
static void format_id(char id[160], const char *cause, char letter, int n) {
  char full[192], digits[12];
  int nd = 0;
  size_t len = strnlen(cause, 160);
  memcpy(full, cause, len);
  full[len++] = '-';
  full[len++] = letter;
  unsigned u = n < 0 ? 0u - (unsigned)n : (unsigned)n;
  if (n < 0)
    full[len++] = '-';
  do
    digits[nd++] = (char)('0' + u % 10);
  while (u /= 10);
  while (nd)
    full[len++] = digits[--nd];
  if (len > 159)
    len = 159;
  memcpy(id, full, len);
  id[len] = '\0';
}

const char *kefu_emit(kefu_emitter_t *e, kefu_record_kind_t kind, kefu_record_t *rec) {
  char id[160];
  const kefu_record_kind_info_t *k = &kefu_record_kinds[kind];
  format_id(id, e->cause_event_id, k->letter, e->counters[kind]++);
  kefu_record_str(rec, k->id_field, id);
  return kefu_record_get_str(append(e, kind, rec), k->id_field);
}

void kefu_emit_keep_id(kefu_emitter_t *e, kefu_record_kind_t kind, kefu_record_t *rec) {
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
