/* Sessions around routing: what triggers a decision (ROUTE-1), what a decision does to
 * the buyer's session, the agents' load and the recent contacts (ROUTE-9, ROUTE-10), the
 * queue (ROUTE-11) and transfers to a human (XFER-1..3).
 *
 * The buyer (kefu_buyer_t) holds its routing attributes (ROUTE-1), its contacts newest
 * first and at most 72 h old (ROUTE-9) and its open session (ROUTE-10); the shop's
 * queue (kefu_queue_t) holds the queued buyers, FIFO. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/enums.h"
#include "common/murmur2.h"
#include "rules/conversion.h"
#include "rules/insights.h"
#include "rules/logistics.h"
#include "rules/response_rate.h"
#include "rules/routing.h"

#define CONTACT_MAX_AGE (72 * INT64_C(3600000))
#define CONTACTS_KEPT 16

static kefu_session_t *session_of(kefu_buyer_t *buyer) {
  return buyer && buyer->has_session ? &buyer->session : NULL;
}

static bool session_is(const kefu_session_t *s, kefu_target_t target) {
  return s && s->target == target;
}

/* ------------------------------------------------------------------ the queue */

/* 1-based position, 0 when not queued. */
static int queue_position(const kefu_shop_t *shop, const char *buyer_id) {
  for (uint32_t i = 0; i < shop->queue.n; i++)
    if (kefu_str_eq(shop->queue.v[i].buyer_id, buyer_id))
      return (int)i + 1;
  return 0;
}

static void queue_remove(kefu_shop_t *shop, const char *buyer_id) {
  int pos = queue_position(shop, buyer_id);
  if (!pos)
    return;
  kefu_queue_t *q = &shop->queue;
  uint32_t i = (uint32_t)pos - 1;
  free(q->v[i].buyer_id);
  memmove(&q->v[i], &q->v[i + 1], (q->n - i - 1) * sizeof *q->v);
  q->n--;
  q->changed = true;
}

static void queue_append(kefu_shop_t *shop, const char *buyer_id, int64_t since) {
  kefu_queue_t *q = &shop->queue;
  q->v = realloc(q->v, (q->n + 1) * sizeof *q->v);
  q->v[q->n++] = (kefu_queued_t){strdup(buyer_id), since};
  q->changed = true;
}

/* ------------------------------------------------------------------ load and contacts */

static void add_load(kefu_shop_t *shop, const char *agent_id, int delta) {
  kefu_agent_t *a = agent_id ? kefu_shop_agent(shop, agent_id) : NULL;
  if (!a)
    return; /* an unknown agent has no capacity to account */
  int64_t load = (int64_t)a->load + delta;
  a->load = (int32_t)(load < 0 ? 0 : load);
  kefu_agent_touch(a);
}

/* ROUTE-9: buyer -> agent at @p ts, newest first, one entry per agent, 72 h kept, at
 * most CONTACTS_KEPT. */
static void record_contact(kefu_buyer_t *buyer, const char *agent_id, int64_t ts) {
  uint32_t kept = 0; /* old contacts kept, after the new one */
  for (uint32_t i = 0; i < buyer->ncontacts; i++) {
    kefu_contact_t *c = &buyer->contacts[i];
    if (kefu_str_eq(c->agent_id, agent_id) || ts - c->ts > CONTACT_MAX_AGE ||
        kept + 1 >= CONTACTS_KEPT) {
      free(c->agent_id);
      continue;
    }
    buyer->contacts[kept++] = *c;
  }
  buyer->contacts = realloc(buyer->contacts, (kept + 1) * sizeof *buyer->contacts);
  memmove(&buyer->contacts[1], &buyer->contacts[0], kept * sizeof *buyer->contacts);
  buyer->contacts[0] = (kefu_contact_t){strdup(agent_id), ts};
  buyer->ncontacts = kept + 1;
}

/* ------------------------------------------------------------------ sessions */

static void schedule_idle(const kefu_rules_env_t *env, kefu_shop_t *shop, kefu_buyer_t *buyer,
                          kefu_emitter_t *out) {
  kefu_session_t *s = &buyer->session;
  if (s->target == KEFU_TARGET_QUEUE || s->idle_timer)
    return; /* queued sessions are not idle-closed; one pending timer is enough */
  int64_t deadline = s->activity + env->params->session_idle_ms;
  s->idle_timer = deadline;
  kefu_schedule(out, shop, buyer->id, deadline, KEFU_TIMER_SESSION_IDLE, 0, 0, 0, NULL);
}

