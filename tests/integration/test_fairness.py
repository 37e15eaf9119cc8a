"""Fair batches (issue 12 §3, DECISIONS 63): a skewed backlog, one hot task and three
normal ones, read by one `kefu run`. Every batch takes a share of its room from each task
that has records ready (max / tasks first, what is left in turn), so:

  - the normal tasks' lag reaches 0 long before the hot task's: when the last normal task
    is done, the hot task still has more than half of its backlog;
  - every task's lag falls from the start: by the time the hot task has done a quarter
    of its backlog, each normal task has done some of its own (a batch that filled from
    the lowest-numbered task first kept them waiting until the hot task was done). Not
    a tenth: the hot partition's first fetched records stand in front of the others' in
    librdkafka's one consumer queue, and the hot task has the batches to itself until
    the others' arrive (about a thousand records on the mock cluster).

The hot task is task 0, the lowest-numbered: the order a naive fill would serve first.
Lag = end offset - the task's position in Redis (ns:{task-N}:pos, written after each
commit), sampled as fast as Redis answers; the broker answers 10 ms late, so that the
backlog takes seconds, not a blink. Prints the curves:

  FAIR task=<n> lag: <t s>=<lag> ...
"""
import json
import subprocess
import tempfile
import time

from kefutest import KEFU, SLOW, TOPICS, KefuTestCase, main, wait_for
from workload import redis_positions, start_kefu

T0 = 1773068400000
HOT, NORMAL = 8000, 600


def murmur2(data):
    """Kafka's murmur2 (the Java client's, librdkafka's murmur2_random)."""
    m, h = 0x5BD1E995, 0x9747B28C ^ len(data)
    for i in range(len(data) // 4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = len(data) & 3
    tail = data[len(data) - rest:]
    if rest >= 3:
        h ^= tail[2] << 16
    if rest >= 2:
        h ^= tail[1] << 8
    if rest >= 1:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def shop_of_task(task, partitions):
    for i in range(10000):
        s = "shop-%d" % i
        if (murmur2(s.encode()) & 0x7FFFFFFF) % partitions == task:
            return s


class FairnessTest(KefuTestCase):
    partitions = 4
    broker_control = True

    def test_a_hot_task_does_not_hold_up_the_others(self):
        counts = {0: HOT, 1: NORMAL, 2: NORMAL, 3: NORMAL}
        records = []
        for task, n in counts.items():
            shop = shop_of_task(task, self.partitions)
            records += [{"event_id": "q%d-%d" % (task, i), "shop_id": shop, "ts": T0 + i,
                         "type": "DELIVERABILITY_QUERY", "agent_id": "a1",
                         "buyer_id": "b%d" % (i % 50), "region_code": "440305"}
                        for i in range(n)]
        self.produce("chat", records)
        # every broker answer 10 ms late: a batch (a transaction) takes tens of ms, so the
        # backlog lasts long enough to watch the lags fall
        self.broker.control("rtt 1 10")
        log = tempfile.NamedTemporaryFile("w+", prefix="kefu-fair-", suffix=".log")
        self.addCleanup(log.close)
        proc = start_kefu(self, log, "batch.max_records=40", "http.listen=", "log.level=debug")
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        start, curves = time.monotonic(), {t: [] for t in counts}

        def sample():
            pos = redis_positions(self.redis, self.partitions)
            now = time.monotonic() - start
            for t, n in counts.items():
                curves[t].append((now, n - pos.get(("chat", t), 0)))
            return all(c[-1][1] == 0 for c in curves.values()) or proc.poll() is not None
        wait_for(sample, 300 * SLOW, "kefu to read the backlog")
        self.assertIsNone(proc.poll(), "kefu exited")
        for t, c in curves.items():
            step = max(1, len(c) // 12)
            print("FAIR task=%d lag: %s" % (t, " ".join(
                "%.1fs=%d" % (s, lag) for s, lag in c[::step] + [c[-1]])), flush=True)

        def first(t, pred):
            return next(i for i, (_, lag) in enumerate(curves[t]) if pred(lag))
        normal_done = max(first(t, lambda lag: lag == 0) for t in (1, 2, 3))
        hot_left = curves[0][normal_done][1]
        if hot_left <= HOT // 2:
            log.seek(0)
            print("".join(l for l in log.readlines() if "engine" in l)[-8000:])
        self.assertGreater(hot_left, HOT // 2,
                           "the hot task had done half its backlog before the others were done")
        quarter = first(0, lambda lag: lag <= HOT * 3 // 4)
        for t in (1, 2, 3):
            self.assertLess(curves[t][quarter][1], NORMAL,
                            "task %d waited while the hot task read a quarter of its backlog" % t)


if __name__ == "__main__":
    main()
