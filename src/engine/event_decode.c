/* The binary fast path of the keyed input topics (issue 9): a framed Avro value written
 * with the topic's current schema is decoded straight into kefu_event_t, without avro-c's
 * generic value and without the JSON form, then checked by kefu_event_check() (the
 * checks of kefu_event_from_json() on the typed event).
 *
 * One hand-written reader per schema (schemas/chat_event.avsc, order_event.avsc,
 * agent_event.avsc, shop_config.avsc), reading the fields in schema order. It accepts
 * exactly the datums the codec's validator accepts (codec.c validate_datum): zigzag
 * varints of at most 64 bits, ints within 32 bits, booleans 0 or 1, finite doubles,
 * UTF-8 strings (NUL bytes pass, and end the C string, as they do through jansson),
 * enum indexes and union branches in range, array blocks (a negative count is followed
 * by a byte size, which is ignored) whose count fits in the bytes left, and no trailing
 * bytes. Every length is checked against the buffer before use. Records of any other
 * schema id (older writer schemas that need resolution) are left to the codec
 * (return 1), and so is a topic whose current schema is not the one written for here
 * (kefu_event_fast_id()). tests/unit/test_event_decode.c compares both paths. */
#include <inttypes.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/embedded.h"
#include "common/enums.h"
#include "engine/event.h"
#include "io/codec.h"
#include "io/schemas.h"

typedef struct rd {
  const uint8_t *p, *end;
  const char *field; /* the field being read, for the reason */
  char *errstr;
  size_t errlen;
} rd_t;