/* ROUTE-10: chat activity keeps the session open. */
static void activity(kefu_shop_t *shop, kefu_buyer_t *buyer, int64_t ts) {
  kefu_session_t *s = session_of(buyer);
  if (s && ts > s->activity) {
    s->activity = ts;
    kefu_buyer_touch(shop, buyer);
  }
}

/* Opens the buyer's session with the decision's target or moves the open one there,
 * keeping the agents' load, the queue and the contacts in step (ROUTE-9, ROUTE-10). */
static void apply_decision(const kefu_rules_env_t *env, kefu_shop_t *shop, kefu_buyer_t *buyer,
                           const kefu_route_t *r, int64_t ts, bool via_transfer,
                           kefu_emitter_t *out) {
  kefu_session_t *s = session_of(buyer);
  const char *old_agent = session_is(s, KEFU_TARGET_AGENT) ? s->agent_id : NULL;
  bool same_agent = r->target == KEFU_TARGET_AGENT && kefu_str_eq(old_agent, r->agent_id);
  bool was_queued = session_is(s, KEFU_TARGET_QUEUE);
  if (old_agent && !same_agent)
    add_load(shop, old_agent, -1);
  if (r->target == KEFU_TARGET_AGENT && !same_agent)
    add_load(shop, r->agent_id, +1);
  if (!s) {
    s = &buyer->session;
    kefu_session_clear(s);
    buyer->has_session = true;
    s->opened = ts;
  }
  s->target = r->target;
  kefu_str_set(&s->agent_id, r->target == KEFU_TARGET_AGENT ? r->agent_id : NULL);
  s->leave_target = r->target == KEFU_TARGET_LEAVE_MESSAGE ? shop->config.leave_message_target : 0;
  s->activity = ts;
  if (r->target == KEFU_TARGET_QUEUE && !was_queued) {
    queue_append(shop, buyer->id, ts);
    s->queued_since = ts;
    s->via_transfer = via_transfer;
    kefu_schedule(out, shop, buyer->id, ts + shop->config.queue_max_wait_ms,
                  KEFU_TIMER_QUEUE_TIMEOUT, ts, 0, 0, NULL);
  } else if (r->target != KEFU_TARGET_QUEUE && was_queued) {
    queue_remove(shop, buyer->id);
    s->queued_since = 0;
  }
  if (r->target == KEFU_TARGET_AGENT) {
    record_contact(buyer, r->agent_id, ts);
    kefu_conversion_routed(shop, buyer, r->agent_id, ts, out);
  }
  schedule_idle(env, shop, buyer, out);
  kefu_buyer_touch(shop, buyer);
}

/* ------------------------------------------------------------------ records */

static int exposure_bucket(const char *shop_id, const char *buyer_id) {
  char key[2 * KEFU_ID_MAX + 2];
  int n = snprintf(key, sizeof key, "%s|%s", shop_id, buyer_id);
  return (int)(((uint32_t)kefu_murmur2(key, (size_t)n) & 0x7fffffffu) % 100u);
}

/* A service card's common fields; the caller adds the card's own and emits it. */
static void card_begin(kefu_record_t *rec, const kefu_shop_t *shop, const kefu_buyer_t *buyer,
                       const char *card, int64_t ts) {
  kefu_record_init(rec);
  kefu_record_str(rec, "card", card);
  kefu_record_str(rec, "shop_id", shop->id);
  kefu_record_str(rec, "buyer_id", buyer->id);
  kefu_record_bool(rec, "assessment_exempt", kefu_rules_three_party(buyer));
  kefu_record_int(rec, "ts", ts);
}

static void emit_card(kefu_shop_t *shop, const kefu_buyer_t *buyer, const char *card,
                      const char *reason, int64_t ts, kefu_emitter_t *out) {
  kefu_record_t rec;
  card_begin(&rec, shop, buyer, card, ts);
  if (reason)
    kefu_record_str(&rec, "reason", reason);
  kefu_emit(out, KEFU_REC_CARD, &rec);
}

