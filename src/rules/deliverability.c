/* Deliverability query, seed 001 (可派查询): DELIV-1..3. An agent asks whether couriers
 * deliver to a destination, by order or by region; the answer is a DELIVERABILITY_RESULT
 * card with one result per courier, and on request (DELIV-4) the shop's shipped orders
 * that cannot be delivered now. */
#include <stdlib.h>
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

#define DELIV_MAX_ORDERS 100
#define DELIV_WINDOW_MS (30 * INT64_C(86400000))

typedef struct shipped_ref {
  const char *order_id;
  int64_t shipped_ts;
} shipped_ref_t;

/* Newest shipment first; equal times by order id, so the list is deterministic. */
static int newest_first(const void *a, const void *b) {
  const shipped_ref_t *x = a, *y = b;
  if (x->shipped_ts != y->shipped_ts)
    return x->shipped_ts > y->shipped_ts ? -1 : 1;
  return strcmp(x->order_id, y->order_id);
}

/* The first package of @p order whose supported courier cannot deliver now, or NULL. */
static json_t *undeliverable_entry(const kefu_rules_env_t *env, const char *order_id,
                                   const json_t *order, int64_t ts) {
  const char *region = kefu_json_str(order, "region_code"), *reason;
  json_t *pkg;
  size_t i;
  if (!region)
    return NULL;
  json_array_foreach(json_object_get(order, "packages"), i, pkg) {
    const char *courier = kefu_json_str(pkg, "courier");
    if (!courier || kefu_enum_parse(kefu_supported_courier_names, courier) < 0 ||
        kefu_courier_deliverable(env->couriers, courier, region, ts, &reason))
      continue;
    return json_pack("{s:s, s:s?, s:s, s:s?, s:s, s:s?}", "order_id", order_id, "buyer_id",
                     kefu_json_str(order, "buyer_id"), "courier", courier, "tracking_no",
                     kefu_json_str(pkg, "tracking_no"), "region_code", region, "reason", reason);
  }
  return NULL;
}

/* DELIV-4: orders shipped in the last 30 days, never SIGNED or COMPLETED, not CLOSED,
 * whose destination a supported courier of theirs cannot reach now; once per order,
 * newest shipment first, at most 100. */
static json_t *undeliverable_orders(const kefu_rules_env_t *env, kefu_shop_t *shop, int64_t ts) {
  size_t n = json_object_size(shop->shipped), k = 0;
  shipped_ref_t *refs = calloc(n ? n : 1, sizeof *refs);
  json_t *list = json_array(), *v;
  const char *id;
  json_object_foreach(shop->shipped, id, v) {
    int64_t shipped = json_integer_value(v);
    if (shipped >= ts - DELIV_WINDOW_MS && shipped <= ts)
      refs[k++] = (shipped_ref_t){id, shipped};
  }
  qsort(refs, k, sizeof *refs, newest_first);
  for (size_t i = 0; i < k && json_array_size(list) < DELIV_MAX_ORDERS; i++) {
    json_t *order = kefu_shop_get(shop, KEFU_ENT_ORDER, refs[i].order_id);
    json_t *entry = order && !json_is_true(json_object_get(order, "signed")) &&
                            !kefu_json_str_eq(order, "status", "CLOSED")
                        ? undeliverable_entry(env, refs[i].order_id, order, ts)
                        : NULL;
    if (entry)
      json_array_append_new(list, entry);
  }
  free(refs);
  return list;
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
      "{s:s, s:s, s:s?, s:s, s:b, s:s?, s:s?, s:s?, s:o, s:o, s:I}", "card",
      "DELIVERABILITY_RESULT", "shop_id", ev->shop_id, "buyer_id", ev->buyer_id, "agent_id",
      ev->agent_id, "assessment_exempt", ev->buyer_id && kefu_rules_three_party(shop, ev->buyer_id),
      "order_id", ev->order_id, "region_code",
      ev->order_id ? (order ? kefu_json_str(order, "region_code") : NULL) : region, "error", error,
      "results", results, "undeliverable_orders",
      json_is_true(json_object_get(ev->rec, "list_undeliverable")) && !error
          ? undeliverable_orders(env, shop, ev->ts)
          : json_array(),
      "ts", (json_int_t)ev->ts);
  kefu_emit(out, KEFU_T_SERVICE_CARDS, 'c', "card_id", card);
}
