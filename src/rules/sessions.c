/* Sessions around routing: what triggers a decision (ROUTE-1), what a decision does to
 * the buyer's session, the agents' load and the recent contacts (ROUTE-9, ROUTE-10), the
 * queue (ROUTE-11) and transfers to a human (XFER-1..3).
 *
 * The buyer entity holds:
 *   attrs    {crowd_tags, item_id, intent, order_id}  routing attributes (ROUTE-1)
 *   contacts [{agent_id, ts}] newest first, at most 72 h old (ROUTE-9)
 *   session  {target, agent_id, leave_target, opened, activity, idle_timer, first_reply,
 *             entry_card, transferred, queued_since, via_transfer} or null
 * The shop's meta entity "queue" holds {buyers: [{buyer_id, since}]}, FIFO. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/enums.h"
#include "common/murmur2.h"
#include "rules/conversion.h"
#include "rules/logistics.h"
#include "rules/routing.h"

#define CONTACT_MAX_AGE (72 * INT64_C(3600000))
#define CONTACTS_KEPT 16
#define TIMER_SESSION_IDLE "session_idle"
#define TIMER_QUEUE_TIMEOUT "queue_timeout"

const char *const kefu_target_names[] = {"NONE", "AGENT", "BOT", "LEAVE_MESSAGE", "QUEUE"};

static bool session_is(const json_t *session, const char *target) {
  return session && kefu_str_eq(kefu_json_str(session, "target"), target);
}

/* ------------------------------------------------------------------ the queue */

static json_t *queue_list(kefu_shop_t *shop) {
  json_t *q = kefu_shop_get(shop, KEFU_ENT_META, "queue");
  if (!q) {
    q = json_pack("{s:[]}", "buyers");
    json_object_set_new(shop->entities[KEFU_ENT_META], "queue", q);
  }
  return json_object_get(q, "buyers");
}

/* 1-based position, 0 when not queued. */
static int queue_position(kefu_shop_t *shop, const char *buyer_id) {
  size_t i;
  json_t *e;
  json_array_foreach(queue_list(shop), i,
                     e) if (kefu_str_eq(kefu_json_str(e, "buyer_id"), buyer_id)) return (int)i +
      1;
  return 0;
}

static void queue_remove(kefu_shop_t *shop, const char *buyer_id) {
  int pos = queue_position(shop, buyer_id);
  if (pos) {
    json_array_remove(queue_list(shop), (size_t)pos - 1);
    kefu_shop_touch(shop, KEFU_ENT_META, "queue");
  }
}

static void queue_append(kefu_shop_t *shop, const char *buyer_id, int64_t since) {
  json_array_append_new(queue_list(shop),
                        json_pack("{s:s, s:I}", "buyer_id", buyer_id, "since", (json_int_t)since));
  kefu_shop_touch(shop, KEFU_ENT_META, "queue");
}

/* ------------------------------------------------------------------ load and contacts */

static void add_load(kefu_shop_t *shop, const char *agent_id, int delta) {
  json_t *a = kefu_shop_get(shop, KEFU_ENT_AGENT, agent_id);
  if (!a)
    return; /* an unknown agent has no capacity to account */
  int64_t load = kefu_json_int(a, "load", 0) + delta;
  json_object_set_new(a, "load", json_integer(load < 0 ? 0 : load));
  kefu_shop_touch(shop, KEFU_ENT_AGENT, agent_id);
}

/* ROUTE-9: buyer -> agent at @p ts, newest first, one entry per agent, 72 h kept. */
static void record_contact(json_t *buyer, const char *agent_id, int64_t ts) {
  json_t *old = json_object_get(buyer, "contacts"), *kept = json_array(), *c;
  size_t i;
  json_array_append_new(kept, json_pack("{s:s, s:I}", "agent_id", agent_id, "ts", (json_int_t)ts));
  json_array_foreach(old, i, c) {
    if (kefu_str_eq(kefu_json_str(c, "agent_id"), agent_id) ||
        ts - kefu_json_int(c, "ts", 0) > CONTACT_MAX_AGE || json_array_size(kept) >= CONTACTS_KEPT)
      continue;
    json_array_append(kept, c);
  }
  json_object_set_new(buyer, "contacts", kept);
}

