"""kefu replay (SPEC §7, issue 10).

One recorded day serves every test: a generated day of traffic with every rule family
active is produced to the embedded cluster and processed live by `kefu run` (idle advance
off, so nothing depends on the wall clock); `kefu archive` then copies its input topics
(IN) and its output topics (REC). The replays run on IN with no Redis given, so each
starts a redis-server of its own.

- Determinism (test 1): replaying IN gives every output record of the live run, byte for
  byte (key, value, the kefu.cause header, timestamp), on all six output topics and the
  DLQ, in the same order in each partition.
- Determinism (test 2): two replays with the same overrides write identical files.
- What-if: threshold 0.9 against the recording made at 0.4: the diff's verdict counts
  equal the counts this test computes from the recorded DAILY_REPORTs (RATE-6, exact:
  effective * 10000 < threshold * 10000 * consultations).
- What-if: a --shop-config turning bot_priority on for one shop (ROUTE-8) changes that
  shop's decisions and no other shop's records.
- --flush fires what is still pending, with cause flush-<partition>.
- -b with --from/--until and --out-prefix; usage errors exit 2 with one line; a truncated
  or foreign archive exits 1 with a clear error, never a crash or a hang."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from kefutest import INPUT_ORDER, KEFU, TOPICS, Broker, Redis, main

OUTPUT_TOPICS = ["kefu.routing.decisions", "kefu.logistics.invitations",
                 "kefu.response.violations", "kefu.response.events", "kefu.service.cards",
                 "kefu.inquiry.insights"]
ALL_OUTPUTS = OUTPUT_TOPICS + ["kefu.dlq"]
PARTITIONS = 4


def read_archive(d, topics=None):
    """{topic: {partition: [record dict]}} of an archive, with python3-avro."""
    from avro.datafile import DataFileReader
    from avro.io import DatumReader
    with open(os.path.join(d, "manifest.json")) as f:
        manifest = json.load(f)
    out = {}
    for entry in manifest["files"]:
        if topics and entry["topic"] not in topics:
            continue
        with DataFileReader(open(os.path.join(d, entry["file"]), "rb"), DatumReader()) as r:
            records = list(r)
        assert len(records) == entry["records"], entry
        out.setdefault(entry["topic"], {})[entry["partition"]] = records
    return out


def comparable(records):
    """What must be identical: key, value bytes, timestamp and the cause header, in order
    (offsets differ: the live run's outputs are transactional, with commit markers)."""
    return [(r["key"], r["value"], r["timestamp"],
             {h["key"]: h["value"] for h in r["headers"]}.get("kefu.cause")) for r in records]


def load_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class ReplayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kefu-replay-test-")
        cls.redis = Redis()
        cls.broker = Broker(PARTITIONS)
        try:
            cls.record_a_day()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()
        cls.broker.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def record_a_day(cls):
        prefix = os.path.join(cls.tmp, "day-")
        subprocess.run([KEFU, "demo", "--generate-only", prefix, "--events", "6000", "--shops",
                        "12"], check=True, stdout=subprocess.DEVNULL)
        cls.inputs = {}
        for topic in INPUT_ORDER:
            path = prefix + topic + ".jsonl"
            if os.path.exists(path):
                cls.inputs[topic] = load_jsonl(path)
                subprocess.run([KEFU, "produce", "-b", cls.broker.bootstrap, "-t", topic, path],
                               check=True, capture_output=True)
        subprocess.run([KEFU, "run", "-b", cls.broker.bootstrap, "--redis", cls.redis.url,
                        "--exit-when-idle", "--set", "http.listen=", "--set",
                        "idle_advance=false", "--set", "task_idle_ms=200"],
                       check=True, capture_output=True, timeout=300)
        cls.IN = os.path.join(cls.tmp, "in")
        cls.REC = os.path.join(cls.tmp, "rec")
        cls.archive(INPUT_ORDER, cls.IN)
        cls.archive(ALL_OUTPUTS, cls.REC)

    @classmethod
    def archive(cls, topics, d):
        args = [KEFU, "archive", "-b", cls.broker.bootstrap, "-o", d, "--from-beginning"]
        for t in topics:
            args += ["-t", t]
        subprocess.run(args, check=True, capture_output=True, timeout=120)

    def replay(self, *args, expect=0, timeout=300):
        out = subprocess.run([KEFU, "replay"] + list(args), capture_output=True, text=True,
                             timeout=timeout)
        if out.returncode != expect:
            print(out.stderr)
        self.assertEqual(out.returncode, expect, out.stderr[-2000:])
        return out

    def outdir(self, name):
        return os.path.join(self.tmp, name)

    # ---------------------------------------------------------------- determinism

    def test_replay_reproduces_the_live_run_byte_for_byte(self):
        out = self.outdir("det")
        self.replay("--archive", self.IN, "--out-archive", out)
        recorded, replayed = read_archive(self.REC), read_archive(out)
        counts = {}
        for topic in ALL_OUTPUTS:
            rec = recorded.get(topic, {})
            rep = replayed.get(topic, {})
            n = 0
            for part in range(PARTITIONS):
                a, b = comparable(rec.get(part, [])), comparable(rep.get(part, []))
                self.assertEqual(len(a), len(b), "%s [%d]: record counts" % (topic, part))
                for i, (x, y) in enumerate(zip(a, b)):
                    self.assertEqual(x, y, "%s [%d] record %d differs" % (topic, part, i))
                n += len(a)
            counts[topic] = n
        print("determinism: records per topic, live = replay:", json.dumps(counts))
        for topic in OUTPUT_TOPICS:
            self.assertGreater(counts[topic], 0, "the day has %s records" % topic)

    def test_replay_twice_with_the_same_overrides_gives_identical_files(self):
        a, b = self.outdir("twice-a"), self.outdir("twice-b")
        for d in (a, b):
            self.replay("--archive", self.IN, "--set", "threshold=0.55", "--flush", "--out", d)
        names = sorted(os.listdir(a))
        self.assertEqual(names, sorted(os.listdir(b)))
        self.assertIn("kefu.routing.decisions.jsonl", names)
        for n in names:
            with open(os.path.join(a, n), "rb") as fa, open(os.path.join(b, n), "rb") as fb:
                self.assertEqual(fa.read(), fb.read(), n)

    def test_redis_given_private_namespace_deleted_and_live_state_untouched(self):
        """--redis: the replay's state lives in replay-<run id> and is gone at the end;
        the live run's keys (namespace kefu) are as they were."""
        def keys(pattern):
            out = self.redis.cli("--scan", "--pattern", pattern)
            return sorted(k for k in out.split("\n") if k)
        live = keys("kefu:*")
        before = {k: self.redis.cli("DUMP", k) for k in live[:50]}
        d = self.outdir("with-redis")
        out = self.replay("--archive", self.IN, "--redis", self.redis.url, "--out", d)
        self.assertIn("namespace replay-", out.stderr)
        self.assertIn("deleted namespace replay-", out.stderr)
        self.assertEqual(keys("replay-*"), [])
        self.assertEqual(keys("kefu:*"), live)
        self.assertEqual({k: self.redis.cli("DUMP", k) for k in live[:50]}, before)
        self.assertGreater(len(live), 10)
        # the same outputs as with a redis-server of its own
        d2 = self.outdir("own-redis")
        self.replay("--archive", self.IN, "--out", d2)
        for topic in ALL_OUTPUTS:
            with open(os.path.join(d, topic + ".jsonl"), "rb") as a, \
                    open(os.path.join(d2, topic + ".jsonl"), "rb") as b:
                self.assertEqual(a.read(), b.read(), topic)

    # ---------------------------------------------------------------- what-if

    def expected_verdicts(self, old, new):
        """RATE-6 from the recorded DAILY_REPORTs: (violations at old, at new, days newly
        violating, days no longer, shops newly penalised, shops no longer)."""
        rec = read_archive(self.REC, ["kefu.response.violations"])
        reports = [r for part in rec.get("kefu.response.violations", {}).values()
                   for r in part]
        from kefutest import decode, schema_table
        ids, _ = schema_table()
        v_old = v_new = 0
        newly, no_longer, shops_newly, shops_no_longer = 0, 0, set(), set()
        for r in reports:
            rr = decode(ids, r["value"])
            if rr["type"] != "DAILY_REPORT" or rr["rate"] is None:
                continue
            n, ok = rr["consultations"], rr["effective"]
            bad_old = ok * 10000 < round(old * 10000) * n
            bad_new = ok * 10000 < round(new * 10000) * n
            v_old += bad_old
            v_new += bad_new
            if bad_new and not bad_old:
                newly += 1
                shops_newly.add(rr["shop_id"])
            if bad_old and not bad_new:
                no_longer += 1
                shops_no_longer.add(rr["shop_id"])
        return v_old, v_new, newly, no_longer, len(shops_newly), len(shops_no_longer)

    def test_threshold_what_if_diff_counts_the_verdicts_that_change(self):
        """RATE-6: --set threshold=0.9 against the recording at 0.4."""
        out = self.replay("--archive", self.IN, "--set", "threshold=0.9", "--out",
                          self.outdir("thr"), "--diff", self.REC, "--diff-out",
                          os.path.join(self.tmp, "thr.diff.jsonl"))
        print(out.stdout)
        v_old, v_new, newly, no_longer, s_newly, s_no_longer = self.expected_verdicts(0.4, 0.9)
        self.assertGreater(newly, 0, "the day has rates between 0.4 and 0.9")
        verdict = [ln for ln in out.stdout.splitlines() if ln.startswith("verdict:")]
        self.assertTrue(verdict, out.stdout)
        text = "\n".join(verdict)
        self.assertIn("VIOLATION %d -> %d" % (v_old, v_new), text.replace("→", "->"))
        self.assertIn("days newly violating: %d" % newly, text)
        self.assertIn("days no longer violating: %d" % no_longer, text)
        self.assertIn("%d shops newly penalised" % s_newly, text)
        self.assertIn("%d shops no longer penalised" % s_no_longer, text)
        with open(os.path.join(self.tmp, "thr.diff.jsonl")) as f:
            diffs = [json.loads(line) for line in f]
        self.assertTrue(any(d["change"] == "changed" and "threshold" in d.get("fields", {})
                            for d in diffs))
        # rate records match by (shop, day, type): the new VIOLATIONs are the only records
        # on one side, one per day newly violating
        viol = [d for d in diffs if d["topic"] == "kefu.response.violations"]
        self.assertEqual(sum(d["change"] == "only_replayed" for d in viol), newly)
        self.assertEqual(sum(d["change"] == "only_recorded" for d in viol), no_longer)
        self.assertTrue(all(d["kind"] == "VIOLATION" for d in viol if d["change"] != "changed"))

    def test_bot_priority_for_one_shop_changes_only_that_shops_decisions(self):
        """ROUTE-8: --shop-config turns bot_priority on for one shop with a bot group."""
        shop = None
        for rec in self.inputs["kefu.shop.config"]:
            if not rec.get("bot_priority") and any(g.get("bot_enabled")
                                                   for g in rec.get("groups", [])):
                shop = rec["shop_id"]
                break
        self.assertIsNotNone(shop, "a shop with a bot group and bot_priority off")
        cfg = os.path.join(self.tmp, "bot.jsonl")
        with open(cfg, "w") as f:
            f.write(json.dumps({"shop_id": shop, "bot_priority": True}) + "\n")
        diff_out = os.path.join(self.tmp, "bot.diff.jsonl")
        out = self.replay("--archive", self.IN, "--shop-config", cfg, "--out",
                          self.outdir("bot"), "--diff", self.REC, "--diff-out", diff_out)
        print(out.stdout)
        with open(diff_out) as f:
            diffs = [json.loads(line) for line in f]
        decisions = [d for d in diffs if d["topic"] == "kefu.routing.decisions"]
        self.assertTrue(decisions, "the shop's decisions change")
        self.assertEqual({d["key"]["shop_id"] for d in diffs}, {shop},
                         "no other shop's records change")

    def test_flush_fires_the_pending_timers(self):
        a, b = self.outdir("noflush"), self.outdir("flush")
        self.replay("--archive", self.IN, "--out", a)
        self.replay("--archive", self.IN, "--flush", "--out", b)
        flushed = 0
        for topic in OUTPUT_TOPICS:
            before = load_jsonl(os.path.join(a, topic + ".jsonl"))
            after = load_jsonl(os.path.join(b, topic + ".jsonl"))
            self.assertEqual(after[:0], [])
            extra = [r for r in after if r not in before]
            for r in extra:
                rid = next(v for k, v in r.items() if k.endswith("_id") and k != "shop_id"
                           and isinstance(v, str) and v.startswith("flush-"))
                self.assertRegex(rid, r"^flush-[0-3]-[a-z]\d+$")
            flushed += len(extra)
            self.assertLessEqual(len(before), len(after))
        self.assertGreater(flushed, 0, "the day ends with timers pending")

    # ---------------------------------------------------------------- from a cluster

    def test_from_a_cluster_with_ranges_and_out_prefix(self):
        """-b archives the topics first; --out-prefix writes to the cluster."""
        self.replay("-b", self.broker.bootstrap, "--out-prefix", "whatif.")
        d = self.outdir("from-cluster")
        self.replay("--archive", self.IN, "--out", d)
        from kefutest import read_raw
        for topic in OUTPUT_TOPICS:
            expected = load_jsonl(os.path.join(d, topic + ".jsonl"))
            self.assertEqual(len(read_raw(self.broker.bootstrap, "whatif." + topic)),
                             len(expected), topic)
        # --from and --until (inclusive) on every keyed partition: offsets 5 to 14
        with open(os.path.join(self.IN, "manifest.json")) as f:
            manifest = json.load(f)
        args, want = ["-b", self.broker.bootstrap, "--out", self.outdir("range")], 0
        for e in manifest["files"]:
            if e["topic"] == "kefu.courier.status":
                continue
            args += ["--from", "%s:%d:5" % (e["topic"], e["partition"]),
                     "--until", "%s:%d:14" % (e["topic"], e["partition"])]
            want += max(0, min(e["records"], 15) - 5)  # inputs are not transactional
        out = self.replay(*args)
        self.assertIn("replay: %d records" % want, out.stderr)

    # ---------------------------------------------------------------- errors

    def test_usage_errors_exit_2_with_one_line(self):
        cases = [
            [],
            ["--archive", self.IN],
            ["--archive", self.IN, "--out", "x", "--out-archive", "y"],
            ["--archive", self.IN, "-b", "localhost:9", "--out", "x"],
            ["--archive", self.IN, "--out", "x", "--set", "no_such_key=1"],
            ["--archive", self.IN, "--out", "x", "--set", "threshold=2"],
            ["-b", "localhost:9", "--from", "kefu.chat.events:zero:1", "--out", "x"],
            ["-b", "localhost:9", "--from", "kefu.chat.events", "--out", "x"],
            ["--archive", self.IN, "--out", "x", "--diff-out", "d.jsonl"],
            ["--archive", self.IN, "--out-prefix", "p."],
            ["--archive", self.IN, "--out", "x", "--bogus"],
            ["-b", self.broker.bootstrap, "--until", "kefu.no.such.topic:0:5", "--out",
             self.outdir("nosuch")],
        ]
        for args in cases:
            with self.subTest(args=args):
                out = self.replay(*args, expect=2, timeout=30)
                lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
                self.assertEqual(len(lines), 1, out.stderr)
                self.assertTrue(lines[0].startswith("kefu replay: "), lines[0])
        out = self.replay("--help", timeout=30)
        for flag in ["--archive", "-b", "--from", "--until", "--redis", "--set", "--shop-config",
                     "--flush", "--out", "--out-archive", "--out-prefix", "--diff", "--diff-out"]:
            self.assertIn(flag, out.stdout)

    def test_what_a_review_found(self):
        """Each case once broke (a review of the first version): the command refuses or
        fails cleanly, and nothing of the user's is lost."""
        # an --out-archive that holds an archive: exit 2, its manifest kept
        self.replay("--archive", self.IN, "--out-archive", self.REC, expect=2, timeout=30)
        self.assertTrue(os.path.exists(os.path.join(self.REC, "manifest.json")))
        # a manifest with an absurd partition: exit 1, no crash
        bad = self.outdir("bad-manifest")
        shutil.copytree(self.IN, bad)
        with open(os.path.join(bad, "manifest.json")) as f:
            m = json.load(f)
        m["files"].append(dict(m["files"][0], partition=2147483647))
        with open(os.path.join(bad, "manifest.json"), "w") as f:
            json.dump(m, f)
        out = self.replay("--archive", bad, "--out", self.outdir("bm"), expect=1, timeout=60)
        self.assertIn("2147483647", out.stderr)
        # --diff of a directory with nothing recorded in it: exit 1
        empty = self.outdir("empty")
        os.makedirs(empty, exist_ok=True)
        self.replay("--archive", self.IN, "--out", self.outdir("e1"), "--diff", empty, expect=1)
        # --diff-out that cannot be written: exit 1 before replaying
        out = self.replay("--archive", self.IN, "--out", self.outdir("e2"), "--diff", self.REC,
                          "--diff-out", "/nonexistent/d.jsonl", expect=1)
        self.assertNotIn("replay: ", out.stderr.replace("kefu replay: ", ""))
        # a --shop-config field a config record could not carry: exit 2 with the reason
        cfg = os.path.join(self.tmp, "bad-cfg.jsonl")
        for line, why in [({"shop_id": "*", "utc_offset_minutes": 100000}, "utc_offset_minutes"),
                          ({"shop_id": "*", "groups": [{}]}, "group_id"),
                          ({"shop_id": "*", "leave_message_target": "BOGUS"}, "BOGUS"),
                          ({"shop_id": "s", "nonsense": 1}, "nonsense")]:
            with open(cfg, "w") as f:
                f.write(json.dumps(line) + "\n")
            out = self.replay("--archive", self.IN, "--shop-config", cfg, "--out",
                              self.outdir("bc"), expect=2, timeout=30)
            self.assertIn(why, out.stderr)
        # --redis on a Redis that runs another build's functions: refused, left as it was
        other = Redis()
        try:
            other.cli("FUNCTION", "LOAD", "#!lua name=kefu\n"
                      "redis.register_function('other_build', function() return 1 end)")
            out = self.replay("--archive", self.IN, "--redis", other.url, "--out",
                              self.outdir("of"), expect=1)
            self.assertIn("another kefu build", out.stderr)
            self.assertIn("other_build", other.cli("FUNCTION", "LIST"))
        finally:
            other.stop()

    def test_truncated_or_foreign_archive_is_a_clear_error(self):
        with open(os.path.join(self.IN, "manifest.json")) as f:
            manifest = json.load(f)
        chat = next(e for e in manifest["files"]
                    if e["topic"] == "kefu.chat.events" and e["records"] > 0)
        cases = {}
        trunc = self.outdir("trunc")
        shutil.copytree(self.IN, trunc)
        path = os.path.join(trunc, chat["file"])
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(size * 2 // 3)
        cases["truncated"] = trunc
        foreign = self.outdir("foreign")
        shutil.copytree(self.IN, foreign)
        with open(os.path.join(foreign, chat["file"]), "w") as f:
            f.write('{"not": "avro"}\n')
        cases["foreign"] = foreign
        for what, d in cases.items():
            with self.subTest(what=what):
                out = self.replay("--archive", d, "--out", self.outdir("bad-" + what), expect=1,
                                  timeout=120)
                self.assertIn(chat["file"], out.stderr)
                self.assertNotIn("Traceback", out.stderr)


if __name__ == "__main__":
    main()
