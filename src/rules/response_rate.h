/* The 3-minute response rate (RATE-1..8): waits, timeouts, day close and penalties. */
#ifndef KEFU_RULES_RESPONSE_RATE_H
#define KEFU_RULES_RESPONSE_RATE_H

#include "rules/rules.h"

/** @brief A chat event's part in the response rate: a counted BUYER_MSG opens a wait
 *  (after routing, so the responder is known), a reply ends them. */
void kefu_rules_response_rate(const kefu_rules_env_t *env, kefu_shop_t *shop,
                              const kefu_event_t *ev, kefu_emitter_t *out);

/** @brief Fires a response-rate timer (wait timeout, day close); false when @p t is
 *  not one of them. */
bool kefu_rules_rate_timer(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_timer_t *t,
                           kefu_emitter_t *out);

/** @brief Whether the local day of @p ts is still open for counting (a closed day is
 *  never reopened); when it is, its close is scheduled and its name written to @p day. */
bool kefu_rules_rate_day_open(const kefu_rules_env_t *env, kefu_shop_t *shop, int64_t ts,
                              kefu_emitter_t *out, char *day, size_t daylen);

/** @brief The day's cause counts (INSIGHT-2), an object the caller may update. */
json_t *kefu_rules_rate_causes(kefu_shop_t *shop, const char *day);

#endif
