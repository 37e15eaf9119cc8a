"""The pipeline end to end: Kafka (mock cluster) -> kefu run -> Redis -> Kafka.

Covers SPEC §6 (bad input to the DLQ, processing goes on), DELIV-1..3 through the whole
pipeline, and SPEC §5 (a restart applies nothing twice)."""
import base64
import struct

from kefutest import KefuTestCase, main

T0 = 1773068400000  # 2026-03-09T15:00:00Z


def query(eid, shop, ts, **kw):
    rec = {"event_id": eid, "shop_id": shop, "ts": ts, "type": "DELIVERABILITY_QUERY",
           "agent_id": "a1", "buyer_id": "b1"}
    rec.update(kw)
    return rec


COURIERS = [
    {"courier": "ZTO", "region_code": "44", "deliverable": False, "reason": "TEMPORARY_CONTROL",
     "valid_from": T0 - 86400000},
    {"courier": "ZTO", "region_code": "4403", "deliverable": True, "reason": None,
     "valid_from": T0 - 86400000},
    {"courier": "YTO", "region_code": "440106", "deliverable": False, "reason": "EPIDEMIC",
     "valid_from": T0 - 86400000, "valid_until": T0 + 3600000},
]


class PipelineTest(KefuTestCase):
    def setUp(self):
        super().setUp()
        self.produce("courier", COURIERS)
        self.produce("config", [{"event_id": "cfg1", "shop_id": "s1", "ts": T0,
                                 "couriers": ["YTO", "ZTO"]}])
        self.produce("order", [
            {"event_id": "o1", "shop_id": "s1", "ts": T0 + 1, "type": "SHIPPED",
             "buyer_id": "b1", "order_id": "ord1", "region_code": "440106",
             "packages": [{"tracking_no": "t1", "courier": "YTO"},
                          {"tracking_no": "t2", "courier": "SF"}]},
            {"event_id": "o2", "shop_id": "s1", "ts": T0 + 2, "type": "PAID",
             "buyer_id": "b1", "order_id": "ord2"},
        ])

    def cards(self):
        return {c["value"]["card_id"]: c for c in self.consume("cards", meta=True)}

    def test_deliverability_cards_DELIV_1_2_3(self):
        """DELIV-2 longest active prefix; DELIV-3 by region, by order, unknown order,
        no destination, unsupported courier."""
        self.produce("chat", [
            query("q1", "s1", T0 + 10, region_code="440305"),
            query("q2", "s1", T0 + 11, region_code="440106"),
            query("q3", "s1", T0 + 12, order_id="ord1"),
            query("q4", "s1", T0 + 13, order_id="nope"),
            query("q5", "s1", T0 + 14, order_id="ord2"),
            query("q6", "s1", T0 + 3600000, region_code="440106", couriers=["YTO"]),
        ])
        self.run_kefu()
        cards = self.cards()
        res = lambda cid: {r["courier"]: (r["deliverable"], r["reason"])
                           for r in cards[cid]["value"]["results"]}
        # 4403 (deliverable) beats 44 (TEMPORARY_CONTROL) for 440305
        self.assertEqual(res("q1-c0"), {"YTO": (True, None), "ZTO": (True, None)})
        self.assertEqual(res("q2-c0"), {"YTO": (False, "EPIDEMIC"),
                                        "ZTO": (False, "TEMPORARY_CONTROL")})
        self.assertEqual(res("q3-c0"), {"YTO": (False, "EPIDEMIC"), "SF": (None, "UNSUPPORTED")})
        self.assertEqual(cards["q3-c0"]["value"]["region_code"], "440106")
        self.assertEqual(cards["q4-c0"]["value"]["error"], "UNKNOWN_ORDER")
        self.assertEqual(cards["q4-c0"]["value"]["results"], [])
        self.assertEqual(res("q5-c0"), {"YTO": (None, "UNKNOWN_DESTINATION"),
                                        "ZTO": (None, "UNKNOWN_DESTINATION")})
        # valid_until is exclusive: at T0+1h the YTO record is no longer active
        self.assertEqual(res("q6-c0"), {"YTO": (True, None)})
        q1 = cards["q1-c0"]
        self.assertEqual(q1["key"], "s1")
        self.assertEqual(q1["timestamp"], T0 + 10)
        self.assertEqual(q1["value"]["cause_event_id"], "q1")
        self.assertTrue(q1["headers"]["kefu.cause"].startswith("kefu.chat.events/"))

    def test_bad_input_goes_to_dlq_and_processing_goes_on(self):
        """SPEC §6: bad framing, unknown schema id, bad ids, ts range, missing fields."""
        bad = [
            b"\x07garbage",
            b"\x00" + struct.pack(">i", 999) + b"\x02",
            b"\x00\x00",
        ]
        for value in bad:
            self.produce_raw("chat", b"s1", value)
        self.produce("chat", [
            query("bad-id", "s1", T0 + 20, region_code="440305", buyer_id="b 1"),
            query("bad-ts", "s1", 946684799999, region_code="440305"),
            {"event_id": "no-agent", "shop_id": "s1", "ts": T0 + 21, "type": "AGENT_MSG",
             "buyer_id": "b1"},
            {"event_id": "key", "shop_id": "s1:{x}", "ts": T0 + 22, "type": "BOT_MSG",
             "buyer_id": "b1"},
            query("good", "s1", T0 + 30, region_code="440305"),
        ])
        self.run_kefu()
        dlq = self.consume("dlq")
        errors = sorted(d["error"] for d in dlq)
        self.assertEqual(len(dlq), 7, errors)
        raw = {base64.b64decode(d["value_base64"]) for d in dlq}
        for value in bad:
            self.assertIn(value, raw)  # unchanged bytes
        self.assertTrue(any("magic" in e for e in errors), errors)
        self.assertTrue(any("999" in e for e in errors), errors)
        self.assertTrue(any("buyer_id" in e for e in errors), errors)
        self.assertTrue(any("ts" in e for e in errors), errors)
        self.assertTrue(any("agent_id" in e for e in errors), errors)
        self.assertTrue(any("shop_id" in e for e in errors), errors)
        for d in dlq:
            self.assertRegex(d["source"], r"^kefu\.chat\.events/\d+/\d+$")
        self.assertIn("good-c0", self.cards())

    def state(self):
        return self.redis.snapshot("kefu:{s1}:*")

    def test_restart_applies_nothing_twice(self):
        """SPEC §5: a second run resumes from the stored positions: no input applied
        again, no output written again."""
        self.produce("agent", [
            {"event_id": "p1", "shop_id": "s1", "ts": T0 + 1, "type": "PRESENCE",
             "agent_id": "a1", "presence": "ONLINE"}])
        self.produce("chat", [query("q1", "s1", T0 + 10, region_code="440305")])
        self.run_kefu()
        before = self.state()
        cards = self.consume("cards")
        self.assertEqual(len(cards), 1)
        agent = self.redis.state("s1", "agent", "a1")
        self.assertEqual(agent["presence"], "ONLINE")
        self.run_kefu()
        self.assertEqual(self.state(), before)
        self.assertEqual(len(self.consume("cards")), 1)


if __name__ == "__main__":
    main()
