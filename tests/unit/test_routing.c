/* Routing (ROUTE-1..11) and transfer to human (XFER-1..3), driven through the pure rules
 * with plain events: no Kafka, no Redis. Each test names the rule it proves. */
#include "rules_fixture.h"

/* ------------------------------------------------------------------ ROUTE-1, ROUTE-2 */

/* ROUTE-1 */
static void test_ROUTE_1_one_decision_per_trigger_and_session_continues(void **state) {
  fx_t *f = *state;
  config(f, "\"bot_priority\":true");
  agent(f, "a1", 1, 5, "[]", "ONLINE");
  assert_int_equal(chat(f, T0 + 1000, "CHAT_OPEN", "b1", ""), 1);
  assert_decision(last(f), "BOT", "SHOP_BOT_PRIORITY", NULL);
  /* a buyer message in an open session is not a trigger */
  assert_int_equal(chat(f, T0 + 2000, "BUYER_MSG", "b1", ""), 0);
  /* CHAT_OPEN again while with the bot: SESSION_CONTINUES, group_id null */
  assert_int_equal(chat(f, T0 + 3000, "CHAT_OPEN", "b1", ""), 1);
  assert_decision(last(f), "BOT", "SESSION_CONTINUES", NULL);
  assert_true(json_is_null(json_object_get(last(f), "group_id")));
  /* after the session closes, a buyer message is a trigger */
  chat(f, T0 + 4000, "SESSION_CLOSE", "b1", "");
  assert_int_equal(chat(f, T0 + 5000, "BUYER_MSG", "b1", ""), 1);
  assert_string_equal(field(last(f), "trigger"), "BUYER_MSG");
}

/* ROUTE-2 */
static void test_ROUTE_2_no_agent_online_goes_to_leave_message_first(void **state) {
  fx_t *f = *state;
  config(f, "\"leave_message_target\":\"PROXY_ACCOUNT\",\"bot_priority\":true");
  agent(f, "a1", 1, 5, "[]", "SUSPENDED");
  chat(f, T0 + 1000, "CHAT_OPEN", "b1", "");
  assert_decision(last(f), "LEAVE_MESSAGE", "NO_AGENT_ONLINE", NULL);
  assert_string_equal(field(last(f), "leave_message_target"), "PROXY_ACCOUNT");
  assert_int_equal(int_field(last(f), "candidates", -1), 0);
  /* an agent never seen in PRESENCE is OFFLINE, even with a profile */
  ev(f, KEFU_T_AGENT, "{\"ts\":%lld,\"type\":\"PROFILE\",\"agent_id\":\"a9\"}", (long long)T0);
  chat(f, T0 + 2000, "CHAT_OPEN", "b2", "");
  assert_decision(last(f), "LEAVE_MESSAGE", "NO_AGENT_ONLINE", NULL);
}

/* ------------------------------------------------------------------ ROUTE-3 */

static void contact_with(fx_t *f, const char *buyer, const char *agent_id, int64_t ts) {
  /* an exclusive, direct agent makes the contact; then the session closes */
  ev(f, KEFU_T_AGENT,
     "{\"ts\":%lld,\"type\":\"EXCLUSIVE_BIND\",\"agent_id\":\"%s\",\"buyer_id\":\"%s\"}",
     (long long)ts, agent_id, buyer);
  chat(f, ts, "CHAT_OPEN", buyer, "");
  chat(f, ts, "SESSION_CLOSE", buyer, "");
  ev(f, KEFU_T_AGENT,
     "{\"ts\":%lld,\"type\":\"EXCLUSIVE_UNBIND\",\"agent_id\":\"%s\",\"buyer_id\":\"%s\"}",
     (long long)ts, agent_id, buyer);
}

/* ROUTE-3 */
static void test_ROUTE_3_recent_contact_24h_includes_exactly_24h_and_suspended(void **state) {
  fx_t *f = *state;
  config(f, "\"exclusive_direct\":true");
  agent(f, "a1", 1, 5, "[]", "ONLINE");
  agent(f, "a2", 1, 5, "[]", "ONLINE");
  contact_with(f, "b1", "a1", T0 + 1000);
  presence(f, T0 + 2000, "a1", "SUSPENDED");
  chat(f, T0 + 1000 + 24 * HOUR, "CHAT_OPEN", "b1", "");
  assert_decision(last(f), "AGENT", "RECENT_CONTACT_24H", "a1");
  assert_int_equal(int_field(last(f), "candidates", 0), 1);
}