static void emit_decision(kefu_shop_t *shop, const kefu_buyer_t *buyer, const kefu_route_t *r,
                          const char *trigger, int64_t ts, kefu_emitter_t *out) {
  bool agent = r->target == KEFU_TARGET_AGENT, bot = r->target == KEFU_TARGET_BOT;
  int pos = r->target == KEFU_TARGET_QUEUE ? queue_position(shop, buyer->id) : 0;
  kefu_record_t rec;
  kefu_record_init(&rec);
  kefu_record_str(&rec, "shop_id", shop->id);
  kefu_record_str(&rec, "buyer_id", buyer->id);
  kefu_record_int(&rec, "ts", ts);
  kefu_record_str(&rec, "trigger", trigger);
  kefu_record_str(&rec, "target", kefu_target_names[r->target]);
  kefu_record_str(&rec, "agent_id", agent ? r->agent_id : NULL);
  kefu_record_str(&rec, "group_id", r->group_id[0] ? r->group_id : NULL);
  kefu_record_str(&rec, "leave_message_target",
                  r->target == KEFU_TARGET_LEAVE_MESSAGE
                      ? kefu_leave_target_names[shop->config.leave_message_target]
                      : NULL);
  if (pos)
    kefu_record_int(&rec, "queue_position", pos);
  else
    kefu_record_null(&rec, "queue_position");
  kefu_record_str(&rec, "step", r->step);
  kefu_record_int(&rec, "candidates", agent ? r->candidates : 0);
  if (bot)
    kefu_record_int(&rec, "exposure_bucket", exposure_bucket(shop->id, buyer->id));
  else
    kefu_record_null(&rec, "exposure_bucket");
  kefu_record_bool(&rec, "assessment_exempt", kefu_rules_three_party(buyer));
  kefu_record_str(&rec, "explain", r->explain);
  kefu_emit(out, KEFU_REC_DECISION, &rec);
  if (r->target == KEFU_TARGET_QUEUE) {
    card_begin(&rec, shop, buyer, "QUEUE_NOTICE", ts);
    kefu_record_int(&rec, "queue_position", pos);
    kefu_emit(out, KEFU_REC_CARD, &rec);
  }
}

/* ------------------------------------------------------------------ triggers */

static void route_and_apply(const kefu_rules_env_t *env, kefu_shop_t *shop, kefu_buyer_t *buyer,
                            const char *trigger, int64_t ts, kefu_emitter_t *out) {
  kefu_session_t *s = session_of(buyer);
  kefu_route_ctx_t c = {
      .shop = shop, .buyer = buyer, .session = s, .ts = ts, .skip_bot = false, .out = out};
  kefu_route_t r;
  kefu_route(&c, &r);
  bool freed = session_is(s, KEFU_TARGET_AGENT) &&
               !(r.target == KEFU_TARGET_AGENT && kefu_str_eq(s->agent_id, r.agent_id));
  apply_decision(env, shop, buyer, &r, ts, false, out);
  emit_decision(shop, buyer, &r, trigger, ts, out);
  if (freed)
    kefu_rules_queue_release(env, shop, ts, out);
}

/* ROUTE-1: a CHAT_OPEN while the session is open with the queue, the bot, the
 * leave-message target or an agent who is not OFFLINE does not re-route. */
static bool session_continues(const kefu_rules_env_t *env, kefu_shop_t *shop, kefu_buyer_t *buyer,
                              int64_t ts, kefu_emitter_t *out) {
  kefu_session_t *s = session_of(buyer);
  if (!s)
    return false;
  kefu_route_t r = {.target = s->target, .step = "SESSION_CONTINUES", .candidates = 1};
  if (r.target == KEFU_TARGET_AGENT) {
    const kefu_agent_t *a = s->agent_id ? kefu_shop_agent(shop, s->agent_id) : NULL;
    if (kefu_agent_presence(a) == KEFU_PRESENCE_OFFLINE)
      return false;
    snprintf(r.agent_id, sizeof r.agent_id, "%s", s->agent_id);
  }
  snprintf(r.explain, sizeof r.explain, "session-continues:%s", kefu_target_names[s->target]);
  apply_decision(env, shop, buyer, &r, ts, false, out);
  emit_decision(shop, buyer, &r, "CHAT_OPEN", ts, out);
  return true;
}

