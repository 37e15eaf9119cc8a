/* Routing (ROUTE-1..11) and transfer to human (XFER-1..3): the decision procedure and
 * the session life cycle around it. */
#ifndef KEFU_RULES_ROUTING_H
#define KEFU_RULES_ROUTING_H

#include <stdarg.h>

#include "rules/rules.h"

/* What one routing run may read. */
typedef struct kefu_route_ctx {
  kefu_shop_t *shop;
  const kefu_buyer_t *buyer;     /* the buyer entity */
  const kefu_session_t *session; /* the buyer's open session, or NULL */
  int64_t ts;
  bool skip_bot;       /* XFER-2 and ROUTE-11: the bot steps are skipped */
  kefu_emitter_t *out; /* for the cause's draw counter */
} kefu_route_ctx_t;

/* Its outcome. */
typedef struct kefu_route {
  kefu_target_t target;
  const char *step; /* a Step symbol of routing_decision.avsc */
  char agent_id[KEFU_ID_MAX + 1];
  char group_id[KEFU_ID_MAX + 1];
  int candidates;
  char explain[1024];
} kefu_route_t;

/** @brief Runs steps 1-5 and ROUTE-8 for the buyer of @p c. Pure. */
void kefu_route(kefu_route_ctx_t *c, kefu_route_t *r);

/** @brief ROUTE-2: whether any agent of the shop is ONLINE. */
bool kefu_shop_any_agent_online(const kefu_shop_t *shop);

/** @brief The presence of @p agent; an unknown agent (NULL) is OFFLINE. */
kefu_presence_t kefu_agent_presence(const kefu_agent_t *agent);

/** @brief The buyer's order state of ROUTE-6: an index in kefu_order_state_names. */
int kefu_buyer_order_state(const kefu_shop_t *shop, const kefu_buyer_t *buyer);

/* Chat events and timers of the routing family (src/rules/sessions.c). */
void kefu_rules_chat_routing(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_event_t *ev,
                             kefu_emitter_t *out);
/** @brief ROUTE-11: places queued buyers when a slot may have been freed. */
void kefu_rules_queue_release(const kefu_rules_env_t *env, kefu_shop_t *shop, int64_t ts,
                              kefu_emitter_t *out);
/** @brief Fires a routing timer (session idle close, queue timeout) of @p buyer_id; false
 *  when @p t is not one of them. */
bool kefu_rules_routing_timer(const kefu_rules_env_t *env, kefu_shop_t *shop, const char *buyer_id,
                              const kefu_timer_t *t, kefu_emitter_t *out);

#endif
