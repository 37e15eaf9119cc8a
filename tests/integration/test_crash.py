"""Effectively once under SIGKILL (SPEC §5), for exactly_once and at_least_once: kefu is
killed at random points of a stream and restarted; afterwards no input was applied twice
(exact state counts in Redis), no output is missing, and every output that appears more
than once is byte-identical to its first copy. KEFU_CRASH_SEED reproduces a run."""
import os
import random
import signal
import subprocess
import time

from kefutest import KEFU, KefuTestCase, decode, main, read_raw, schema_table, wait_for

T0 = 1773068400000
SHOPS = ["s%d" % i for i in range(8)]


def stream(n):
    recs = []
    for i in range(n):
        recs.append({"event_id": "q%d" % i, "shop_id": SHOPS[i % len(SHOPS)], "ts": T0 + i * 10,
                     "type": "DELIVERABILITY_QUERY", "agent_id": "a1",
                     "region_code": "440305"})
    dups = [dict(recs[i]) for i in range(0, n, 97)]  # repeated event ids: applied once
    bad = [{"event_id": "bad%d" % i, "shop_id": "s0", "ts": T0 + i, "type": "BOT_MSG",
            "buyer_id": "not valid"} for i in range(5)]
    return recs, dups, bad


class CrashTest(KefuTestCase):
    def crash_run(self, guarantee):
        seed = int(os.environ.get("KEFU_CRASH_SEED", "0")) or random.randrange(1, 10 ** 6)
        rng = random.Random(seed)
        print("KEFU_CRASH_SEED=%d (%s)" % (seed, guarantee))
        recs, dups, bad = stream(3000)
        self.produce("chat", recs[:1500] + dups + bad)
        args = [KEFU, "run", "-b", self.broker.bootstrap, "--redis", self.redis.url,
                "--set", "http.listen=", "--set", "idle_advance=false", "--set", "task_idle_ms=50",
                "--set", "batch.max_records=5", "--set", "batch.max_ms=10",
                "--set", "processing.guarantee=" + guarantee,
                "--set", "kafka.session.timeout.ms=6000", "--set", "kafka.heartbeat.interval.ms=500"]
        kills = 0
        log = open(os.path.join(self.redis.dir, "kefu.log"), "w")
        self.addCleanup(log.close)
        for round_ in range(3):
            if round_ == 1:
                self.produce("chat", recs[1500:])
            proc = subprocess.Popen(args, stderr=log)
            # kill once it is processing: Redis positions move
            wait_for(lambda: self.redis.cli("KEYS", "kefu:{task-*}:pos").strip(), 60, "progress")
            time.sleep(rng.uniform(0.05, 0.8))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(10)
        self.run_kefu("processing.guarantee=" + guarantee, "kafka.session.timeout.ms=6000")
        # (a) nothing applied twice: each shop saw exactly its distinct valid event ids
        for shop in SHOPS:
            want = len({r["event_id"] for r in recs if r["shop_id"] == shop})
            self.assertEqual(int(self.redis.cli("ZCARD", "kefu:{%s}:dedup" % shop)), want, shop)
        # (b) nothing lost, (c) every copy byte-identical to the first
        ids, _ = schema_table()
        first, copies = {}, 0
        for m in read_raw(self.broker.bootstrap, "kefu.service.cards"):
            card = decode(ids, m.value())["card_id"]
            if card in first:
                copies += 1
                self.assertEqual(first[card], (m.key(), m.value(), m.headers()), card)
            else:
                first[card] = (m.key(), m.value(), m.headers())
        self.assertEqual(set(first), {r["event_id"] + "-c0" for r in recs})
        dlq = read_raw(self.broker.bootstrap, "kefu.dlq")
        self.assertGreaterEqual(len(dlq), len(bad))
        print("%s: %d kills, %d cards, %d repeated copies, %d DLQ records" % (
            guarantee, kills, len(first), copies, len(dlq)))

    def test_exactly_once_under_sigkill(self):
        self.crash_run("exactly_once")

    def test_at_least_once_under_sigkill(self):
        self.crash_run("at_least_once")


if __name__ == "__main__":
    main()