/* ------------------------------------------------------------------ sessions */

static void schedule_idle(const kefu_rules_env_t *env, kefu_shop_t *shop, const char *buyer_id,
                          json_t *session, kefu_emitter_t *out) {
  if (session_is(session, "QUEUE") || json_is_integer(json_object_get(session, "idle_timer")))
    return; /* queued sessions are not idle-closed; one pending timer is enough */
  int64_t deadline = kefu_json_int(session, "activity", 0) + env->params->session_idle_ms;
  json_object_set_new(session, "idle_timer", json_integer(deadline));
  kefu_schedule(out, shop, deadline, TIMER_SESSION_IDLE, buyer_id, NULL);
}

static void touch_buyer(kefu_shop_t *shop, const char *buyer_id) {
  kefu_shop_touch(shop, KEFU_ENT_BUYER, buyer_id);
}

/* ROUTE-10: chat activity keeps the session open. */
static void activity(kefu_shop_t *shop, const char *buyer_id, json_t *buyer, int64_t ts) {
  json_t *s = kefu_rules_session(buyer);
  if (s && ts > kefu_json_int(s, "activity", 0)) {
    json_object_set_new(s, "activity", json_integer(ts));
    touch_buyer(shop, buyer_id);
  }
}

/* Opens the buyer's session with the decision's target or moves the open one there,
 * keeping the agents' load, the queue and the contacts in step (ROUTE-9, ROUTE-10). */
static void apply_decision(const kefu_rules_env_t *env, kefu_shop_t *shop, const char *buyer_id,
                           json_t *buyer, const kefu_route_t *r, int64_t ts, bool via_transfer,
                           kefu_emitter_t *out) {
  json_t *s = kefu_rules_session(buyer);
  const char *old_agent = session_is(s, "AGENT") ? kefu_json_str(s, "agent_id") : NULL;
  bool same_agent = r->target == KEFU_TARGET_AGENT && kefu_str_eq(old_agent, r->agent_id);
  bool was_queued = session_is(s, "QUEUE");
  if (old_agent && !same_agent)
    add_load(shop, old_agent, -1);
  if (r->target == KEFU_TARGET_AGENT && !same_agent)
    add_load(shop, r->agent_id, +1);
  if (!s) {
    s = json_pack("{s:I, s:n, s:n, s:b, s:b}", "opened", (json_int_t)ts, "idle_timer",
                  "first_reply", "entry_card", 0, "transferred", 0);
    json_object_set_new(buyer, "session", s);
  }
  json_object_set_new(s, "target", json_string(kefu_target_names[r->target]));
  json_object_set_new(s, "agent_id",
                      r->target == KEFU_TARGET_AGENT ? json_string(r->agent_id) : json_null());
  json_object_set_new(s, "leave_target",
                      r->target == KEFU_TARGET_LEAVE_MESSAGE
                          ? json_string(kefu_cfg_str(shop, "leave_message_target"))
                          : json_null());
  json_object_set_new(s, "activity", json_integer(ts));
  if (r->target == KEFU_TARGET_QUEUE && !was_queued) {
    queue_append(shop, buyer_id, ts);
    json_object_set_new(s, "queued_since", json_integer(ts));
    json_object_set_new(s, "via_transfer", json_boolean(via_transfer));
    kefu_schedule(out, shop, ts + kefu_cfg_int(shop, "queue_max_wait_ms"), TIMER_QUEUE_TIMEOUT,
                  buyer_id, json_pack("{s:I}", "since", (json_int_t)ts));
  } else if (r->target != KEFU_TARGET_QUEUE && was_queued) {
    queue_remove(shop, buyer_id);
    json_object_set_new(s, "queued_since", json_null());
  }
  if (r->target == KEFU_TARGET_AGENT) {
    record_contact(buyer, r->agent_id, ts);
    kefu_conversion_routed(shop, buyer_id, buyer, r->agent_id, ts, out);
  }
  schedule_idle(env, shop, buyer_id, s, out);
  touch_buyer(shop, buyer_id);
}

