"""The scale test (issue 11 §2): 8 partitions, a real 3-master Redis Cluster
(tests/lib/rediscluster.py), and instances of `kefu run` (one group, exactly_once) that
join one after another while a seeded workload (tests/lib/workload.py) is produced
steadily, then leave one by one with SIGTERM (a clean leave): 1 -> 2 -> 3 -> 4 -> 3 -> 2
-> 1. After each change the test waits until every task has processed a batch again.
Afterwards, over the whole stream:

  - state exact: the workload's expected state, per shop, read with `kefu state show`
    over every master (dedup ids, order statuses, presence, couriers, applied offsets);
  - nothing lost or applied twice: every expected card and every bad record on the DLQ,
    exactly once (no repeated copy: every leave is clean), nothing unexpected;
  - remembered outputs all dropped.

Rebalance pauses are measured, not asserted: for every task at every handover, from its
revocation on the old owner (the "revoked task N" log line, with its timestamp) to the
first batch of the new owner (the first advance of ns:{task-N}:pos after the new owner's
"assigned ... [N]" line, sampled every 50 ms straight from the task's master), when
the task had input to read at its assignment (else its next batch waits for input, not
for the rebalance, and no pause is counted). The range
assignor is eager, so every task pauses at every change, also one that stays where it
is. The table and the max/median are printed:

  PAUSE change=<i> <what> task=<n> <old>-><new> ms=<x>
  SCALE pauses=<n> max_ms=<x> median_ms=<x> p90_ms=<x>

KEFU_CRASH_SEED=<n> reproduces the stream; KEFU_SCALE_MAX=<n> (default 4) is the largest
group (2: 1 -> 2 -> 1, a shorter run); KEFU_SCALE_EVENTS=<n> the stream's size.
"""
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timezone

from kefutest import SLOW, KefuTestCase, main, wait_for
from rediscluster import RedisCluster
from workload import (COURIER_STATUS, Workload, caught_up, check_remembered, end_offsets,
                      kefu_args, log_lines, print_failure, produce_chunk, progress,
                      redis_positions, seed_from_env, verify, wait_exit)

GROUP = "kefu-scale"
NAMES = ("sa", "sb", "sc", "sd")
# Every rebalance on the mock cluster waits session.timeout.ms - 1 s (see test_crash.py).
SESSION = ["kafka.session.timeout.ms=3000", "kafka.heartbeat.interval.ms=300"]
WAIT_S = 150  # bounded: a wedged group fails the test, it does not hang it
SAMPLE_S = 0.05


