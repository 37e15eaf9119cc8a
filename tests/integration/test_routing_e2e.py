"""Routing through Kafka and Redis: seed 001's worked example end to end (ROUTE-6), and
determinism — the same stream processed twice from fresh Redis gives byte-identical
kefu.routing.decisions (ROUTE-7's draws are seeded by the cause, SPEC §1.3)."""
import os
import subprocess

from kefutest import (INPUT_ORDER, KEFU, SHARED, TOPIC_KEY, KefuTestCase, Redis, load_jsonl,
                      main, read_raw)

T0 = 1773068400000


def raw_values(bootstrap, topic):
    """Every record's key and raw value bytes, sorted (no kefu code)."""
    return sorted((m.key(), m.value()) for m in read_raw(bootstrap, topic))


class RoutingEndToEnd(KefuTestCase):
    def test_ROUTE_6_seed_001_worked_example_through_kafka_and_redis(self):
        self.produce("config", [{"event_id": "c1", "shop_id": "s1", "ts": T0, "groups": [
            {"group_id": "A", "item_ids": ["a"], "order_states": ["NO_ACTIVE_ORDER", "UNPAID"]},
            {"group_id": "B", "item_ids": ["a"],
             "order_states": ["PAID_NOT_SHIPPED", "SHIPPED", "COMPLETED"]},
            {"group_id": "C", "item_ids": ["a"]},
            {"group_id": "D", "item_ids": ["b"], "order_states": ["AFTER_SALE"]}]}])
        agents = []
        for g in "ABCD":
            agents.append({"event_id": "p" + g, "shop_id": "s1", "ts": T0, "type": "PROFILE",
                           "agent_id": "ag" + g, "groups": [g], "capacity": 50})
            agents.append({"event_id": "o" + g, "shop_id": "s1", "ts": T0, "type": "PRESENCE",
                           "agent_id": "ag" + g, "presence": "ONLINE"})
        self.produce("agent", agents)
        self.produce("order", [
            {"event_id": "x1", "shop_id": "s1", "ts": T0 + 1, "type": "CREATED",
             "buyer_id": "b1", "order_id": "o1"},
            {"event_id": "x2", "shop_id": "s1", "ts": T0 + 1, "type": "AFTER_SALE_OPENED",
             "buyer_id": "b2", "order_id": "o2", "after_sale_reason": "DAMAGED"},
            {"event_id": "x3", "shop_id": "s1", "ts": T0 + 1, "type": "AFTER_SALE_OPENED",
             "buyer_id": "b3", "order_id": "o3", "after_sale_reason": "DAMAGED"}])
        self.produce("chat", [
            {"event_id": "q1", "shop_id": "s1", "ts": T0 + 10, "type": "CHAT_OPEN",
             "buyer_id": "b1", "item_id": "a"},
            {"event_id": "q2", "shop_id": "s1", "ts": T0 + 11, "type": "CHAT_OPEN",
             "buyer_id": "b2", "item_id": "a"},
            {"event_id": "q3", "shop_id": "s1", "ts": T0 + 12, "type": "CHAT_OPEN",
             "buyer_id": "b3", "item_id": "c"}])
        self.run_kefu()
        got = {d["buyer_id"]: d for d in self.consume("decisions")}
        self.assertEqual(got["b1"]["group_id"], "A")   # item a and UNPAID -> A
        self.assertEqual(got["b1"]["agent_id"], "agA")
        self.assertIn(got["b2"]["agent_id"], ("agA", "agB", "agC"))  # item a, AFTER_SALE
        self.assertEqual(got["b2"]["candidates"], 3)
        self.assertEqual(got["b3"]["group_id"], "D")   # item c and AFTER_SALE -> D
        self.assertEqual(got["b3"]["agent_id"], "agD")

    def test_ROUTE_7_replaying_from_fresh_redis_gives_identical_decisions(self):
        base = os.path.join(SHARED, "conformance", "small-101", "input")
        for topic in INPUT_ORDER:
            records = load_jsonl(os.path.join(base, topic + ".jsonl"))
            if records:
                self.produce(TOPIC_KEY[topic], records)
        self.run_kefu()
        first = raw_values(self.broker.bootstrap, "kefu.routing.decisions")
        self.assertGreater(len(first), 50)
        # a second, independent run: fresh Redis, another consumer group, another output prefix
        other = Redis()
        self.addCleanup(other.stop)
        out = subprocess.run(
            [KEFU, "run", "-b", self.broker.bootstrap, "--redis", other.url, "--exit-when-idle",
             "--set", "http.listen=", "--set", "idle_advance=false", "--set", "group.id=again",
             "--set", "transactional.id.prefix=again"],
            capture_output=True, text=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        both = raw_values(self.broker.bootstrap, "kefu.routing.decisions")
        # every decision now appears twice, byte for byte
        self.assertEqual(sorted(first + first), both)


if __name__ == "__main__":
    main()