/* ------------------------------------------------------------------ records */

static int exposure_bucket(const char *shop_id, const char *buyer_id) {
  char key[2 * KEFU_ID_MAX + 2];
  int n = snprintf(key, sizeof key, "%s|%s", shop_id, buyer_id);
  return (int)(((uint32_t)kefu_murmur2(key, (size_t)n) & 0x7fffffffu) % 100u);
}

static void emit_card(kefu_shop_t *shop, const char *buyer_id, const json_t *buyer,
                      const char *card, json_t *extra, int64_t ts, kefu_emitter_t *out) {
  json_t *rec = json_pack("{s:s, s:s, s:s, s:b, s:I}", "card", card, "shop_id", shop->id,
                          "buyer_id", buyer_id, "assessment_exempt",
                          kefu_rules_buyer_three_party(buyer), "ts", (json_int_t)ts);
  if (extra)
    json_object_update(rec, extra);
  json_decref(extra);
  kefu_emit(out, KEFU_T_SERVICE_CARDS, 'c', "card_id", rec);
}

static void emit_decision(kefu_shop_t *shop, const char *buyer_id, const json_t *buyer,
                          const kefu_route_t *r, const char *trigger, int64_t ts,
                          kefu_emitter_t *out) {
  bool agent = r->target == KEFU_TARGET_AGENT, bot = r->target == KEFU_TARGET_BOT;
  int pos = r->target == KEFU_TARGET_QUEUE ? queue_position(shop, buyer_id) : 0;
  json_t *rec = json_pack(
      "{s:s, s:s, s:I, s:s, s:s, s:s?, s:s?, s:s?, s:o, s:s, s:i, s:o, s:b, s:s}", "shop_id",
      shop->id, "buyer_id", buyer_id, "ts", (json_int_t)ts, "trigger", trigger, "target",
      kefu_target_names[r->target], "agent_id", agent ? r->agent_id : NULL, "group_id",
      r->group_id[0] ? r->group_id : NULL, "leave_message_target",
      r->target == KEFU_TARGET_LEAVE_MESSAGE ? kefu_cfg_str(shop, "leave_message_target") : NULL,
      "queue_position", pos ? json_integer(pos) : json_null(), "step", r->step, "candidates",
      agent ? r->candidates : 0, "exposure_bucket",
      bot ? json_integer(exposure_bucket(shop->id, buyer_id)) : json_null(), "assessment_exempt",
      kefu_rules_buyer_three_party(buyer), "explain", r->explain);
  kefu_emit(out, KEFU_T_ROUTING_DECISIONS, 'd', "decision_id", rec);
  if (r->target == KEFU_TARGET_QUEUE)
    emit_card(shop, buyer_id, buyer, "QUEUE_NOTICE", json_pack("{s:i}", "queue_position", pos), ts,
              out);
}

/* ------------------------------------------------------------------ triggers */

static void route_and_apply(const kefu_rules_env_t *env, kefu_shop_t *shop, const char *buyer_id,
                            json_t *buyer, const char *trigger, int64_t ts, kefu_emitter_t *out) {
  kefu_route_ctx_t c = {shop, buyer_id, buyer, kefu_rules_session(buyer), ts, false, out};
  kefu_route_t r;
  kefu_route(&c, &r);
  bool freed = session_is(kefu_rules_session(buyer), "AGENT") &&
               !(r.target == KEFU_TARGET_AGENT &&
                 kefu_str_eq(kefu_json_str(kefu_rules_session(buyer), "agent_id"), r.agent_id));
  apply_decision(env, shop, buyer_id, buyer, &r, ts, false, out);
  emit_decision(shop, buyer_id, buyer, &r, trigger, ts, out);
  if (freed)
    kefu_rules_queue_release(env, shop, ts, out);
}

