/* State that later rules read: the shop's config (§2.4), agents' presence, profile and
 * exclusive buyers (§2.3), and orders (§2.2, with the lifecycle status and after-sale
 * overlay of ROUTE-6). These events emit nothing by themselves. */
#include <string.h>

#include "common/enums.h"
#include "rules/rules.h"

/* Fields of a config record that are not configuration. */
static const char *const config_envelope[] = {"event_id", "shop_id", "ts", NULL};

void kefu_rules_shop_config(const kefu_rules_env_t *env, kefu_shop_t *shop,
                            const kefu_event_t *ev) {
  /* A tombstone's reset event carries only the envelope (every decoded config record
   * has groups, [] by default): the shop goes back to the defaults. */
  if (!json_object_get(ev->rec, "groups")) {
    kefu_shop_set_config(shop, json_deep_copy(env->config_defaults), true);
    return;
  }
  json_t *cfg = json_deep_copy(ev->rec);
  for (int i = 0; config_envelope[i]; i++)
    json_object_del(cfg, config_envelope[i]);
  kefu_shop_set_config(shop, cfg, false);
}

static json_t *agent_entity(kefu_shop_t *shop, const char *agent_id) {
  json_t *a = kefu_shop_get(shop, KEFU_ENT_AGENT, agent_id);
  if (!a) {
    /* An agent never seen in a PRESENCE event is OFFLINE (ROUTE-2); profile defaults of
     * §2.3 until a PROFILE arrives. */
    a = json_pack("{s:s, s:i, s:[], s:i, s:s, s:n, s:i}", "presence", "OFFLINE", "level", 1,
                  "groups", "capacity", 20, "account_kind", "SUB", "conversion_rate", "load", 0);
    json_object_set_new(shop->entities[KEFU_ENT_AGENT], agent_id, a);
  }
  return a;
}

static void exclusive_bind(kefu_shop_t *shop, const kefu_event_t *ev, bool bind) {
  json_t *b = kefu_rules_buyer(shop, ev->buyer_id);
  const char *current = kefu_json_str(b, "exclusive_agent");
  if (bind)
    json_object_set_new(b, "exclusive_agent", json_string(ev->agent_id));
  else if (current && strcmp(current, ev->agent_id) == 0)
    json_object_set_new(b, "exclusive_agent", json_null());
  else
    return; /* unbinding an agent that is not the buyer's exclusive one changes nothing */
  kefu_shop_touch(shop, KEFU_ENT_BUYER, ev->buyer_id);
}

void kefu_rules_agent_event(kefu_shop_t *shop, const kefu_event_t *ev) {
  static const char *const profile_fields[] = {"level",        "groups",          "capacity",
                                               "account_kind", "conversion_rate", NULL};
  json_t *a;
  switch (ev->type) {
  case KEFU_AGENT_PRESENCE:
    a = agent_entity(shop, ev->agent_id);
    json_object_set(a, "presence", json_object_get(ev->rec, "presence"));
    break;
  case KEFU_AGENT_PROFILE:
    /* PROFILE replaces the whole profile; the codec filled absent fields' defaults. */
    a = agent_entity(shop, ev->agent_id);
    for (int i = 0; profile_fields[i]; i++) {
      json_t *v = json_object_get(ev->rec, profile_fields[i]);
      json_object_set_new(a, profile_fields[i], v ? json_deep_copy(v) : json_null());
    }
    break;
  case KEFU_AGENT_EXCLUSIVE_BIND:
  case KEFU_AGENT_EXCLUSIVE_UNBIND:
    exclusive_bind(shop, ev, ev->type == KEFU_AGENT_EXCLUSIVE_BIND);
    return;
  default: return;
  }
  kefu_shop_touch(shop, KEFU_ENT_AGENT, ev->agent_id);
}

/* The lifecycle statuses of ROUTE-6: the last of these wins. */
static bool is_lifecycle(int type) {
  return type == KEFU_ORDER_CREATED || type == KEFU_ORDER_PAID || type == KEFU_ORDER_SHIPPED ||
         type == KEFU_ORDER_PARTIALLY_SHIPPED || type == KEFU_ORDER_SIGNED ||
         type == KEFU_ORDER_COMPLETED || type == KEFU_ORDER_CLOSED;
}

static json_t *order_entity(kefu_shop_t *shop, const kefu_event_t *ev) {
  json_t *o = kefu_shop_get(shop, KEFU_ENT_ORDER, ev->order_id);
  if (!o) {
    o = json_pack("{s:s, s:n, s:n, s:[], s:n, s:[], s:n, s:b, s:n, s:n, s:n, s:I}", "buyer_id",
                  ev->buyer_id, "status", "after_sale", "packages", "region_code", "item_ids",
                  "amount_cents", "address_changed", 0, "paid_ts", "shipped_ts", "scan_ts",
                  "updated_ts", (json_int_t)0);
    json_object_set_new(shop->entities[KEFU_ENT_ORDER], ev->order_id, o);
  }
  return o;
}

