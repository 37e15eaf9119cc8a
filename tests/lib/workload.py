"""A seeded mixed workload for the effectively-once tests (SPEC §5), and the checks that
prove its three properties on what kefu left behind:

  (a) no input applied twice: exact state in Redis (dedup ids, order statuses, agent
      presence, shop couriers, applied offsets per input partition);
  (b) no output lost: every expected card on kefu.service.cards, every bad record on
      kefu.dlq;
  (c) every re-emitted output byte-identical (key, value, timestamp, headers) to its
      first copy.

The stream: shop configs with couriers, agent PRESENCE/PROFILE, order lifecycles
(CREATED -> PAID -> SHIPPED with packages and region codes), many DELIVERABILITY_QUERY
chat events (each makes exactly one card `<event_id>-c0`), a few repeated event ids
(applied once) and a few bad records (to the DLQ). Everything is derived from one
random.Random, so a seed reproduces the stream.
"""
import json
import os
import subprocess
import time

from kefutest import KEFU, TOPICS, decode, read_raw, schema_table

T0 = 1773014400000  # 2026-03-09T00:00:00Z, 08:00 in the shops' local time (+480)

COURIERS = ["ZTO", "STO", "YUNDA", "YTO", "JT", "SUNING", "CHINA_POST", "UC", "DEPPON"]
REGIONS = ["440305", "440106", "310101", "110105", "510107", "330106"]
COURIER_STATUS = [
    {"courier": "ZTO", "region_code": "44", "deliverable": False,
     "reason": "TEMPORARY_CONTROL", "valid_from": T0 - 86400000},
    {"courier": "ZTO", "region_code": "4403", "deliverable": True, "reason": None,
     "valid_from": T0 - 86400000},
    {"courier": "YTO", "region_code": "440106", "deliverable": False, "reason": "EPIDEMIC",
     "valid_from": T0 - 86400000, "valid_until": T0 + 3 * 3600000},
    {"courier": "STO", "region_code": "31", "deliverable": False, "reason": "OUTLET_CLOSED",
     "valid_from": T0 - 86400000},
]
INPUTS = ("config", "agent", "order", "chat")
OUTPUT_IDS = {  # output topic -> its id field (SPEC §3)
    "decisions": "decision_id", "invitations": "invitation_id", "violations": "record_id",
    "responses": "response_event_id", "cards": "card_id", "insights": "insight_id",
}

RUN_SETTINGS = ["batch.max_records=20", "batch.max_ms=10", "http.listen=",
                "idle_advance=false", "task_idle_ms=100"]