/* ROUTE-1: a CHAT_OPEN while the session is open with the queue, the bot, the
 * leave-message target or an agent who is not OFFLINE does not re-route. */
static bool session_continues(const kefu_rules_env_t *env, kefu_shop_t *shop, const char *buyer_id,
                              json_t *buyer, int64_t ts, kefu_emitter_t *out) {
  json_t *s = kefu_rules_session(buyer);
  if (!s)
    return false;
  kefu_route_t r = {.step = "SESSION_CONTINUES", .candidates = 1};
  const char *target = kefu_json_str(s, "target");
  for (int t = KEFU_TARGET_AGENT; t <= KEFU_TARGET_QUEUE; t++)
    if (kefu_str_eq(target, kefu_target_names[t]))
      r.target = (kefu_target_t)t;
  if (r.target == KEFU_TARGET_AGENT) {
    json_t *a = kefu_shop_get(shop, KEFU_ENT_AGENT, kefu_json_str(s, "agent_id"));
    if (!a || kefu_str_eq(kefu_agent_presence(a), "OFFLINE"))
      return false;
    snprintf(r.agent_id, sizeof r.agent_id, "%s", kefu_json_str(s, "agent_id"));
  }
  snprintf(r.explain, sizeof r.explain, "session-continues:%s", target);
  apply_decision(env, shop, buyer_id, buyer, &r, ts, false, out);
  emit_decision(shop, buyer_id, buyer, &r, "CHAT_OPEN", ts, out);
  return true;
}

static void set_attr(json_t *attrs, const json_t *rec, const char *field, bool keep_if_absent) {
  json_t *v = json_object_get(rec, field);
  if (v && !json_is_null(v))
    json_object_set(attrs, field, v);
  else if (!keep_if_absent)
    json_object_set_new(attrs, field, json_null());
}

static json_t *attrs_of(json_t *buyer) {
  json_t *a = json_object_get(buyer, "attrs");
  if (!json_is_object(a)) {
    a = json_pack("{s:[], s:n, s:n, s:n}", "crowd_tags", "item_id", "intent", "order_id");
    json_object_set_new(buyer, "attrs", a);
  }
  return a;
}

/* XFER-1: the first reply of a session; a bot's earns the transfer-entry card once. */
static void first_reply(kefu_shop_t *shop, const kefu_event_t *ev, json_t *buyer,
                        kefu_emitter_t *out) {
  json_t *s = kefu_rules_session(buyer);
  if (!s || !json_is_null(json_object_get(s, "first_reply")))
    return;
  bool bot = ev->type == KEFU_CHAT_BOT_MSG;
  bool autoreply = json_is_true(json_object_get(ev->rec, "auto_reply"));
  json_object_set_new(s, "first_reply", json_string(bot ? "BOT" : autoreply ? "AUTO" : "AGENT"));
  touch_buyer(shop, ev->buyer_id);
  if (!bot || json_is_true(json_object_get(s, "entry_card")))
    return;
  if (exposure_bucket(shop->id, ev->buyer_id) < kefu_cfg_int(shop, "transfer_entry_exposure_pct")) {
    json_object_set_new(s, "entry_card", json_true());
    emit_card(shop, ev->buyer_id, buyer, "TRANSFER_ENTRY", NULL, ev->ts, out);
  }
}

