/* Validation of input events: everything the codec cannot check (the schema already
 * fixed types and enum symbols). Each check names the field in its reason, because the
 * reason travels with the record to the DLQ where a person reads it. */
#include "engine/event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/enums.h"
#include "common/ids.h"

/* What the checks read: the record and what was parsed of it so far. */
typedef struct checking {
  kefu_topic_t topic;
  int type;
  const json_t *rec;
} checking_t;

/* Per (topic, type): the string fields that must be present. */
typedef struct required {
  kefu_topic_t topic;
  int type;
  const char *fields[4];
} required_t;

static const required_t required_fields[] = {
    {KEFU_T_CHAT, KEFU_CHAT_CHAT_OPEN, {"buyer_id"}},
    {KEFU_T_CHAT, KEFU_CHAT_BUYER_MSG, {"buyer_id"}},
    {KEFU_T_CHAT, KEFU_CHAT_AGENT_MSG, {"buyer_id", "agent_id"}},
    {KEFU_T_CHAT, KEFU_CHAT_BOT_MSG, {"buyer_id"}},
    {KEFU_T_CHAT, KEFU_CHAT_TRANSFER_CLICK, {"buyer_id"}},
    {KEFU_T_CHAT, KEFU_CHAT_MERCHANT_INVITE_LOGISTICS, {"buyer_id", "agent_id"}},
    {KEFU_T_CHAT, KEFU_CHAT_LOGISTICS_CONSENT, {"buyer_id", "invitation_id"}},
    {KEFU_T_CHAT, KEFU_CHAT_LOGISTICS_MSG, {"buyer_id"}},
    {KEFU_T_CHAT, KEFU_CHAT_SESSION_CLOSE, {"buyer_id"}},
    {KEFU_T_CHAT, KEFU_CHAT_DELIVERABILITY_QUERY, {"agent_id"}},
    {KEFU_T_AGENT, KEFU_AGENT_PRESENCE, {"agent_id", "presence"}},
    {KEFU_T_AGENT, KEFU_AGENT_PROFILE, {"agent_id"}},
    {KEFU_T_AGENT, KEFU_AGENT_EXCLUSIVE_BIND, {"agent_id", "buyer_id"}},
    {KEFU_T_AGENT, KEFU_AGENT_EXCLUSIVE_UNBIND, {"agent_id", "buyer_id"}},
};

/* Fields that, when present, are ids (SPEC §1.2) — a string or an array of strings. */
static const char *const id_fields[] = {"buyer_id", "agent_id",      "order_id",
                                        "item_id",  "invitation_id", "group_id",
                                        "item_ids", "groups",        NULL};

#define FAIL(...)                                                                                  \
  do {                                                                                             \
    snprintf(errstr, errlen, __VA_ARGS__);                                                         \
    return -1;                                                                                     \
  } while (0)

bool kefu_region_code_valid(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n != 2 && n != 4 && n != 6)
    return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

static int check_id_value(const char *name, const json_t *v, char *errstr, size_t errlen) {
  if (!v || json_is_null(v))
    return 0;
  if (json_is_string(v)) {
    if (!kefu_id_valid(json_string_value(v), KEFU_ID_MAX))
      FAIL("invalid %s: must match [A-Za-z0-9_.-]{1,64}", name);
    return 0;
  }
  if (json_is_array(v)) {
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) {
      if (!json_is_string(item) || !kefu_id_valid(json_string_value(item), KEFU_ID_MAX))
        FAIL("invalid %s[%zu]: must match [A-Za-z0-9_.-]{1,64}", name, i);
    }
    return 0;
  }
  FAIL("invalid %s: not a string", name);
}

static int check_ids(const checking_t *ev, char *errstr, size_t errlen) {
  for (int i = 0; id_fields[i]; i++) {
    /* A config's groups are objects, checked one by one in check_by_topic. */
    if (ev->topic == KEFU_T_SHOP_CONFIG && strcmp(id_fields[i], "groups") == 0)
      continue;
    json_t *v = json_object_get(ev->rec, id_fields[i]);
    if (v && check_id_value(id_fields[i], v, errstr, errlen))
      return -1;
  }
  return 0;
}

