/* Deliverability query, seed 001 (可派查询): DELIV-1..3. An agent asks whether couriers
 * deliver to a destination, by order or by region; the answer is a DELIVERABILITY_RESULT
 * card with one result per courier. DELIV-4's list of undeliverable orders comes with
 * the logistics issue; until then the list is empty. */
#include <string.h>

#include "common/enums.h"
#include "rules/rules.h"

static json_t *result(const char *courier, json_t *deliverable, const char *reason) {
  return json_pack("{s:s, s:o, s:s?}", "courier", courier, "deliverable", deliverable, "reason",
                   reason);
}

/* One result: UNSUPPORTED first, then UNKNOWN_DESTINATION, then the table (DELIV-2). */
static json_t *answer(const kefu_rules_env_t *env, const char *courier, const char *region,
                      int64_t ts) {
  const char *reason = NULL;
  if (kefu_enum_parse(kefu_supported_courier_names, courier) < 0)
    return result(courier, json_null(), "UNSUPPORTED");
  if (!region)
    return result(courier, json_null(), "UNKNOWN_DESTINATION");
  bool ok = kefu_courier_deliverable(env->couriers, courier, region, ts, &reason);
  return result(courier, json_boolean(ok), ok ? NULL : reason);
}

static void add_unique(json_t *list, const char *courier) {
  size_t i;
  json_t *c;
  if (!courier)
    return;
  json_array_foreach(list, i, c) if (strcmp(json_string_value(c), courier) == 0) return;
  json_array_append_new(list, json_string(courier));
}

/* DELIV-3: the couriers asked about — the order's package couriers (the shop's couriers
 * while it has no package), or the listed ones, else the shop's. */
static json_t *couriers_for(kefu_shop_t *shop, const json_t *order, const json_t *listed) {
  json_t *out = json_array(), *p;
  size_t i;
  if (order) {
    json_array_foreach(json_object_get(order, "packages"), i, p)
        add_unique(out, kefu_json_str(p, "courier"));
  } else {
    json_array_foreach(listed, i, p) add_unique(out, json_string_value(p));
  }
  if (json_array_size(out) == 0)
    json_array_foreach(kefu_cfg_get(shop, "couriers"), i, p) add_unique(out, json_string_value(p));
  return out;
}

void kefu_rules_deliverability_query(const kefu_rules_env_t *env, kefu_shop_t *shop,
                                     const kefu_event_t *ev, kefu_emitter_t *out) {
  const char *region = kefu_json_str(ev->rec, "region_code");
  json_t *order = NULL, *results = json_array(), *couriers = NULL, *c;
  const char *error = NULL;
  size_t i;

  if (ev->order_id) {
    order = kefu_shop_get(shop, KEFU_ENT_ORDER, ev->order_id);
    if (!order)
      error = "UNKNOWN_ORDER";
    else
      region = kefu_json_str(order, "region_code");
  }
  if (!error) {
    couriers = couriers_for(shop, order, json_object_get(ev->rec, "couriers"));
    json_array_foreach(couriers, i, c)
        json_array_append_new(results, answer(env, json_string_value(c), region, ev->ts));
    json_decref(couriers);
  }
  json_t *card = json_pack(
      "{s:s, s:s, s:s?, s:s, s:b, s:s?, s:s?, s:s?, s:o, s:[], s:I}", "card",
      "DELIVERABILITY_RESULT", "shop_id", ev->shop_id, "buyer_id", ev->buyer_id, "agent_id",
      ev->agent_id, "assessment_exempt", 0, "order_id", ev->order_id, "region_code",
      ev->order_id ? (order ? kefu_json_str(order, "region_code") : NULL) : region, "error", error,
      "results", results, "undeliverable_orders", "ts", (json_int_t)ev->ts);
  kefu_emit(out, KEFU_T_SERVICE_CARDS, 'c', "card_id", card);
}