/* ROUTE-3 */
static void test_ROUTE_3_after_24h_a_suspended_contact_is_passed_over(void **state) {
  fx_t *f = *state;
  config(f, "\"exclusive_direct\":true,\"groups\":[{\"group_id\":\"g1\"}]");
  agent(f, "a1", 1, 5, "[\"g1\"]", "ONLINE");
  agent(f, "a2", 1, 5, "[\"g1\"]", "ONLINE");
  contact_with(f, "b1", "a1", T0 + 1000);
  presence(f, T0 + 2000, "a1", "SUSPENDED");
  /* 24 h + 1 ms: rule a no longer holds; c: a same-group ONLINE agent */
  chat(f, T0 + 1001 + 24 * HOUR, "CHAT_OPEN", "b1", "");
  assert_decision(last(f), "AGENT", "RECENT_CONTACT_SAME_GROUP", "a2");
  assert_string_equal(field(last(f), "group_id"), "g1");
}

/* ROUTE-3, ROUTE-72 */
static void test_ROUTE_3_72h_online_contact_and_expiry(void **state) {
  fx_t *f = *state;
  config(f, "\"exclusive_direct\":true");
  agent(f, "a1", 1, 5, "[]", "ONLINE");
  agent(f, "a2", 1, 5, "[]", "ONLINE");
  contact_with(f, "b1", "a2", T0 + 1000);
  contact_with(f, "b1", "a1", T0 + 2000);
  presence(f, T0 + 3000, "a1", "OFFLINE"); /* the newest contact's agent is offline (d) */
  chat(f, T0 + 2000 + 72 * HOUR, "CHAT_OPEN", "b2", ""); /* keep a1 offline, a2 free */
  chat(f, T0 + 1000 + 72 * HOUR, "CHAT_OPEN", "b1", "");
  assert_decision(last(f), "AGENT", "RECENT_CONTACT_72H", "a2");
  chat(f, T0 + 1000 + 72 * HOUR + 1, "SESSION_CLOSE", "b1", "");
  /* 72 h + 1 ms after the a2 contact: expired; the a2 contact just made is newest though,
   * so use a fresh buyer whose only contact is older than 72 h */
  contact_with(f, "b3", "a2", T0 + 5000);
  chat(f, T0 + 5001 + 72 * HOUR, "CHAT_OPEN", "b3", "");
  assert_string_not_equal(field(last(f), "step"), "RECENT_CONTACT_72H");
}

/* ------------------------------------------------------------------ ROUTE-4, ROUTE-5 */

/* ROUTE-4 */
static void test_ROUTE_4_exclusive_agent_needs_direct_and_online(void **state) {
  fx_t *f = *state;
  config(f, "\"exclusive_direct\":false");
  agent(f, "a1", 1, 1, "[]", "ONLINE");
  agent(f, "a2", 1, 5, "[]", "ONLINE");
  ev(f, KEFU_T_AGENT,
     "{\"ts\":%lld,\"type\":\"EXCLUSIVE_BIND\",\"agent_id\":\"a1\",\"buyer_id\":\"b1\"}",
     (long long)T0);
  chat(f, T0 + 1000, "CHAT_OPEN", "bx", ""); /* fills a1's only slot */
  chat(f, T0 + 2000, "CHAT_OPEN", "b1", "");
  assert_string_not_equal(field(last(f), "step"), "EXCLUSIVE_AGENT");
  chat(f, T0 + 3000, "SESSION_CLOSE", "b1", "");
  config(f, "\"exclusive_direct\":true");
  /* the buyer's contact from the first session decides first (ROUTE-3 before ROUTE-4),
   * so use a fresh buyer */
  ev(f, KEFU_T_AGENT,
     "{\"ts\":%lld,\"type\":\"EXCLUSIVE_BIND\",\"agent_id\":\"a1\",\"buyer_id\":\"b2\"}",
     (long long)T0 + 4000);
  chat(f, T0 + 5000, "CHAT_OPEN", "b2", "");
  assert_decision(last(f), "AGENT", "EXCLUSIVE_AGENT", "a1"); /* whatever its load */
}

/* ROUTE-5 */
static void test_ROUTE_5_bot_priority_and_exposure_bucket(void **state) {
  fx_t *f = *state;
  config(f, "\"bot_priority\":true");
  agent(f, "a1", 1, 5, "[]", "ONLINE");
  chat(f, T0 + 1000, "CHAT_OPEN", "b1", "");
  assert_decision(last(f), "BOT", "SHOP_BOT_PRIORITY", NULL);
  assert_true(json_is_integer(json_object_get(last(f), "exposure_bucket")));
  assert_int_equal(int_field(last(f), "candidates", -1), 0);
}

/* ------------------------------------------------------------------ ROUTE-6 */

