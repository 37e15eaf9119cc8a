#include "common/enums.h"

#include <string.h>

const char *const kefu_chat_type_names[] = {KEFU_CHAT_TYPES(KEFU_ENUM_STR) NULL};
const char *const kefu_order_type_names[] = {KEFU_ORDER_TYPES(KEFU_ENUM_STR) NULL};
const char *const kefu_agent_type_names[] = {KEFU_AGENT_TYPES(KEFU_ENUM_STR) NULL};
const char *const kefu_presence_names[] = {KEFU_PRESENCES(KEFU_ENUM_STR) NULL};
const char *const kefu_leave_target_names[] = {KEFU_LEAVE_TARGETS(KEFU_ENUM_STR) NULL};
const char *const kefu_strategy_names[] = {KEFU_STRATEGIES(KEFU_ENUM_STR) NULL};
const char *const kefu_account_kind_names[] = {KEFU_ACCOUNT_KINDS(KEFU_ENUM_STR) NULL};
const char *const kefu_order_state_names[] = {KEFU_ORDER_STATES(KEFU_ENUM_STR) NULL};
const char *const kefu_supported_courier_names[] = {KEFU_SUPPORTED_COURIERS(KEFU_ENUM_STR) NULL};

int kefu_enum_parse(const char *const names[], const char *s) {
  if (!s)
    return -1;
  for (int i = 0; names[i]; i++)
    if (strcmp(names[i], s) == 0)
      return i;
  return -1;
}
