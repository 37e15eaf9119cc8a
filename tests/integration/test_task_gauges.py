"""SPEC §8's per-task series, scraped from a running `kefu run` and checked against what
its state in Redis says: buyers queued (ROUTE-11) per task and the task's longest queues
in fixed rank slots that follow the shops as queues change, open timers per task, the age
of the oldest overdue timer while the watermark stands still (idle advance off: nothing
moves event time), kefu_ready next to /readyz, and Redis latency not rounded to ms."""
import re
import signal
import subprocess
import tempfile
import time

from kefutest import (KEFU, KefuTestCase, free_port, http_get, kefu_run_command, main,
                      pending_timers, wait_for)

SHOPS = {"q1": 5, "q2": 1, "q3": 4, "q4": 2, "q5": 3, "q6": 6, "q7": 2, "q8": 1}
WAIT_MS = 600000  # queue_max_wait_ms: every queue timeout falls due 10 minutes after ts0


def samples(text, name):
    """{labels dict as a sorted tuple: value} of every sample of @p name."""
    out = {}
    for m in re.finditer(r"^%s(?:\{([^}]*)\})? (\S+)$" % re.escape(name), text, re.M):
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1) or "")))
        out[labels] = float(m.group(2))
    return out


def by_task(text, name):
    return {dict(k)["task"]: v for k, v in samples(text, name).items()}