/* Seed 001's worked example: A={item a; NO_ACTIVE_ORDER, UNPAID}, B={item a;
 * PAID_NOT_SHIPPED, SHIPPED, COMPLETED}, C={item a}, D={item b; AFTER_SALE}. */
/* ROUTE-6 */
static void test_ROUTE_6_seed_001_worked_example(void **state) {
  fx_t *f = *state;
  config(
      f,
      "\"groups\":["
      "{\"group_id\":\"A\",\"item_ids\":[\"a\"],\"order_states\":[\"NO_ACTIVE_ORDER\",\"UNPAID\"]},"
      "{\"group_id\":\"B\",\"item_ids\":[\"a\"],\"order_states\":[\"PAID_NOT_SHIPPED\",\"SHIPPED\","
      "\"COMPLETED\"]},"
      "{\"group_id\":\"C\",\"item_ids\":[\"a\"]},"
      "{\"group_id\":\"D\",\"item_ids\":[\"b\"],\"order_states\":[\"AFTER_SALE\"]}]");
  agent(f, "agA", 1, 50, "[\"A\"]", "ONLINE");
  agent(f, "agB", 1, 50, "[\"B\"]", "ONLINE");
  agent(f, "agC", 1, 50, "[\"C\"]", "ONLINE");
  agent(f, "agD", 1, 50, "[\"D\"]", "ONLINE");
  /* item a and UNPAID -> A */
  ev(f, KEFU_T_ORDER, "{\"ts\":%lld,\"type\":\"CREATED\",\"buyer_id\":\"b1\",\"order_id\":\"o1\"}",
     (long long)T0);
  chat(f, T0 + 1000, "CHAT_OPEN", "b1", "\"item_id\":\"a\"");
  assert_string_equal(field(last(f), "group_id"), "A");
  assert_decision(last(f), "AGENT", "GROUP_EFFICIENCY", "agA");
  /* item a and AFTER_SALE -> one of A, B, C (the state matches no group: unchanged) */
  ev(f, KEFU_T_ORDER,
     "{\"ts\":%lld,\"type\":\"AFTER_SALE_OPENED\",\"buyer_id\":\"b2\",\"order_id\":\"o2\"}",
     (long long)T0);
  chat(f, T0 + 2000, "CHAT_OPEN", "b2", "\"item_id\":\"a\"");
  assert_string_equal(field(last(f), "group_id"), "A"); /* the first of A, B, C */
  const char *pick = field(last(f), "agent_id");
  assert_true(strcmp(pick, "agA") == 0 || strcmp(pick, "agB") == 0 || strcmp(pick, "agC") == 0);
  assert_int_equal(int_field(last(f), "candidates", 0), 3);
  /* item c and AFTER_SALE -> D */
  ev(f, KEFU_T_ORDER,
     "{\"ts\":%lld,\"type\":\"AFTER_SALE_OPENED\",\"buyer_id\":\"b3\",\"order_id\":\"o3\"}",
     (long long)T0);
  chat(f, T0 + 3000, "CHAT_OPEN", "b3", "\"item_id\":\"c\"");
  assert_string_equal(field(last(f), "group_id"), "D");
  assert_decision(last(f), "AGENT", "GROUP_EFFICIENCY", "agD");
}

/* ROUTE-6 */
static void test_ROUTE_6_bot_group_first_decides_bot(void **state) {
  fx_t *f = *state;
  config(f, "\"groups\":[{\"group_id\":\"bot\",\"bot_enabled\":true,\"crowd_tags\":[\"vip\"]},"
            "{\"group_id\":\"h\",\"strategy\":\"CONVERSION\"}]");
  agent(f, "a1", 2, 5, "[\"h\"]", "ONLINE");
  chat(f, T0 + 1000, "CHAT_OPEN", "b1", "\"crowd_tags\":[\"vip\"]");
  assert_decision(last(f), "BOT", "GROUP_BOT", NULL);
  assert_string_equal(field(last(f), "group_id"), "bot");
  chat(f, T0 + 2000, "CHAT_OPEN", "b2", "\"crowd_tags\":[\"new\"]");
  /* no group binds "new": the set is unchanged and the first group is the bot's */
  assert_decision(last(f), "BOT", "GROUP_BOT", NULL);
}

/* ------------------------------------------------------------------ ROUTE-7 */

/* 20,000 decisions over agents of levels 1, 2 and 5 with equal free slots land in
 * proportion 1:2:5 (within 3 percentage points each). */
