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

/* The couriers asked about, each once, in the order first named (borrowed strings). */
typedef struct courier_list {
  const char **v;
  size_t n, cap;
  const char *local[16];
} courier_list_t;

static void add_unique(courier_list_t *l, const char *courier) {
  if (!courier)
    return;
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->v[i], courier) == 0)
      return;
  if (l->n == l->cap) {
    size_t cap = l->cap * 2;
    const char **v = malloc(cap * sizeof *v);
    memcpy(v, l->v, l->n * sizeof *v);
    if (l->v != l->local)
      free(l->v);
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = courier;
}

/* DELIV-3: the couriers asked about — the order's package couriers (the shop's couriers
 * while it has no package), or the listed ones, else the shop's. */
static void couriers_for(const kefu_shop_t *shop, const kefu_order_t *order,
                         const kefu_strv_t *listed, courier_list_t *out) {
  if (order) {
    for (uint32_t i = 0; i < order->npackages; i++)
      add_unique(out, order->packages[i].courier);
  } else {
    for (uint32_t i = 0; i < listed->n; i++)
      add_unique(out, listed->v[i]);
  }
  if (out->n == 0)
    for (uint32_t i = 0; i < shop->config.couriers.n; i++)
      add_unique(out, shop->config.couriers.v[i]);
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
                                   const kefu_order_t *order, int64_t ts) {
  const char *region = order->region_code, *reason;
  if (!region)
    return NULL;
  for (uint32_t i = 0; i < order->npackages; i++) {
    const kefu_package_t *pkg = &order->packages[i];
    const char *courier = pkg->courier;
    if (!courier || kefu_enum_parse(kefu_supported_courier_names, courier) < 0 ||
        kefu_courier_deliverable(env->couriers, courier, region, ts, &reason))
      continue;
    return json_pack("{s:s, s:s?, s:s, s:s?, s:s, s:s?}", "order_id", order_id, "buyer_id",
                     order->buyer_id, "courier", courier, "tracking_no", pkg->tracking_no,
                     "region_code", region, "reason", reason);
  }
  return NULL;
}

/* DELIV-4: orders shipped in the last 30 days, never SIGNED or COMPLETED, not CLOSED,
 * whose destination a supported courier of theirs cannot reach now; once per order,
 * newest shipment first, at most 100. */
static json_t *undeliverable_orders(const kefu_rules_env_t *env, const kefu_shop_t *shop,
                                    int64_t ts) {
  size_t n = kefu_map_size(&shop->shipped.by_order), k = 0;
  shipped_ref_t *refs = calloc(n ? n : 1, sizeof *refs);
  json_t *list = json_array();
  const char *id;
  void *v;
  kefu_map_foreach(&shop->shipped.by_order, it, id, v) {
    int64_t shipped = (int64_t)(intptr_t)v;
    if (shipped >= ts - DELIV_WINDOW_MS && shipped <= ts)
      refs[k++] = (shipped_ref_t){id, shipped};
  }
  qsort(refs, k, sizeof *refs, newest_first);
  for (size_t i = 0; i < k && json_array_size(list) < DELIV_MAX_ORDERS; i++) {
    const kefu_order_t *order = kefu_shop_order(shop, refs[i].order_id);
    json_t *entry = order && !order->signed_ && order->status != KEFU_ORDER_CLOSED
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
  const char *region = ev->chat.region_code, *error = NULL;
  const kefu_order_t *order = NULL;
  json_t *results = json_array();

  if (ev->order_id) {
    order = kefu_shop_order(shop, ev->order_id);
    if (!order)
      error = "UNKNOWN_ORDER";
    else
      region = order->region_code;
  }
  if (!error) {
    courier_list_t couriers = {0};
    couriers.v = couriers.local;
    couriers.cap = sizeof couriers.local / sizeof *couriers.local;
    couriers_for(shop, order, &ev->chat.couriers, &couriers);
    for (size_t i = 0; i < couriers.n; i++)
      json_array_append_new(results, answer(env, couriers.v[i], region, ev->ts));
    if (couriers.v != couriers.local)
      free(couriers.v);
  }
  const kefu_buyer_t *buyer = ev->buyer_id ? kefu_shop_buyer(shop, ev->buyer_id) : NULL;
  kefu_record_t card;
  kefu_record_init(&card);
  kefu_record_str(&card, "card", "DELIVERABILITY_RESULT");
  kefu_record_str(&card, "shop_id", ev->shop_id);
  kefu_record_str(&card, "buyer_id", ev->buyer_id);
  kefu_record_str(&card, "agent_id", ev->agent_id);
  kefu_record_bool(&card, "assessment_exempt", buyer && kefu_rules_three_party(buyer));
  kefu_record_str(&card, "order_id", ev->order_id);
  kefu_record_str(&card, "region_code",
                  ev->order_id ? (order ? order->region_code : NULL) : region);
  kefu_record_str(&card, "error", error);
  kefu_record_json(&card, "results", results);
  kefu_record_json(&card, "undeliverable_orders",
                   ev->chat.list_undeliverable && !error ? undeliverable_orders(env, shop, ev->ts)
                                                         : json_array());
  kefu_record_int(&card, "ts", ev->ts);
  kefu_emit(out, KEFU_REC_CARD, &card);
}
