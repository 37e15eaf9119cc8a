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
import os
import random
import subprocess
import threading
import time

from kefutest import (KEFU, SLOW, TOPICS, decode, kefu_run_command, schema_table, seen_count,
                      seen_ids)

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

def seed_from_env():
    """KEFU_CRASH_SEED when set (to reproduce a run), else a fresh random seed."""
    text = os.environ.get("KEFU_CRASH_SEED", "").strip()
    return int(text) if text else random.SystemRandom().randrange(1, 10 ** 6)


RUN_SETTINGS = ["batch.max_records=20", "batch.max_ms=10", "http.listen=",
                "idle_advance=false", "task_idle_ms=%d" % (100 * SLOW)]


class Workload:
    """The records of one seeded stream, in production order per input topic, and what
    kefu must have made of them."""

    def __init__(self, rng, shops=8, events=3000, duplicates=12, bad=8, t0=T0):
        self.rng = rng
        self.shops = ["shop%d" % i for i in range(shops)]
        self.timeline = []    # (topic, record), in event-time order
        self.duplicates = []  # (position, (topic, record)): produced again, applied once
        self.bad = []         # (position, topic, shop, record or raw bytes): to the DLQ
        self._orders = {s: {} for s in self.shops}  # order_id -> (next step, buyer)
        self._n = 0
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
                    "event_id": "bad%d" % k, "shop_id": s, "ts": t0 + at,
                    "type": "DELIVERABILITY_QUERY", "agent_id": "a1",
                    "buyer_id": "not valid", "region_code": "440305"}))
            elif topic == "order":
                self.bad.append((at, topic, s, {
                    "event_id": "bad%d" % k, "shop_id": s, "ts": t0 + at,
                    "type": "PAID", "buyer_id": "b{1}", "order_id": "o1"}))
            else:
                self.bad.append((at, topic, s, {
                    "event_id": "bad%d" % k, "shop_id": s, "ts": 946684799999,
                    "type": "PRESENCE", "agent_id": "a1", "presence": "ONLINE"}))

    # -- generators ---------------------------------------------------------------------
    def _eid(self, kind):
        self._n += 1
        return "%s%d" % (kind, self._n)

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
            oid = "ord%d" % self._n
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
    """(topic key, partition) -> high watermark of every partition of @p topics (the
    keyed inputs unless told)."""
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
        fields = hgetall(redis, "kefu:{task-%d}:pos" % p)
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

