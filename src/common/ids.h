/* Identifier rules of SPEC §1.2: ids become Redis key parts, so only [A-Za-z0-9_.-] */
#ifndef KEFU_COMMON_IDS_H
#define KEFU_COMMON_IDS_H
#include <stdbool.h>
#include <stddef.h>

#define KEFU_ID_MAX 64       /* shop_id, buyer_id, agent_id, order_id, group_id, ... */
#define KEFU_EVENT_ID_MAX 56 /* input event ids: derived ids stay within 64 */

/** @brief True when @p s is 1..@p max characters of [A-Za-z0-9_.-]. */
bool kefu_id_valid(const char *s, size_t max);

#endif
