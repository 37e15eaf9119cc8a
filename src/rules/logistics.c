/* The logistics agent's three-party chat, seed 000 (物流客服): LOGI-1..6.
 *
 * During human reception, a buyer asking about delivery may get the courier's logistics
 * agent invited into the chat: by the platform on a logistics intent (LOGI-1, LOGI-2) or
 * by the merchant (LOGI-3). The buyer consents or declines (LOGI-4); while the
 * three-party chat runs, the buyer's messages are outside every assessment (LOGI-5); the
 * session's end ends it and asks for the logistics rating (LOGI-6).
 *
 * The invitation lives in the buyer's session (kefu_session_t.invitation: id, initiator,
 * state PENDING or ACTIVE, order, courier, tracking number, agent), beside `declined`.
 * Every record of an invitation's life keeps its id. */
#include <string.h>

#include "common/enums.h"
#include "rules/insights.h"
#include "rules/logistics.h"

static const char *const default_couriers[] = {"ZTO", "STO", "YUNDA", "YTO", NULL};

static bool courier_supported(const kefu_rules_env_t *env, const char *courier) {
  const char *const *list =
      env->params->logistics_couriers ? env->params->logistics_couriers : default_couriers;
  return courier && kefu_enum_parse(list, courier) >= 0;
}

/* LOGI-1c: shipped or partly shipped, exactly one package, a supported courier. */
static bool qualifies(const kefu_rules_env_t *env, const kefu_order_t *o) {
  return (o->status == KEFU_ORDER_SHIPPED || o->status == KEFU_ORDER_PARTIALLY_SHIPPED) &&
         o->npackages == 1 && courier_supported(env, o->packages[0].courier);
}

/* The named order (no fallback), else the buyer's most recently shipped qualifying one
 * (a tie goes to the later of the buyer's orders). */
