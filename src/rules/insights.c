/* Inquiry causes, seed 004 (查单查件原因): INSIGHT-1 and INSIGHT-2.
 *
 * Every BUYER_MSG with a logistics intent is classified by the state of the order it
 * asks about — the order named in the message if it is this buyer's, else the buyer's
 * most recently updated order — into the first cause that holds, with its factor, and
 * the day's report counts the causes. */
#include <string.h>

#include "common/enums.h"
#include "rules/insights.h"
#include "rules/response_rate.h"

#define HOUR_MS INT64_C(3600000)

static const char *const logistics_intents[] = {"LOGISTICS_NOT_RECEIVED",
                                                "LOGISTICS_SIGNED_NOT_RECEIVED",
                                                "LOGISTICS_NOT_DELIVERED_TO_DOOR",
                                                "LOGISTICS_TRACKING_NOT_UPDATED",
                                                "LOGISTICS_URGE_DELIVERY",
                                                "LOGISTICS_DELIVERY_METHOD",
                                                "SHIPPING_ADDRESS_CONTROL",
                                                "SHIPPING_COURIER_TIMELINESS",
                                                "LOGISTICS_DELIVERY_TIME_INQUIRY",
                                                "LOGISTICS_DELIVERY_TIME",
                                                NULL};

bool kefu_is_logistics_intent(const char *intent) {
  return kefu_enum_parse(logistics_intents, intent) >= 0;
}

const kefu_order_t *kefu_rules_inquiry_order(const kefu_shop_t *shop, const kefu_event_t *ev,
                                             const char **order_id) {
  const kefu_buyer_t *buyer = kefu_shop_buyer(shop, ev->buyer_id);
  const kefu_order_t *o = kefu_shop_order(shop, ev->order_id);
  *order_id = ev->order_id;
  if (o && kefu_str_eq(o->buyer_id, ev->buyer_id))
    return o;
  *order_id = buyer ? buyer->last_order : NULL;
  o = kefu_shop_order(shop, *order_id);
  if (!o)
    *order_id = NULL;
  return o;
}

static bool in_transit(const kefu_order_t *o) {
  return o->status == KEFU_ORDER_SHIPPED || o->status == KEFU_ORDER_PARTIALLY_SHIPPED;
}

/* In transit and a supported package courier cannot deliver to the destination now. */
static bool courier_mismatch(const kefu_rules_env_t *env, const kefu_order_t *o, int64_t ts) {
  const char *reason;
  if (!in_transit(o) || !o->region_code)
    return false;
  for (uint32_t i = 0; i < o->npackages; i++) {
    const char *courier = o->packages[i].courier;
    if (courier && kefu_enum_parse(kefu_supported_courier_names, courier) >= 0 &&
        !kefu_courier_deliverable(env->couriers, courier, o->region_code, ts, &reason))
      return true;
  }
  return false;
}

static bool after_sale_is(const kefu_order_t *o, kefu_after_sale_t a, kefu_after_sale_t b) {
  return o->after_sale == a || o->after_sale == b;
}

/* INSIGHT-1: the first cause that holds, in the rule's order. A PAID status was set by
 * the PAID event that set paid_ts, an in-transit one by the event that set scan_ts. */
kefu_cause_t kefu_inquiry_cause(const kefu_rules_env_t *env, const kefu_order_t *o, int64_t ts,
                                const char **factor) {
  kefu_cause_t cause;
  *factor = "UNKNOWN";
  if (!o)
    return KEFU_CAUSE_UNKNOWN;
  if (o->status == KEFU_ORDER_PAID && ts - o->paid_ts > 48 * HOUR_MS)
    cause = KEFU_CAUSE_NOT_SHIPPED_ON_TIME;
  else if (courier_mismatch(env, o, ts))
    cause = KEFU_CAUSE_UNDELIVERABLE_ROUTE;
  else if (after_sale_is(o, KEFU_AFTER_SALE_WRONG_ITEM, KEFU_AFTER_SALE_MISSING_ITEM))
    cause = KEFU_CAUSE_WRONG_OR_MISSING;
  else if (o->address_changed)
    cause = KEFU_CAUSE_ADDRESS_CHANGED;
  else if (in_transit(o) && ts - o->scan_ts > 72 * HOUR_MS)
    cause = KEFU_CAUSE_LOGISTICS_STALLED;
  else if (o->status == KEFU_ORDER_SIGNED)
    cause = KEFU_CAUSE_SIGNED_NOT_RECEIVED;
  else if (after_sale_is(o, KEFU_AFTER_SALE_DAMAGED, KEFU_AFTER_SALE_LOST))
    cause = KEFU_CAUSE_DAMAGED_OR_LOST;
  else
    return KEFU_CAUSE_UNKNOWN;
  *factor = cause == KEFU_CAUSE_NOT_SHIPPED_ON_TIME || cause == KEFU_CAUSE_UNDELIVERABLE_ROUTE ||
                    cause == KEFU_CAUSE_WRONG_OR_MISSING || cause == KEFU_CAUSE_ADDRESS_CHANGED
                ? "MERCHANT"
                : "LOGISTICS";
  return cause;
}

void kefu_rules_insight(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_event_t *ev,
                        bool exempt, kefu_emitter_t *out) {
  const char *intent = ev->chat.intent, *order_id, *factor;
  kefu_rate_day_t *day;
  if (ev->source != KEFU_SRC_CHAT || ev->type != KEFU_CHAT_BUYER_MSG || !ev->buyer_id ||
      !kefu_is_logistics_intent(intent))
    return;
  const kefu_order_t *order = kefu_rules_inquiry_order(shop, ev, &order_id);
  kefu_cause_t cause = kefu_inquiry_cause(env, order, ev->ts, &factor);
  kefu_record_t rec;
  kefu_record_init(&rec);
  kefu_record_str(&rec, "shop_id", shop->id);
  kefu_record_str(&rec, "buyer_id", ev->buyer_id);
  kefu_record_str(&rec, "order_id", order_id);
  kefu_record_str(&rec, "intent", intent);
  kefu_record_str(&rec, "cause", kefu_cause_names[cause]);
  kefu_record_str(&rec, "factor", factor);
  kefu_record_bool(&rec, "assessment_exempt", exempt);
  kefu_record_int(&rec, "ts", ev->ts);
  kefu_emit(out, KEFU_REC_INSIGHT, &rec);
  /* INSIGHT-2: counted into the day's report, unless that day is closed */
  if (shop->config.response_rate_assessed &&
      (day = kefu_rules_rate_day_open(env, shop, ev->ts, out)))
    kefu_rules_rate_count_cause(shop, day, cause);
}