static int check_required(const checking_t *ev, char *errstr, size_t errlen) {
  for (size_t i = 0; i < sizeof required_fields / sizeof required_fields[0]; i++) {
    const required_t *r = &required_fields[i];
    if (r->topic != ev->topic || r->type != ev->type)
      continue;
    for (int f = 0; f < 4 && r->fields[f]; f++)
      if (!json_is_string(json_object_get(ev->rec, r->fields[f])))
        FAIL("%s requires %s", json_string_value(json_object_get(ev->rec, "type")), r->fields[f]);
  }
  return 0;
}

static int check_region(const json_t *rec, char *errstr, size_t errlen, bool exact6) {
  const char *rc = json_string_value(json_object_get(rec, "region_code"));
  if (!rc)
    return 0;
  if (!kefu_region_code_valid(rc) || (exact6 && strlen(rc) != 6))
    FAIL("invalid region_code '%.16s': must be %s digits", rc, exact6 ? "6" : "2, 4 or 6");
  return 0;
}

static int check_number(const json_t *rec, const char *name, double lo, double hi, char *errstr,
                        size_t errlen) {
  json_t *v = json_object_get(rec, name);
  if (!v || json_is_null(v))
    return 0;
  double d = json_number_value(v);
  if (!json_is_number(v) || d < lo || d > hi)
    FAIL("%s out of range [%g, %g]", name, lo, hi);
  return 0;
}

static int check_by_topic(const checking_t *ev, char *errstr, size_t errlen) {
  const json_t *rec = ev->rec;
  switch (ev->topic) {
  case KEFU_T_CHAT:
    if (ev->type == KEFU_CHAT_DELIVERABILITY_QUERY &&
        !json_is_string(json_object_get(rec, "order_id")) &&
        !json_is_string(json_object_get(rec, "region_code")))
      FAIL("DELIVERABILITY_QUERY requires order_id or region_code");
    return check_region(rec, errstr, errlen, false);
  case KEFU_T_ORDER:
    if (!json_is_string(json_object_get(rec, "buyer_id")) ||
        !json_is_string(json_object_get(rec, "order_id")))
      FAIL("order events require buyer_id and order_id");
    if (check_number(rec, "amount_cents", 0, 1e15, errstr, errlen))
      return -1;
    return check_region(rec, errstr, errlen, true);
  case KEFU_T_AGENT:
    return check_number(rec, "level", 1, 5, errstr, errlen) ||
                   check_number(rec, "capacity", 0, 100000, errstr, errlen) ||
                   check_number(rec, "conversion_rate", 0, 1, errstr, errlen)
               ? -1
               : 0;
  case KEFU_T_SHOP_CONFIG: {
    json_t *g;
    size_t i;
    json_array_foreach(json_object_get(rec, "groups"), i, g) {
      if (!kefu_id_valid(json_string_value(json_object_get(g, "group_id")), KEFU_ID_MAX))
        FAIL("invalid groups[%zu].group_id", i);
      if (check_id_value("groups.item_ids", json_object_get(g, "item_ids"), errstr, errlen))
        return -1;
    }
    return check_number(rec, "transfer_entry_exposure_pct", 0, 100, errstr, errlen) ||
                   check_number(rec, "utc_offset_minutes", -720, 840, errstr, errlen) ||
                   check_number(rec, "queue_max_wait_ms", 0, 30 * 86400000.0, errstr, errlen)
               ? -1
               : 0;
  }
  default: return 0;
  }
}

static int parse_type(checking_t *ev, char *errstr, size_t errlen) {
  const char *type = json_string_value(json_object_get(ev->rec, "type"));
  const char *const *names = ev->topic == KEFU_T_CHAT    ? kefu_chat_type_names
                             : ev->topic == KEFU_T_ORDER ? kefu_order_type_names
                             : ev->topic == KEFU_T_AGENT ? kefu_agent_type_names
                                                         : NULL;
  if (!names)
    return 0;
  if ((ev->type = kefu_enum_parse(names, type)) < 0)
    FAIL("unknown type '%.32s'", type ? type : "(none)");
  return 0;
}