static const kefu_order_t *qualifying_order(const kefu_rules_env_t *env, const kefu_shop_t *shop,
                                            const kefu_event_t *ev, const char **order_id) {
  const kefu_buyer_t *buyer = kefu_shop_buyer(shop, ev->buyer_id);
  const kefu_order_t *best = NULL;
  *order_id = ev->order_id;
  if (ev->order_id) {
    const kefu_order_t *o = kefu_shop_order(shop, ev->order_id);
    return o && kefu_str_eq(o->buyer_id, ev->buyer_id) && qualifies(env, o) ? o : NULL;
  }
  for (uint32_t i = 0; buyer && i < buyer->orders.n; i++) {
    const kefu_order_t *o = kefu_shop_order(shop, buyer->orders.v[i]);
    if (o && qualifies(env, o) && (!best || o->shipped_ts >= best->shipped_ts)) {
      best = o;
      *order_id = buyer->orders.v[i];
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

/* What an invitation record says of its invitation (borrowed strings). */
typedef struct inv_view {
  bool merchant;
  const char *id, *agent_id, *order_id, *courier, *tracking_no;
} inv_view_t;

static inv_view_t view_of(const kefu_invitation_t *i) {
  return (inv_view_t){i->merchant, i->id, i->agent_id, i->order_id, i->courier, i->tracking_no};
}

/* One record of an invitation's life. With @p fresh the record gets a new id (SENT,
 * SKIPPED), returned; otherwise it keeps the invitation's. */
static const char *emit_invitation(kefu_shop_t *shop, const char *buyer_id, const inv_view_t *inv,
                                   const char *type, const char *skip_rule, bool exempt, int64_t ts,
                                   kefu_emitter_t *out, bool fresh) {
  kefu_record_t rec;
  kefu_record_init(&rec);
  kefu_record_str(&rec, "type", type);
  kefu_record_str(&rec, "initiator", inv->merchant ? "MERCHANT" : "PLATFORM");
  kefu_record_str(&rec, "shop_id", shop->id);
  kefu_record_str(&rec, "buyer_id", buyer_id);
  kefu_record_str(&rec, "agent_id", inv->agent_id);
  kefu_record_str(&rec, "order_id", inv->order_id);
  kefu_record_str(&rec, "courier", inv->courier);
  kefu_record_str(&rec, "tracking_no", inv->tracking_no);
  kefu_record_str(&rec, "skip_rule", skip_rule);
  kefu_record_bool(&rec, "assessment_exempt", exempt);
  kefu_record_int(&rec, "ts", ts);
  if (fresh)
    return kefu_emit(out, KEFU_REC_INVITATION, &rec);
  kefu_record_str(&rec, "invitation_id", inv->id);
  kefu_emit_keep_id(out, KEFU_REC_INVITATION, &rec);
  return NULL;
}

static void invite(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_event_t *ev,
                   kefu_buyer_t *buyer, bool merchant, kefu_emitter_t *out) {
  kefu_session_t *session = &buyer->session;
  const kefu_shop_config_t *cfg = &shop->config;
  const char *order_id = NULL, *skip = NULL;
  inv_view_t inv = {.merchant = merchant, .agent_id = session->agent_id};
  const kefu_order_t *order = NULL;
  bool blocked = session->invitation.state != KEFU_INVITATION_NONE || session->declined;
  if (merchant && !cfg->merchant_invite_enabled)
    skip = "LOGI-3";
  else if (!in_service_hours(shop, ev->ts))
    skip = "LOGI-1a";
  else if (!merchant && !cfg->logistics_enabled)
    skip = "LOGI-1b";
  else if (!(order = qualifying_order(env, shop, ev, &order_id))) {
    skip = "LOGI-1c";
    inv.order_id = order_id;
  } else if (blocked) {
    skip = merchant ? "LOGI-1d" : NULL; /* the platform stays silent on d (LOGI-2) */
    if (!skip)
      return;
  }
  if (skip) {
    emit_invitation(shop, ev->buyer_id, &inv, "INVITATION_SKIPPED", skip, false, ev->ts, out, true);
    return;
  }
  const kefu_package_t *pkg = &order->packages[0];
  inv.order_id = order_id;
  inv.courier = pkg->courier;
  inv.tracking_no = pkg->tracking_no;
  const char *id =
      emit_invitation(shop, ev->buyer_id, &inv, "INVITATION_SENT", NULL, false, ev->ts, out, true);
  kefu_invitation_t *stored = &session->invitation;
  kefu_invitation_clear(stored);
  stored->state = KEFU_INVITATION_PENDING;
  stored->merchant = merchant;
  kefu_str_set(&stored->id, id);
  kefu_str_set(&stored->agent_id, inv.agent_id);
  kefu_str_set(&stored->order_id, order_id);
  kefu_str_set(&stored->courier, inv.courier);
  kefu_str_set(&stored->tracking_no, inv.tracking_no);
  kefu_record_t card;
  kefu_record_init(&card);
  kefu_record_str(&card, "card", "LOGISTICS_INVITATION");
  kefu_record_str(&card, "shop_id", shop->id);
  kefu_record_str(&card, "buyer_id", ev->buyer_id);
  kefu_record_str(&card, "agent_id", stored->agent_id);
  kefu_record_str(&card, "invitation_id", stored->id);
  kefu_record_str(&card, "order_id", stored->order_id);
  kefu_record_str(&card, "courier", stored->courier);
  kefu_record_bool(&card, "assessment_exempt", false);
  kefu_record_int(&card, "ts", ev->ts);
  kefu_emit(out, KEFU_REC_CARD, &card);
  kefu_schedule(out, shop, ev->buyer_id, ev->ts + env->params->invitation_expiry_ms,
                KEFU_TIMER_INVITATION_EXPIRY, 0, 0, 0, stored->id);
  kefu_buyer_touch(shop, buyer);
}

/* LOGI-4 */
static void consent(kefu_shop_t *shop, const kefu_event_t *ev, kefu_buyer_t *buyer,
                    kefu_emitter_t *out) {
  kefu_session_t *session = &buyer->session;
  kefu_invitation_t *inv = &session->invitation;
  if (inv->state != KEFU_INVITATION_PENDING || !kefu_str_eq(inv->id, ev->chat.invitation_id))
    return; /* unknown, expired, answered, or its session closed: nothing */
  inv_view_t v = view_of(inv);
  if (ev->chat.accepted) {
    inv->state = KEFU_INVITATION_ACTIVE;
    session->three_party = true;
    emit_invitation(shop, ev->buyer_id, &v, "THREE_PARTY_STARTED", NULL, true, ev->ts, out, false);
  } else {
    emit_invitation(shop, ev->buyer_id, &v, "INVITATION_DECLINED", NULL, false, ev->ts, out, false);
    kefu_invitation_clear(inv);
    session->declined = true;
  }
  kefu_buyer_touch(shop, buyer);
}

void kefu_rules_logistics(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_event_t *ev,
                          kefu_emitter_t *out) {
  if (ev->source != KEFU_SRC_CHAT)
    return;
  kefu_buyer_t *buyer = ev->buyer_id ? kefu_shop_buyer(shop, ev->buyer_id) : NULL;
  bool session = buyer && buyer->has_session;
  bool with_agent = session && buyer->session.target == KEFU_TARGET_AGENT;
  switch (ev->type) {
  case KEFU_CHAT_BUYER_MSG: /* LOGI-1, LOGI-2: only while the session is with an agent */
    if (with_agent && kefu_is_logistics_intent(ev->chat.intent) && !buyer->session.three_party)
      invite(env, shop, ev, buyer, false, out);
    return;
  case KEFU_CHAT_MERCHANT_INVITE_LOGISTICS: /* LOGI-3 */
    if (with_agent)
      invite(env, shop, ev, buyer, true, out);
    return;
  case KEFU_CHAT_LOGISTICS_CONSENT:
    if (session)
      consent(shop, ev, buyer, out);
    return;
  default: return;
  }
}

/* LOGI-2's expiry and LOGI-6's end, when the session closes. */
void kefu_rules_logistics_session_end(kefu_shop_t *shop, kefu_buyer_t *buyer, int64_t ts,
                                      kefu_emitter_t *out) {
  if (!buyer || !buyer->has_session)
    return;
  const kefu_invitation_t *inv = &buyer->session.invitation;
  inv_view_t v = view_of(inv);
  if (inv->state == KEFU_INVITATION_ACTIVE) {
    emit_invitation(shop, buyer->id, &v, "THREE_PARTY_ENDED", NULL, true, ts, out, false);
    emit_invitation(shop, buyer->id, &v, "EVALUATION_REQUESTED", NULL, true, ts, out, false);
  } else if (inv->state == KEFU_INVITATION_PENDING) {
    emit_invitation(shop, buyer->id, &v, "INVITATION_EXPIRED", NULL, false, ts, out, false);
  }
}

bool kefu_rules_logistics_timer(kefu_shop_t *shop, const char *buyer_id, const kefu_timer_t *t,
                                kefu_emitter_t *out) {
  if (t->kind != KEFU_TIMER_INVITATION_EXPIRY)
    return false;
  kefu_buyer_t *buyer = buyer_id ? kefu_shop_buyer(shop, buyer_id) : NULL;
  if (!buyer || !buyer->has_session)
    return true;
  kefu_invitation_t *inv = &buyer->session.invitation;
  if (inv->state == KEFU_INVITATION_PENDING && kefu_str_eq(inv->id, t->ref)) {
    inv_view_t v = view_of(inv);
    emit_invitation(shop, buyer_id, &v, "INVITATION_EXPIRED", NULL, false, t->deadline, out, false);
    kefu_invitation_clear(inv);
    kefu_buyer_touch(shop, buyer);
  }
  return true;
}
