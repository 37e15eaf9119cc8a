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

json_t *kefu_rules_inquiry_order(kefu_shop_t *shop, const kefu_event_t *ev, const char **order_id) {
  json_t *buyer = kefu_shop_get(shop, KEFU_ENT_BUYER, ev->buyer_id), *o = NULL;
  *order_id = ev->order_id;
  o = kefu_shop_get(shop, KEFU_ENT_ORDER, ev->order_id);
  if (o && kefu_str_eq(kefu_json_str(o, "buyer_id"), ev->buyer_id))
    return o;
  *order_id = kefu_json_str(buyer, "last_order");
  o = kefu_shop_get(shop, KEFU_ENT_ORDER, *order_id);
  if (!o)
    *order_id = NULL;
  return o;
}

static bool in_transit(const json_t *o) {
  const char *s = kefu_json_str(o, "status");
  return kefu_str_eq(s, "SHIPPED") || kefu_str_eq(s, "PARTIALLY_SHIPPED");
}

/* In transit and a supported package courier cannot deliver to the destination now. */
static bool courier_mismatch(const kefu_rules_env_t *env, const json_t *o, int64_t ts) {
  const char *region = kefu_json_str(o, "region_code"), *reason;
  json_t *p;
  size_t i;
  if (!in_transit(o) || !region)
    return false;
  json_array_foreach(json_object_get(o, "packages"), i, p) {
    const char *courier = kefu_json_str(p, "courier");
    if (courier && kefu_enum_parse(kefu_supported_courier_names, courier) >= 0 &&
        !kefu_courier_deliverable(env->couriers, courier, region, ts, &reason))
      return true;
  }
  return false;
}

static bool after_sale_is(const json_t *o, const char *a, const char *b) {
  const char *r = kefu_json_str(o, "after_sale");
  return kefu_str_eq(r, a) || kefu_str_eq(r, b);
}

/* INSIGHT-1: the first cause that holds, in the rule's order. */
const char *kefu_inquiry_cause(const kefu_rules_env_t *env, const json_t *o, int64_t ts,
                               const char **factor) {
  const char *status = kefu_json_str(o, "status");
  const char *cause = "UNKNOWN";
  *factor = "UNKNOWN";
  if (!o)
    return cause;
  if (kefu_str_eq(status, "PAID") && ts - kefu_json_int(o, "paid_ts", ts) > 48 * HOUR_MS)
    cause = "NOT_SHIPPED_ON_TIME";
  else if (courier_mismatch(env, o, ts))
    cause = "UNDELIVERABLE_ROUTE";
  else if (after_sale_is(o, "WRONG_ITEM", "MISSING_ITEM"))
    cause = "WRONG_OR_MISSING";
  else if (json_is_true(json_object_get(o, "address_changed")))
    cause = "ADDRESS_CHANGED";
  else if (in_transit(o) && ts - kefu_json_int(o, "scan_ts", ts) > 72 * HOUR_MS)
    cause = "LOGISTICS_STALLED";
  else if (kefu_str_eq(status, "SIGNED"))
    cause = "SIGNED_NOT_RECEIVED";
  else if (after_sale_is(o, "DAMAGED", "LOST"))
    cause = "DAMAGED_OR_LOST";
  else
    return cause;
  static const char *const merchant[] = {"NOT_SHIPPED_ON_TIME", "UNDELIVERABLE_ROUTE",
                                         "WRONG_OR_MISSING", "ADDRESS_CHANGED", NULL};
  *factor = kefu_enum_parse(merchant, cause) >= 0 ? "MERCHANT" : "LOGISTICS";
  return cause;
}

void kefu_rules_insight(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_event_t *ev,
                        bool exempt, kefu_emitter_t *out) {
  const char *intent = kefu_json_str(ev->rec, "intent"), *order_id, *factor;
  char day[16];
  if (ev->type != KEFU_CHAT_BUYER_MSG || !ev->buyer_id || !kefu_is_logistics_intent(intent))
    return;
  json_t *order = kefu_rules_inquiry_order(shop, ev, &order_id);
  const char *cause = kefu_inquiry_cause(env, order, ev->ts, &factor);
  kefu_emit(out, KEFU_T_INQUIRY_INSIGHTS, 's', "insight_id",
            json_pack("{s:s, s:s, s:s?, s:s, s:s, s:s, s:b, s:I}", "shop_id", shop->id, "buyer_id",
                      ev->buyer_id, "order_id", order_id, "intent", intent, "cause", cause,
                      "factor", factor, "assessment_exempt", exempt, "ts", (json_int_t)ev->ts));
  /* INSIGHT-2: counted into the day's report, unless that day is closed */
  if (kefu_cfg_bool(shop, "response_rate_assessed") &&
      kefu_rules_rate_day_open(env, shop, ev->ts, out, day, sizeof day)) {
    json_t *causes = kefu_rules_rate_causes(shop, day);
    json_object_set_new(causes, cause, json_integer(kefu_json_int(causes, cause, 0) + 1));
  }
}