static int check_common(const json_t *rec, const char *key, size_t keylen, int64_t now_ms,
                        char *errstr, size_t errlen) {
  json_t *tsv = json_object_get(rec, "ts");
  const char *event_id = json_string_value(json_object_get(rec, "event_id"));
  const char *shop_id = json_string_value(json_object_get(rec, "shop_id"));
  if (!kefu_id_valid(event_id, KEFU_EVENT_ID_MAX))
    FAIL("invalid event_id: must match [A-Za-z0-9_.-]{1,56}");
  if (!kefu_id_valid(shop_id, KEFU_ID_MAX))
    FAIL("invalid shop_id: must match [A-Za-z0-9_.-]{1,64}");
  if (!json_is_integer(tsv))
    FAIL("missing ts");
  int64_t ts = json_integer_value(tsv);
  if (ts < KEFU_TS_MIN || ts > now_ms + KEFU_DAY_MS)
    FAIL("ts %lld outside [2000-01-01, now + 1 day]", (long long)ts);
  if (!key || keylen != strlen(shop_id) || memcmp(key, shop_id, keylen) != 0)
    FAIL("Kafka key does not equal shop_id (the record may be on the wrong partition)");
  return 0;
}

/* ------------------------------------------------------------------ the typed event */

static char *str_of(const json_t *rec, const char *field) {
  const char *v = json_string_value(json_object_get(rec, field));
  return v ? strdup(v) : NULL;
}

static void strv_of(kefu_strv_t *out, const json_t *rec, const char *field) {
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(rec, field), i, v) {
    if (json_is_string(v))
      kefu_strv_push(out, json_string_value(v));
  }
}

static bool bool_of(const json_t *rec, const char *field) {
  return json_is_true(json_object_get(rec, field));
}

void kefu_event_config_of(kefu_shop_config_t *c, const json_t *rec) {
  json_t *g;
  size_t i;
  kefu_config_defaults(c);
  c->bot_priority = bool_of(rec, "bot_priority");
  c->exclusive_direct = bool_of(rec, "exclusive_direct");
  int lt = kefu_enum_parse(kefu_leave_target_names,
                           json_string_value(json_object_get(rec, "leave_message_target")));
  c->leave_message_target = lt < 0 ? 0 : lt;
  c->queue_enabled = bool_of(rec, "queue_enabled");
  if (json_is_integer(json_object_get(rec, "queue_max_wait_ms")))
    c->queue_max_wait_ms = json_integer_value(json_object_get(rec, "queue_max_wait_ms"));
  c->logistics_enabled = bool_of(rec, "logistics_enabled");
  c->merchant_invite_enabled = bool_of(rec, "merchant_invite_enabled");
  strv_of(&c->couriers, rec, "couriers");
  if (json_is_integer(json_object_get(rec, "transfer_entry_exposure_pct")))
    c->transfer_entry_exposure_pct =
        (int32_t)json_integer_value(json_object_get(rec, "transfer_entry_exposure_pct"));
  c->response_rate_assessed = bool_of(rec, "response_rate_assessed");
  if (json_is_integer(json_object_get(rec, "utc_offset_minutes")))
    c->utc_offset_minutes = (int32_t)json_integer_value(json_object_get(rec, "utc_offset_minutes"));
  json_t *groups = json_object_get(rec, "groups");
  c->ngroups = (uint32_t)json_array_size(groups);
  c->groups = c->ngroups ? calloc(c->ngroups, sizeof *c->groups) : NULL;
  json_array_foreach(groups, i, g) {
    kefu_group_t *d = &c->groups[i];
    json_t *st;
    size_t k;
    d->group_id = str_of(g, "group_id");
    d->bot_enabled = bool_of(g, "bot_enabled");
    d->strategy =
        kefu_enum_parse(kefu_strategy_names, json_string_value(json_object_get(g, "strategy")));
    if (d->strategy < 0)
      d->strategy = 0;
    strv_of(&d->crowd_tags, g, "crowd_tags");
    strv_of(&d->item_ids, g, "item_ids");
    strv_of(&d->intents, g, "intents");
    json_array_foreach(json_object_get(g, "order_states"), k, st) {
      int bit = kefu_enum_parse(kefu_order_state_names, json_string_value(st));
      if (bit >= 0)
        d->order_states |= 1u << bit;
    }
  }
}