def read_all(bootstrap, topic):
    """Every record of @p topic with its raw bytes (python3-confluent-kafka, no kefu
    code), read in batches to the end of every partition."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "workload-reader",
                  "enable.partition.eof": True, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    try:
        md = c.list_topics(topic, timeout=10)
        parts = [TopicPartition(topic, p, 0) for p in md.topics[topic].partitions]
        c.assign(parts)
        out, eof = [], set()
        deadline = time.monotonic() + 60
        while len(eof) < len(parts):
            if time.monotonic() > deadline:
                raise AssertionError("reading %s: no end of partitions %s" % (
                    topic, sorted(set(range(len(parts))) - eof)))
            for m in c.consume(1000, 0.05):
                if m.error():
                    eof.add(m.partition())
                else:
                    out.append(m)
        return out
    finally:
        c.close()


def read_inputs(bootstrap):
    """Every input record with partition and offset: [(topic key, partition, offset,
    shop, event_id or None when bad)]."""
    ids, _ = schema_table()
    out = []
    for key in INPUTS:
        for m in read_all(bootstrap, TOPICS[key]):
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


def hgetall(redis, key):
    lines = redis.cli("HGETALL", key).split("\n")
    return {f: v for f, v in zip(lines[0::2], lines[1::2]) if f}


def check_state(test, w, inputs):
    """(a) no input applied twice: exact state counts in Redis."""
    r = test.redis
    shops = {s: r.state(s) for s in w.shops}
    for shop, want in w.expected_dedup().items():
        # every expected id's hash, and nothing else: as many entries as expected ids
        got = seen_ids(r, shop, want)
        n = seen_count(r, shop, shops[shop])
        test.assertEqual((got, n), (want, len(want)), "dedup ids of %s: missing %s, %d "
                         "entries for %d ids" % (shop, sorted(want - got)[:10], n, len(want)))
    orders = {s: r.state(s, "orders") for s in w.shops}
    wrong = []
    for (shop, oid), status in sorted(w.expected_orders().items()):
        order = orders[shop].get(oid)
        got = order["status"] if order else None
        if got != status:
            wrong.append((shop, oid, status, got))
    test.assertEqual(wrong, [], "orders whose status is not that of their last event "
                                "(shop, order, expected, seen)")
    test.assertEqual(sum(len(o) for o in orders.values()), len(w.expected_orders()))
    agents = {s: r.state(s, "agents") for s in w.shops}
    for (shop, agent), presence in sorted(w.expected_presence().items()):
        got = agents[shop][agent]
        test.assertEqual(got.get("presence"), presence, (shop, agent))
    for shop, couriers in w.expected_couriers().items():
        got = shops[shop]["config"]
        test.assertEqual(got["couriers"], couriers, shop)
    # applied offsets: per shop and input partition, the last offset of its valid records
    bad_ids = {r["event_id"] for _, _, _, r in w.bad if isinstance(r, dict)}
    want = {}
    for key, part, off, shop, eid in inputs:
        if eid is None or eid in bad_ids:
            continue
        field = "%s/%d" % (TOPICS[key][len("kefu."):], part)
        want.setdefault(shop, {})
        want[shop][field] = max(off, want[shop].get(field, -1))
    for shop in w.shops:
        got = {f: int(v) for f, v in shops[shop]["applied"].items()}
        test.assertEqual(got, want.get(shop, {}), "applied offsets of " + shop)


def read_outputs(bootstrap):
    """Every output copy, DLQ included: [(topic key, partition, offset, id, cause,
    (key, value, timestamp, headers))]. The id of a DLQ record is its source."""
    ids, _ = schema_table()
    out = []
    for key in list(OUTPUT_IDS) + ["dlq"]:
        for m in read_all(bootstrap, TOPICS[key]):
            h = dict(m.headers() or [])
            if key == "dlq":
                oid = cause = h.get("kefu.source", b"").decode()
            else:
                oid = decode(ids, m.value())[OUTPUT_IDS[key]]
                cause = h.get("kefu.cause", b"").decode()
            out.append((key, m.partition(), m.offset(), oid, cause,
                        (m.key(), m.value(), m.timestamp(), m.headers())))
    return out


def check_outputs(test, w, inputs, outputs):
    """(b) nothing lost and (c) every copy byte-identical to the first. Returns
    (distinct outputs, repeated copies, per-topic repeated copies)."""
    first, repeats, per_topic = {}, 0, {}
    for key, part, off, oid, cause, copy in outputs:
        if (key, oid) in first:
            repeats += 1
            per_topic[key] = per_topic.get(key, 0) + 1
            test.assertEqual(first[(key, oid)], copy, "%s %s: a re-emitted copy differs from "
                             "the first (partition %d offset %d)" % (key, oid, part, off))
        else:
            first[(key, oid)] = copy
    cards = {oid for key, oid in first if key == "cards"}
    want = w.expected_cards()
    test.assertEqual(sorted(want - cards), [], "cards lost")
    test.assertEqual(sorted(cards - want), [], "unexpected cards")
    # every bad record on the DLQ, unchanged, with its key
    bad = {}
    bad_ids = {r["event_id"] for _, _, _, r in w.bad if isinstance(r, dict)}
    for key, part, off, shop, eid in inputs:
        if eid is None or eid in bad_ids:
            bad["%s/%d/%d" % (TOPICS[key], part, off)] = shop
    test.assertEqual(len(bad), len(w.bad))
    dlq = {oid: copy for key, oid in first if key == "dlq" for copy in [first[(key, oid)]]}
    test.assertEqual(sorted(dlq), sorted(bad), "DLQ sources")
    for src, (k, v, ts, h) in dlq.items():
        test.assertEqual(k.decode(), bad[src], src)
    return len(first) - len(dlq), repeats, per_topic


def output_ends(bootstrap):
    """(output topic key, partition) -> end offset, DLQ included."""
    return end_offsets(bootstrap, list(OUTPUT_IDS) + ["dlq"])


def committed_offsets(bootstrap, partitions, group="kefu"):
    """(input topic key, partition) -> the consumer group's committed offset in Kafka
    (at_least_once commits; the mock cluster does not store transactional ones)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        tps = [TopicPartition(TOPICS[k], p) for k in INPUTS for p in range(partitions)]
        got = c.committed(tps, timeout=10)
    finally:
        c.close()
    key_of = {TOPICS[k]: k for k in INPUTS}
    return {(key_of[tp.topic], tp.partition): tp.offset for tp in got if tp.offset >= 0}