/* ROUTE-7 */
static void test_ROUTE_7_chances_proportional_to_level(void **state) {
  fx_t *f = *state;
  config(f, "");
  agent(f, "l1", 1, 100000, "[]", "ONLINE");
  agent(f, "l2", 2, 100000, "[]", "ONLINE");
  agent(f, "l5", 5, 100000, "[]", "ONLINE");
  int counts[3] = {0};
  char buyer[32];
  for (int i = 0; i < 20000; i++) {
    snprintf(buyer, sizeof buyer, "b%d", i);
    kefu_route_ctx_t c = {
        .shop = f->shop, .buyer = kefu_shop_buyer_add(f->shop, buyer), .ts = T0, .out = NULL};
    kefu_emitter_t em;
    kefu_emitter_init(&em, buyer);
    c.out = &em;
    kefu_route_t r;
    kefu_route(&c, &r);
    counts[strcmp(r.agent_id, "l1") == 0 ? 0 : strcmp(r.agent_id, "l2") == 0 ? 1 : 2]++;
    kefu_emitter_clear(&em);
  }
  const double want[3] = {1.0 / 8, 2.0 / 8, 5.0 / 8};
  for (int k = 0; k < 3; k++) {
    double share = counts[k] / 20000.0;
    if (share < want[k] - 0.03 || share > want[k] + 0.03)
      fail_msg("level share %d: %.4f, wanted %.4f +- 0.03", k, share, want[k]);
  }
}

/* ROUTE-7 */
static void test_ROUTE_7_draw_is_reproducible_and_full_agents_are_not_eligible(void **state) {
  fx_t *f = *state;
  config(f, "");
  agent(f, "a1", 1, 1, "[]", "ONLINE");
  agent(f, "a2", 1, 1, "[]", "ONLINE");
  chat(f, T0 + 1000, "CHAT_OPEN", "b1", "");
  const char *first = field(last(f), "agent_id");
  char first_id[16];
  snprintf(first_id, sizeof first_id, "%s", first);
  assert_int_equal(int_field(last(f), "candidates", 0), 2);
  chat(f, T0 + 2000, "CHAT_OPEN", "b2", "");
  /* the only eligible agent is the other one */
  assert_string_not_equal(field(last(f), "agent_id"), first_id);
  assert_int_equal(int_field(last(f), "candidates", 0), 1);
  /* the same cause and buyer give the same u (murmur2 of "cause|buyer|n") */
  kefu_route_ctx_t c = {.shop = f->shop, .buyer = kefu_shop_buyer_add(f->shop, "bz"), .ts = T0};
  kefu_emitter_t e1, e2;
  kefu_emitter_init(&e1, "cause-1");
  kefu_emitter_init(&e2, "cause-1");
  kefu_route_t r1, r2;
  c.out = &e1;
  kefu_route(&c, &r1);
  c.out = &e2;
  kefu_route(&c, &r2);
  assert_string_equal(r1.explain, r2.explain);
  kefu_emitter_clear(&e1);
  kefu_emitter_clear(&e2);
}

/* ROUTE-7's trace of a pool longer than the trace: each entry is cut at 63 bytes and the
 * whole at 1,023, as when every entry was formatted; the pick is still the draw's. */
static void test_ROUTE_7_explain_of_a_big_pool_is_cut_at_its_size(void **state) {
  fx_t *f = *state;
  char id[65], want[1024] = "", entry[128];
  for (int i = 0; i < 40; i++) { /* 64-byte ids: entries longer than 63 bytes */
    snprintf(id, sizeof id, "%02d%062d", i, 0);
    agent(f, id, 1 + i % 5, 3, "[]", "ONLINE");
  }
  kefu_route_ctx_t c = {.shop = f->shop, .buyer = kefu_shop_buyer_add(f->shop, "bz"), .ts = T0};
  kefu_emitter_t em;
  kefu_emitter_init(&em, "cause-1");
  c.out = &em;
  kefu_route_t r;
  kefu_route(&c, &r);
  assert_int_equal(r.candidates, 40);
  strcpy(want, "s2:none;s3:none;s4:off;crowd=;item=;intent=;state=;s5:no-groups;pool[");
  for (int i = 0; i < 40; i++) {
    snprintf(id, sizeof id, "%02d%062d", i, 0);
    snprintf(entry, sizeof entry, "%s%s:%.17g", i ? "," : "", id, (double)((1 + i % 5) * 3));
    entry[63] = '\0';
    strncat(want, entry, sizeof want - strlen(want) - 1);
  }
  assert_int_equal(strlen(r.explain), sizeof r.explain - 1);
  assert_string_equal(r.explain, want);
  kefu_emitter_clear(&em);
}