static void fill(kefu_event_t *ev, kefu_topic_t t, int type, const json_t *rec) {
  size_t i;
  json_t *v;
  ev->source = kefu_event_source(t);
  ev->type = type;
  ev->event_id = str_of(rec, "event_id");
  ev->shop_id = str_of(rec, "shop_id");
  ev->ts = json_integer_value(json_object_get(rec, "ts"));
  ev->buyer_id = str_of(rec, "buyer_id");
  ev->agent_id = str_of(rec, "agent_id");
  ev->order_id = str_of(rec, "order_id");
  switch (t) {
  case KEFU_T_CHAT:
    ev->chat.item_id = str_of(rec, "item_id");
    ev->chat.intent = str_of(rec, "intent");
    ev->chat.invitation_id = str_of(rec, "invitation_id");
    ev->chat.region_code = str_of(rec, "region_code");
    strv_of(&ev->chat.crowd_tags, rec, "crowd_tags");
    strv_of(&ev->chat.couriers, rec, "couriers");
    ev->chat.auto_reply = bool_of(rec, "auto_reply");
    ev->chat.accepted = bool_of(rec, "accepted");
    ev->chat.list_undeliverable = bool_of(rec, "list_undeliverable");
    break;
  case KEFU_T_ORDER: {
    json_t *pkgs = json_object_get(rec, "packages");
    ev->order.npackages = (uint32_t)json_array_size(pkgs);
    ev->order.packages =
        ev->order.npackages ? calloc(ev->order.npackages, sizeof *ev->order.packages) : NULL;
    json_array_foreach(pkgs, i, v) {
      ev->order.packages[i].tracking_no = str_of(v, "tracking_no");
      ev->order.packages[i].courier = str_of(v, "courier");
    }
    ev->order.region_code = str_of(rec, "region_code");
    strv_of(&ev->order.item_ids, rec, "item_ids");
    v = json_object_get(rec, "amount_cents");
    ev->order.has_amount = json_is_integer(v);
    ev->order.amount_cents = json_integer_value(v);
    ev->order.after_sale_reason = str_of(rec, "after_sale_reason");
    break;
  }
  case KEFU_T_AGENT: {
    int p =
        kefu_enum_parse(kefu_presence_names, json_string_value(json_object_get(rec, "presence")));
    ev->agent.has_presence = p >= 0;
    ev->agent.presence = p >= 0 ? (kefu_presence_t)p : KEFU_PRESENCE_OFFLINE;
    v = json_object_get(rec, "level");
    ev->agent.level = json_is_integer(v) ? (int32_t)json_integer_value(v) : 1;
    v = json_object_get(rec, "capacity");
    ev->agent.capacity = json_is_integer(v) ? (int32_t)json_integer_value(v) : 20;
    strv_of(&ev->agent.groups, rec, "groups");
    int k = kefu_enum_parse(kefu_account_kind_names,
                            json_string_value(json_object_get(rec, "account_kind")));
    ev->agent.account_kind = k < 0 ? 0 : k;
    v = json_object_get(rec, "conversion_rate");
    ev->agent.has_conversion_rate = json_is_number(v);
    ev->agent.conversion_rate = json_number_value(v);
    break;
  }
  case KEFU_T_SHOP_CONFIG: kefu_event_config_of(&ev->config, rec); break;
  default: break;
  }
}

kefu_source_t kefu_event_source(kefu_topic_t t) {
  return t == KEFU_T_CHAT    ? KEFU_SRC_CHAT
         : t == KEFU_T_ORDER ? KEFU_SRC_ORDER
         : t == KEFU_T_AGENT ? KEFU_SRC_AGENT
                             : KEFU_SRC_CONFIG;
}

int kefu_event_from_json(kefu_event_t *ev, kefu_topic_t t, json_t *rec, const char *key,
                         size_t keylen, int64_t now_ms, char *errstr, size_t errlen) {
  checking_t c = {t, 0, rec};
  memset(ev, 0, sizeof *ev);
  if (!json_is_object(rec))
    FAIL("not a record");
  if (check_common(rec, key, keylen, now_ms, errstr, errlen) || parse_type(&c, errstr, errlen) ||
      check_ids(&c, errstr, errlen) || check_required(&c, errstr, errlen) ||
      check_by_topic(&c, errstr, errlen))
    return -1;
  fill(ev, t, c.type, rec);
  return 0;
}