def after_kill(test, partitions, group="kefu", tasks=None):
    """What a kill left behind: the output end offsets and, per input partition, where
    the next owner starts (the later of Kafka's committed offset and Redis's position,
    as kefu does on assignment). @p tasks: the tasks the killed instance held (None:
    all)."""
    pos = redis_positions(test.redis, partitions)
    for k, v in committed_offsets(test.broker.bootstrap, partitions, group).items():
        pos[k] = max(v, pos.get(k, 0))
    return {"ends": output_ends(test.broker.bootstrap), "pos": pos, "tasks": tasks}


def check_reemitted(test, outputs, kills):
    """On the mock cluster a read_committed reader also sees what a killed run wrote in
    its open transaction, so that a copy exists proves nothing for such an output. So:
    every output a killed run wrote for an input at or beyond where the next run starts
    (not covered by a commit) must be written again by a later run. @p kills: one
    after_kill() per kill, in order. Returns how many such outputs there were."""
    needed, missing = reemit_missing(outputs, kills)
    test.assertEqual(missing, [], "outputs of uncommitted inputs written by a killed run "
                                  "and never written again")
    return needed


def reemit_missing(outputs, kills):
    """check_reemitted without the assertion: (outputs that had to be written again,
    descriptions of those that were not)."""
    by_id = {}
    for key, part, off, oid, cause, copy in outputs:
        by_id.setdefault((key, oid), []).append((part, off))
    key_of = {v: k for k, v in TOPICS.items()}
    start, needed, missing = {}, 0, []
    for i, kill in enumerate(kills):
        for key, part, off, oid, cause, copy in outputs:
            if not start.get((key, part), 0) <= off < kill["ends"][(key, part)]:
                continue  # not written by run i
            if cause.count("/") < 2:
                continue  # an idle tick's outputs have no input
            topic, in_part, in_off = cause.rsplit("/", 2)
            if kill["tasks"] is not None and int(in_part) not in kill["tasks"]:
                continue  # written by another instance
            if int(in_off) < kill["pos"].get((key_of[topic], int(in_part)), 0):
                continue  # its input was committed
            needed += 1
            if not any(o >= kill["ends"][(key, p)] for p, o in by_id[(key, oid)]):
                missing.append("run %d: %s %s (cause %s) at %d/%d" % (
                    i, key, oid, cause, part, off))
        start = kill["ends"]
    return needed, missing


def kefu_args(test, *settings):
    args = [KEFU, "run", "-b", test.broker.bootstrap, "--redis", test.redis.url]
    for s in list(RUN_SETTINGS) + list(settings):
        args += ["--set", s]
    return args


def start_kefu(test, log, *settings):
    return subprocess.Popen(kefu_run_command(kefu_args(test, *settings)),
                            stdout=subprocess.DEVNULL, stderr=log)


def wait_exit(proc, timeout):
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc.poll()


def verify(test, w, kills=()):
    """All three properties; returns (distinct outputs, repeated copies, per topic,
    outputs of killed runs' uncommitted inputs that were written again)."""
    inputs = read_inputs(test.broker.bootstrap)
    outputs = read_outputs(test.broker.bootstrap)
    check_state(test, w, inputs)
    stats = check_outputs(test, w, inputs, outputs)
    return stats + (check_reemitted(test, outputs, kills),)


def assigned_tasks(log_path):
    """The tasks an instance holds, replayed from its log's assignment lines
    ("assigned kefu.<topic> [N] ...", "revoked task N")."""
    import re
    held = set()
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                m = re.search(r"assigned \S+ \[(\d+)\]", line)
                if m:
                    held.add(int(m.group(1)))
                m = re.search(r"revoked task (\d+)", line)
                if m:
                    held.discard(int(m.group(1)))
    except OSError:
        pass
    return held


def log_lines(log_path, levels=("WARN", "ERROR", "FATAL")):
    """The lines of a kefu log at the given levels (for failure reports)."""
    try:
        with open(log_path, errors="replace") as f:
            return [line.rstrip() for line in f if any(" %s " % lv in line for lv in levels)]
    except OSError:
        return []


