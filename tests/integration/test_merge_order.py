"""SPEC §1.3, the merge across topics: a backlog always merges in the same order.

A generated stream (`kefu demo --generate-only`: shop configs, agents coming online,
orders, chats) is produced to a fresh 3-broker embedded cluster before `kefu run`
starts, and run once as it is. Then the same stream is run again in conditions that
used to change the merge:

  * slow leader: every partition of kefu.agent.events is led by a broker that answers
    2 s late, with task_idle_ms=100: the agents' first fetch takes far longer than the
    wait for an empty partition, so a merge that gave up on it after task_idle_ms routed
    chats before their shop's agents were known (NO_AGENT_ONLINE where an agent had to
    be picked);
  * small fetches: task_idle_ms=0 and kafka.max.partition.fetch.bytes=2048, so every
    partition drains between fetches many times over.

Each run's outputs must be byte-identical (key, value, headers) to the first run's on
every output topic, record for record per shop (a shop's records are written in its
task's merge order; records of different tasks may interleave differently). Several
seeds.
"""
import os
import subprocess
import sys
import tempfile
import time
import unittest

from kefutest import (INPUT_ORDER, KEFU, TOPICS, Broker, Redis, main, read_raw)

SEEDS = [int(s) for s in os.environ.get("KEFU_MERGE_SEEDS", "11,12").split(",")]
OUTPUT_TOPICS = ["decisions", "invitations", "violations", "responses", "cards", "insights",
                 "dlq"]
SLOW_BROKER = 3
INSTANCE = "merge"


class MergeOrderTest(unittest.TestCase):

    def stream(self, seed):
        d = tempfile.mkdtemp(prefix="kefu-merge-")
        prefix = os.path.join(d, "s-")
        out = subprocess.run([KEFU, "demo", "--generate-only", prefix, "--events", "4000",
                              "--shops", "12", "--seed", str(seed)], capture_output=True,
                             text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        return {t: prefix + t + ".jsonl" for t in INPUT_ORDER}

    def run_stream(self, files, slow, *settings):
        """One run on a fresh cluster and Redis; the outputs per topic and shop."""
        redis, broker = Redis(), Broker(partitions=4, brokers=3, control=True)
        try:
            # Everything on broker 1, except the agents' partitions on the slow one.
            for topic in INPUT_ORDER:
                parts = 1 if topic == TOPICS["courier"] else 4
                for p in range(parts):
                    leader = SLOW_BROKER if topic == TOPICS["agent"] else 1
                    broker.control("leader %s %d %d" % (topic, p, leader))
            for t in OUTPUT_TOPICS:
                for p in range(4):
                    broker.control("leader %s %d 1" % (TOPICS[t], p))
            broker.control("coordinator group kefu 1")
            broker.control("coordinator transaction kefu-%s 1" % INSTANCE)
            for topic in INPUT_ORDER:
                with open(files[topic]) as f:
                    out = subprocess.run([KEFU, "produce", "-b", broker.bootstrap, "-t", topic],
                                         stdin=f, capture_output=True, text=True)
                self.assertEqual(out.returncode, 0, out.stderr)
            if slow:
                broker.control("rtt %d 2000" % SLOW_BROKER)
            args = [KEFU, "run", "-b", broker.bootstrap, "--redis", redis.url,
                    "--exit-when-idle", "--set", "http.listen=", "--set", "idle_advance=false",
                    "--set", "instance.id=" + INSTANCE]
            for s in settings:
                args += ["--set", s]
            started = time.monotonic()
            out = subprocess.run(args, capture_output=True, text=True, timeout=300)
            print("  run (%s): %.1f s" % (" ".join(settings), time.monotonic() - started),
                  flush=True)
            if out.returncode:
                sys.stderr.write(out.stderr)
            self.assertEqual(out.returncode, 0)
            if slow:
                broker.control("rtt %d 0" % SLOW_BROKER)
            result = {}
            for t in OUTPUT_TOPICS:
                per_shop = result.setdefault(t, {})
                for m in read_raw(broker.bootstrap, TOPICS[t]):
                    per_shop.setdefault(m.key(), []).append(
                        (m.value(), sorted(m.headers() or [])))
            return result
        finally:
            broker.stop()
            redis.stop()

    def assert_same(self, base, other, what):
        for t in OUTPUT_TOPICS:
            b, o = base[t], other[t]
            changed = sum(1 for k in set(b) | set(o) for i in
                          range(max(len(b.get(k, [])), len(o.get(k, []))))
                          if b.get(k, [])[i:i + 1] != o.get(k, [])[i:i + 1])
            self.assertEqual(changed, 0, "%s: %d records of %s differ from the first run" % (
                what, changed, TOPICS[t]))

    def test_backlog_merges_in_the_same_order_SPEC1_3(self):
        for seed in SEEDS:
            files = self.stream(seed)
            base = self.run_stream(files, False, "task_idle_ms=500")
            decisions = sum(len(v) for v in base["decisions"].values())
            self.assertTrue(decisions > 50, "the stream routes too little to prove much")
            slow = self.run_stream(files, True, "task_idle_ms=100")
            self.assert_same(base, slow, "seed %d, agents' leader 2 s late" % seed)
            small = self.run_stream(files, False, "task_idle_ms=0",
                                    "kafka.max.partition.fetch.bytes=2048")
            self.assert_same(base, small, "seed %d, 2 KiB fetches, task_idle_ms=0" % seed)
            print("seed %d: %d outputs, the same in all three runs" % (
                seed, sum(len(v) for t in base.values() for v in t.values())), flush=True)


if __name__ == "__main__":
    main()