class TaskGauges(KefuTestCase):
    def start(self, *settings):
        self.port = free_port()
        log = tempfile.TemporaryFile()
        self.addCleanup(log.close)
        args = [KEFU, "run", "-b", self.broker.bootstrap, "--redis", self.redis.url,
                "--set", "http.listen=127.0.0.1:%d" % self.port, "--set", "idle_advance=false",
                "--set", "task_idle_ms=200"]
        for setting in settings:
            args += ["--set", setting]
        proc = subprocess.Popen(kefu_run_command(args), stdout=subprocess.DEVNULL, stderr=log)

        def stop():
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(60), 0)
        self.addCleanup(stop)

    def metrics(self):
        status, body = http_get(self.port, "/metrics")
        return body if status == 200 else ""

    def produce_queues(self, ts0):
        """Per shop of SHOPS: one agent ONLINE with one slot, taken by buyer bx; the
        shop's other buyers find no eligible human and queue (ROUTE-8, ROUTE-11)."""
        self.produce("config", [{"event_id": "c-" + s, "shop_id": s, "ts": ts0,
                                 "queue_enabled": True, "queue_max_wait_ms": WAIT_MS}
                                for s in SHOPS])
        self.produce("agent", [r for s in SHOPS for r in (
            {"event_id": "a-" + s, "shop_id": s, "ts": ts0, "type": "PROFILE",
             "agent_id": "full", "capacity": 1},
            {"event_id": "o-" + s, "shop_id": s, "ts": ts0, "type": "PRESENCE",
             "agent_id": "full", "presence": "ONLINE"})])
        self.produce("chat", [{"event_id": "x-" + s, "shop_id": s, "ts": ts0 + 1,
                               "type": "CHAT_OPEN", "buyer_id": "bx"} for s in SHOPS] +
                     [{"event_id": "q-%s-%d" % (s, i), "shop_id": s, "ts": ts0 + 2 + i,
                       "type": "CHAT_OPEN", "buyer_id": "b%d" % i}
                      for s, n in SHOPS.items() for i in range(n)])

    def wait_queued(self):
        wait_for(lambda: all(len(self.redis.state(s)["queue"]) == n for s, n in SHOPS.items()),
                 60, "every buyer but bx queued")

    def task_of(self):
        """shop -> its task: the partition its records were written to."""
        return {r["value"]["shop_id"]: str(r["partition"])
                for r in self.consume("chat", meta=True)}

    def expected_queues(self, task_of):
        queues = {s: len(self.redis.state(s)["queue"]) for s in SHOPS}
        total, top = {}, {}
        for t in set(task_of.values()):
            mine = sorted((s for s in SHOPS if task_of[s] == t), key=lambda s: (-queues[s], s))
            mine = [s for s in mine if queues[s]]
            total[t] = float(sum(queues[s] for s in mine))
            top[t] = {str(r + 1): (mine[r], float(queues[mine[r]])) if r < len(mine) else ("", 0.0)
                      for r in range(3)}
        return total, top

    def scraped_queues(self, text):
        top = {}
        for labels, v in samples(text, "kefu_queue_length_top").items():
            d = dict(labels)
            top.setdefault(d["task"], {})[d["rank"]] = (d["shop"], v)
        return by_task(text, "kefu_queue_length"), top

    def wait_queues_match(self, task_of, what):
        want = self.expected_queues(task_of)
        got = []

        def match():
            got[:] = [self.scraped_queues(self.metrics())]
            return got[0] == want
        try:
            wait_for(match, 30, what)
        except AssertionError:
            self.assertEqual(got[0], want)
        return want

    def test_ROUTE_11_queue_length_and_top_shops_per_task(self):
        self.check_queue_gauges()

    def test_ROUTE_11_queue_gauges_count_shops_out_of_memory(self):
        # state.cache_mb=0: every shop leaves memory after each batch, its queue in Redis
        self.check_queue_gauges("state.cache_mb=0")

    def check_queue_gauges(self, *settings):
        ts0 = int(time.time() * 1000) - 3600 * 1000
        self.produce_queues(ts0)
        self.start(*settings)
        self.wait_queued()
        task_of = self.task_of()
        total, top = self.wait_queues_match(task_of, "the queue gauges to show the queues")
        self.assertEqual(sum(total.values()), sum(SHOPS.values()))  # every buyer is queued
        text = self.metrics()
        self.assertEqual(len(samples(text, "kefu_queue_length_top")), 3 * len(total))
        # An agent comes ONLINE at the longest queue of the task with the most shops: its
        # buyers are released (ROUTE-11), and the shop leaves that task's rank-1 slot.
        busiest = max(top, key=lambda t: sum(1 for s in task_of.values() if s == t))
        shop = top[busiest]["1"][0]
        self.produce("agent", [
            {"event_id": "p1", "shop_id": shop, "ts": ts0 + 100, "type": "PROFILE",
             "agent_id": "free", "capacity": 50},
            {"event_id": "p2", "shop_id": shop, "ts": ts0 + 101, "type": "PRESENCE",
             "agent_id": "free", "presence": "ONLINE"}])
        wait_for(lambda: not self.redis.state(shop)["queue"], 30, "the queue of %s released" % shop)
        _, after = self.wait_queues_match(task_of, "the gauges to follow the release")
        self.assertNotEqual(after[busiest]["1"][0], shop)
        self.assertEqual(len(samples(self.metrics(), "kefu_queue_length_top")), 3 * len(total))

    def test_timers_open_and_overdue_with_a_stalled_watermark(self):
        ts0 = int(time.time() * 1000) - 3600 * 1000
        self.produce_queues(ts0)
        self.start()
        task_of = self.task_of()
        # Every queued buyer has its queue timeout, due 50 minutes ago by the wall clock;
        # event time stays at ts0 + a few ms (no more input, idle advance off), so none fires.
        self.wait_queued()
        timers = {t: [] for t in set(task_of.values())}
        for s in SHOPS:
            timers[task_of[s]] += [t["deadline"] for t in pending_timers(self.redis, s)]
        want_open = {t: float(len(d)) for t, d in timers.items()}
        wait_for(lambda: by_task(self.metrics(), "kefu_open_timers") == want_open, 30,
                 "kefu_open_timers %s" % want_open)
        text, now = self.metrics(), time.time() * 1000
        overdue = by_task(text, "kefu_oldest_overdue_timer_seconds")
        watermark = by_task(text, "kefu_watermark_ms")
        for t, deadlines in timers.items():
            with self.subTest(task=t):
                self.assertLess(watermark[t], min(deadlines))  # nothing could fire
                age = (now - min(deadlines)) / 1000
                self.assertGreater(age, 2900)
                # the index holds the deadline, or the start of its minute's due bucket
                self.assertGreaterEqual(overdue[t], age - 5)
                self.assertLessEqual(overdue[t], age + 65)

    def test_ready_gauge_and_sub_millisecond_redis_latency(self):
        self.produce_queues(int(time.time() * 1000))
        self.start()
        wait_for(lambda: http_get(self.port, "/readyz")[0] == 200, 60, "/readyz 200")
        wait_for(lambda: samples(self.metrics(), "kefu_ready") == {(): 1.0}, 30, "kefu_ready 1")
        wait_for(lambda: samples(self.metrics(), "kefu_redis_seconds_count").get((), 0) > 0, 30,
                 "Redis round trips measured")
        text = self.metrics()
        self.assertIn('kefu_redis_seconds_bucket{le="0.0001"}', text)
        total = samples(text, "kefu_redis_seconds_sum")[()]
        self.assertNotAlmostEqual(total * 1000, round(total * 1000), places=6)  # not whole ms


if __name__ == "__main__":
    main()
