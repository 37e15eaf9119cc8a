/* The enums of the event contract and their string forms, each in one place (X-macros),
 * matching the symbols of schemas/ (*.avsc). */
#ifndef KEFU_COMMON_ENUMS_H
#define KEFU_COMMON_ENUMS_H

// clang-format off
#define KEFU_CHAT_TYPES(X) \
  X(CHAT_OPEN) \
  X(BUYER_MSG) \
  X(AGENT_MSG) \
  X(BOT_MSG) \
  X(TRANSFER_CLICK) \
  X(MERCHANT_INVITE_LOGISTICS) \
  X(LOGISTICS_CONSENT) \
  X(LOGISTICS_MSG) \
  X(SESSION_CLOSE) \
  X(DELIVERABILITY_QUERY)

#define KEFU_ORDER_TYPES(X) \
  X(CREATED) \
  X(PAID) \
  X(SHIPPED) \
  X(PARTIALLY_SHIPPED) \
  X(LOGISTICS_UPDATE) \
  X(SIGNED) \
  X(COMPLETED) \
  X(AFTER_SALE_OPENED) \
  X(AFTER_SALE_CLOSED) \
  X(ADDRESS_CHANGED) \
  X(CLOSED)

#define KEFU_AGENT_TYPES(X) \
  X(PRESENCE) \
  X(PROFILE) \
  X(EXCLUSIVE_BIND) \
  X(EXCLUSIVE_UNBIND)

#define KEFU_PRESENCES(X) \
  X(OFFLINE) \
  X(ONLINE) \
  X(SUSPENDED)

#define KEFU_LEAVE_TARGETS(X) \
  X(MAIN_ACCOUNT) \
  X(PROXY_ACCOUNT) \
  X(MESSAGE_POOL)

#define KEFU_STRATEGIES(X) \
  X(EFFICIENCY) \
  X(CONVERSION)

#define KEFU_ACCOUNT_KINDS(X) \
  X(SUB) \
  X(MAIN) \
  X(PROXY)

#define KEFU_ORDER_STATES(X) \
  X(NO_ACTIVE_ORDER) \
  X(UNPAID) \
  X(PAID_NOT_SHIPPED) \
  X(SHIPPED) \
  X(COMPLETED) \
  X(AFTER_SALE)

/* The nine couriers DELIV-3 answers for; others are UNSUPPORTED. */
#define KEFU_SUPPORTED_COURIERS(X) \
  X(YUNDA) \
  X(ZTO) \
  X(YTO) \
  X(STO) \
  X(JT) \
  X(SUNING) \
  X(CHINA_POST) \
  X(UC) \
  X(DEPPON)

// clang-format on

#define KEFU_ENUM_STR(name) #name,

#define KEFU_CHAT_ENUM_(n) KEFU_CHAT_##n,
#define KEFU_ORDER_ENUM_(n) KEFU_ORDER_##n,
#define KEFU_AGENT_ENUM_(n) KEFU_AGENT_##n,
#define KEFU_PRESENCE_ENUM_(n) KEFU_PRESENCE_##n,

typedef enum { KEFU_CHAT_TYPES(KEFU_CHAT_ENUM_) KEFU_CHAT__COUNT } kefu_chat_type_t;
typedef enum { KEFU_ORDER_TYPES(KEFU_ORDER_ENUM_) KEFU_ORDER__COUNT } kefu_order_type_t;
typedef enum { KEFU_AGENT_TYPES(KEFU_AGENT_ENUM_) KEFU_AGENT__COUNT } kefu_agent_type_t;
typedef enum { KEFU_PRESENCES(KEFU_PRESENCE_ENUM_) KEFU_PRESENCE__COUNT } kefu_presence_t;

extern const char *const kefu_chat_type_names[];
extern const char *const kefu_order_type_names[];
extern const char *const kefu_agent_type_names[];
extern const char *const kefu_presence_names[];
extern const char *const kefu_leave_target_names[];
extern const char *const kefu_strategy_names[];
extern const char *const kefu_account_kind_names[];
extern const char *const kefu_order_state_names[];
extern const char *const kefu_supported_courier_names[];

/** @brief Index of @p s in the NULL-terminated @p names, or -1. */
int kefu_enum_parse(const char *const names[], const char *s);

#endif
