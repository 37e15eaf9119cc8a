/* State that later rules read: the shop's config (§2.4), agents' presence, profile and
 * exclusive buyers (§2.3), and orders (§2.2, with the lifecycle status and after-sale
 * overlay of ROUTE-6). These events emit nothing by themselves. */
#include <stdlib.h>
#include <string.h>

#include "common/enums.h"
#include "rules/rules.h"

void kefu_rules_shop_config(kefu_shop_t *shop, const kefu_event_t *ev) {
  /* A tombstone's reset event: the shop goes back to the defaults. */
  if (ev->config_reset) {
    kefu_shop_config_t defaults;
    kefu_config_defaults(&defaults);
    kefu_shop_set_config(shop, &defaults, true);
    kefu_config_clear(&defaults);
    return;
  }
  kefu_shop_set_config(shop, &ev->config, false);
}

static void exclusive_bind(kefu_shop_t *shop, const kefu_event_t *ev, bool bind) {
  if (!ev->buyer_id)
    return;
  kefu_buyer_t *b = kefu_shop_buyer_add(shop, ev->buyer_id);
  if (bind)
    kefu_str_set(&b->exclusive_agent, ev->agent_id);
  else if (kefu_str_eq(b->exclusive_agent, ev->agent_id))
    kefu_str_set(&b->exclusive_agent, NULL);
  else
    return; /* unbinding an agent that is not the buyer's exclusive one changes nothing */
  kefu_buyer_touch(shop, b);
}

void kefu_rules_agent_event(kefu_shop_t *shop, const kefu_event_t *ev) {
  kefu_agent_t *a;
  if (ev->type == KEFU_AGENT_EXCLUSIVE_BIND || ev->type == KEFU_AGENT_EXCLUSIVE_UNBIND) {
    exclusive_bind(shop, ev, ev->type == KEFU_AGENT_EXCLUSIVE_BIND);
    return;
  }
  if (!ev->agent_id)
    return;
  switch (ev->type) {
  case KEFU_AGENT_PRESENCE:
    /* An agent never seen in a PRESENCE event is OFFLINE (ROUTE-2); profile defaults of
     * §2.3 until a PROFILE arrives. */
    a = kefu_shop_agent_add(shop, ev->agent_id);
    if (ev->agent.has_presence)
      kefu_agent_set_presence(shop, a, ev->agent.presence);
    break;
  case KEFU_AGENT_PROFILE:
    /* PROFILE replaces the whole profile; absent fields have their defaults. */
    a = kefu_shop_agent_add(shop, ev->agent_id);
    a->level = ev->agent.level;
    kefu_strv_copy(&a->groups, &ev->agent.groups);
    a->group_gen = 0;
    a->capacity = ev->agent.capacity;
    a->account_kind = ev->agent.account_kind;
    a->has_conversion_rate = ev->agent.has_conversion_rate;
    a->conversion_rate = ev->agent.has_conversion_rate ? ev->agent.conversion_rate : 0;
    break;
  default: return;
  }
  kefu_agent_touch(a);
}

/* The lifecycle statuses of ROUTE-6: the last of these wins. */
static bool is_lifecycle(int type) {
  return type == KEFU_ORDER_CREATED || type == KEFU_ORDER_PAID || type == KEFU_ORDER_SHIPPED ||
         type == KEFU_ORDER_PARTIALLY_SHIPPED || type == KEFU_ORDER_SIGNED ||
         type == KEFU_ORDER_COMPLETED || type == KEFU_ORDER_CLOSED;
}

static void remember_buyer_order(kefu_shop_t *shop, const char *buyer_id, const char *order_id,
                                 int64_t ts) {
  if (!buyer_id)
    return;
  kefu_buyer_t *b = kefu_shop_buyer_add(shop, buyer_id);
  if (!kefu_strv_has(&b->orders, order_id))
    kefu_strv_push(&b->orders, order_id);
  /* "Most recently updated" by event time; a tie goes to the later-processed event. */
  if (ts >= b->last_order_ts) {
    kefu_str_set(&b->last_order, order_id);
    b->last_order_ts = ts;
  }
  kefu_buyer_touch(shop, b);
}