static void copy_if_present(json_t *dst, const json_t *src, const char *field, bool non_empty) {
  json_t *v = json_object_get(src, field);
  if (!v || json_is_null(v) || (non_empty && json_is_array(v) && json_array_size(v) == 0))
    return;
  json_object_set_new(dst, field, json_deep_copy(v));
}

static void remember_buyer_order(kefu_shop_t *shop, const char *buyer_id, const char *order_id,
                                 int64_t ts) {
  json_t *b = kefu_rules_buyer(shop, buyer_id), *orders = json_object_get(b, "orders");
  size_t i;
  json_t *id;
  bool known = false;
  json_array_foreach(orders, i, id) known |= strcmp(json_string_value(id), order_id) == 0;
  if (!known)
    json_array_append_new(orders, json_string(order_id));
  /* "Most recently updated" by event time; a tie goes to the later-processed event. */
  if (ts >= kefu_json_int(b, "last_order_ts", 0)) {
    json_object_set_new(b, "last_order", json_string(order_id));
    json_object_set_new(b, "last_order_ts", json_integer(ts));
  }
  kefu_shop_touch(shop, KEFU_ENT_BUYER, buyer_id);
}

/* DELIV-4 keeps per shop only the shipped orders never SIGNED or COMPLETED and not
 * CLOSED: they enter on a shipment and leave for good on any of those. */
static void update_shipped_index(kefu_shop_t *shop, const kefu_event_t *ev, json_t *o) {
  if (ev->type == KEFU_ORDER_SIGNED || ev->type == KEFU_ORDER_COMPLETED ||
      ev->type == KEFU_ORDER_CLOSED)
    kefu_shop_set_shipped(shop, ev->order_id, 0);
  else if ((ev->type == KEFU_ORDER_SHIPPED || ev->type == KEFU_ORDER_PARTIALLY_SHIPPED) &&
           !json_is_true(json_object_get(o, "signed")) && !kefu_json_str_eq(o, "status", "CLOSED"))
    kefu_shop_set_shipped(shop, ev->order_id, ev->ts);
}

void kefu_rules_order_event(kefu_shop_t *shop, const kefu_event_t *ev) {
  json_t *o = order_entity(shop, ev);
  const char *type = kefu_order_type_names[ev->type];

  /* An order keeps the buyer of its first event (docs/DECISIONS.md). */
  const char *buyer = kefu_json_str(o, "buyer_id");
  if (is_lifecycle(ev->type))
    json_object_set_new(o, "status", json_string(type));
  if (ev->type == KEFU_ORDER_AFTER_SALE_OPENED) {
    const char *reason = kefu_json_str(ev->rec, "after_sale_reason");
    json_object_set_new(o, "after_sale", json_string(reason ? reason : "OTHER"));
  } else if (ev->type == KEFU_ORDER_AFTER_SALE_CLOSED) {
    json_object_set_new(o, "after_sale", json_null());
  }
  if (ev->type == KEFU_ORDER_ADDRESS_CHANGED)
    json_object_set_new(o, "address_changed", json_true());
  if (ev->type == KEFU_ORDER_PAID)
    json_object_set_new(o, "paid_ts", json_integer(ev->ts));
  if (ev->type == KEFU_ORDER_SHIPPED || ev->type == KEFU_ORDER_PARTIALLY_SHIPPED)
    json_object_set_new(o, "shipped_ts", json_integer(ev->ts));
  if (ev->type == KEFU_ORDER_SHIPPED || ev->type == KEFU_ORDER_PARTIALLY_SHIPPED ||
      ev->type == KEFU_ORDER_LOGISTICS_UPDATE)
    json_object_set_new(o, "scan_ts", json_integer(ev->ts));
  if (ev->type == KEFU_ORDER_SIGNED || ev->type == KEFU_ORDER_COMPLETED)
    json_object_set_new(o, "signed", json_true());
  update_shipped_index(shop, ev, o);
  copy_if_present(o, ev->rec, "packages", true); /* an empty list leaves them unchanged */
  copy_if_present(o, ev->rec, "region_code", false);
  copy_if_present(o, ev->rec, "item_ids", true);
  copy_if_present(o, ev->rec, "amount_cents", false);
  if (ev->ts >= kefu_json_int(o, "updated_ts", 0))
    json_object_set_new(o, "updated_ts", json_integer(ev->ts));
  kefu_shop_touch(shop, KEFU_ENT_ORDER, ev->order_id);
  remember_buyer_order(shop, buyer, ev->order_id, ev->ts);
}
