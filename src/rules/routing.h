/* Routing (ROUTE-1..11) and transfer to human (XFER-1..3): the decision procedure and
 * the session life cycle around it. */
#ifndef KEFU_RULES_ROUTING_H
#define KEFU_RULES_ROUTING_H

#include <stdarg.h>

#include "rules/rules.h"

typedef enum kefu_target {
  KEFU_TARGET_NONE = 0,
  KEFU_TARGET_AGENT,
  KEFU_TARGET_BOT,
  KEFU_TARGET_LEAVE_MESSAGE,
  KEFU_TARGET_QUEUE,
} kefu_target_t;

extern const char *const kefu_target_names[]; /* indexed by kefu_target_t */

/* What one routing run may read. */
typedef struct kefu_route_ctx {
  kefu_shop_t *shop;
  const char *buyer_id;
  json_t *buyer;         /* the buyer entity */
  const json_t *session; /* the buyer's open session, or NULL */
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

/** @brief ONLINE, SUSPENDED or OFFLINE (an agent never seen in PRESENCE is OFFLINE). */
const char *kefu_agent_presence(const json_t *agent);

/** @brief The buyer's order state of ROUTE-6. */
const char *kefu_buyer_order_state(kefu_shop_t *shop, const json_t *buyer, const char *buyer_id);

/* Chat events and timers of the routing family (src/rules/sessions.c). */
void kefu_rules_chat_routing(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_event_t *ev,
                             kefu_emitter_t *out);
/** @brief ROUTE-11: places queued buyers when a slot may have been freed. */
void kefu_rules_queue_release(const kefu_rules_env_t *env, kefu_shop_t *shop, int64_t ts,
                              kefu_emitter_t *out);
/** @brief Fires a routing timer (session idle close, queue timeout); false when @p t is
 *  not one of them. */
bool kefu_rules_routing_timer(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_timer_t *t,
                              kefu_emitter_t *out);

#endif