def remembered_outputs(redis, partitions):
    """task -> causes still in ns:{task-N}:out (outputs remembered until their commit is
    known; after a clean final run nothing should be left)."""
    out = {}
    for p in range(partitions):
        fields = hgetall(redis, "kefu:{task-%d}:out" % p)
        if fields:
            out[p] = sorted(fields)
    return out


def tally(test, w, inputs, outputs, kills):
    """The three properties as counts, for the fault matrix's lines (verify() asserts
    them exactly): (inputs applied twice or copies that differ, inputs or outputs lost,
    whether every re-emitted copy is byte-identical)."""
    r = test.redis
    twice = lost = 0
    expected = w.expected_dedup()
    seen = {s: seen_ids(r, s, expected[s]) for s in w.shops}
    for shop, want in expected.items():
        lost += len(want - seen[shop])
    # The last event of an order (or of an agent's presence) applied (its id seen) but
    # another status left: an older event applied again. Not applied: lost, or not yet
    # processed when the run gave up.
    last = {}
    for topic, rec in w.timeline:
        if topic == "order":
            last[("o", rec["shop_id"], rec["order_id"])] = (rec["event_id"], rec["type"])
        elif topic == "agent" and rec["type"] == "PRESENCE":
            last[("a", rec["shop_id"], rec["agent_id"])] = (rec["event_id"], rec["presence"])
    tables = {(kind, s): r.state(s, name)
              for kind, name in (("o", "orders"), ("a", "agents")) for s in w.shops}
    for (kind, shop, ident), (eid, value) in last.items():
        entity = tables[(kind, shop)].get(ident)
        got = entity.get("status" if kind == "o" else "presence") if entity else None
        if eid not in seen[shop]:
            continue  # counted as lost above
        if got != value:
            twice += 1
    first, differ = {}, 0
    for key, part, off, oid, cause, copy in outputs:
        if (key, oid) in first:
            differ += first[(key, oid)] != copy  # a query applied twice: another cause
        else:
            first[(key, oid)] = copy
    cards = {oid for key, oid in first if key == "cards"}
    lost += len(w.expected_cards() - cards)
    bad_ids = {rec["event_id"] for _, _, _, rec in w.bad if isinstance(rec, dict)}
    bad = {"%s/%d/%d" % (TOPICS[k], p, o) for k, p, o, s, eid in inputs
           if eid is None or eid in bad_ids}
    lost += len(bad - {oid for key, oid in first if key == "dlq"})
    lost += len(reemit_missing(outputs, kills)[1])
    return twice + differ, lost, differ == 0


class Sampler(threading.Thread):
    """kefu's progress (inputs whose position is stored) every 0.1 s, with the time."""

    def __init__(self, redis, partitions):
        super().__init__(daemon=True)
        self.redis, self.partitions = redis, partitions
        self.samples, self.stop = [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.samples.append((time.time(), progress(self.redis, self.partitions)))
            self.stop.wait(0.1)

    def recovery(self, since):
        """Seconds from @p since to the first sample that shows progress beyond the last
        one before it; 0 when nothing was left to do, None when it never came."""
        base = None
        for t, n in self.samples:
            if t <= since:
                base = n
            elif base is None:
                base = n
            elif n > base:
                return t - since
        return None


def check_remembered(test, guarantee, partitions):
    """Remembered outputs are dropped once their commit is known. With exactly_once the
    mock cluster never stores transactional offsets, so every uncommitted position is
    read again and its outputs dropped then; at_least_once: a kill between the offset
    commit and the Redis write may leave some behind for good (reported, not asserted)."""
    left = remembered_outputs(test.redis, partitions)
    if guarantee == "exactly_once":
        test.assertEqual(left, {}, "remembered outputs never dropped")
    elif left:
        print("remembered outputs left behind: %s" % left)


def print_failure(what, seed, logdir, report, log_paths, head=8, tail=8):
    """What a failed run leaves for its reader: the seed, the kept logs, the test's own
    report lines, and the first and last warnings and errors of every kefu log."""
    print("FAILED %s with KEFU_CRASH_SEED=%d; kefu logs kept in %s" % (what, seed, logdir))
    for line in report:
        print("  " + line)
    for path in log_paths:
        lines = [line for line in log_lines(path) if "ignoring KEFU_" not in line and
                 "CONFWARN" not in line]  # start-up noise: the environment, shared settings
        if len(lines) > head + tail:
            lines = lines[:head] + ["..."] + lines[-tail:]
        for line in lines:
            print("  %s: %s" % (os.path.basename(path), line))