class Workload:
    """The records of one seeded stream, in production order per input topic, and what
    kefu must have made of them."""

    def __init__(self, rng, shops=8, events=3000, duplicates=12, bad=8, t0=T0, prefix=""):
        self.rng = rng
        self.shops = ["%sshop%d" % (prefix, i) for i in range(shops)]
        self.timeline = []   # (topic, record), in event-time order
        self.duplicates = []  # (topic, record) produced again later: applied once
        self.bad = []         # (topic, key, record or raw bytes): to the DLQ
        self._orders = {s: {} for s in self.shops}  # order_id -> next lifecycle step
        self._n = 0
        self.t0 = t0
        self.prefix = prefix
        ts = t0
        for s in self.shops:  # every shop starts with a config and two agents
            ts += 7
            self._config(s, ts)
            for a in ("a1", "a2"):
                ts += 3
                self._agent(s, ts, a, "PROFILE")
                ts += 3
                self._agent(s, ts, a, "PRESENCE")
        kinds = ["query"] * 70 + ["order"] * 20 + ["agent"] * 8 + ["config"] * 2
        while len(self.timeline) < events:
            ts += rng.randint(1, 400)
            s = rng.choice(self.shops)
            kind = rng.choice(kinds)
            if kind == "query":
                self._query(s, ts)
            elif kind == "order":
                self._order(s, ts)
            elif kind == "agent":
                self._agent(s, ts, rng.choice(["a1", "a2", "a3"]),
                            rng.choice(["PRESENCE", "PRESENCE", "PROFILE"]))
            else:
                self._config(s, ts)
        self.t_end = ts
        # Repeated event ids: a record produced again, unchanged, some time after its
        # first copy (a later offset of the same partition). A repeated order event
        # that were applied again would set an old status back; a repeated query
        # would make a second, different card (another kefu.cause).
        picks = rng.sample(range(len(self.timeline) // 2), duplicates)
        for i in sorted(picks):
            self.duplicates.append((i + rng.randint(1, len(self.timeline) // 2),
                                    self.timeline[i]))
        for k in range(bad):
            s = rng.choice(self.shops)
            topic = rng.choice(["chat", "order", "chat", "agent"])
            at = rng.randrange(len(self.timeline))
            if k % 3 == 0:  # not Avro at all
                self.bad.append((at, topic, s, b"\x07not avro %d" % k))
            elif topic == "chat":
                self.bad.append((at, topic, s, {
                    "event_id": "%sbad%d" % (prefix, k), "shop_id": s, "ts": t0 + at,
                    "type": "DELIVERABILITY_QUERY", "agent_id": "a1",
                    "buyer_id": "not valid", "region_code": "440305"}))
            elif topic == "order":
                self.bad.append((at, topic, s, {
                    "event_id": "%sbad%d" % (prefix, k), "shop_id": s, "ts": t0 + at, "type": "PAID",
                    "buyer_id": "b{1}", "order_id": "o1"}))
            else:
                self.bad.append((at, topic, s, {
                    "event_id": "%sbad%d" % (prefix, k), "shop_id": s, "ts": 946684799999,
                    "type": "PRESENCE", "agent_id": "a1", "presence": "ONLINE"}))

    # -- generators ---------------------------------------------------------------------
    def _eid(self, kind):
        self._n += 1
        return "%s%s%d" % (self.prefix, kind, self._n)

    def _config(self, s, ts):
        couriers = sorted(self.rng.sample(COURIERS, self.rng.randint(1, 4)),
                          key=COURIERS.index)
        self.timeline.append(("config", {"event_id": self._eid("c"), "shop_id": s, "ts": ts,
                                         "couriers": couriers}))

    def _agent(self, s, ts, agent, kind):
        rec = {"event_id": self._eid("a"), "shop_id": s, "ts": ts, "type": kind,
               "agent_id": agent}
        if kind == "PRESENCE":
            rec["presence"] = self.rng.choice(["ONLINE", "ONLINE", "SUSPENDED", "OFFLINE"])
        else:
            rec.update(level=self.rng.randint(1, 5), capacity=self.rng.randint(1, 30),
                       groups=["g1"], account_kind="SUB")
        self.timeline.append(("agent", rec))

    def _order(self, s, ts):
        orders = self._orders[s]
        open_ = [o for o, (step, _) in orders.items() if step < 3]
        if not open_ or self.rng.random() < 0.35:
            oid = "%sord%d" % (self.prefix, self._n)
            orders[oid] = (0, "b%d" % self.rng.randrange(7))
        else:
            oid = self.rng.choice(open_)
        step, buyer = orders[oid]
        orders[oid] = (step + 1, buyer)
        rec = {"event_id": self._eid("o"), "shop_id": s, "ts": ts,
               "type": ["CREATED", "PAID", "SHIPPED"][step], "buyer_id": buyer,
               "order_id": oid, "amount_cents": 100 + step}
        if step == 0 and self.rng.random() < 0.8:
            rec["region_code"] = self.rng.choice(REGIONS)
        if step == 2:
            rec["packages"] = [{"tracking_no": "t" + rec["event_id"],
                                "courier": self.rng.choice(COURIERS + ["SF"])}]
        self.timeline.append(("order", rec))

    def _query(self, s, ts):
        rec = {"event_id": self._eid("q"), "shop_id": s, "ts": ts,
               "type": "DELIVERABILITY_QUERY", "agent_id": self.rng.choice(["a1", "a2"]),
               "buyer_id": "b%d" % self.rng.randrange(7)}
        r = self.rng.random()
        orders = list(self._orders[s])
        if r < 0.35 and orders:
            rec["order_id"] = self.rng.choice(orders)
        elif r < 0.4:
            rec["order_id"] = "nope"
        else:
            rec["region_code"] = self.rng.choice(REGIONS)
            if self.rng.random() < 0.5:
                rec["couriers"] = self.rng.sample(COURIERS + ["SF"], 2)
        rec["list_undeliverable"] = self.rng.random() < 0.15
        self.timeline.append(("chat", rec))

    # -- producing ----------------------------------------------------------------------
    def chunks(self, n):
        """The stream cut into @p n pieces in event-time order, each a list of
        (topic, record or raw) with repeated ids and bad records in place."""
        items = [(i, 0, t, r) for i, (t, r) in enumerate(self.timeline)]
        items += [(at, 1, t, r) for at, (t, r) in self.duplicates]
        items += [(at, 2, t, (s, r)) for at, t, s, r in self.bad]
        items.sort(key=lambda x: (x[0], x[1]))
        size = (len(items) + n - 1) // n
        return [[(t, r) for _, kind, t, r in items[k:k + size]]
                for k in range(0, len(items), size)]

    # -- what kefu must have made of it ---------------------------------------------------
    def valid_records(self):
        return self.timeline + [r for _, r in self.duplicates]

    def expected_dedup(self):
        out = {s: set() for s in self.shops}
        for _, r in self.timeline:
            out[r["shop_id"]].add(r["event_id"])
        return out

    def expected_cards(self):
        return {r["event_id"] + "-c0" for t, r in self.timeline
                if t == "chat" and r["type"] == "DELIVERABILITY_QUERY"}

    def expected_orders(self):
        """(shop, order) -> status of its last event (the stream never repeats a
        lifecycle step, so the last event by offset is the last by time)."""
        out = {}
        for t, r in self.timeline:
            if t == "order":
                out[(r["shop_id"], r["order_id"])] = r["type"]
        return out

    def expected_presence(self):
        out = {}
        for t, r in self.timeline:
            if t == "agent" and r["type"] == "PRESENCE":
                out[(r["shop_id"], r["agent_id"])] = r["presence"]
        return out

    def expected_couriers(self):
        out = {}
        for t, r in self.timeline:
            if t == "config":
                out[r["shop_id"]] = r["couriers"]
        return out


def produce_chunk(test, chunk):
    """Produces one chunk: JSON records with `kefu produce` (one call per topic, in
    SPEC's input order, so that each topic keeps the chunk's order), raw bytes with
    confluent_kafka."""
    by_topic = {t: [] for t in INPUTS}
    raw = []
    for topic, r in chunk:
        if isinstance(r, tuple) and isinstance(r[1], bytes):
            raw.append((topic, r[0], r[1]))
        elif isinstance(r, tuple):
            by_topic[topic].append(r[1])
        else:
            by_topic[topic].append(r)
    for topic in INPUTS:
        if by_topic[topic]:
            test.produce(topic, by_topic[topic])
    for topic, key, value in raw:
        test.produce_raw(topic, key.encode(), value)


def end_offsets(bootstrap, topics=INPUTS):
    """(topic key, partition) -> high watermark of every keyed input partition."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "end-offsets"})
    out = {}
    try:
        for key in topics:
            md = c.list_topics(TOPICS[key], timeout=10)
            for p in md.topics[TOPICS[key]].partitions:
                lo, hi = c.get_watermark_offsets(TopicPartition(TOPICS[key], p), timeout=10)
                out[(key, p)] = hi
    finally:
        c.close()
    return out


def redis_positions(redis, partitions):
    """(topic key, partition) -> next offset kefu stored in ns:{task-N}:pos."""
    out = {}
    for p in range(partitions):
        lines = redis.cli("HGETALL", "kefu:{task-%d}:pos" % p).split("\n")
        fields = dict(zip(lines[0::2], lines[1::2]))
        for key in INPUTS:
            suffix = TOPICS[key][len("kefu."):]
            if suffix in fields:
                out[(key, p)] = int(fields[suffix])
    return out


def progress(redis, partitions):
    """How many input records kefu has stored a position beyond."""
    return sum(redis_positions(redis, partitions).values())


def caught_up(redis, bootstrap, partitions, ends=None):
    ends = ends or end_offsets(bootstrap)
    pos = redis_positions(redis, partitions)
    return all(pos.get(k, 0) >= hi for k, hi in ends.items())


# -- the three properties --------------------------------------------------------------

def read_inputs(bootstrap):
    """Every input record with partition and offset: [(topic key, partition, offset,
    shop, event_id or None when bad)]."""
    ids, _ = schema_table()
    out = []
    for key in INPUTS:
        for m in read_raw(bootstrap, TOPICS[key]):
            eid = None
            v = m.value()
            if v and v[0] == 0:
                try:
                    rec = decode(ids, v)
                    eid = rec["event_id"]
                except Exception:  # noqa: BLE001 - not decodable: bad
                    eid = None
            shop = m.key().decode() if m.key() else None
            out.append((key, m.partition(), m.offset(), shop, eid))
    return out


def check_state(test, w):
    """(a) no input applied twice: exact state counts in Redis."""
    r = test.redis
    for shop, want in w.expected_dedup().items():
        got = set(r.cli("ZRANGE", "kefu:{%s}:dedup" % shop, "0", "-1").split())
        test.assertEqual(len(got), int(r.cli("ZCARD", "kefu:{%s}:dedup" % shop)))
        test.assertEqual(got, want, "dedup ids of %s: missing %s, extra %s" % (
            shop, sorted(want - got)[:10], sorted(got - want)[:10]))
    wrong = []
    for (shop, oid), status in sorted(w.expected_orders().items()):
        text = r.cli("HGET", "kefu:{%s}:orders" % shop, oid).strip()
        got = json.loads(text)["status"] if text else None
        if got != status:
            wrong.append((shop, oid, status, got))
    test.assertEqual(wrong, [], "orders whose status is not that of their last event "
                                "(shop, order, expected, seen)")
    for (shop, agent), presence in sorted(w.expected_presence().items()):
        got = json.loads(r.cli("HGET", "kefu:{%s}:agents" % shop, agent))
        test.assertEqual(got.get("presence"), presence, (shop, agent))
    for shop, couriers in w.expected_couriers().items():
        got = json.loads(r.cli("GET", "kefu:{%s}:cfg" % shop))
        test.assertEqual(got["couriers"], couriers, shop)
    # applied offsets: per shop and input partition, the last offset of its valid records
    bad_ids = {r["event_id"] for _, _, _, r in w.bad if isinstance(r, dict)}
    want = {}
    for key, part, off, shop, eid in read_inputs(test.broker.bootstrap):
        if eid is None or eid in bad_ids:
            continue
        field = "%s/%d" % (TOPICS[key][len("kefu."):], part)
        want.setdefault(shop, {})
        want[shop][field] = max(off, want[shop].get(field, -1))
    for shop in w.shops:
        lines = r.cli("HGETALL", "kefu:{%s}:applied" % shop).split("\n")
        got = {f: int(v) for f, v in zip(lines[0::2], lines[1::2]) if f}
        test.assertEqual(got, want.get(shop, {}), "applied offsets of " + shop)


def check_outputs(test, w, cards_wanted=None):
    """(b) nothing lost and (c) every copy byte-identical to the first. Returns
    (distinct outputs, repeated copies, per-topic repeated copies)."""
    ids, _ = schema_table()
    boot = test.broker.bootstrap
    distinct, repeats, per_topic = 0, 0, {}
    seen_cards = set()
    for key, id_field in OUTPUT_IDS.items():
        first = {}
        for m in read_raw(boot, TOPICS[key]):
            oid = decode(ids, m.value())[id_field]
            copy = (m.key(), m.value(), m.timestamp(), m.headers())
            if oid in first:
                repeats += 1
                per_topic[key] = per_topic.get(key, 0) + 1
                test.assertEqual(first[oid], copy, "%s %s: a re-emitted copy differs from "
                                 "the first (partition %d offset %d)" % (
                                     key, oid, m.partition(), m.offset()))
            else:
                first[oid] = copy
        distinct += len(first)
        if key == "cards":
            seen_cards = set(first)
    want = w.expected_cards() if cards_wanted is None else cards_wanted
    test.assertEqual(sorted(want - seen_cards), [], "cards lost")
    test.assertEqual(sorted(seen_cards - want), [], "unexpected cards")
    # every bad record on the DLQ, unchanged, each copy identical
    bad_src = {}
    bad_ids = {r["event_id"] for _, _, _, r in w.bad if isinstance(r, dict)}
    for key, part, off, shop, eid in read_inputs(boot):
        if eid is None or eid in bad_ids:
            bad_src["%s/%d/%d" % (TOPICS[key], part, off)] = shop
    test.assertEqual(len(bad_src), len(w.bad))
    dlq = {}
    for m in read_raw(boot, TOPICS["dlq"]):
        h = dict(m.headers() or [])
        src = h.get("kefu.source", b"").decode()
        copy = (m.key(), m.value(), m.timestamp(), m.headers())
        if src in dlq:
            repeats += 1
            per_topic["dlq"] = per_topic.get("dlq", 0) + 1
            test.assertEqual(dlq[src], copy, "DLQ record of %s re-emitted differently" % src)
        else:
            dlq[src] = copy
    test.assertEqual(sorted(dlq), sorted(bad_src), "DLQ sources")
    for src, (k, v, ts, h) in dlq.items():
        test.assertEqual(k.decode(), bad_src[src])
    return distinct, repeats, per_topic


def kefu_args(test, *settings):
    args = [KEFU, "run", "-b", test.broker.bootstrap, "--redis", test.redis.url]
    for s in list(RUN_SETTINGS) + list(settings):
        args += ["--set", s]
    return args


def start_kefu(test, log, *settings):
    return subprocess.Popen(kefu_args(test, *settings), stdout=subprocess.DEVNULL, stderr=log)


def wait_exit(proc, timeout):
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc.poll()
