/* The logistics agent's three-party chat, seed 000 (物流客服): LOGI-1..6.
 *
 * During human reception, a buyer asking about delivery may get the courier's logistics
 * agent invited into the chat: by the platform on a logistics intent (LOGI-1, LOGI-2) or
 * by the merchant (LOGI-3). The buyer consents or declines (LOGI-4); while the
 * three-party chat runs, the buyer's messages are outside every assessment (LOGI-5); the
 * session's end ends it and asks for the logistics rating (LOGI-6).
 *
 * The invitation lives in the buyer's session: `invitation` {id, initiator, state
 * (PENDING, ACTIVE), order_id, courier, tracking_no, agent_id}, and `declined`. Every
 * record of an invitation's life keeps its id. */
#include <stdio.h>
#include <string.h>

#include "common/enums.h"
#include "rules/insights.h"
#include "rules/logistics.h"

#define TIMER_EXPIRY "invitation_expiry"

static const char *const default_couriers[] = {"ZTO", "STO", "YUNDA", "YTO", NULL};

static bool courier_supported(const kefu_rules_env_t *env, const char *courier) {
  const char *const *list =
      env->params->logistics_couriers ? env->params->logistics_couriers : default_couriers;
  return courier && kefu_enum_parse(list, courier) >= 0;
}

/* LOGI-1c: shipped or partly shipped, exactly one package, a supported courier. */
static bool qualifies(const kefu_rules_env_t *env, const json_t *o) {
  const char *s = kefu_json_str(o, "status");
  json_t *pkgs = json_object_get(o, "packages");
  return (kefu_str_eq(s, "SHIPPED") || kefu_str_eq(s, "PARTIALLY_SHIPPED")) &&
         json_array_size(pkgs) == 1 &&
         courier_supported(env, kefu_json_str(json_array_get(pkgs, 0), "courier"));
}

/* The named order (no fallback), else the buyer's most recently shipped qualifying one. */
static json_t *qualifying_order(const kefu_rules_env_t *env, kefu_shop_t *shop,
                                const kefu_event_t *ev, const char **order_id) {
  json_t *buyer = kefu_shop_get(shop, KEFU_ENT_BUYER, ev->buyer_id), *id, *best = NULL;
  size_t i;
  *order_id = ev->order_id;
  if (ev->order_id) {
    json_t *o = kefu_shop_get(shop, KEFU_ENT_ORDER, ev->order_id);
    return o && kefu_str_eq(kefu_json_str(o, "buyer_id"), ev->buyer_id) && qualifies(env, o) ? o
                                                                                             : NULL;
  }
  json_array_foreach(json_object_get(buyer, "orders"), i, id) {
    json_t *o = kefu_shop_get(shop, KEFU_ENT_ORDER, json_string_value(id));
    if (o && qualifies(env, o) &&
        (!best || kefu_json_int(o, "shipped_ts", 0) >= kefu_json_int(best, "shipped_ts", 0))) {
      best = o;
      *order_id = json_string_value(id);
    }
  }
  if (!best)
    *order_id = NULL;
  return best;
}

static bool in_service_hours(const kefu_shop_t *shop, int64_t ts) {
  int64_t minute = kefu_rules_local_minute(shop, ts);
  return minute >= 9 * 60 && minute < 21 * 60;
}

/* One record of an invitation's life. With @p fresh the record gets a new id (SENT,
 * SKIPPED); otherwise it keeps the invitation's. */
static void emit_invitation(kefu_shop_t *shop, const char *buyer_id, const json_t *inv,
                            const char *type, const char *skip_rule, bool exempt, int64_t ts,
                            kefu_emitter_t *out, bool fresh) {
  json_t *rec = json_pack(
      "{s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:b, s:I}", "type", type, "initiator",
      kefu_json_str(inv, "initiator"), "shop_id", shop->id, "buyer_id", buyer_id, "agent_id",
      kefu_json_str(inv, "agent_id"), "order_id", kefu_json_str(inv, "order_id"), "courier",
      kefu_json_str(inv, "courier"), "tracking_no", kefu_json_str(inv, "tracking_no"), "skip_rule",
      skip_rule, "assessment_exempt", exempt, "ts", (json_int_t)ts);
  if (fresh) {
    kefu_emit(out, KEFU_T_LOGISTICS_INVITATIONS, 'i', "invitation_id", rec);
  } else {
    json_object_set_new(rec, "invitation_id", json_string(kefu_json_str(inv, "id")));
    kefu_emit_keep_id(out, KEFU_T_LOGISTICS_INVITATIONS, rec);
  }
}

