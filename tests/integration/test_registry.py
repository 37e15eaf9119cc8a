"""SPEC §1.2 with a Schema Registry (DECISIONS 57): kefu against the stand-in of
tests/lib/registry_standin.py, whose ids start at 1000 so they differ from the built-in
ones of schemas/ids.tsv.

- kefu registers each output schema under <topic>-value and its outputs carry the ids
  the registry assigned (decoded here with python3-avro from the registry's text);
- an input written with a registry id kefu did not know (by `kefu produce
  --schema-registry`) is fetched and decoded; an id the registry does not know, and a
  writer's schema that does not resolve against kefu's, go to the DLQ with the reason;
- basic auth: kefu authenticates, and the user info never appears in its log;
- registry down at start: /readyz 503 naming the registry, retried; it comes up ->
  ready and processing;
- registry down while running (SPEC §6: good data is never lost): records with an id kefu
  has not seen wait in their partition's place, /readyz 503 naming the registry, retried;
  nothing to the DLQ; it comes back -> processed, ready; a stop while they wait exits 0
  and leaves them to be read again; a courier-status record waits too (never skipped) and
  is in the table once the registry is back; a rebalance while they wait (the other
  instance of two leaves) revokes their task unprocessed, and its owner reads them
  again and waits for them in turn: nothing lost, nothing to the DLQ, no wedge;
- HTTP 409 on registering (the stand-in's FORBID switch): kefu exits 1 naming the subject;
- TLS: the schema.registry.ssl.* keys reach libcurl: kefu talks to the stand-in over
  HTTPS with mutual TLS (its own CA, a client certificate); without the CA the server's
  certificate is refused and kefu exits 1 saying so (a configuration to fix, not an
  outage to wait for).
"""
import io
import json
import os
import secrets
import shutil
import signal
import struct
import subprocess
import tempfile

import avro.io
import avro.schema

from kefutest import (KEFU, SLOW, SOURCE, TOPICS, KefuTestCase, free_port, http_get,
                      kefu_run_command, main, wait_for)
from registry_standin import Registry

T0 = 1773068400000
OUTPUTS = ["decisions", "invitations", "violations", "responses", "cards", "insights"]


def query(eid, ts):
    return {"event_id": eid, "shop_id": "s1", "ts": ts, "type": "DELIVERABILITY_QUERY",
            "agent_id": "a1", "buyer_id": "b1", "region_code": "440305"}