/* DELIV-4 keeps per shop only the shipped orders never SIGNED or COMPLETED and not
 * CLOSED: they enter on a shipment and leave for good on any of those. */
static void update_shipped_index(kefu_shop_t *shop, const kefu_event_t *ev, const kefu_order_t *o) {
  if (ev->type == KEFU_ORDER_SIGNED || ev->type == KEFU_ORDER_COMPLETED ||
      ev->type == KEFU_ORDER_CLOSED)
    kefu_shop_set_shipped(shop, ev->order_id, 0);
  else if ((ev->type == KEFU_ORDER_SHIPPED || ev->type == KEFU_ORDER_PARTIALLY_SHIPPED) &&
           !o->signed_ && o->status != KEFU_ORDER_CLOSED)
    kefu_shop_set_shipped(shop, ev->order_id, ev->ts);
}

static void copy_packages(kefu_order_t *o, const kefu_order_ev_t *src) {
  for (uint32_t i = 0; i < o->npackages; i++) {
    free(o->packages[i].tracking_no);
    free(o->packages[i].courier);
  }
  free(o->packages);
  o->packages = calloc(src->npackages, sizeof *o->packages);
  for (uint32_t i = 0; i < src->npackages; i++) {
    kefu_str_set(&o->packages[i].tracking_no, src->packages[i].tracking_no);
    kefu_str_set(&o->packages[i].courier, src->packages[i].courier);
  }
  o->npackages = src->npackages;
}

void kefu_rules_order_event(kefu_shop_t *shop, const kefu_event_t *ev) {
  if (!ev->order_id)
    return;
  /* An order keeps the buyer of its first event (docs/DECISIONS.md). */
  kefu_order_t *o = kefu_shop_order_add(shop, ev->order_id, ev->buyer_id);
  if (is_lifecycle(ev->type))
    o->status = ev->type;
  if (ev->type == KEFU_ORDER_AFTER_SALE_OPENED)
    o->after_sale = kefu_after_sale_parse(ev->order.after_sale_reason);
  else if (ev->type == KEFU_ORDER_AFTER_SALE_CLOSED)
    o->after_sale = KEFU_AFTER_SALE_NONE;
  if (ev->type == KEFU_ORDER_ADDRESS_CHANGED)
    o->address_changed = true;
  if (ev->type == KEFU_ORDER_PAID)
    o->paid_ts = ev->ts;
  if (ev->type == KEFU_ORDER_SHIPPED || ev->type == KEFU_ORDER_PARTIALLY_SHIPPED)
    o->shipped_ts = ev->ts;
  if (ev->type == KEFU_ORDER_SHIPPED || ev->type == KEFU_ORDER_PARTIALLY_SHIPPED ||
      ev->type == KEFU_ORDER_LOGISTICS_UPDATE)
    o->scan_ts = ev->ts;
  if (ev->type == KEFU_ORDER_SIGNED || ev->type == KEFU_ORDER_COMPLETED)
    o->signed_ = true;
  update_shipped_index(shop, ev, o);
  if (ev->order.npackages > 0) /* an empty list leaves them unchanged */
    copy_packages(o, &ev->order);
  if (ev->order.region_code)
    kefu_str_set(&o->region_code, ev->order.region_code);
  if (ev->order.item_ids.n > 0)
    kefu_strv_copy(&o->item_ids, &ev->order.item_ids);
  if (ev->order.has_amount) {
    o->has_amount = true;
    o->amount_cents = ev->order.amount_cents;
  }
  if (ev->ts >= o->updated_ts)
    o->updated_ts = ev->ts;
  kefu_order_touch(o);
  remember_buyer_order(shop, o->buyer_id, ev->order_id, ev->ts);
}