/* The id kefu_emit just gave the last invitation record. */
static const char *last_id(kefu_emitter_t *out) {
  json_t *last = json_array_get(out->records, json_array_size(out->records) - 1);
  return kefu_json_str(json_array_get(last, 1), "invitation_id");
}

static void invite(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_event_t *ev,
                   json_t *session, const char *initiator, kefu_emitter_t *out) {
  const char *order_id, *skip = NULL;
  bool merchant = kefu_str_eq(initiator, "MERCHANT");
  json_t *inv = json_pack("{s:s, s:s?}", "initiator", initiator, "agent_id",
                          kefu_json_str(session, "agent_id"));
  json_t *order = NULL, *pending = json_object_get(session, "invitation");
  bool blocked = json_is_object(pending) || json_is_true(json_object_get(session, "declined"));
  if (merchant && !kefu_cfg_bool(shop, "merchant_invite_enabled"))
    skip = "LOGI-3";
  else if (!in_service_hours(shop, ev->ts))
    skip = "LOGI-1a";
  else if (!merchant && !kefu_cfg_bool(shop, "logistics_enabled"))
    skip = "LOGI-1b";
  else if (!(order = qualifying_order(env, shop, ev, &order_id))) {
    skip = "LOGI-1c";
    if (order_id)
      json_object_set_new(inv, "order_id", json_string(order_id));
  } else if (blocked) {
    skip = merchant ? "LOGI-1d" : NULL; /* the platform stays silent on d (LOGI-2) */
    if (!skip)
      goto done;
  }
  if (skip) {
    emit_invitation(shop, ev->buyer_id, inv, "INVITATION_SKIPPED", skip, false, ev->ts, out, true);
    goto done;
  }
  json_t *pkg = json_array_get(json_object_get(order, "packages"), 0);
  json_object_set_new(inv, "order_id", json_string(order_id));
  json_object_set_new(inv, "courier", json_string(kefu_json_str(pkg, "courier")));
  json_object_set_new(inv, "tracking_no", json_string(kefu_json_str(pkg, "tracking_no")));
  emit_invitation(shop, ev->buyer_id, inv, "INVITATION_SENT", NULL, false, ev->ts, out, true);
  json_object_set_new(inv, "id", json_string(last_id(out)));
  json_object_set_new(inv, "state", json_string("PENDING"));
  kefu_emit(out, KEFU_T_SERVICE_CARDS, 'c', "card_id",
            json_pack("{s:s, s:s, s:s, s:s?, s:s, s:s, s:s, s:b, s:I}", "card",
                      "LOGISTICS_INVITATION", "shop_id", shop->id, "buyer_id", ev->buyer_id,
                      "agent_id", kefu_json_str(inv, "agent_id"), "invitation_id",
                      kefu_json_str(inv, "id"), "order_id", order_id, "courier",
                      kefu_json_str(inv, "courier"), "assessment_exempt", 0, "ts",
                      (json_int_t)ev->ts));
  kefu_schedule(out, shop, ev->ts + env->params->invitation_expiry_ms, TIMER_EXPIRY, ev->buyer_id,
                json_pack("{s:s}", "invitation", kefu_json_str(inv, "id")));
  json_object_set(session, "invitation", inv);
  kefu_shop_touch(shop, KEFU_ENT_BUYER, ev->buyer_id);
done:
  json_decref(inv);
}

