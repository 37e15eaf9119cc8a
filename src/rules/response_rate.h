/* The 3-minute response rate (RATE-1..8): waits, timeouts, day close and penalties. */
#ifndef KEFU_RULES_RESPONSE_RATE_H
#define KEFU_RULES_RESPONSE_RATE_H

#include "rules/rules.h"

/** @brief A chat event's part in the response rate: a counted BUYER_MSG opens a wait
 *  (after routing, so the responder is known), a reply ends them. */
void kefu_rules_response_rate(const kefu_rules_env_t *env, kefu_shop_t *shop,
                              const kefu_event_t *ev, kefu_emitter_t *out);

/** @brief Fires a response-rate timer (wait timeout of @p buyer_id, day close of the
 *  shop); false when @p t is not one of them. */
bool kefu_rules_rate_timer(const kefu_rules_env_t *env, kefu_shop_t *shop, const char *buyer_id,
                           const kefu_timer_t *t, kefu_emitter_t *out);

/** @brief The open day of @p ts (its close scheduled when it is new), or NULL when that
 *  local day is closed (a closed day is never reopened). The pointer is valid until the
 *  shop's open days change. */
kefu_rate_day_t *kefu_rules_rate_day_open(const kefu_rules_env_t *env, kefu_shop_t *shop,
                                          int64_t ts, kefu_emitter_t *out);

/** @brief INSIGHT-2: counts @p cause into the open day @p day (from
 *  kefu_rules_rate_day_open). */
void kefu_rules_rate_count_cause(kefu_shop_t *shop, kefu_rate_day_t *day, kefu_cause_t cause);

#endif