class Resp:
    """One connection to one master, asking HGET/HGETALL in RESP (a client of the real
    server, for sampling every 50 ms without a redis-cli process per sample)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"*":
            return [self._reply() for _ in range(int(rest))]
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"-":
            raise AssertionError("redis: " + rest.decode())
        return rest

    def pipeline(self, commands):
        out = b""
        for cmd in commands:
            out += b"*%d\r\n" % len(cmd) + b"".join(
                b"$%d\r\n%s\r\n" % (len(a), a) for a in (c.encode() for c in cmd))
        self.sock.sendall(out)
        return [self._reply() for _ in commands]

    def close(self):
        self.sock.close()


class TaskSampler(threading.Thread):
    """Per task, the times its stored position (the sum of ns:{task-N}:pos) advanced."""

    def __init__(self, cluster, partitions):
        super().__init__(daemon=True)
        self.partitions = partitions
        self.by_port = {}
        for t in range(partitions):
            self.by_port.setdefault(cluster.master_of("{task-%d}" % t).port, []).append(t)
        self.conns = {port: Resp(port) for port in self.by_port}
        self.advances = {t: [] for t in range(partitions)}
        self.last = {}
        self.stop = threading.Event()
        self.error = None

    def sample(self):
        now = time.time()
        for port, tasks in self.by_port.items():
            replies = self.conns[port].pipeline(
                [("HGETALL", "kefu:{task-%d}:pos" % t) for t in tasks])
            for t, flat in zip(tasks, replies):
                pos = sum(int(v) for v in flat[1::2])
                if pos != self.last.get(t, 0):
                    self.advances[t].append(now)
                self.last[t] = pos

    def run(self):
        try:
            while not self.stop.is_set():
                self.sample()
                self.stop.wait(SAMPLE_S)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            for c in self.conns.values():
                c.close()

    def advanced_since(self, t0):
        return {t for t, times in self.advances.items() if times and times[-1] > t0}


class Producer(threading.Thread):
    """The steady workload: one chunk after another, every @p period seconds, until the
    chunks run out or it is told to stop (the test then produces what is left)."""

    def __init__(self, test, chunks, period):
        super().__init__(daemon=True)
        self.test, self.chunks, self.period = test, list(chunks), period
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            while self.chunks and not self.stop.is_set():
                produce_chunk(self.test, self.chunks.pop(0))
                self.stop.wait(self.period)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e


STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")


def log_events(path):
    """[(time, "revoke"|"assign", task, idle)] from one kefu log; idle: an assigned
    partition with nothing to read."""
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            m = STAMP.match(line)
            if not m:
                continue
            t = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
                tzinfo=timezone.utc).timestamp()
            a = re.search(r"assigned \S+ \[(\d+)\]", line)
            r = re.search(r"revoked task (\d+)", line)
            if a:
                out.append((t, "assign", int(a.group(1)), "(nothing to read)" in line))
            elif r:
                out.append((t, "revoke", int(r.group(1)), False))
    return out


def pauses(changes, runs, sampler, partitions):
    """[(change index, what, task, old, new, ms)]: per task, each revocation in a
    change's window to the first advance after the next assignment of the task."""
    events = sorted((t, kind, task, proc.name, idle) for proc in runs
                    for t, kind, task, idle in log_events(proc.log_path))
    out = []
    for i, (t0, what) in enumerate(changes):
        t1 = changes[i + 1][0] if i + 1 < len(changes) else float("inf")
        for task in range(partitions):
            evs = [e for e in events if e[2] == task and t0 <= e[0] < t1]
            k = 0
            while k < len(evs):
                if evs[k][1] != "revoke":
                    k += 1
                    continue
                revoked, old = evs[k][0], evs[k][3]
                nxt = next((e for e in evs[k + 1:] if e[1] == "assign"), None)
                if nxt is None:
                    break  # the last leave of the run: no new owner in this window
                # the same assignment's lines for the task's other partitions: a task
                # with nothing to read on any of them has no pause to measure
                same = [e for e in evs if e[1] == "assign" and e[3] == nxt[3] and
                        nxt[0] <= e[0] < nxt[0] + 1]
                first = next((a for a in sampler.advances[task] if a > nxt[0]), None)
                if first is not None and first < t1 and not all(e[4] for e in same):
                    out.append((i, what, task, old, nxt[3], (first - revoked) * 1000))
                k = evs.index(nxt) + 1
    return out