int kefu_event_config_reset(kefu_event_t *ev, const char *key, size_t keylen, int64_t ts,
                            int64_t offset, int64_t now_ms, char *errstr, size_t errlen) {
  char shop[KEFU_ID_MAX + 1], id[KEFU_ID_MAX + 48];
  memset(ev, 0, sizeof *ev);
  if (!key || keylen == 0 || keylen > KEFU_ID_MAX)
    FAIL("tombstone without a valid shop_id key");
  memcpy(shop, key, keylen);
  shop[keylen] = '\0';
  if (!kefu_id_valid(shop, KEFU_ID_MAX))
    FAIL("tombstone key is not a valid shop_id");
  if (ts < KEFU_TS_MIN || ts > now_ms + KEFU_DAY_MS)
    FAIL("tombstone timestamp %lld outside [2000-01-01, now + 1 day]", (long long)ts);
  snprintf(id, sizeof id, "null-%s-%lld", shop, (long long)offset);
  ev->source = KEFU_SRC_CONFIG;
  ev->event_id = strdup(id);
  ev->shop_id = strdup(shop);
  ev->ts = ts;
  ev->config_reset = true;
  kefu_config_defaults(&ev->config);
  return 0;
}

int kefu_courier_status_validate(const json_t *rec, char *errstr, size_t errlen) {
  const char *courier = json_string_value(json_object_get(rec, "courier"));
  json_t *from = json_object_get(rec, "valid_from"), *until = json_object_get(rec, "valid_until");
  if (!kefu_id_valid(courier, KEFU_ID_MAX))
    FAIL("invalid courier");
  if (check_region(rec, errstr, errlen, false))
    return -1;
  if (!json_is_string(json_object_get(rec, "region_code")))
    FAIL("missing region_code");
  if (!json_is_integer(from))
    FAIL("missing valid_from");
  if (json_is_integer(until) && json_integer_value(until) <= json_integer_value(from))
    FAIL("valid_until must be after valid_from");
  return 0;
}

/* ------------------------------------------------------------------ checks on the typed event */

/* The checks above, in the same order and with the same reasons, on an event that the
 * binary fast path (engine/event_decode.c) decoded straight from Avro: there every field
 * has its schema type, so only the checks on values remain. */

static int typed_id(const char *name, const char *s, char *errstr, size_t errlen) {
  if (s && !kefu_id_valid(s, KEFU_ID_MAX))
    FAIL("invalid %s: must match [A-Za-z0-9_.-]{1,64}", name);
  return 0;
}

static int typed_ids(const char *name, const kefu_strv_t *l, char *errstr, size_t errlen) {
  for (uint32_t i = 0; i < l->n; i++)
    if (!kefu_id_valid(l->v[i], KEFU_ID_MAX))
      FAIL("invalid %s[%zu]: must match [A-Za-z0-9_.-]{1,64}", name, (size_t)i);
  return 0;
}

static int typed_region(const char *rc, char *errstr, size_t errlen, bool exact6) {
  if (rc && (!kefu_region_code_valid(rc) || (exact6 && strlen(rc) != 6)))
    FAIL("invalid region_code '%.16s': must be %s digits", rc, exact6 ? "6" : "2, 4 or 6");
  return 0;
}

static int typed_number(const char *name, double d, double lo, double hi, char *errstr,
                        size_t errlen) {
  if (d < lo || d > hi)
    FAIL("%s out of range [%g, %g]", name, lo, hi);
  return 0;
}

/* Whether the string field @p name of a required_fields entry is present. */
static bool typed_has(const kefu_event_t *ev, const char *name) {
  if (strcmp(name, "buyer_id") == 0)
    return ev->buyer_id;
  if (strcmp(name, "agent_id") == 0)
    return ev->agent_id;
  if (strcmp(name, "invitation_id") == 0)
    return ev->chat.invitation_id;
  if (strcmp(name, "presence") == 0)
    return ev->agent.has_presence;
  return false;
}