/* ROUTE-7's trace prints each weight as "%.17g" does, integral or not. */
static void test_ROUTE_7_explain_prints_weights_as_printf_does(void **state) {
  fx_t *f = *state;
  static const double rates[5] = {0.3, 0.123456789, 1.0, 0.001, 0.7};
  char want[512] = "pool[", entry[128];
  config(f, "\"groups\":[{\"group_id\":\"g\",\"strategy\":\"CONVERSION\"}]");
  for (int i = 0; i < 5; i++) {
    ev(f, KEFU_T_AGENT,
       "{\"ts\":%lld,\"type\":\"PROFILE\",\"agent_id\":\"a%d\",\"level\":%d,"
       "\"groups\":[\"g\"],\"conversion_rate\":%.17g}",
       (long long)T0, i, i + 1, rates[i]);
    presence(f, T0, (char[]){'a', (char)('0' + i), '\0'}, "ONLINE");
    double w = (i + 1) * (rates[i] < 0.01 ? 0.01 : rates[i]);
    snprintf(entry, sizeof entry, "%sa%d:%.17g", i ? "," : "", i, w);
    strcat(want, entry);
  }
  strcat(want, "]");
  kefu_route_ctx_t c = {.shop = f->shop, .buyer = kefu_shop_buyer_add(f->shop, "bz"), .ts = T0};
  kefu_emitter_t em;
  kefu_emitter_init(&em, "cause-1");
  c.out = &em;
  kefu_route_t r;
  kefu_route(&c, &r);
  assert_string_equal(r.step, "GROUP_CONVERSION");
  if (!strstr(r.explain, want))
    fail_msg("wanted %s in %s", want, r.explain);
  kefu_emitter_clear(&em);
}

/* ROUTE-6, ROUTE-7: the pool of a group follows the agents' PROFILE groups and the
 * config's groups (their order too), and a group the config does not name still
 * gathers its agents (ROUTE-3 c draws from the suspended contact's groups). */
static void test_ROUTE_7_pool_follows_profile_and_config_groups(void **state) {
  fx_t *f = *state;
  const char *vip = "\"crowd_tags\":[\"vip\"]";
  config(f, "\"exclusive_direct\":true,\"groups\":[{\"group_id\":\"g1\"},{\"group_id\":\"g2\","
            "\"crowd_tags\":[\"vip\"]}]");
  agent(f, "a1", 1, 5, "[\"g1\"]", "ONLINE");
  agent(f, "a2", 1, 5, "[\"g2\"]", "ONLINE");
  agent(f, "a3", 1, 5, "[\"x\",\"g1\"]", "ONLINE");
  agent(f, "a4", 1, 5, "[\"x\"]", "ONLINE");
  chat(f, T0 + 1000, "CHAT_OPEN", "b1", vip);
  assert_decision(last(f), "AGENT", "GROUP_EFFICIENCY", "a2");
  assert_int_equal(int_field(last(f), "candidates", 0), 1);
  /* the config lists the groups the other way round: g2 is group 0 now */
  config(f, "\"exclusive_direct\":true,\"groups\":[{\"group_id\":\"g2\",\"crowd_tags\":[\"vip\"]},{"
            "\"group_id\":\"g1\"}]");
  chat(f, T0 + 2000, "CHAT_OPEN", "b2", vip);
  assert_decision(last(f), "AGENT", "GROUP_EFFICIENCY", "a2");
  assert_int_equal(int_field(last(f), "candidates", 0), 1);
  /* a PROFILE moves a1 into g2 */
  ev(f, KEFU_T_AGENT,
     "{\"ts\":%lld,\"type\":\"PROFILE\",\"agent_id\":\"a1\",\"capacity\":5,"
     "\"groups\":[\"g2\"]}",
     (long long)(T0 + 2500));
  chat(f, T0 + 3000, "CHAT_OPEN", "b3", vip);
  assert_int_equal(int_field(last(f), "candidates", 0), 2);
  /* group x is in no config: a3's suspension sends its contact to a4, x's other agent */
  contact_with(f, "b4", "a3", T0 + 4000);
  presence(f, T0 + 5000, "a3", "SUSPENDED");
  ev(f, KEFU_T_AGENT,
     "{\"ts\":%lld,\"type\":\"PROFILE\",\"agent_id\":\"a3\",\"capacity\":5,"
     "\"groups\":[\"x\"]}",
     (long long)(T0 + 5000));
  chat(f, T0 + 6000 + 24 * HOUR, "CHAT_OPEN", "b4", "");
  assert_decision(last(f), "AGENT", "RECENT_CONTACT_SAME_GROUP", "a4");
  assert_int_equal(int_field(last(f), "candidates", 0), 1);
}

/* ------------------------------------------------------------------ ROUTE-8 */