class ScaleTest(KefuTestCase):
    partitions = 8

    def setUp(self):
        super().setUp()
        self.redis.stop()  # the single node KefuTestCase starts: this test uses a cluster
        self.redis = RedisCluster(masters=3, replicas=1)
        self.addCleanup(self.redis.stop)

    def start(self, name, logdir, runs):
        path = os.path.join(logdir, "%s.log" % name)
        log = open(path, "w")
        self.addCleanup(log.close)
        args = kefu_args(self, "processing.guarantee=exactly_once", "group.id=" + GROUP,
                         "instance.id=" + name, *SESSION)
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        proc.log_path, proc.name = path, name
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        runs.append(proc)
        return proc

    def test_scale_out_and_in_on_redis_cluster(self):
        seed = seed_from_env()
        top = int(os.environ.get("KEFU_SCALE_MAX", "").strip() or 4)
        top = max(2, min(top, len(NAMES)))
        events = int(os.environ.get("KEFU_SCALE_EVENTS", "").strip() or 3000)
        print("\nKEFU_CRASH_SEED=%d KEFU_SCALE_MAX=%d KEFU_SCALE_EVENTS=%d" % (
            seed, top, events), flush=True)
        rng = random.Random(seed)
        w = Workload(rng, shops=32, events=events, duplicates=12, bad=8)
        chunks = w.chunks(max(2, events // 100))
        logdir = tempfile.mkdtemp(prefix="kefu-scale-")
        runs, up, report, changes = [], {}, [], []
        started = time.monotonic()
        sampler = TaskSampler(self.redis, self.partitions)
        producer = Producer(self, chunks[1:], 0.3)
        self.addCleanup(sampler.stop.set)
        self.addCleanup(producer.stop.set)
        plan = [("start", n) for n in NAMES[1:top]] + \
               [("SIGTERM", n) for n in reversed(NAMES[1:top])]

        def settled(since):
            """Every task processed a batch after @p since, or nothing is left to do."""
            """Every task assigned again after @p since (the change's rebalance is over)
            and then processed a batch, or has nothing to read."""
            assigned = {}
            for proc in up.values():
                for at, kind, task, _ in log_events(proc.log_path):
                    if kind == "assign" and at > since:
                        assigned[task] = max(at, assigned.get(task, 0))
            if len(assigned) < self.partitions:
                return False
            ends, pos = None, None
            for task, at in assigned.items():
                if any(a > at for a in sampler.advances[task]):
                    continue
                if ends is None:
                    ends, pos = end_offsets(self.broker.bootstrap), redis_positions(
                        self.redis, self.partitions)
                if any(pos.get(k, 0) < hi for k, hi in ends.items() if k[1] == task):
                    return False
            return True

        try:
            self.produce("courier", COURIER_STATUS)
            produce_chunk(self, chunks[0])
            sampler.start()
            t = time.time()
            up[NAMES[0]] = self.start(NAMES[0], logdir, runs)
            changes.append((t, "start " + NAMES[0]))
            wait_for(lambda: settled(t) or up[NAMES[0]].poll() is not None,
                     60 * SLOW, "the first instance to process every task")
            producer.start()
            for i, (action, name) in enumerate(plan):
                t = time.time()
                if action == "start":
                    up[name] = self.start(name, logdir, runs)
                else:
                    proc = up.pop(name)
                    proc.send_signal(signal.SIGTERM)
                    self.assertEqual(wait_exit(proc, 30 * SLOW), 0, "%s: exit on SIGTERM; "
                                     "its last warnings: %s" % (
                                         name, log_lines(proc.log_path)[-3:]))
                changes.append((t, "%s %s" % (action, name)))
                wait_for(lambda: settled(t) or any(p.poll() is not None for p in up.values()),
                         WAIT_S, "every task to process after %s %s" % (action, name))
                for n, proc in up.items():
                    self.assertIsNone(proc.poll(), "%s exited by itself with %s" % (
                        n, proc.returncode))
                report.append("change %d: %s %s, settled in %.1f s, progress %d, up: %s" % (
                    i + 1, action, name, time.time() - t,
                    progress(self.redis, self.partitions), sorted(up)))
                print(report[-1], flush=True)
            producer.stop.set()
            producer.join(60)
            self.assertIsNone(producer.error)
            left = producer.chunks
            print("steady production: %d of %d chunks during the changes" % (
                len(chunks) - 1 - len(left), len(chunks) - 1), flush=True)
            for chunk in left:
                produce_chunk(self, chunk)
            ends = end_offsets(self.broker.bootstrap)
            last = up[NAMES[0]]
            wait_for(lambda: caught_up(self.redis, self.broker.bootstrap, self.partitions,
                                       ends) or last.poll() is not None,
                     WAIT_S, "the last instance to process the whole stream")
            self.assertIsNone(last.poll(), "%s exited by itself" % NAMES[0])
            sampler.stop.set()
            sampler.join(5)
            self.assertIsNone(sampler.error)
            last.send_signal(signal.SIGTERM)
            self.assertEqual(wait_exit(last, 30 * SLOW), 0, NAMES[0] + ": exit on SIGTERM")

            # -- correctness ----------------------------------------------------------
            distinct, repeats, per_topic, _ = verify(self, w)
            check_remembered(self, "exactly_once", self.partitions)
            self.assertEqual((repeats, per_topic), (0, {}),
                             "outputs written more than once with clean leaves only")

            # -- the pauses -------------------------------------------------------------
            table = pauses(changes, runs, sampler, self.partitions)
            print("%-7s %-12s %-5s %-9s %8s" % ("change", "what", "task", "handover",
                                               "pause_ms"))
            for i, what, task, old, new, ms in table:
                print("PAUSE change=%d %-12s task=%d %s->%s ms=%.0f" % (
                    i, what.replace(" ", "_"), task, old, new, ms))
            ms = sorted(x[-1] for x in table)
            # every change after the first start hands every task over at least once
            # a handover is measured when the task had input waiting for its new owner
            self.assertEqual(sorted({x[0] for x in table}), list(range(1, len(plan) + 1)),
                             "changes with a handover measured")
            for x in table:  # sanity only, not a speed: a pause is positive and bounded
                self.assertTrue(0 < x[-1] < 60000, x)
            print("SCALE pauses=%d max_ms=%.0f median_ms=%.0f p90_ms=%.0f" % (
                len(ms), ms[-1], statistics.median(ms), ms[int(0.9 * (len(ms) - 1))]))
            print("scale (seed %d): %d instances at most, %d changes, %d inputs, %d outputs "
                  "exactly once; %.1f s" % (seed, top, len(plan), sum(ends.values()),
                                            distinct, time.monotonic() - started), flush=True)
        except BaseException:
            print_failure("scale", seed, logdir, report, [p.log_path for p in runs])
            raise
        shutil.rmtree(logdir, ignore_errors=True)


if __name__ == "__main__":
    main()
