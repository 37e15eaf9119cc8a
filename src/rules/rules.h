/* The business rules: pure functions of (shop state, event) -> (state change, effects).
 * No I/O, no clock, no globals: the engine hands in everything they read. One file per
 * rule family; this header is their common entry. It includes only the core's own
 * headers (rules/, common/): tests/check-layering.sh keeps it so. */
#ifndef KEFU_RULES_RULES_H
#define KEFU_RULES_RULES_H

#include "rules/couriers.h"
#include "rules/effects.h"
#include "rules/model.h"

/* Rule parameters (configuration keys of SPEC §7 that rules read). */
typedef struct kefu_rule_params {
  double threshold;
  int escalate_after;
  int64_t session_idle_ms, invitation_expiry_ms, response_wait_ms, day_close_grace_ms;
  const char *const *logistics_couriers; /* LOGI-1c, NULL-terminated; NULL: the default */
} kefu_rule_params_t;

/* What a rule may read besides the shop: parameters and the global courier table. */
typedef struct kefu_rules_env {
  const kefu_rule_params_t *params;
  const kefu_courier_table_t *couriers;
} kefu_rules_env_t;

/** @brief Applies one validated, not yet applied event to its shop. */
void kefu_rules_apply(const kefu_rules_env_t *env, kefu_shop_t *shop, const kefu_event_t *ev,
                      kefu_emitter_t *out);

/** @brief Fires one due timer of @p shop (SPEC §1.3) owned by @p buyer_id (NULL: the
 *  shop); its records have the timer's deadline as ts and the input that made it due as
 *  cause. The engine has already removed it from its owner's pending timers. */
void kefu_rules_fire(const kefu_rules_env_t *env, kefu_shop_t *shop, const char *buyer_id,
                     const kefu_timer_t *t, kefu_emitter_t *out);

/* Families (each in its own file). */
void kefu_rules_shop_config(kefu_shop_t *shop, const kefu_event_t *ev);
void kefu_rules_agent_event(kefu_shop_t *shop, const kefu_event_t *ev);
void kefu_rules_order_event(kefu_shop_t *shop, const kefu_event_t *ev);
void kefu_rules_deliverability_query(const kefu_rules_env_t *env, kefu_shop_t *shop,
                                     const kefu_event_t *ev, kefu_emitter_t *out);

/** @brief LOGI-5: whether the buyer's session is in a three-party chat. */
bool kefu_rules_three_party(const kefu_buyer_t *buyer);

/** @brief Minute of the shop's local day (0..1439) at @p ts: RATE-2's and LOGI-1a's
 *  windows are in shop local time (SPEC §1.3). */
int64_t kefu_rules_local_minute(const kefu_shop_t *shop, int64_t ts);

#endif
