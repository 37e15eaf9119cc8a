"""SPEC §7: `kefu archive` copies topics into Avro object container files.

Against `kefu broker` (librdkafka's mock cluster), records are written with `kefu
produce` (Avro values) and with python3-confluent-kafka (a tombstone, headers with and
without values, binary and empty keys and values, an aborted and a committed
transaction: librdkafka 2.0.2's mock cluster serves aborted records to read_committed
consumers too, so the test checks that kefu archives what a read_committed
python3-confluent-kafka consumer reads, not that aborted records are left out; it also
answers -1 to every offsetsForTimes query, so --from-ts runs through kefu's fallback,
see src/cli/archive_run.c). Every archive file is read with python3-avro's
DataFileReader (no kefu code) and compared, record by record, with what
python3-confluent-kafka reads from the cluster: topic, partition, offset, timestamp,
key, value bytes and headers. The manifest must list every partition (empty ones too)
with its offsets and counts. Also --from-ts/--until-ts, per-partition --from/--until
offsets, --follow until SIGTERM, and the usage errors (exit 2, one line).
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

from kefutest import KEFU, Broker, main, read_raw, wait_for

T0 = 1773068400000
AGENT, CHAT, ORDER = "kefu.agent.events", "kefu.chat.events", "kefu.order.events"


def read_archive_file(path):
    import avro.datafile
    import avro.io
    with open(path, "rb") as f:
        reader = avro.datafile.DataFileReader(f, avro.io.DatumReader())
        schema = reader.datum_reader.writers_schema
        records = list(reader)
        reader.close()
    return schema, records


def kafka_view(m):
    """A confluent_kafka message as the archive keeps it."""
    ts_type, ts = m.timestamp()
    return {"topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
            "timestamp": ts, "key": m.key(), "value": m.value(),
            "headers": [{"key": k, "value": v} for k, v in (m.headers() or [])]}


class ArchiveTest(unittest.TestCase):
    partitions = 3

    def setUp(self):
        self.broker = Broker(self.partitions)
        self.addCleanup(self.broker.stop)
        self.tmp = tempfile.mkdtemp(prefix="kefu-archive-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    # -- helpers --------------------------------------------------------------------
    def produce_agents(self, n, t0=T0):
        text = "".join(json.dumps({"event_id": "a%d" % i, "shop_id": "s%d" % (i % 5),
                                   "ts": t0 + i, "type": "PRESENCE", "agent_id": "ag%d" % i,
                                   "presence": "ONLINE"}) + "\n" for i in range(n))
        out = subprocess.run([KEFU, "produce", "-b", self.broker.bootstrap, "-t", AGENT],
                             input=text, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)

    def produce_raw(self):
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": self.broker.bootstrap})
        binary = bytes(range(256))
        p.produce(CHAT, key=b"shop-1", value=binary, partition=0, timestamp=T0 + 1,
                  headers=[("kefu.source", b"x"), ("no-value", None), ("kefu.source", b"")])
        p.produce(CHAT, key=b"shop-1", value=None, partition=0, timestamp=T0 + 2,
                  headers=[("why", b"tombstone")])
        p.produce(CHAT, key=None, value=b"no key", partition=1, timestamp=T0 + 3)
        p.produce(CHAT, key=b"", value=b"", partition=1, timestamp=T0 + 4)
        p.produce(CHAT, key=binary, value=b"\x00" * 3, partition=2, timestamp=T0 + 5)
        self.assertEqual(p.flush(30), 0)

    def produce_transactions(self):
        """One aborted and one committed transaction on CHAT partition 2."""
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": self.broker.bootstrap,
                      "transactional.id": "archive-test"})
        p.init_transactions(30)
        p.begin_transaction()
        p.produce(CHAT, key=b"aborted", value=b"never archived", partition=2)
        p.flush(30)
        p.abort_transaction(30)
        p.begin_transaction()
        p.produce(CHAT, key=b"committed", value=b"archived", partition=2)
        p.commit_transaction(30)

    def archive(self, *args, expect=0, out="a"):
        path = os.path.join(self.tmp, out)
        cmd = [KEFU, "archive", "-b", self.broker.bootstrap, "-o", path] + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, expect, r.stderr)
        return path, r.stderr

    def check_archive(self, path, topics, want):
        """Every file of the archive in @p path against @p want (topic, partition) ->
        records; every partition of @p topics has a file."""
        with open(os.path.join(path, "manifest.json")) as f:
            manifest = json.load(f)
        self.assertEqual(manifest["format"], "kefu-archive/1")
        self.assertIsInstance(manifest["created_ms"], int)
        entries = manifest["files"]
        self.assertEqual([(e["topic"], e["partition"]) for e in entries],
                         sorted((t, p) for t in topics for p in range(self.partitions)))
        total = 0
        for e in entries:
            self.assertEqual(e["file"], "%s-%d.avro" % (e["topic"], e["partition"]))
            schema, records = read_archive_file(os.path.join(path, e["file"]))
            self.assertEqual(schema.fullname, "kefu.ArchivedRecord")
            expected = want.get((e["topic"], e["partition"]), [])
            self.assertEqual(records, expected, e["file"])
            self.assertEqual(e["records"], len(expected))
            self.assertEqual(e["first_offset"], expected[0]["offset"] if expected else -1)
            self.assertEqual(e["last_offset"], expected[-1]["offset"] if expected else -1)
            total += len(expected)
        self.assertEqual(sorted(os.listdir(path)),
                         sorted(["manifest.json"] + [e["file"] for e in entries]))
        return total

    def kafka(self, topics, keep=lambda r: True):
        want = {}
        for t in topics:
            for m in read_raw(self.broker.bootstrap, t):
                r = kafka_view(m)
                if keep(r):
                    want.setdefault((t, r["partition"]), []).append(r)
        for recs in want.values():
            recs.sort(key=lambda r: r["offset"])
        return want

    # -- tests ----------------------------------------------------------------------
    def test_from_beginning_keeps_every_record_as_kafka_holds_it(self):
        self.produce_agents(40)
        self.produce_raw()
        self.produce_transactions()
        topics = [AGENT, CHAT, ORDER]
        want = self.kafka(topics)
        n = 47  # 40 + 5 + both transactions' records (see the docstring)
        self.assertEqual(sum(map(len, want.values())), n)
        self.assertIn(b"committed", [r["key"] for r in want[(CHAT, 2)]])
        self.assertIn(None, [r["value"] for r in want[(CHAT, 0)]])  # the tombstone
        path, err = self.archive("-t", AGENT, "-t", "%s,%s" % (CHAT, ORDER), "--from-beginning")
        self.assertEqual(self.check_archive(path, topics, want), n)
        self.assertRegex(err, r"archived %d records of 3 topics into %s in [0-9.]+ s" % (n, path))
        # What kefu produce wrote is the Confluent-framed Avro value, byte for byte.
        self.assertTrue(all(r["value"][0] == 0 for recs in [want[(AGENT, p)] for p in
                        range(3) if (AGENT, p) in want] for r in recs))

    def test_from_ts_and_until_ts(self):
        self.produce_agents(60)
        lo, hi = T0 + 10, T0 + 44
        want = self.kafka([AGENT], lambda r: lo <= r["timestamp"] <= hi)
        self.assertEqual(sum(map(len, want.values())), 35)
        path, err = self.archive("-t", AGENT, "--from-ts", str(lo), "--until-ts", str(hi))
        self.assertEqual(self.check_archive(path, [AGENT], want), 35)
        # A start past every record archives nothing, but every partition has its file.
        path, err = self.archive("-t", AGENT, "--from-ts", str(T0 + 10 ** 9), out="b")
        self.assertEqual(self.check_archive(path, [AGENT], {}), 0)

    def test_from_and_until_offsets(self):
        """Per-partition ranges (what kefu replay -b archives: kefu_archive_topics'
        from/until lists); until is the last offset archived."""
        self.produce_agents(60)
        everything = self.kafka([AGENT])
        self.assertTrue(all(len(everything[(AGENT, p)]) > 6 for p in range(3)))
        want = {(AGENT, 0): [r for r in everything[(AGENT, 0)] if 2 <= r["offset"] <= 5],
                (AGENT, 1): everything[(AGENT, 1)][:1],
                (AGENT, 2): everything[(AGENT, 2)][3:]}
        path, _ = self.archive("-t", AGENT, "--from", AGENT + ":0:2", "--until", AGENT + ":0:5",
                               "--until", AGENT + ":1:0", "--from", AGENT + ":2:3")
        self.assertEqual(self.check_archive(path, [AGENT], want), 4 + 1 + len(want[(AGENT, 2)]))
        _, err = self.archive("-t", AGENT, "--from", AGENT + ":7:0", out="b", expect=2)
        self.assertIn("not a partition of the topics archived", err)

    def test_follow_until_sigterm(self):
        self.produce_agents(10)
        path = os.path.join(self.tmp, "f")
        proc = subprocess.Popen([KEFU, "archive", "-b", self.broker.bootstrap, "-t", AGENT,
                                 "-o", path, "--from-beginning", "--follow"],
                                stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())

        def archived():
            n = 0
            for p in range(self.partitions):
                try:
                    n += len(read_archive_file(os.path.join(path, "%s-%d.avro" % (AGENT, p)))[1])
                except Exception:  # not there yet, or a block half written
                    return 0
            return n
        wait_for(lambda: archived() == 10, 30, "the first 10 records in the files")
        self.produce_agents(15, T0 + 1000)  # past the end offsets seen at start
        wait_for(lambda: archived() == 25, 30, "25 records in the files")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(self.check_archive(path, [AGENT], self.kafka([AGENT])), 25)
        self.assertIn("archived 25 records of 1 topics", err)

    def test_usage_errors_exit_2_with_one_line(self):
        b = self.broker.bootstrap
        cases = [
            ([], "required"),
            (["-b", b, "-t", AGENT, "-o", "x"], "nothing to archive"),
            (["-b", b, "-t", AGENT, "-o", "x", "--from-ts", "12x"], "--from-ts"),
            (["-b", b, "-t", AGENT, "-o", "x", "--until-ts", "-5", "--follow"], "--until-ts"),
            (["-b", b, "-t", AGENT, "-o", "x", "--from-beginning", "--from-ts", "1"], "exclude"),
            (["-b", b, "-t", "kefu.nope", "-o", os.path.join(self.tmp, "u"),
              "--from-beginning"], "unknown topic kefu.nope"),
            (["-b", b, "-t", AGENT, "--from-beginning"], "required"),
            (["-b", b, "-t", AGENT, "-o", "x", "--from-beginning", "extra"], "unexpected"),
            (["--frobnicate"], "unknown option"),
            (["-b", b, "-t", AGENT, "-o", "x", "--from", AGENT + ":x:1"], "TOPIC:PARTITION:OFFSET"),
        ]
        for args, what in cases:
            r = subprocess.run([KEFU, "archive"] + args, capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            self.assertIn(what, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "u")))
        # A finished archive is not overwritten: a runtime failure.
        self.archive("-t", AGENT, "--from-beginning")
        _, err = self.archive("-t", AGENT, "--from-beginning", expect=1)
        self.assertIn("already holds an archive", err)
        r = subprocess.run([KEFU, "archive", "--help"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        for flag in ["-b, --bootstrap", "-t, --topic", "-o, --out", "--from-beginning",
                     "--from-ts", "--until-ts", "--from TOPIC:PARTITION:OFFSET",
                     "--until TOPIC:PARTITION:OFFSET", "--follow", "-q, --quiet", "-X",
                     "--help"]:
            self.assertIn(flag, r.stdout)


if __name__ == "__main__":
    main()