/* XFER-2, XFER-3 */
static void transfer_click(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_event_t *ev,
                           json_t *buyer, kefu_emitter_t *out) {
  json_t *s = kefu_rules_session(buyer);
  if (!session_is(s, "BOT") || json_is_true(json_object_get(s, "transferred")))
    return; /* outside a bot session, or after a successful transfer: nothing */
  if (!kefu_shop_any_agent_online(shop)) {
    emit_card(shop, ev->buyer_id, buyer, "TRANSFER_FAILED",
              json_pack("{s:s}", "reason", "NO_AGENT_ONLINE"), ev->ts, out);
    return;
  }
  kefu_route_ctx_t c = {shop, ev->buyer_id, buyer, s, ev->ts, true, out};
  kefu_route_t r;
  kefu_route(&c, &r);
  if (r.target == KEFU_TARGET_LEAVE_MESSAGE) { /* no capacity anywhere: the bot keeps it */
    emit_card(shop, ev->buyer_id, buyer, "TRANSFER_FAILED",
              json_pack("{s:s}", "reason", "NO_CAPACITY"), ev->ts, out);
    return;
  }
  json_object_set_new(s, "transferred", json_boolean(r.target == KEFU_TARGET_AGENT));
  apply_decision(env, shop, ev->buyer_id, buyer, &r, ev->ts, true, out);
  emit_decision(shop, ev->buyer_id, buyer, &r, "TRANSFER_CLICK", ev->ts, out);
}

static void close_session(const kefu_rules_env_t *env, kefu_shop_t *shop, const char *buyer_id,
                          json_t *buyer, int64_t ts, kefu_emitter_t *out) {
  json_t *s = kefu_rules_session(buyer);
  if (!s)
    return;
  bool freed = session_is(s, "AGENT");
  kefu_rules_logistics_session_end(shop, buyer_id, s, ts, out);
  if (freed)
    add_load(shop, kefu_json_str(s, "agent_id"), -1);
  if (session_is(s, "QUEUE"))
    queue_remove(shop, buyer_id);
  json_object_set_new(buyer, "session", json_null());
  touch_buyer(shop, buyer_id);
  if (freed)
    kefu_rules_queue_release(env, shop, ts, out);
}

void kefu_rules_chat_routing(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_event_t *ev,
                             kefu_emitter_t *out) {
  if (!ev->buyer_id)
    return;
  json_t *buyer = kefu_rules_buyer(shop, ev->buyer_id);
  switch (ev->type) {
  case KEFU_CHAT_CHAT_OPEN: {
    json_t *attrs = attrs_of(buyer);
    set_attr(attrs, ev->rec, "crowd_tags", false);
    set_attr(attrs, ev->rec, "item_id", false);
    set_attr(attrs, ev->rec, "intent", false);
    set_attr(attrs, ev->rec, "order_id", false);
    touch_buyer(shop, ev->buyer_id);
    if (!session_continues(env, shop, ev->buyer_id, buyer, ev->ts, out))
      route_and_apply(env, shop, ev->buyer_id, buyer, "CHAT_OPEN", ev->ts, out);
    return;
  }
  case KEFU_CHAT_BUYER_MSG: {
    json_t *attrs = attrs_of(buyer);
    set_attr(attrs, ev->rec, "intent", true);
    set_attr(attrs, ev->rec, "order_id", true);
    touch_buyer(shop, ev->buyer_id);
    activity(shop, ev->buyer_id, buyer, ev->ts);
    if (!kefu_rules_session(buyer))
      route_and_apply(env, shop, ev->buyer_id, buyer, "BUYER_MSG", ev->ts, out);
    return;
  }
  case KEFU_CHAT_TRANSFER_CLICK:
    activity(shop, ev->buyer_id, buyer, ev->ts);
    transfer_click(env, shop, ev, buyer, out);
    return;
  case KEFU_CHAT_SESSION_CLOSE: close_session(env, shop, ev->buyer_id, buyer, ev->ts, out); return;
  case KEFU_CHAT_AGENT_MSG:
  case KEFU_CHAT_BOT_MSG:
    activity(shop, ev->buyer_id, buyer, ev->ts);
    first_reply(shop, ev, buyer, out);
    return;
  default: activity(shop, ev->buyer_id, buyer, ev->ts); return;
  }
}