/* LOGI-4 */
static void consent(kefu_shop_t *shop, const kefu_event_t *ev, json_t *session,
                    kefu_emitter_t *out) {
  json_t *inv = json_object_get(session, "invitation");
  if (!json_is_object(inv) || !kefu_str_eq(kefu_json_str(inv, "state"), "PENDING") ||
      !kefu_str_eq(kefu_json_str(inv, "id"), kefu_json_str(ev->rec, "invitation_id")))
    return; /* unknown, expired, answered, or its session closed: nothing */
  if (json_is_true(json_object_get(ev->rec, "accepted"))) {
    json_object_set_new(inv, "state", json_string("ACTIVE"));
    json_object_set_new(session, "three_party", json_true());
    emit_invitation(shop, ev->buyer_id, inv, "THREE_PARTY_STARTED", NULL, true, ev->ts, out, false);
  } else {
    emit_invitation(shop, ev->buyer_id, inv, "INVITATION_DECLINED", NULL, false, ev->ts, out,
                    false);
    json_object_del(session, "invitation");
    json_object_set_new(session, "declined", json_true());
  }
  kefu_shop_touch(shop, KEFU_ENT_BUYER, ev->buyer_id);
}

void kefu_rules_logistics(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_event_t *ev,
                          kefu_emitter_t *out) {
  json_t *buyer = ev->buyer_id ? kefu_shop_get(shop, KEFU_ENT_BUYER, ev->buyer_id) : NULL;
  json_t *session = kefu_rules_session(buyer);
  bool with_agent = session && kefu_str_eq(kefu_json_str(session, "target"), "AGENT");
  switch (ev->type) {
  case KEFU_CHAT_BUYER_MSG: /* LOGI-1, LOGI-2: only while the session is with an agent */
    if (with_agent && kefu_is_logistics_intent(kefu_json_str(ev->rec, "intent")) &&
        !json_is_true(json_object_get(session, "three_party")))
      invite(env, shop, ev, session, "PLATFORM", out);
    return;
  case KEFU_CHAT_MERCHANT_INVITE_LOGISTICS: /* LOGI-3 */
    if (with_agent)
      invite(env, shop, ev, session, "MERCHANT", out);
    return;
  case KEFU_CHAT_LOGISTICS_CONSENT:
    if (session)
      consent(shop, ev, session, out);
    return;
  default: return;
  }
}

/* LOGI-2's expiry and LOGI-6's end, when the session closes. */
void kefu_rules_logistics_session_end(kefu_shop_t *shop, const char *buyer_id, json_t *session,
                                      int64_t ts, kefu_emitter_t *out) {
  json_t *inv = json_object_get(session, "invitation");
  if (!json_is_object(inv))
    return;
  if (kefu_str_eq(kefu_json_str(inv, "state"), "ACTIVE")) {
    emit_invitation(shop, buyer_id, inv, "THREE_PARTY_ENDED", NULL, true, ts, out, false);
    emit_invitation(shop, buyer_id, inv, "EVALUATION_REQUESTED", NULL, true, ts, out, false);
  } else {
    emit_invitation(shop, buyer_id, inv, "INVITATION_EXPIRED", NULL, false, ts, out, false);
  }
}

bool kefu_rules_logistics_timer(kefu_shop_t *shop, const kefu_timer_t *t, kefu_emitter_t *out) {
  if (strcmp(t->kind, TIMER_EXPIRY) != 0)
    return false;
  json_t *buyer = kefu_shop_get(shop, KEFU_ENT_BUYER, t->buyer_id), *s = kefu_rules_session(buyer);
  json_t *inv = json_object_get(s, "invitation");
  if (json_is_object(inv) && kefu_str_eq(kefu_json_str(inv, "state"), "PENDING") &&
      kefu_str_eq(kefu_json_str(inv, "id"), kefu_json_str(t->payload, "invitation"))) {
    emit_invitation(shop, t->buyer_id, inv, "INVITATION_EXPIRED", NULL, false, t->deadline, out,
                    false);
    json_object_del(s, "invitation");
    kefu_shop_touch(shop, KEFU_ENT_BUYER, t->buyer_id);
  }
  return true;
}
