/* Agents' measured conversion (INSIGHT-3), which CONVERSION routing (ROUTE-7) uses. */
#ifndef KEFU_RULES_CONVERSION_H
#define KEFU_RULES_CONVERSION_H

#include "rules/rules.h"

/** @brief A decision routed @p buyer to @p agent_id at @p ts: opens the pair. */
void kefu_conversion_routed(kefu_shop_t *shop, kefu_buyer_t *buyer, const char *agent_id,
                            int64_t ts, kefu_emitter_t *out);

/** @brief A PAID order event of the buyer at @p ts: converts its open pairs. */
void kefu_conversion_paid(kefu_shop_t *shop, const char *buyer_id, int64_t ts);

/** @brief The pair's 24 h window ended (a timer of @p buyer_id); false when @p t is
 *  another kind. */
bool kefu_conversion_timer(kefu_shop_t *shop, const char *buyer_id, const kefu_timer_t *t);

/** @brief The agent's conversion over the 30 days before @p now, once it has 20
 *  outcomes; false before. */
bool kefu_conversion_measured(const kefu_agent_t *agent, int64_t now, double *rate);

#endif