/* ROUTE-8 */
static void test_ROUTE_8_queue_fallback_and_no_capacity(void **state) {
  fx_t *f = *state;
  config(f, "\"groups\":[{\"group_id\":\"g1\"}]");
  agent(f, "in", 1, 1, "[\"g1\"]", "ONLINE");
  agent(f, "out", 1, 1, "[]", "ONLINE");
  chat(f, T0 + 1000, "CHAT_OPEN", "b1", "");
  assert_decision(last(f), "AGENT", "GROUP_EFFICIENCY", "in");
  chat(f, T0 + 2000, "CHAT_OPEN", "b2", ""); /* g1 full: any agent with a free slot */
  assert_decision(last(f), "AGENT", "FALLBACK_ANY_AGENT", "out");
  chat(f, T0 + 3000, "CHAT_OPEN", "b3", ""); /* everyone full, no queue */
  assert_decision(last(f), "LEAVE_MESSAGE", "NO_CAPACITY", NULL);
  config(f, "\"groups\":[{\"group_id\":\"g1\"}],\"queue_enabled\":true");
  chat(f, T0 + 4000, "SESSION_CLOSE", "b3", "");
  chat(f, T0 + 5000, "CHAT_OPEN", "b4", "");
  json_t *card = last(f), *decision = json_array_get(f->records, json_array_size(f->records) - 2);
  assert_decision(decision, "QUEUE", "QUEUED", NULL);
  assert_int_equal(int_field(decision, "queue_position", 0), 1);
  assert_string_equal(field(card, "card"), "QUEUE_NOTICE");
  assert_int_equal(int_field(card, "queue_position", 0), 1);
}

/* ------------------------------------------------------------------ ROUTE-9, ROUTE-10 */

/* ROUTE-9 */
static void test_ROUTE_9_contacts_only_for_agents(void **state) {
  fx_t *f = *state;
  config(f, "\"bot_priority\":true");
  agent(f, "a1", 1, 5, "[]", "ONLINE");
  chat(f, T0 + 1000, "CHAT_OPEN", "b1", "");
  assert_int_equal(kefu_shop_buyer(f->shop, "b1")->ncontacts, 0);
  config(f, "");
  chat(f, T0 + 2000, "CHAT_OPEN", "b2", "");
  const kefu_buyer_t *b2 = kefu_shop_buyer(f->shop, "b2");
  assert_int_equal(b2->ncontacts, 1); /* also when the buyer never writes */
  assert_string_equal(b2->contacts[0].agent_id, "a1");
  /* SESSION_CONTINUES to an agent records the contact again, at its ts */
  chat(f, T0 + 3000, "CHAT_OPEN", "b2", "");
  assert_string_equal(field(last(f), "step"), "SESSION_CONTINUES");
  assert_int_equal(b2->ncontacts, 1);
  assert_int_equal(b2->contacts[0].ts, T0 + 3000);
}

/* ROUTE-10 */
static void test_ROUTE_10_load_slots_and_idle_close(void **state) {
  fx_t *f = *state;
  config(f, "");
  agent(f, "a1", 1, 5, "[]", "ONLINE");
  chat(f, T0 + 1000, "CHAT_OPEN", "b1", "");
  assert_int_equal(load_of(f, "a1"), 1);
  chat(f, T0 + 2000, "CHAT_OPEN", "b1", ""); /* the same agent again: no second slot */
  assert_int_equal(load_of(f, "a1"), 1);
  /* activity keeps it open: 14 min after the last message it is still open */
  chat(f, T0 + 2000 + 10 * 60000, "BUYER_MSG", "b1", "");
  advance(f, T0 + 2000 + 24 * 60000);
  assert_int_equal(load_of(f, "a1"), 1);
  /* 15 min without activity: closed, slot freed (fires once the watermark passes) */
  advance(f, T0 + 2000 + 25 * 60000 + 1);
  assert_int_equal(load_of(f, "a1"), 0);
  assert_false(kefu_shop_buyer(f->shop, "b1")->has_session);
  chat(f, T0 + 3 * HOUR, "CHAT_OPEN", "b2", "");
  chat(f, T0 + 3 * HOUR + 1, "SESSION_CLOSE", "b2", "");
  assert_int_equal(load_of(f, "a1"), 0);
}

/* ------------------------------------------------------------------ ROUTE-11 */