/* XFER-1: the first reply of a session; a bot's earns the transfer-entry card once. */
static void first_reply(kefu_shop_t *shop, const kefu_event_t *ev, kefu_buyer_t *buyer,
                        kefu_emitter_t *out) {
  kefu_session_t *s = session_of(buyer);
  if (!s || s->first_reply != KEFU_REPLY_NONE)
    return;
  bool bot = ev->type == KEFU_CHAT_BOT_MSG;
  s->first_reply = bot ? KEFU_REPLY_BOT : ev->chat.auto_reply ? KEFU_REPLY_AUTO : KEFU_REPLY_AGENT;
  kefu_buyer_touch(shop, buyer);
  if (!bot || s->entry_card)
    return;
  if (exposure_bucket(shop->id, buyer->id) < shop->config.transfer_entry_exposure_pct) {
    s->entry_card = true;
    emit_card(shop, buyer, "TRANSFER_ENTRY", NULL, ev->ts, out);
  }
}

/* XFER-2, XFER-3 */
static void transfer_click(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_event_t *ev,
                           kefu_buyer_t *buyer, kefu_emitter_t *out) {
  kefu_session_t *s = session_of(buyer);
  if (!session_is(s, KEFU_TARGET_BOT) || s->transferred)
    return; /* outside a bot session, or after a successful transfer: nothing */
  if (!kefu_shop_any_agent_online(shop)) {
    emit_card(shop, buyer, "TRANSFER_FAILED", "NO_AGENT_ONLINE", ev->ts, out);
    return;
  }
  kefu_route_ctx_t c = {
      .shop = shop, .buyer = buyer, .session = s, .ts = ev->ts, .skip_bot = true, .out = out};
  kefu_route_t r;
  kefu_route(&c, &r);
  if (r.target == KEFU_TARGET_LEAVE_MESSAGE) { /* no capacity anywhere: the bot keeps it */
    emit_card(shop, buyer, "TRANSFER_FAILED", "NO_CAPACITY", ev->ts, out);
    return;
  }
  s->transferred = r.target == KEFU_TARGET_AGENT;
  apply_decision(env, shop, buyer, &r, ev->ts, true, out);
  emit_decision(shop, buyer, &r, "TRANSFER_CLICK", ev->ts, out);
}

static void close_session(const kefu_rules_env_t *env, kefu_shop_t *shop, kefu_buyer_t *buyer,
                          int64_t ts, kefu_emitter_t *out) {
  kefu_session_t *s = session_of(buyer);
  if (!s)
    return;
  bool freed = session_is(s, KEFU_TARGET_AGENT);
  kefu_rules_logistics_session_end(shop, buyer, ts, out);
  if (freed)
    add_load(shop, s->agent_id, -1);
  if (session_is(s, KEFU_TARGET_QUEUE))
    queue_remove(shop, buyer->id);
  kefu_session_clear(s);
  buyer->has_session = false;
  kefu_buyer_touch(shop, buyer);
  if (freed)
    kefu_rules_queue_release(env, shop, ts, out);
}

void kefu_rules_chat_routing(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_event_t *ev,
                             kefu_emitter_t *out) {
  if (!ev->buyer_id)
    return;
  kefu_buyer_t *buyer = kefu_shop_buyer_add(shop, ev->buyer_id);
  kefu_attrs_t *attrs = &buyer->attrs;
  switch (ev->type) {
  case KEFU_CHAT_CHAT_OPEN:
    kefu_strv_copy(&attrs->crowd_tags, &ev->chat.crowd_tags);
    kefu_str_set(&attrs->item_id, ev->chat.item_id);
    kefu_str_set(&attrs->intent, ev->chat.intent);
    kefu_str_set(&attrs->order_id, ev->order_id);
    kefu_buyer_touch(shop, buyer);
    if (!session_continues(env, shop, buyer, ev->ts, out))
      route_and_apply(env, shop, buyer, "CHAT_OPEN", ev->ts, out);
    return;
  case KEFU_CHAT_BUYER_MSG:
    if (ev->chat.intent) /* absent: the last one stands */
      kefu_str_set(&attrs->intent, ev->chat.intent);
    if (ev->order_id)
      kefu_str_set(&attrs->order_id, ev->order_id);
    kefu_buyer_touch(shop, buyer);
    activity(shop, buyer, ev->ts);
    if (!buyer->has_session)
      route_and_apply(env, shop, buyer, "BUYER_MSG", ev->ts, out);
    return;
  case KEFU_CHAT_TRANSFER_CLICK:
    activity(shop, buyer, ev->ts);
    transfer_click(env, shop, ev, buyer, out);
    return;
  case KEFU_CHAT_SESSION_CLOSE: close_session(env, shop, buyer, ev->ts, out); return;
  case KEFU_CHAT_AGENT_MSG:
  case KEFU_CHAT_BOT_MSG:
    activity(shop, buyer, ev->ts);
    first_reply(shop, ev, buyer, out);
    return;
  default: activity(shop, buyer, ev->ts); return;
  }
}

