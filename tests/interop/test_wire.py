"""Interoperability with clients that share no code with kefu (SPEC §1.1, §1.2):
python3-avro and python3-confluent-kafka encode inputs that kefu decodes and decode every
output kefu writes; kcat reads what `kefu produce` wrote, on the partition a Java
producer would pick (Kafka's murmur2)."""
import io
import json
import os
import struct
import subprocess

import avro.io
from confluent_kafka import Producer

from kefutest import KEFU, KefuTestCase, decode, main, read_raw, schema_table

T0 = 1773068400000


def murmur2(data):
    """Kafka's Java Utils.murmur2 (seed 0x9747b28c), as a signed 32-bit int."""
    m, r = 0x5bd1e995, 24
    length = len(data)
    h = (0x9747b28c ^ length) & 0xffffffff
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xffffffff
        k ^= k >> r
        k = (k * m) & 0xffffffff
        h = (h * m) & 0xffffffff
        h ^= k
    rest = length % 4
    base = length - rest
    if rest == 3:
        h ^= data[base + 2] << 16
    if rest >= 2:
        h ^= data[base + 1] << 8
    if rest >= 1:
        h ^= data[base]
        h = (h * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def encode(schema_id, schema, record):
    """Confluent framing around python3-avro's binary encoding."""
    buf = io.BytesIO()
    buf.write(b"\x00" + struct.pack(">i", schema_id))
    avro.io.DatumWriter(schema).write(record, avro.io.BinaryEncoder(buf))
    return buf.getvalue()


def with_defaults(schema, record):
    """python3-avro's writer wants every field; fill the schema defaults."""
    out = dict(record)
    for field in schema.fields:
        if field.name not in out:
            out[field.name] = field.default if field.has_default else None
    return out


class WireInterop(KefuTestCase):
    def raw(self, topic):
        return read_raw(self.broker.bootstrap, topic)

    def test_python_avro_inputs_and_outputs(self):
        """Inputs written by python3-avro are decoded by kefu; every output kefu writes
        is decoded by python3-avro with the schema its frame names."""
        ids, by_topic = schema_table()
        p = Producer({"bootstrap.servers": self.broker.bootstrap,
                      "partitioner": "murmur2_random"})
        inputs = [
            ("kefu.shop.config", {"event_id": "c1", "shop_id": "s1", "ts": T0,
                                  "couriers": ["YTO", "ZTO"], "bot_priority": True}),
            ("kefu.agent.events", {"event_id": "a1", "shop_id": "s1", "ts": T0 + 1,
                                   "type": "PRESENCE", "agent_id": "a1", "presence": "ONLINE"}),
            ("kefu.chat.events", {"event_id": "o1", "shop_id": "s1", "ts": T0 + 2,
                                  "type": "CHAT_OPEN", "buyer_id": "b1"}),
            ("kefu.chat.events", {"event_id": "q1", "shop_id": "s1", "ts": T0 + 3,
                                  "type": "DELIVERABILITY_QUERY", "agent_id": "a1",
                                  "region_code": "440305"}),
        ]
        for topic, rec in inputs:
            sid, schema = by_topic[topic]
            p.produce(topic, key=rec["shop_id"].encode(), value=encode(sid, schema,
                                                                        with_defaults(schema, rec)),
                      timestamp=rec["ts"])
        self.assertEqual(p.flush(30), 0)
        self.run_kefu()
        decisions = [decode(ids, m.value()) for m in self.raw("kefu.routing.decisions")]
        self.assertEqual(len(decisions), 1)
        self.assertEqual(decisions[0]["decision_id"], "o1-d0")
        self.assertEqual(decisions[0]["target"], "BOT")
        self.assertEqual(decisions[0]["step"], "SHOP_BOT_PRIORITY")
        cards = self.raw("kefu.service.cards")
        card = decode(ids, cards[0].value())
        self.assertEqual(card["card_id"], "q1-c0")
        self.assertEqual([r["courier"] for r in card["results"]], ["YTO", "ZTO"])
        self.assertEqual(dict(cards[0].headers())["kefu.cause"].decode().split("/")[0],
                         "kefu.chat.events")
        self.assertEqual(cards[0].key(), b"s1")

    def test_python_avro_decodes_every_output_schema_kefu_writes(self):
        """One record per output topic (from the conformance examples), encoded by kefu's
        codec (`kefu produce`), decoded by python3-avro to the same JSON."""
        from kefutest import SHARED, TOPIC_KEY, load_jsonl
        ids, _ = schema_table()
        base = os.path.join(SHARED, "conformance", "medium-102", "expected")
        for topic in ("kefu.routing.decisions", "kefu.logistics.invitations",
                      "kefu.response.violations", "kefu.response.events",
                      "kefu.service.cards", "kefu.inquiry.insights"):
            records = load_jsonl(os.path.join(base, topic + ".jsonl"))[:3]
            self.assertTrue(records, topic)
            self.produce(TOPIC_KEY[topic], records)
            got = [decode(ids, m.value()) for m in self.raw(topic)]
            self.assertEqual(len(got), len(records), topic)
            for want in records:
                match = [g for g in got if all(g.get(k) == v for k, v in want.items())]
                self.assertTrue(match, "%s: %s not decoded as written" % (topic, want))

    def test_kcat_reads_kefu_produce_on_java_partitions(self):
        shops = ["shop-%d" % i for i in range(40)] + ["21", "foobar", "a"]
        self.produce("chat", [{"event_id": "e%d" % i, "shop_id": s, "ts": T0 + i,
                               "type": "BOT_MSG", "buyer_id": "b"} for i, s in enumerate(shops)])
        out = subprocess.run(["kcat", "-C", "-b", self.broker.bootstrap, "-t", "kefu.chat.events",
                              "-e", "-q", "-f", "%k %p %S\\n"], capture_output=True, text=True,
                             timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        seen = {}
        for line in out.stdout.splitlines():
            key, part, size = line.split()
            seen[key] = int(part)
            self.assertGreater(int(size), 5)  # 5-byte Confluent header + datum
        self.assertEqual(set(seen), set(shops))
        for key, part in seen.items():
            self.assertEqual(part, (murmur2(key.encode()) & 0x7fffffff) % 4, key)

    def test_murmur2_matches_kafka_java_vectors(self):
        """XFER-1 and ROUTE-7 draw with this hash; these are Kafka's UtilsTest vectors."""
        vectors = {"21": -973932308, "foobar": -790332482,
                   "a-little-bit-long-string": -985981536,
                   "a-little-bit-longer-string": -1486304829,
                   "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
                   "abc": 479470107}
        for s, want in vectors.items():
            self.assertEqual(murmur2(s.encode()), want, s)


if __name__ == "__main__":
    main()