int kefu_event_check(const kefu_event_t *ev, kefu_topic_t t, const char *type_symbol,
                     const char *key, size_t keylen, int64_t now_ms, char *errstr, size_t errlen) {
  if (!kefu_id_valid(ev->event_id, KEFU_EVENT_ID_MAX))
    FAIL("invalid event_id: must match [A-Za-z0-9_.-]{1,56}");
  if (!kefu_id_valid(ev->shop_id, KEFU_ID_MAX))
    FAIL("invalid shop_id: must match [A-Za-z0-9_.-]{1,64}");
  if (ev->ts < KEFU_TS_MIN || ev->ts > now_ms + KEFU_DAY_MS)
    FAIL("ts %lld outside [2000-01-01, now + 1 day]", (long long)ev->ts);
  if (!key || keylen != strlen(ev->shop_id) || memcmp(key, ev->shop_id, keylen) != 0)
    FAIL("Kafka key does not equal shop_id (the record may be on the wrong partition)");
  if (t != KEFU_T_SHOP_CONFIG && ev->type < 0)
    FAIL("unknown type '%.32s'", type_symbol ? type_symbol : "(none)");
  if (typed_id("buyer_id", ev->buyer_id, errstr, errlen) ||
      typed_id("agent_id", ev->agent_id, errstr, errlen) ||
      typed_id("order_id", ev->order_id, errstr, errlen))
    return -1;
  if (t == KEFU_T_CHAT && (typed_id("item_id", ev->chat.item_id, errstr, errlen) ||
                           typed_id("invitation_id", ev->chat.invitation_id, errstr, errlen)))
    return -1;
  if (t == KEFU_T_ORDER && typed_ids("item_ids", &ev->order.item_ids, errstr, errlen))
    return -1;
  if (t == KEFU_T_AGENT && typed_ids("groups", &ev->agent.groups, errstr, errlen))
    return -1;
  for (size_t i = 0; i < sizeof required_fields / sizeof required_fields[0]; i++) {
    const required_t *r = &required_fields[i];
    if (r->topic != t || r->type != ev->type)
      continue;
    for (int f = 0; f < 4 && r->fields[f]; f++)
      if (!typed_has(ev, r->fields[f]))
        FAIL("%s requires %s", type_symbol, r->fields[f]);
  }
  switch (t) {
  case KEFU_T_CHAT:
    if (ev->type == KEFU_CHAT_DELIVERABILITY_QUERY && !ev->order_id && !ev->chat.region_code)
      FAIL("DELIVERABILITY_QUERY requires order_id or region_code");
    return typed_region(ev->chat.region_code, errstr, errlen, false);
  case KEFU_T_ORDER:
    if (!ev->buyer_id || !ev->order_id)
      FAIL("order events require buyer_id and order_id");
    if (ev->order.has_amount &&
        typed_number("amount_cents", (double)ev->order.amount_cents, 0, 1e15, errstr, errlen))
      return -1;
    return typed_region(ev->order.region_code, errstr, errlen, true);
  case KEFU_T_AGENT:
    return typed_number("level", ev->agent.level, 1, 5, errstr, errlen) ||
                   typed_number("capacity", ev->agent.capacity, 0, 100000, errstr, errlen) ||
                   (ev->agent.has_conversion_rate &&
                    typed_number("conversion_rate", ev->agent.conversion_rate, 0, 1, errstr,
                                 errlen))
               ? -1
               : 0;
  case KEFU_T_SHOP_CONFIG: {
    const kefu_shop_config_t *c = &ev->config;
    for (uint32_t i = 0; i < c->ngroups; i++) {
      if (!kefu_id_valid(c->groups[i].group_id, KEFU_ID_MAX))
        FAIL("invalid groups[%zu].group_id", (size_t)i);
      if (typed_ids("groups.item_ids", &c->groups[i].item_ids, errstr, errlen))
        return -1;
    }
    return typed_number("transfer_entry_exposure_pct", c->transfer_entry_exposure_pct, 0, 100,
                        errstr, errlen) ||
                   typed_number("utc_offset_minutes", c->utc_offset_minutes, -720, 840, errstr,
                                errlen) ||
                   typed_number("queue_max_wait_ms", (double)c->queue_max_wait_ms, 0,
                                30 * 86400000.0, errstr, errlen)
               ? -1
               : 0;
  }
  default: return 0;
  }
}