class RegistryTest(KefuTestCase):
    def start_registry(self, port=0, user_info=None):
        reg = Registry(port, user_info=user_info)
        self.addCleanup(reg.stop)
        return reg

    def produce_registered(self, reg, topic, records, auth=None):
        env = dict(os.environ)
        if auth:
            env["KEFU_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"] = auth
        text = "".join(json.dumps(r) + "\n" for r in records)
        out = subprocess.run([KEFU, "produce", "-b", self.broker.bootstrap, "-t", TOPICS[topic],
                              "--schema-registry", reg.url], input=text, capture_output=True,
                             text=True, env=env)
        self.assertEqual(out.returncode, 0, out.stderr)

    def outputs(self):
        from kefutest import read_raw
        found = []
        for t in OUTPUTS:
            if t not in TOPICS:
                continue
            found += [(TOPICS[t], m.value()) for m in read_raw(self.broker.bootstrap, TOPICS[t])]
        return found

    def test_registered_ids_on_the_wire_unknown_id_to_dlq_basic_auth(self):
        user_info = "kefu:" + secrets.token_hex(8)
        reg = self.start_registry(user_info=user_info)
        self.produce_registered(reg, "chat", [query("q%d" % i, T0 + i) for i in range(5)],
                                auth=user_info)
        chat_id = reg.subjects[TOPICS["chat"] + "-value"][0]
        self.assertGreaterEqual(chat_id, 1000)
        # An id the registry never assigned, on a record otherwise well formed.
        self.produce_raw("chat", b"s1", b"\x00" + struct.pack(">i", 4242) + b"\x00")
        # A writer's schema kefu's chat schema cannot resolve: event_id an int.
        bad = reg.add("elsewhere-value", json.dumps(
            {"type": "record", "name": "ChatEvent", "namespace": "other",
             "fields": [{"name": "event_id", "type": "int"}]}))
        self.produce_raw("chat", b"s1", b"\x00" + struct.pack(">i", bad) + b"\x02")
        env = dict(os.environ, KEFU_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO=user_info)
        args = [KEFU, "run", "-b", self.broker.bootstrap, "--redis", self.redis.url,
                "--exit-when-idle", "--set", "http.listen=", "--set", "idle_advance=false",
                "--set", "log.level=debug", "--set", "schema.registry.url=" + reg.url]
        out = subprocess.run(kefu_run_command(args), capture_output=True, text=True, env=env,
                             timeout=120 * SLOW)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotIn(user_info.split(":")[1], out.stderr)
        # Every output subject registered, with ids of the stand-in.
        for t in OUTPUTS:
            if t in TOPICS and t != "dlq":
                self.assertIn(TOPICS[t] + "-value", reg.subjects)
        outs = self.outputs()
        self.assertTrue(outs, "kefu wrote no output")
        for topic, value in outs:
            self.assertEqual(value[0], 0)
            sid = struct.unpack(">i", value[1:5])[0]
            self.assertEqual(reg.subjects[topic + "-value"], [sid])
            schema = avro.schema.parse(reg.schemas[sid])
            rec = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(value[5:])))
            self.assertIsInstance(rec, dict)
        self.assertIn(("GET", "/schemas/ids/%d" % chat_id), reg.requests)
        # `kefu consume --schema-registry` reads the registry's ids, as python3-avro did;
        # without it the built-in ids cannot decode them, and it says so
        cards = [TOPICS[t] for t in ("cards",) if t in TOPICS]
        for topic in cards:
            args = [KEFU, "consume", "-b", self.broker.bootstrap, "-t", topic,
                    "--from-beginning", "--exit"]
            got = subprocess.run(args + ["--schema-registry", reg.url], capture_output=True,
                                 text=True, env=env, timeout=60 * SLOW)
            self.assertEqual(got.returncode, 0, got.stderr)
            lines = [json.loads(line) for line in got.stdout.splitlines()]
            self.assertEqual(sorted(c["card_id"] for c in lines),
                             sorted("q%d-c0" % i for i in range(5)), got.stderr)
            plain = subprocess.run(args, capture_output=True, text=True, timeout=60 * SLOW)
            self.assertEqual(plain.stdout, "")
            self.assertIn("schema id", plain.stderr)
        self.assertTrue(cards)
        dlq = json.dumps(self.consume("dlq"))
        self.assertIn("schema id 4242: not in the schema registry", dlq)
        self.assertIn("schema id %d cannot be resolved against kefu's schema of %s: "
                      "event_id: the writer's int cannot be read as string" % (bad, TOPICS["chat"]),
                      dlq)

    def test_registry_down_at_start_not_ready_then_ready(self):
        # The inputs carry a registry id: a registry that is down later restarts with it.
        before = Registry()
        self.produce_registered(before, "chat", [query("q%d" % i, T0 + i) for i in range(5)])
        before.stop()
        port, http_port = free_port(), free_port()
        args = [KEFU, "run", "-b", self.broker.bootstrap, "--redis", self.redis.url,
                "--exit-when-idle", "--set", "http.listen=127.0.0.1:%d" % http_port,
                "--set", "idle_advance=false", "--set", "redis.retry_max_ms=500",
                "--set", "schema.registry.url=http://127.0.0.1:%d" % port]
        log = tempfile.NamedTemporaryFile("w+", prefix="kefu-registry-", suffix=".log")
        self.addCleanup(log.close)
        proc = subprocess.Popen(kefu_run_command(args), stderr=log, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())

        def not_ready():
            status, body = http_get(http_port, "/readyz", timeout=2)
            return status == 503 and "schema registry" in body
        wait_for(not_ready, 30 * SLOW, "/readyz 503 naming the registry")
        def retried():
            with open(log.name) as f:
                return f.read().count("retrying") >= 2
        wait_for(retried, 30 * SLOW, "retries")
        reg = Registry(port, state_of=before)
        self.addCleanup(reg.stop)
        self.assertEqual(proc.wait(120 * SLOW), 0)
        self.assertIn(TOPICS["decisions"] + "-value", reg.subjects)
        outs = self.outputs()
        self.assertTrue(outs)
        for topic, value in outs:
            self.assertGreaterEqual(struct.unpack(">i", value[1:5])[0], 1000)

    # -- a registry outage while kefu runs ----------------------------------------------
    def new_id(self, reg, topic="chat", avsc="chat_event.avsc"):
        """A writer's schema of @p topic that kefu has not seen: kefu's own with another
        doc (the stand-in gives it its own id; the datum is the same)."""
        with open(os.path.join(SOURCE, "schemas", avsc)) as f:
            doc = json.load(f)
        doc["doc"] = "as another producer registered it"
        text = json.dumps(doc)
        return reg.add(TOPICS[topic] + "-value", text), avro.schema.parse(text)

    def produce_with_id(self, sid, schema, records, topic="chat", key=lambda r: r["shop_id"]):
        for r in records:
            datum = {f.name: r.get(f.name, f.default) for f in schema.fields}
            buf = io.BytesIO()
            avro.io.DatumWriter(schema).write(datum, avro.io.BinaryEncoder(buf))
            self.produce_raw(topic, key(r).encode(),
                             b"\x00" + struct.pack(">i", sid) + buf.getvalue())

    def start_running(self, reg, http_port):
        args = [KEFU, "run", "-b", self.broker.bootstrap, "--redis", self.redis.url,
                "--set", "http.listen=127.0.0.1:%d" % http_port, "--set", "idle_advance=false",
                "--set", "task_idle_ms=200", "--set", "redis.retry_max_ms=400",
                "--set", "schema.registry.url=" + reg.url,
                # every rebalance on the mock cluster waits session.timeout.ms - 1 s
                "--set", "kafka.session.timeout.ms=3000",
                "--set", "kafka.heartbeat.interval.ms=300"]
        log = tempfile.NamedTemporaryFile("w+", prefix="kefu-registry-", suffix=".log")
        self.addCleanup(log.close)
        proc = subprocess.Popen(kefu_run_command(args), stderr=log, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        self.kefu_log = log
        return proc, log

    def wait(self, predicate, timeout, what):
        """wait_for, with the tail of kefu's log in the failure."""
        try:
            return wait_for(predicate, timeout, what)
        except AssertionError as e:
            with open(self.kefu_log.name) as f:
                raise AssertionError("%s; kefu's log ends:\n%s" % (e, f.read()[-4000:]))

    def two_ports(self):
        port = free_port()
        other = free_port()
        while other == port:
            other = free_port()
        return port, other

    def decoded_outputs(self, reg):
        found = []
        for topic, value in self.outputs():
            schema = avro.schema.parse(reg.schemas[struct.unpack(">i", value[1:5])[0]])
            found.append(avro.io.DatumReader(schema).read(
                avro.io.BinaryDecoder(io.BytesIO(value[5:]))))
        return json.dumps(found, default=str)

    def dlq_count(self):
        from kefutest import read_raw
        return len(read_raw(self.broker.bootstrap, TOPICS["dlq"]))

    def partition_of(self, key):
        """The partition a Java producer puts @p key in: Kafka's murmur2 (positive) mod n."""
        m, h = 0x5BD1E995, 0x9747B28C ^ len(key)
        for i in range(0, len(key) - len(key) % 4, 4):
            k = int.from_bytes(key[i:i + 4], "little") * m & 0xFFFFFFFF
            k = (k ^ k >> 24) * m & 0xFFFFFFFF
            h = (h * m & 0xFFFFFFFF) ^ k
        tail = key[len(key) - len(key) % 4:]
        for i in reversed(range(len(tail))):
            h ^= tail[i] << (8 * i)
        if tail:
            h = h * m & 0xFFFFFFFF
        h = (h ^ h >> 13) * m & 0xFFFFFFFF
        h ^= h >> 15
        return (h & 0x7FFFFFFF) % self.partitions

    def chat_lag(self, http_port):
        """The highest kefu_consumer_lag of the chat partitions."""
        lags = [float(line.split()[-1]) for line in http_get(http_port, "/metrics")[1].splitlines()
                if line.startswith("kefu_consumer_lag{") and TOPICS["chat"] in line]
        return max(lags) if lags else None

    def ready(self, http_port):
        return http_get(http_port, "/readyz", timeout=2)[0] == 200

    def wait_outage_seen(self, log, http_port):
        def not_ready():
            status, body = http_get(http_port, "/readyz", timeout=2)
            return status == 503 and "schema registry" in body
        self.wait(not_ready, 30 * SLOW, "/readyz 503 naming the schema registry")

        def retried():
            with open(log.name) as f:
                return f.read().count("schema registry unavailable") >= 3
        self.wait(retried, 30 * SLOW, "the log's retries")

    def running_with_a_first_output(self):
        """A registry and kefu on it, which has written the outputs of a first record:
        (registry, its port, kefu, log, http port)."""
        port, http_port = self.two_ports()
        reg = Registry(port)
        self.addCleanup(reg.stop)
        proc, log = self.start_running(reg, http_port)
        self.produce_registered(reg, "chat", [query("q0", T0)])
        self.wait(lambda: "q0" in self.decoded_outputs(reg), 60 * SLOW,
                  "the first record's outputs")
        return reg, port, proc, log, http_port

    def outage(self, reg, log, http_port):
        """@p reg stops, and records of an id kefu has not seen come to shop s1's task,
        whose owner is the kefu at @p http_port (its log @p log): they wait. Their ids."""
        self.wait(lambda: self.ready(http_port), 30 * SLOW, "/readyz 200")
        sid, schema = self.new_id(reg)
        reg.stop()
        eids = ["late%d" % i for i in range(3)]
        self.produce_with_id(sid, schema, [query(e, T0 + 1000 + i) for i, e in enumerate(eids)])
        self.wait_outage_seen(log, http_port)
        self.assertIn("\nkefu_ready 0", http_get(http_port, "/metrics")[1])  # as /readyz
        self.assertEqual(self.dlq_count(), 0, "a record went to the DLQ during the outage")
        return eids

    def start_outage(self):
        """kefu running on a registry that then stops, with records of an id kefu has
        not seen on the topic. Returns (registry, its port, kefu, log, http port, ids)."""
        reg, port, proc, log, http_port = self.running_with_a_first_output()
        return reg, port, proc, log, http_port, self.outage(reg, log, http_port)

    def others_go_on(self, reg):
        """The other tasks go on while s1's records wait: queries of shops on other
        partitions, with the id kefu knows, are answered while the registry is down."""
        chat_id = reg.subjects[TOPICS["chat"] + "-value"][0]
        held = self.partition_of(b"s1")
        others = [s for s in ("s%d" % i for i in range(2, 12))
                  if self.partition_of(s.encode()) != held]
        self.produce_with_id(chat_id, avro.schema.parse(reg.schemas[chat_id]),
                             [dict(query("other-" + s, T0 + 6000), shop_id=s) for s in others])
        self.wait(lambda: all("other-" + s in self.decoded_outputs(reg) for s in others),
                  60 * SLOW, "the other tasks' outputs while the records wait")

    def test_SPEC_6_DECISIONS_57_registry_outage_while_running_holds_the_records_and_resumes(self):
        reg, port, proc, log, http_port, eids = self.start_outage()
        # The waiting task's lag counts its waiting records and what came after them.
        chat_id = reg.subjects[TOPICS["chat"] + "-value"][0]
        self.produce_with_id(chat_id, avro.schema.parse(reg.schemas[chat_id]),
                             [query("more%d" % i, T0 + 5000 + i) for i in range(2)])
        self.wait(lambda: self.chat_lag(http_port) == len(eids) + 2, 30 * SLOW,
                  "kefu_consumer_lag of the waiting partition")
        self.others_go_on(reg)
        self.assertEqual(http_get(http_port, "/readyz", timeout=2)[0], 503)
        out = self.decoded_outputs(reg)
        for e in eids:
            self.assertNotIn(e, out)
        back = Registry(port, state_of=reg)
        self.addCleanup(back.stop)
        self.wait(lambda: all(e in self.decoded_outputs(back) for e in eids), 60 * SLOW,
                  "the waiting records' outputs")
        self.wait(lambda: self.ready(http_port), 30 * SLOW, "/readyz 200 again")
        self.wait(lambda: "more1" in self.decoded_outputs(back), 60 * SLOW,
                  "the records after them")
        self.wait(lambda: self.chat_lag(http_port) == 0, 30 * SLOW, "no lag")
        self.assertEqual(self.dlq_count(), 0)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(60 * SLOW), 0)
        with open(log.name) as f:
            text = f.read()
        self.assertIn("retrying in", text)
        self.assertIn("schema registry reachable again", text)

    def owned(self, http_port):
        """The tasks the instance at @p http_port owns (kefu_task_assigned 1)."""
        status, body = http_get(http_port, "/metrics", timeout=2)
        return {int(line.split('task="')[1].split('"')[0]) for line in body.splitlines()
                if status == 200 and line.startswith("kefu_task_assigned{") and
                line.endswith(" 1")}

    def test_SPEC_6_registry_outage_rebalance_while_waiting_loses_nothing(self):
        """A rebalance while records wait for the registry (DECISIONS 57). Two instances
        run; the registry stops and records of an id neither has seen come to one
        task. Its owner waits (not ready, nothing to the DLQ). The other instance
        leaves: the group rebalances, every task of the owner is revoked, the waiting
        records dropped unprocessed with their queues, and all four tasks are assigned
        to it again. It reads the records again from the uncommitted position and waits
        for them in turn, while its other tasks go on. Once the registry is back their
        outputs come, the lag is 0, and it stops with exit 0."""
        port, ha = self.two_ports()
        hb = free_port()
        while hb in (port, ha):
            hb = free_port()
        reg = Registry(port)
        self.addCleanup(reg.stop)
        a = self.start_running(reg, ha)
        b = self.start_running(reg, hb)
        self.wait(lambda: self.owned(ha) and self.owned(hb) and
                  len(self.owned(ha) | self.owned(hb)) == self.partitions, 90 * SLOW,
                  "both instances to own tasks")
        self.produce_registered(reg, "chat", [query("q0", T0)])
        self.wait(lambda: "q0" in self.decoded_outputs(reg), 60 * SLOW,
                  "the first record's outputs")
        held = self.partition_of(b"s1")
        (owner, oport), (other, _) = (a, ha), (b, hb)
        if held not in self.owned(ha):
            (owner, oport), (other, _) = (b, hb), (a, ha)
        proc, log = owner
        self.kefu_log = log
        eids = self.outage(reg, log, oport)
        with open(log.name) as f:
            revoked_before = f.read().count("revoked task %d" % held)
        other[0].send_signal(signal.SIGTERM)  # the rebalance, with the records waiting
        self.assertEqual(other[0].wait(60 * SLOW), 0)
        self.wait(lambda: len(self.owned(oport)) == self.partitions, 60 * SLOW,
                  "every task assigned to the remaining instance")
        with open(log.name) as f:
            self.assertGreater(f.read().count("revoked task %d" % held), revoked_before,
                               "the waiting task was not revoked in the rebalance")
        # waiting again, after reading them again: /readyz 503 and more retries
        with open(log.name) as f:
            retries = f.read().count("schema registry unavailable")

        def retried_again():
            with open(log.name) as f:
                return f.read().count("schema registry unavailable") >= retries + 2
        self.wait(retried_again, 30 * SLOW, "the retries after the rebalance")
        status, body = http_get(oport, "/readyz", timeout=2)
        self.assertEqual(status, 503, body)
        self.assertIn("schema registry", body)
        self.others_go_on(reg)
        out = self.decoded_outputs(reg)
        for e in eids:
            self.assertNotIn(e, out)
        self.assertEqual(self.dlq_count(), 0, "a record went to the DLQ during the outage")
        back = Registry(port, state_of=reg)
        self.addCleanup(back.stop)
        self.wait(lambda: all(e in self.decoded_outputs(back) for e in eids), 60 * SLOW,
                  "the waiting records' outputs")
        self.wait(lambda: self.ready(oport), 30 * SLOW, "/readyz 200 again")
        self.wait(lambda: self.chat_lag(oport) == 0, 30 * SLOW, "no lag")
        self.assertEqual(self.dlq_count(), 0)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(60 * SLOW), 0)

    def test_SPEC_6_registry_outage_stop_while_waiting_exits_cleanly_and_loses_nothing(self):
        reg, port, proc, log, http_port, eids = self.start_outage()
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(15 * SLOW), 0)  # promptly, records waiting or not
        # Nothing of the waiting records was committed: the next run reads them again.
        back = Registry(port, state_of=reg)
        self.addCleanup(back.stop)
        proc, log = self.start_running(back, free_port())
        self.wait(lambda: all(e in self.decoded_outputs(back) for e in eids), 60 * SLOW,
                  "the records' outputs after the restart")
        self.assertEqual(self.dlq_count(), 0)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(60 * SLOW), 0)

    def test_SPEC_6_DELIV_registry_outage_courier_status_record_waits_then_applies(self):
        reg, port, proc, log, http_port = self.running_with_a_first_output()
        self.assertNotIn("TEMPORARY_CONTROL", self.decoded_outputs(reg))
        sid, schema = self.new_id(reg, "courier", "courier_status.avsc")
        reg.stop()
        # ZTO cannot deliver to any 44 region code (DELIV-2): what the query below asks.
        self.produce_with_id(sid, schema, [
            {"courier": "ZTO", "region_code": "44", "deliverable": False,
             "reason": "TEMPORARY_CONTROL", "valid_from": T0 - 86400000}],
            topic="courier", key=lambda r: r["courier"] + "|" + r["region_code"])
        self.wait_outage_seen(log, http_port)
        back = Registry(port, state_of=reg)
        self.addCleanup(back.stop)

        def applied():
            with open(log.name) as f:
                return "learnt schema id %d of %s" % (sid, TOPICS["courier"]) in f.read()
        self.wait(applied, 30 * SLOW, "the courier-status record learnt")
        self.wait(lambda: self.ready(http_port), 30 * SLOW, "/readyz 200 again")
        self.produce_registered(back, "chat",
                                [dict(query("q1", T0 + 1000), couriers=["ZTO"])])
        self.wait(lambda: "q1" in self.decoded_outputs(back), 60 * SLOW, "the query's outputs")
        self.assertIn("TEMPORARY_CONTROL", self.decoded_outputs(back))
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(30 * SLOW), 0)
        with open(log.name) as f:
            self.assertNotIn("skipping courier-status record", f.read())

    def test_incompatible_409_stops_kefu_naming_the_subject(self):
        reg = self.start_registry()
        reg.compat[TOPICS["decisions"] + "-value"] = "FORBID"
        err = self.run_kefu("schema.registry.url=" + reg.url, expect=1)
        self.assertIn("subject %s-value" % TOPICS["decisions"], err)
        self.assertIn("incompatible", err)
        self.assertIn("HTTP 409", err)

    def make_certs(self):
        """A CA, a server certificate for 127.0.0.1 and a client certificate, by openssl
        in a temporary directory: their paths."""
        d = tempfile.mkdtemp(prefix="kefu-tls-")
        self.addCleanup(shutil.rmtree, d, True)
        p = lambda name: os.path.join(d, name)

        def ssl_(*args):
            subprocess.run(["openssl"] + list(args), check=True, capture_output=True)
        ssl_("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=kefu test CA", "-keyout", p("ca.key"), "-out", p("ca.pem"))
        with open(p("san.cnf"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n")
        for who, ext in (("server", ["-extfile", p("san.cnf")]), ("client", [])):
            ssl_("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + who,
                 "-keyout", p(who + ".key"), "-out", p(who + ".csr"))
            ssl_("x509", "-req", "-in", p(who + ".csr"), "-CA", p("ca.pem"), "-CAkey",
                 p("ca.key"), "-CAcreateserial", "-days", "2", "-out", p(who + ".pem"), *ext)
        return p

    def test_tls_options_reach_libcurl(self):
        p = self.make_certs()
        # the input carries a registry id: registered over HTTP, then served over HTTPS
        plain = Registry()
        self.produce_registered(plain, "chat", [query("q1", T0)])
        plain.stop()
        reg = Registry(tls=(p("server.pem"), p("server.key"), p("ca.pem")), state_of=plain)
        self.addCleanup(reg.stop)
        self.assertTrue(reg.url.startswith("https://"))
        tls = ["schema.registry.url=" + reg.url,
               "schema.registry.ssl.ca.location=" + p("ca.pem"),
               "schema.registry.ssl.certificate.location=" + p("client.pem"),
               "schema.registry.ssl.key.location=" + p("client.key")]
        self.run_kefu(*tls)
        self.assertIn(TOPICS["decisions"] + "-value", reg.subjects)
        outs = self.outputs()
        self.assertTrue(outs)
        for topic, value in outs:
            self.assertGreaterEqual(struct.unpack(">i", value[1:5])[0], 1000)
        # without the CA: the server's certificate is not trusted, and kefu stops saying so
        err = self.run_kefu(tls[0], *tls[2:], expect=1)
        self.assertIn("schema registry", err)
        self.assertIn("certificate", err.lower())


if __name__ == "__main__":
    main()
