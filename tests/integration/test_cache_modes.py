"""The owner cache changes nothing but speed (issue 9, docs/ARCHITECTURE.md "The owner
cache"): the same backlog of generated traffic, with every rule family active, run with
the cache at its default budget, at budgets so small that buyers leave memory between
batches (their timers then come back through the due buckets) and shops are evicted and
read again, and with state.cache_mb=0 (every shop read from Redis for every batch),
gives byte-identical outputs on every output topic, ids included, and the same state in
Redis. The due buckets are an index whose entries follow batch boundaries and
evictions, so they are compared by what they must hold: every buyer with a pending
timer listed at or below its earliest timer's bucket."""
import glob
import os
import subprocess
import tempfile

from kefutest import KEFU, TOPICS, KefuTestCase, main

OUTPUTS = ["decisions", "invitations", "violations", "responses", "cards", "insights", "dlq"]


class CacheModesTest(KefuTestCase):
    def backlog(self):
        d = tempfile.mkdtemp(prefix="kefu-cache-")
        prefix = os.path.join(d, "t-")
        subprocess.run([KEFU, "demo", "--generate-only", prefix, "--events", "6000", "--shops",
                        "12"], check=True, stdout=subprocess.DEVNULL)
        files = {}
        for path in glob.glob(prefix + "*.jsonl"):
            files[os.path.basename(path)[len("t-"):-len(".jsonl")]] = path
        return files

    def run_mode(self, files, cache_mb, batch):
        self.setUp()  # a fresh broker and redis-server for each mode
        for topic in ["kefu.courier.status", "kefu.shop.config", "kefu.agent.events",
                      "kefu.order.events", "kefu.chat.events"]:
            if topic in files:
                out = subprocess.run([KEFU, "produce", "-b", self.broker.bootstrap, "-t", topic,
                                      files[topic]], capture_output=True, text=True)
                self.assertEqual(out.returncode, 0, out.stderr)
        self.run_kefu("state.cache_mb=%s" % cache_mb, "batch.max_records=%d" % batch,
                      timeout=300)
        outputs = {}
        for t in OUTPUTS:  # each partition in its order (partitions interleave at random)
            records = sorted(self.consume(t, meta=True), key=lambda r: (r["partition"], r["offset"]))
            outputs[t] = [(r["partition"], r["key"], r["value"]) for r in records]
        return outputs, self.shop_state()

    def shop_state(self):
        """Every shop key's content as data (field order in a hash is insertion order,
        which the modes may differ in); not the event-id days, whose trimming follows
        batch boundaries, nor the tasks' keys (wall-clock times)."""
        state = {}
        keys = self.redis.cli("--no-raw", "KEYS", "kefu:{*").split("\n")
        for line in keys:
            key = line.split(") ", 1)[-1].strip().strip('"')
            if not key or "{task-" in key or ":seen:" in key or ":due:" in key:
                continue
            kind = self.redis.cli("TYPE", key).strip()
            verb = {"string": ["GET"], "hash": ["HGETALL"],
                    "zset": ["ZRANGE", key, "0", "-1", "WITHSCORES"]}[kind]
            args = verb if kind == "zset" else verb + [key]
            lines = self.redis.cli("--no-raw", *args).split("\n")
            items = [ln.split(") ", 1)[-1] for ln in lines if ln.strip()]
            if kind == "hash":
                state[key] = dict(zip(items[0::2], items[1::2]))
                if key.endswith(":meta"):
                    state[key].pop('"due"', None)
            elif kind == "zset":
                state[key] = sorted(zip(items[0::2], items[1::2]))
            else:
                state[key] = items
        return state

    def test_cache_on_off_and_evicting_give_identical_outputs(self):
        files = self.backlog()
        base, base_state = self.run_mode(files, 128, 500)
        self.assertGreater(len(base["decisions"]), 100, "the backlog makes routing decisions")
        self.assertGreater(len(base["violations"]), 0, "and response-rate records")
        for cache_mb, batch in [(0, 500), (0, 37), (1, 37), (0.1, 37), (0.02, 500)]:
            with self.subTest(cache_mb=cache_mb, batch=batch):
                outputs, state = self.run_mode(files, cache_mb, batch)
                for t in OUTPUTS:
                    self.assertEqual(outputs[t], base[t], "topic %s differs" % t)
                self.assertEqual(state, base_state)
                self.assert_timers_listed()

    def assert_timers_listed(self):
        """The due buckets' invariant (docs/STATE.md): a buyer whose value holds a
        timer is listed in a pending bucket at or below its earliest timer's."""
        import kefutest
        checked = 0
        for shop in kefutest.shops(self.redis):
            pending = kefutest.due_buckets(self.redis, shop)
            listed = {}
            for bucket, ids in pending.items():
                for i in ids:
                    listed[i] = min(listed.get(i, bucket), bucket)
            for buyer, deadline in kefutest.earliest_timers(self.redis, shop).items():
                self.assertIn(buyer, listed, "shop %s buyer %s: timer at %d not listed"
                              % (shop, buyer, deadline))
                self.assertLessEqual(listed[buyer], deadline // 60000)
                checked += 1
        self.assertGreater(checked, 10, "the backlog leaves buyers with pending timers")


if __name__ == "__main__":
    main()