static int fail(rd_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(rd_t *r, const char *fmt, ...) {
  char what[96];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  snprintf(r->errstr, r->errlen, "avro: %s at %s", what, r->field);
  return -1;
}

static int rd_long(rd_t *r, int64_t *out) {
  if (r->p != r->end && *r->p < 0x80) { /* one byte: most lengths, indexes and branches */
    uint8_t b = *r->p++;
    *out = (int64_t)(b >> 1) ^ -(int64_t)(b & 1); /* zigzag */
    return 0;
  }
  int rc = kefu_avro_read_long(&r->p, r->end, out);
  return rc == 0 ? 0 : fail(r, rc == -1 ? "truncated" : "varint longer than 64 bits");
}

static int rd_int(rd_t *r, int32_t *out) {
  int64_t v;
  if (rd_long(r, &v))
    return -1;
  if (v < INT32_MIN || v > INT32_MAX)
    return fail(r, "int %" PRId64 " out of range", v);
  *out = (int32_t)v;
  return 0;
}

static int rd_bool(rd_t *r, bool *out) {
  if (r->p == r->end)
    return fail(r, "truncated");
  uint8_t b = *r->p++;
  if (b > 1)
    return fail(r, "boolean byte 0x%02x", b);
  *out = b;
  return 0;
}

static int rd_double(rd_t *r, double *out) {
  uint64_t bits = 0;
  if (r->end - r->p < 8)
    return fail(r, "truncated");
  for (int i = 7; i >= 0; i--)
    bits = bits << 8 | r->p[i];
  r->p += 8;
  memcpy(out, &bits, sizeof *out);
  return isfinite(*out) ? 0 : fail(r, "double is not finite");
}

/* An index in [0, n): an enum symbol or a union branch. */
static int rd_index(rd_t *r, int64_t n, const char *what, int *out) {
  int64_t i;
  *out = 0;
  if (rd_long(r, &i))
    return -1;
  if (i < 0 || i >= n)
    return fail(r, "%s %" PRId64 " out of range", what, i);
  *out = (int)i;
  return 0;
}

/* A string, copied into a new NUL-terminated buffer in @p *out (freeing none). */
static int rd_str(rd_t *r, char **out) {
  int64_t n;
  if (rd_long(r, &n))
    return -1;
  if (n < 0)
    return fail(r, "negative length %" PRId64, n);
  if ((uint64_t)n > (uint64_t)(r->end - r->p))
    return fail(r, "length %" PRId64 " exceeds the %zu bytes left", n, (size_t)(r->end - r->p));
  if (!kefu_codec_utf8_ok(r->p, (size_t)n))
    return fail(r, "string is not UTF-8");
  char *s = malloc((size_t)n + 1);
  if (!s)
    return fail(r, "out of memory");
  memcpy(s, r->p, (size_t)n);
  s[n] = '\0';
  r->p += n;
  *out = s;
  return 0;
}

/* ["null", "string"]: NULL or the string. */
static int rd_opt_str(rd_t *r, char **out) {
  int b = 0;
  if (rd_index(r, 2, "union branch", &b))
    return -1;
  return b ? rd_str(r, out) : 0;
}

/* The next block header of an array: its item count (0 at the end), at most the bytes
 * left (every item here takes at least one byte). */
static int rd_block(rd_t *r, size_t *count) {
  int64_t n, bytes;
  if (rd_long(r, &n))
    return -1;
  if (n == INT64_MIN)
    return fail(r, "bad block count");
  if (n < 0) {
    if (rd_long(r, &bytes))
      return -1;
    n = -n;
  }
  if ((uint64_t)n > (uint64_t)(r->end - r->p))
    return fail(r, "block of %" PRId64 " items exceeds the data", n);
  *count = (size_t)n;
  return 0;
}

/* Grows the array @p *v of @p n items of @p size by @p more zeroed items. */
static int grow(rd_t *r, void **v, uint32_t n, size_t more, size_t size) {
  void *g = realloc(*v, (n + more) * size);
  if (!g)
    return fail(r, "out of memory");
  memset((char *)g + n * size, 0, more * size);
  *v = g;
  return 0;
}

/* An Avro array (blocks of items, a zero count at the end). With @p v, each item goes
 * into the next slot of the growable array *@p v of *@p n items of @p size; without, the
 * item function gets a NULL slot and keeps what it reads in @p arg. */
static int rd_array(rd_t *r, void **v, uint32_t *n, size_t size,
                    int (*item)(rd_t *, void *slot, void *arg), void *arg) {
  size_t count;
  for (;;) {
    if (rd_block(r, &count))
      return -1;
    if (count == 0)
      return 0;
    if (v && grow(r, v, *n, count, size))
      return -1;
    for (size_t k = 0; k < count; k++) {
      void *slot = v ? (char *)*v + (size_t)(*n)++ * size : NULL;
      if (item(r, slot, arg))
        return -1;
    }
  }
}

static int str_item(rd_t *r, void *slot, void *arg) {
  (void)arg;
  return rd_str(r, slot);
}

static int rd_strv(rd_t *r, kefu_strv_t *l) {
  return rd_array(r, (void **)&l->v, &l->n, sizeof *l->v, str_item, NULL);
}

/* Schema symbols (the .avsc files) and kefu's names for them; the codec's JSON carries
 * the symbol and kefu_event_from_json() parses it, so the same is done here. */
static const char *const chat_types[] = {"CHAT_OPEN",         "BUYER_MSG",
                                         "AGENT_MSG",         "BOT_MSG",
                                         "TRANSFER_CLICK",    "MERCHANT_INVITE_LOGISTICS",
                                         "LOGISTICS_CONSENT", "LOGISTICS_MSG",
                                         "SESSION_CLOSE",     "DELIVERABILITY_QUERY"};
static const char *const order_types[] = {
    "CREATED", "PAID",      "SHIPPED",           "PARTIALLY_SHIPPED", "LOGISTICS_UPDATE",
    "SIGNED",  "COMPLETED", "AFTER_SALE_OPENED", "AFTER_SALE_CLOSED", "ADDRESS_CHANGED",
    "CLOSED"};
static const char *const agent_types[] = {"PRESENCE", "PROFILE", "EXCLUSIVE_BIND",
                                          "EXCLUSIVE_UNBIND"};
static const char *const presences[] = {"ONLINE", "SUSPENDED", "OFFLINE"};
static const char *const account_kinds[] = {"SUB", "MAIN", "PROXY"};
static const char *const leave_targets[] = {"MAIN_ACCOUNT", "PROXY_ACCOUNT", "MESSAGE_POOL"};
static const char *const strategies[] = {"EFFICIENCY", "CONVERSION"};
static const char *const order_states[] = {"NO_ACTIVE_ORDER", "UNPAID",    "PAID_NOT_SHIPPED",
                                           "SHIPPED",         "COMPLETED", "AFTER_SALE"};
#define NSYM(a) ((int64_t)(sizeof(a) / sizeof(a)[0]))

/* Reads an enum of schema symbols @p syms; @p *out is its index in kefu's @p names
 * (-1 when kefu has no such name) and @p *sym the symbol. */
static int rd_enum(rd_t *r, const char *const *syms, int64_t nsyms, const char *const *names,
                   int *out, const char **sym) {
  int i = 0;
  if (rd_index(r, nsyms, "enum index", &i))
    return -1;
  *out = kefu_enum_parse(names, syms[i]);
  if (sym)
    *sym = syms[i];
  return 0;
}

#define F(name) (r->field = (name))

static int rd_common(rd_t *r, kefu_event_t *ev) {
  return F("event_id"), rd_str(r, &ev->event_id) || (F("shop_id"), rd_str(r, &ev->shop_id)) ||
                            (F("ts"), rd_long(r, &ev->ts));
}

static int rd_chat(rd_t *r, kefu_event_t *ev, const char **sym) {
  kefu_chat_t *c = &ev->chat;
  return rd_common(r, ev) ||
         (F("type"),
          rd_enum(r, chat_types, NSYM(chat_types), kefu_chat_type_names, &ev->type, sym)) ||
         (F("buyer_id"), rd_opt_str(r, &ev->buyer_id)) ||
         (F("agent_id"), rd_opt_str(r, &ev->agent_id)) ||
         (F("item_id"), rd_opt_str(r, &c->item_id)) ||
         (F("order_id"), rd_opt_str(r, &ev->order_id)) ||
         (F("crowd_tags"), rd_strv(r, &c->crowd_tags)) ||
         (F("intent"), rd_opt_str(r, &c->intent)) ||
         (F("auto_reply"), rd_bool(r, &c->auto_reply)) ||
         (F("invitation_id"), rd_opt_str(r, &c->invitation_id)) ||
         (F("accepted"), rd_bool(r, &c->accepted)) ||
         (F("region_code"), rd_opt_str(r, &c->region_code)) ||
         (F("couriers"), rd_strv(r, &c->couriers)) ||
         (F("list_undeliverable"), rd_bool(r, &c->list_undeliverable));
}

static int package_item(rd_t *r, void *slot, void *arg) {
  kefu_package_t *pk = slot;
  (void)arg;
  return (F("packages.tracking_no"), rd_str(r, &pk->tracking_no)) ||
         (F("packages.courier"), rd_str(r, &pk->courier));
}

static int rd_packages(rd_t *r, kefu_order_ev_t *o) {
  return rd_array(r, (void **)&o->packages, &o->npackages, sizeof *o->packages, package_item, NULL);
}

static int rd_order(rd_t *r, kefu_event_t *ev, const char **sym) {
  kefu_order_ev_t *o = &ev->order;
  int b = 0;
  if (rd_common(r, ev) ||
      (F("type"),
       rd_enum(r, order_types, NSYM(order_types), kefu_order_type_names, &ev->type, sym)) ||
      (F("buyer_id"), rd_str(r, &ev->buyer_id)) || (F("order_id"), rd_str(r, &ev->order_id)) ||
      (F("packages"), rd_packages(r, o)) || (F("region_code"), rd_opt_str(r, &o->region_code)) ||
      (F("item_ids"), rd_strv(r, &o->item_ids)) ||
      (F("amount_cents"), rd_index(r, 2, "union branch", &b)))
    return -1;
  o->has_amount = b;
  if (b && rd_long(r, &o->amount_cents))
    return -1;
  return F("after_sale_reason"), rd_opt_str(r, &o->after_sale_reason);
}

static int rd_agent(rd_t *r, kefu_event_t *ev, const char **sym) {
  kefu_agent_ev_t *a = &ev->agent;
  int b = 0, p = -1;
  if (rd_common(r, ev) ||
      (F("type"),
       rd_enum(r, agent_types, NSYM(agent_types), kefu_agent_type_names, &ev->type, sym)) ||
      (F("agent_id"), rd_str(r, &ev->agent_id)) ||
      (F("presence"), rd_index(r, 2, "union branch", &b)) ||
      (b && rd_enum(r, presences, NSYM(presences), kefu_presence_names, &p, NULL)))
    return -1;
  a->has_presence = p >= 0;
  a->presence = p >= 0 ? (kefu_presence_t)p : KEFU_PRESENCE_OFFLINE;
  if ((F("level"), rd_int(r, &a->level)) || (F("groups"), rd_strv(r, &a->groups)) ||
      (F("capacity"), rd_int(r, &a->capacity)) ||
      (F("account_kind"), rd_enum(r, account_kinds, NSYM(account_kinds), kefu_account_kind_names,
                                  &a->account_kind, NULL)) ||
      (F("conversion_rate"), rd_index(r, 2, "union branch", &b)))
    return -1;
  if (a->account_kind < 0)
    a->account_kind = 0;
  a->has_conversion_rate = b;
  if (b && rd_double(r, &a->conversion_rate))
    return -1;
  return F("buyer_id"), rd_opt_str(r, &ev->buyer_id);
}

static int order_state_item(rd_t *r, void *slot, void *arg) {
  kefu_group_t *g = arg;
  int bit;
  (void)slot;
  if (rd_enum(r, order_states, NSYM(order_states), kefu_order_state_names, &bit, NULL))
    return -1;
  if (bit >= 0)
    g->order_states |= 1u << bit;
  return 0;
}

static int group_item(rd_t *r, void *slot, void *arg) {
  kefu_group_t *g = slot;
  (void)arg;
  if ((F("groups.group_id"), rd_str(r, &g->group_id)) ||
      (F("groups.bot_enabled"), rd_bool(r, &g->bot_enabled)) ||
      (F("groups.strategy"),
       rd_enum(r, strategies, NSYM(strategies), kefu_strategy_names, &g->strategy, NULL)) ||
      (F("groups.crowd_tags"), rd_strv(r, &g->crowd_tags)) ||
      (F("groups.item_ids"), rd_strv(r, &g->item_ids)) ||
      (F("groups.intents"), rd_strv(r, &g->intents)))
    return -1;
  if (g->strategy < 0)
    g->strategy = 0;
  F("groups.order_states");
  return rd_array(r, NULL, NULL, 0, order_state_item, g);
}

static int rd_groups(rd_t *r, kefu_shop_config_t *c) {
  F("groups");
  return rd_array(r, (void **)&c->groups, &c->ngroups, sizeof *c->groups, group_item, NULL);
}

static int rd_config(rd_t *r, kefu_event_t *ev) {
  kefu_shop_config_t *c = &ev->config;
  kefu_config_defaults(c);
  if (rd_common(r, ev) || (F("bot_priority"), rd_bool(r, &c->bot_priority)) ||
      (F("exclusive_direct"), rd_bool(r, &c->exclusive_direct)) ||
      (F("leave_message_target"),
       rd_enum(r, leave_targets, NSYM(leave_targets), kefu_leave_target_names,
               &c->leave_message_target, NULL)) ||
      (F("queue_enabled"), rd_bool(r, &c->queue_enabled)) ||
      (F("queue_max_wait_ms"), rd_long(r, &c->queue_max_wait_ms)) ||
      (F("logistics_enabled"), rd_bool(r, &c->logistics_enabled)) ||
      (F("merchant_invite_enabled"), rd_bool(r, &c->merchant_invite_enabled)) ||
      (F("couriers"), rd_strv(r, &c->couriers)) ||
      (F("transfer_entry_exposure_pct"), rd_int(r, &c->transfer_entry_exposure_pct)) ||
      (F("response_rate_assessed"), rd_bool(r, &c->response_rate_assessed)) ||
      (F("utc_offset_minutes"), rd_int(r, &c->utc_offset_minutes)) || rd_groups(r, c))
    return -1;
  if (c->leave_message_target < 0)
    c->leave_message_target = 0;
  return 0;
}

int kefu_event_decode(kefu_event_t *ev, kefu_topic_t t, int32_t fast_id, const void *buf,
                      size_t len, const char *key, size_t keylen, int64_t now_ms, char *errstr,
                      size_t errlen) {
  const uint8_t *b = buf;
  const char *sym = NULL;
  int rc;
  int32_t id;
  if (fast_id < 0 || !kefu_codec_frame_id(buf, len, &id) || id != fast_id)
    return 1;
  memset(ev, 0, sizeof *ev);
  rd_t r = {b + KEFU_CODEC_HEADER_LEN, b + len, "", errstr, errlen};
  switch (t) {
  case KEFU_T_CHAT: rc = rd_chat(&r, ev, &sym); break;
  case KEFU_T_ORDER: rc = rd_order(&r, ev, &sym); break;
  case KEFU_T_AGENT: rc = rd_agent(&r, ev, &sym); break;
  case KEFU_T_SHOP_CONFIG: rc = rd_config(&r, ev); break;
  default: return 1;
  }
  if (rc)
    return -1;
  if (r.p != r.end) {
    snprintf(errstr, errlen, "avro: %zu trailing bytes", (size_t)(r.end - r.p));
    return -1;
  }
  ev->source = kefu_event_source(t);
  return kefu_event_check(ev, t, sym, key, keylen, now_ms, errstr, errlen);
}

int32_t kefu_event_fast_id(const kefu_schemas_t *s, kefu_topic_t t) {
  static const char *const files[] = {"schemas/chat_event.avsc", "schemas/order_event.avsc",
                                      "schemas/agent_event.avsc", "schemas/shop_config.avsc"};
  if ((int)t < 0 || (int)t > KEFU_T_SHOP_CONFIG)
    return -1;
  int32_t id = kefu_schemas_current_id(s, t);
  const char *text = id < 0 ? NULL : kefu_schemas_text(s, id);
  const kefu_embedded_t *f = kefu_embedded_find(files[t]);
  return text && f && strcmp(text, f->data) == 0 ? id : -1;
}
