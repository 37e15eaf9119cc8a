/* The logistics agent's three-party chat (LOGI-1..6). */
#ifndef KEFU_RULES_LOGISTICS_H
#define KEFU_RULES_LOGISTICS_H

#include "rules/rules.h"

/** @brief Invitations on logistics intents and merchant invites, consents (LOGI-1..4). */
void kefu_rules_logistics(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_event_t *ev,
                          kefu_emitter_t *out);

/** @brief The session of @p buyer is closing (called before it is cleared): a pending
 *  invitation expires, a three-party chat ends and asks for its evaluation (LOGI-2,
 *  LOGI-6). Changes nothing itself. */
void kefu_rules_logistics_session_end(kefu_shop_t *shop, kefu_buyer_t *buyer, int64_t ts,
                                      kefu_emitter_t *out);

/** @brief The invitation-expiry timer of @p buyer_id; false when @p t is another kind. */
bool kefu_rules_logistics_timer(kefu_shop_t *shop, const char *buyer_id, const kefu_timer_t *t,
                                kefu_emitter_t *out);

#endif