/* ROUTE-11 */
static void test_ROUTE_11_queue_release_and_timeout(void **state) {
  fx_t *f = *state;
  config(f, "\"queue_enabled\":true,\"queue_max_wait_ms\":60000");
  agent(f, "a1", 1, 1, "[]", "ONLINE");
  chat(f, T0 + 1000, "CHAT_OPEN", "b1", "");
  chat(f, T0 + 2000, "CHAT_OPEN", "b2", "");
  chat(f, T0 + 3000, "CHAT_OPEN", "b3", "");
  assert_int_equal(
      int_field(json_array_get(f->records, json_array_size(f->records) - 2), "queue_position", 0),
      2);
  /* b1 closes: the slot goes to b2, first in line */
  chat(f, T0 + 4000, "SESSION_CLOSE", "b1", "");
  assert_decision(last(f), "AGENT", "GROUP_EFFICIENCY", "a1");
  assert_string_equal(field(last(f), "trigger"), "QUEUE_RELEASE");
  assert_string_equal(field(last(f), "buyer_id"), "b2");
  /* b3 waited longer than queue_max_wait_ms: leave-message */
  size_t n = json_array_size(f->records);
  advance(f, T0 + 3000 + 60000 + 1);
  assert_int_equal(json_array_size(f->records), n + 1);
  assert_decision(last(f), "LEAVE_MESSAGE", "QUEUE_TIMEOUT", NULL);
  assert_string_equal(field(last(f), "trigger"), "QUEUE_TIMEOUT");
  assert_int_equal(int_field(last(f), "ts", 0), T0 + 63000); /* the deadline */
}

/* ------------------------------------------------------------------ XFER */

/* XFER-1 */
static void test_XFER_1_entry_card_once_when_the_bot_replies_first(void **state) {
  fx_t *f = *state;
  config(f, "\"bot_priority\":true,\"transfer_entry_exposure_pct\":100");
  agent(f, "a1", 1, 5, "[]", "ONLINE");
  chat(f, T0 + 1000, "CHAT_OPEN", "b1", "");
  assert_int_equal(chat(f, T0 + 2000, "BOT_MSG", "b1", ""), 1);
  assert_string_equal(field(last(f), "card"), "TRANSFER_ENTRY");
  assert_int_equal(chat(f, T0 + 3000, "BOT_MSG", "b1", ""), 0); /* once per session */
  /* an auto-reply first means no card */
  chat(f, T0 + 4000, "CHAT_OPEN", "b2", "");
  chat(f, T0 + 5000, "AGENT_MSG", "b2", "\"agent_id\":\"a1\",\"auto_reply\":true");
  assert_int_equal(chat(f, T0 + 6000, "BOT_MSG", "b2", ""), 0);
  /* not exposed: 0 % */
  config(f, "\"bot_priority\":true,\"transfer_entry_exposure_pct\":0");
  chat(f, T0 + 7000, "CHAT_OPEN", "b3", "");
  assert_int_equal(chat(f, T0 + 8000, "BOT_MSG", "b3", ""), 0);
}

/* XFER-2, XFER-3 */
static void test_XFER_2_3_transfer_click(void **state) {
  fx_t *f = *state;
  config(f, "\"bot_priority\":true,\"groups\":[{\"group_id\":\"bots\",\"bot_enabled\":true},"
            "{\"group_id\":\"humans\"}]");
  agent(f, "a1", 1, 5, "[\"humans\"]", "SUSPENDED");
  chat(f, T0 + 1000, "CHAT_OPEN", "b1", "");
  assert_decision(last(f), "LEAVE_MESSAGE", "NO_AGENT_ONLINE", NULL);
  chat(f, T0 + 1500, "SESSION_CLOSE", "b1", "");
  presence(f, T0 + 1600, "a1", "ONLINE");
  chat(f, T0 + 2000, "CHAT_OPEN", "b1", "");
  assert_decision(last(f), "BOT", "SHOP_BOT_PRIORITY", NULL);
  presence(f, T0 + 2500, "a1", "OFFLINE");
  assert_int_equal(chat(f, T0 + 3000, "TRANSFER_CLICK", "b1", ""), 1);
  assert_string_equal(field(last(f), "card"), "TRANSFER_FAILED");
  assert_string_equal(field(last(f), "reason"), "NO_AGENT_ONLINE");
  presence(f, T0 + 3500, "a1", "ONLINE");
  assert_int_equal(chat(f, T0 + 4000, "TRANSFER_CLICK", "b1", ""), 1);
  /* bot steps skipped, bot groups dropped: the human group decides */
  assert_decision(last(f), "AGENT", "GROUP_EFFICIENCY", "a1");
  assert_string_equal(field(last(f), "trigger"), "TRANSFER_CLICK");
  assert_string_equal(field(last(f), "group_id"), "humans");
  /* XFER-3: a second click in the same session changes nothing */
  assert_int_equal(chat(f, T0 + 5000, "TRANSFER_CLICK", "b1", ""), 0);
  assert_int_equal(load_of(f, "a1"), 1);
}

/* Edges of ROUTE-2/6/8: an empty shop, unknown agent ids, agents outside every group,
 * and presence flapping between two decisions of one batch. */
