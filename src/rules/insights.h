/* Inquiry causes (INSIGHT-1, INSIGHT-2). */
#ifndef KEFU_RULES_INSIGHTS_H
#define KEFU_RULES_INSIGHTS_H

#include "rules/rules.h"

/** @brief One of the ten logistics intents of LOGI-1. */
bool kefu_is_logistics_intent(const char *intent);

/** @brief The order a message asks about: the named one if it is the buyer's, else the
 *  buyer's most recently updated order; NULL when none. *order_id is set to its id
 *  (borrowed; NULL with no order). */
const kefu_order_t *kefu_rules_inquiry_order(const kefu_shop_t *shop, const kefu_event_t *ev,
                                             const char **order_id);

/** @brief INSIGHT-1's cause of @p order (may be NULL: UNKNOWN) at @p ts, and its factor. */
kefu_cause_t kefu_inquiry_cause(const kefu_rules_env_t *env, const kefu_order_t *order, int64_t ts,
                                const char **factor);

/** @brief A BUYER_MSG with a logistics intent: an InquiryInsight, counted for the day. */
void kefu_rules_insight(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_event_t *ev,
                        bool exempt, kefu_emitter_t *out);

#endif