/* ROUTE-11: each queued buyer, in order, routed with the bot steps skipped; those who
 * get an agent leave the queue with a QUEUE_RELEASE decision, the others keep their
 * order. The queue changes while it is walked: the walk goes over a snapshot of its
 * buyers (entities outlive the walk). */
void kefu_rules_queue_release(const kefu_rules_env_t *env, kefu_shop_t *shop, int64_t ts,
                              kefu_emitter_t *out) {
  uint32_t n = shop->queue.n;
  if (n == 0)
    return;
  kefu_buyer_t *inl[32], **snapshot = n <= 32 ? inl : malloc(n * sizeof *snapshot);
  for (uint32_t i = 0; i < n; i++)
    snapshot[i] = kefu_shop_buyer(shop, shop->queue.v[i].buyer_id);
  for (uint32_t i = 0; i < n; i++) {
    kefu_buyer_t *buyer = snapshot[i];
    kefu_session_t *s = session_of(buyer);
    if (!session_is(s, KEFU_TARGET_QUEUE))
      continue;
    kefu_route_ctx_t c = {
        .shop = shop, .buyer = buyer, .session = s, .ts = ts, .skip_bot = true, .out = out};
    kefu_route_t r;
    kefu_route(&c, &r);
    if (r.target != KEFU_TARGET_AGENT)
      continue;
    if (s->via_transfer)
      s->transferred = true; /* XFER-2 */
    apply_decision(env, shop, buyer, &r, ts, false, out);
    emit_decision(shop, buyer, &r, "QUEUE_RELEASE", ts, out);
  }
  if (snapshot != inl)
    free(snapshot);
}

static void session_idle(const kefu_rules_env_t *env, kefu_shop_t *shop, kefu_buyer_t *buyer,
                         const kefu_timer_t *t, kefu_emitter_t *out) {
  kefu_session_t *s = session_of(buyer);
  if (!s || s->idle_timer != t->deadline)
    return; /* closed, or a newer timer stands */
  s->idle_timer = 0;
  kefu_buyer_touch(shop, buyer);
  if (s->target == KEFU_TARGET_QUEUE)
    return;
  int64_t due = s->activity + env->params->session_idle_ms;
  if (due > t->deadline) { /* activity since: wait again from the last of it */
    schedule_idle(env, shop, buyer, out);
    return;
  }
  close_session(env, shop, buyer, t->deadline, out);
}

static void queue_timeout(const kefu_rules_env_t *env, kefu_shop_t *shop, kefu_buyer_t *buyer,
                          const kefu_timer_t *t, kefu_emitter_t *out) {
  kefu_session_t *s = session_of(buyer);
  if (!session_is(s, KEFU_TARGET_QUEUE) || s->queued_since != t->a)
    return;
  kefu_route_t r = {.target = KEFU_TARGET_LEAVE_MESSAGE, .step = "QUEUE_TIMEOUT"};
  snprintf(r.explain, sizeof r.explain, "queue-timeout:waited>%lld",
           (long long)shop->config.queue_max_wait_ms);
  apply_decision(env, shop, buyer, &r, t->deadline, false, out);
  emit_decision(shop, buyer, &r, "QUEUE_TIMEOUT", t->deadline, out);
}

bool kefu_rules_routing_timer(const kefu_rules_env_t *env, kefu_shop_t *shop, const char *buyer_id,
                              const kefu_timer_t *t, kefu_emitter_t *out) {
  if (t->kind != KEFU_TIMER_SESSION_IDLE && t->kind != KEFU_TIMER_QUEUE_TIMEOUT)
    return false;
  kefu_buyer_t *buyer = buyer_id ? kefu_shop_buyer(shop, buyer_id) : NULL;
  if (!buyer)
    return true; /* its buyer is gone: nothing to close */
  if (t->kind == KEFU_TIMER_SESSION_IDLE)
    session_idle(env, shop, buyer, t, out);
  else
    queue_timeout(env, shop, buyer, t, out);
  return true;
}