/* ROUTE-11: each queued buyer, in order, routed with the bot steps skipped; those who
 * get an agent leave the queue with a QUEUE_RELEASE decision, the others keep their
 * order. */
void kefu_rules_queue_release(const kefu_rules_env_t *env, kefu_shop_t *shop, int64_t ts,
                              kefu_emitter_t *out) {
  json_t *snapshot = json_deep_copy(queue_list(shop)), *e;
  size_t i;
  json_array_foreach(snapshot, i, e) {
    const char *buyer_id = kefu_json_str(e, "buyer_id");
    json_t *buyer = kefu_shop_get(shop, KEFU_ENT_BUYER, buyer_id);
    if (!buyer || !session_is(kefu_rules_session(buyer), "QUEUE"))
      continue;
    kefu_route_ctx_t c = {shop, buyer_id, buyer, kefu_rules_session(buyer), ts, true, out};
    kefu_route_t r;
    kefu_route(&c, &r);
    if (r.target != KEFU_TARGET_AGENT)
      continue;
    json_t *s = kefu_rules_session(buyer);
    if (json_is_true(json_object_get(s, "via_transfer")))
      json_object_set_new(s, "transferred", json_true()); /* XFER-2 */
    apply_decision(env, shop, buyer_id, buyer, &r, ts, false, out);
    emit_decision(shop, buyer_id, buyer, &r, "QUEUE_RELEASE", ts, out);
  }
  json_decref(snapshot);
}

static void session_idle(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_timer_t *t,
                         kefu_emitter_t *out) {
  json_t *buyer = kefu_shop_get(shop, KEFU_ENT_BUYER, t->buyer_id), *s = kefu_rules_session(buyer);
  if (!s || kefu_json_int(s, "idle_timer", -1) != t->deadline)
    return; /* closed, or a newer timer stands */
  json_object_set_new(s, "idle_timer", json_null());
  touch_buyer(shop, t->buyer_id);
  if (session_is(s, "QUEUE"))
    return;
  int64_t due = kefu_json_int(s, "activity", 0) + env->params->session_idle_ms;
  if (due > t->deadline) { /* activity since: wait again from the last of it */
    schedule_idle(env, shop, t->buyer_id, s, out);
    return;
  }
  close_session(env, shop, t->buyer_id, buyer, t->deadline, out);
}

static void queue_timeout(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_timer_t *t,
                          kefu_emitter_t *out) {
  json_t *buyer = kefu_shop_get(shop, KEFU_ENT_BUYER, t->buyer_id), *s = kefu_rules_session(buyer);
  if (!session_is(s, "QUEUE") ||
      kefu_json_int(s, "queued_since", -1) != kefu_json_int(t->payload, "since", -2))
    return;
  kefu_route_t r = {.target = KEFU_TARGET_LEAVE_MESSAGE, .step = "QUEUE_TIMEOUT"};
  snprintf(r.explain, sizeof r.explain, "queue-timeout:waited>%lld",
           (long long)kefu_cfg_int(shop, "queue_max_wait_ms"));
  apply_decision(env, shop, t->buyer_id, buyer, &r, t->deadline, false, out);
  emit_decision(shop, t->buyer_id, buyer, &r, "QUEUE_TIMEOUT", t->deadline, out);
}

bool kefu_rules_routing_timer(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_timer_t *t,
                              kefu_emitter_t *out) {
  if (strcmp(t->kind, TIMER_SESSION_IDLE) == 0)
    session_idle(env, shop, t, out);
  else if (strcmp(t->kind, TIMER_QUEUE_TIMEOUT) == 0)
    queue_timeout(env, shop, t, out);
  else
    return false;
  return true;
}
