#include "io/topics.h"

#include <stdio.h>
#include <string.h>

const kefu_topic_info_t kefu_topics[KEFU_T__COUNT] = {
    {KEFU_T_CHAT, "chat.events", "schemas/chat_event.avsc", true, true, 3, false},
    {KEFU_T_ORDER, "order.events", "schemas/order_event.avsc", true, true, 2, false},
    {KEFU_T_AGENT, "agent.events", "schemas/agent_event.avsc", true, true, 1, false},
    {KEFU_T_SHOP_CONFIG, "shop.config", "schemas/shop_config.avsc", true, true, 0, true},
    {KEFU_T_COURIER_STATUS, "courier.status", "schemas/courier_status.avsc", true, false, -1, true},
    {KEFU_T_ROUTING_DECISIONS, "routing.decisions", "schemas/routing_decision.avsc", false, false,
     -1, false},
    {KEFU_T_LOGISTICS_INVITATIONS, "logistics.invitations", "schemas/logistics_invitation.avsc",
     false, false, -1, false},
    {KEFU_T_RESPONSE_VIOLATIONS, "response.violations", "schemas/response_rate_record.avsc", false,
     false, -1, false},
    {KEFU_T_RESPONSE_EVENTS, "response.events", "schemas/response_event.avsc", false, false, -1,
     false},
    {KEFU_T_SERVICE_CARDS, "service.cards", "schemas/service_card.avsc", false, false, -1, false},
    {KEFU_T_INQUIRY_INSIGHTS, "inquiry.insights", "schemas/inquiry_insight.avsc", false, false, -1,
     false},
    {KEFU_T_DLQ, "dlq", NULL, false, false, -1, false},
};

static char topic_names[KEFU_T__COUNT][256];
static int names_ready;

void kefu_topics_set_prefix(const char *prefix) {
  for (int i = 0; i < KEFU_T__COUNT; i++)
    snprintf(topic_names[i], sizeof topic_names[i], "%s%s", prefix, kefu_topics[i].suffix);
  names_ready = 1;
}

const char *kefu_topic_name(kefu_topic_t t) {
  if (!names_ready)
    kefu_topics_set_prefix("kefu.");
  return topic_names[t];
}

kefu_topic_t kefu_topic_by_suffix(const char *suffix) {
  for (int i = 0; i < KEFU_T__COUNT; i++)
    if (strcmp(kefu_topics[i].suffix, suffix) == 0)
      return (kefu_topic_t)i;
  return KEFU_TOPIC_NONE;
}

kefu_topic_t kefu_topic_by_name(const char *name) {
  for (int i = 0; i < KEFU_T__COUNT; i++)
    if (strcmp(kefu_topic_name((kefu_topic_t)i), name) == 0)
      return (kefu_topic_t)i;
  return KEFU_TOPIC_NONE;
}

int kefu_topic_key(kefu_topic_t t, const json_t *rec, char *out, size_t outlen) {
  int n;
  if (t == KEFU_T_COURIER_STATUS) {
    const char *courier = json_string_value(json_object_get(rec, "courier"));
    const char *region = json_string_value(json_object_get(rec, "region_code"));
    if (!courier || !region)
      return -1;
    n = snprintf(out, outlen, "%s|%s", courier, region);
  } else {
    const char *shop = json_string_value(json_object_get(rec, "shop_id"));
    if (!shop)
      return -1;
    n = snprintf(out, outlen, "%s", shop);
  }
  return n < 0 || (size_t)n >= outlen ? -1 : n;
}