/* ROUTE-2 */
static void test_ROUTE_2_empty_shop_and_unknown_agents(void **state) {
  fx_t *f = *state;
  chat(f, T0 + 1000, "CHAT_OPEN", "b1", ""); /* no config, no agents */
  assert_decision(last(f), "LEAVE_MESSAGE", "NO_AGENT_ONLINE", NULL);
  assert_string_equal(field(last(f), "leave_message_target"), "MAIN_ACCOUNT");
  /* messages and binds naming agents kefu never saw change nothing and do not crash */
  assert_int_equal(chat(f, T0 + 2000, "AGENT_MSG", "b1", "\"agent_id\":\"ghost\""), 0);
  ev(f, KEFU_T_AGENT,
     "{\"ts\":%lld,\"type\":\"EXCLUSIVE_BIND\",\"agent_id\":\"ghost\",\"buyer_id\":\"b2\"}",
     (long long)T0 + 3000);
  config(f, "\"exclusive_direct\":true");
  agent(f, "a1", 1, 5, "[]", "ONLINE");
  chat(f, T0 + 4000, "CHAT_OPEN", "b2", "");
  assert_decision(last(f), "AGENT", "GROUP_EFFICIENCY", "a1"); /* the ghost is not ONLINE */
}

/* ROUTE-6 */
static void test_ROUTE_6_agents_outside_groups_only_by_fallback(void **state) {
  fx_t *f = *state;
  config(f, "\"groups\":[{\"group_id\":\"g1\"}]");
  agent(f, "loner", 5, 5, "[]", "ONLINE");
  agent(f, "member", 1, 1, "[\"g1\"]", "ONLINE");
  chat(f, T0 + 1000, "CHAT_OPEN", "b1", "");
  assert_decision(last(f), "AGENT", "GROUP_EFFICIENCY", "member");
  assert_int_equal(int_field(last(f), "candidates", 0), 1);
  chat(f, T0 + 2000, "CHAT_OPEN", "b2", "");
  assert_decision(last(f), "AGENT", "FALLBACK_ANY_AGENT", "loner");
}

/* ROUTE-2 */
static void test_ROUTE_2_presence_flapping_between_decisions(void **state) {
  fx_t *f = *state;
  config(f, "");
  agent(f, "a1", 1, 5, "[]", "ONLINE");
  presence(f, T0 + 1000, "a1", "OFFLINE");
  chat(f, T0 + 1001, "CHAT_OPEN", "b1", "");
  assert_decision(last(f), "LEAVE_MESSAGE", "NO_AGENT_ONLINE", NULL);
  presence(f, T0 + 1002, "a1", "ONLINE");
  presence(f, T0 + 1003, "a1", "SUSPENDED");
  presence(f, T0 + 1004, "a1", "ONLINE");
  chat(f, T0 + 1005, "CHAT_OPEN", "b2", "");
  assert_decision(last(f), "AGENT", "GROUP_EFFICIENCY", "a1");
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_ROUTE_1_one_decision_per_trigger_and_session_continues),
      T(test_ROUTE_7_explain_of_a_big_pool_is_cut_at_its_size),
      T(test_ROUTE_7_explain_prints_weights_as_printf_does),
      T(test_ROUTE_7_pool_follows_profile_and_config_groups),
      T(test_ROUTE_2_no_agent_online_goes_to_leave_message_first),
      T(test_ROUTE_3_recent_contact_24h_includes_exactly_24h_and_suspended),
      T(test_ROUTE_3_after_24h_a_suspended_contact_is_passed_over),
      T(test_ROUTE_3_72h_online_contact_and_expiry),
      T(test_ROUTE_4_exclusive_agent_needs_direct_and_online),
      T(test_ROUTE_5_bot_priority_and_exposure_bucket),
      T(test_ROUTE_6_seed_001_worked_example),
      T(test_ROUTE_6_bot_group_first_decides_bot),
      T(test_ROUTE_7_chances_proportional_to_level),
      T(test_ROUTE_7_draw_is_reproducible_and_full_agents_are_not_eligible),
      T(test_ROUTE_8_queue_fallback_and_no_capacity),
      T(test_ROUTE_9_contacts_only_for_agents),
      T(test_ROUTE_10_load_slots_and_idle_close),
      T(test_ROUTE_11_queue_release_and_timeout),
      T(test_XFER_1_entry_card_once_when_the_bot_replies_first),
      T(test_XFER_2_3_transfer_click),
      T(test_ROUTE_2_empty_shop_and_unknown_agents),
      T(test_ROUTE_6_agents_outside_groups_only_by_fallback),
      T(test_ROUTE_2_presence_flapping_between_decisions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
