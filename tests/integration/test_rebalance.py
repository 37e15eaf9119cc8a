"""A commit that fails because the group moved on, and outages longer than
max.poll.interval.ms, never wedge kefu (SPEC §5, §6).

Each case runs the seeded workload of tests/lib/workload.py (every rule family) through
one long-running instance, breaks the consumer group's side of a commit while it works,
produces the rest, and then requires what the crash test requires: the whole stream
processed, no input applied twice (exact state), no output lost, every copy of an output
byte-identical, /readyz 200, and a clean exit on SIGTERM.

  * OffsetCommit answered UNKNOWN_MEMBER_ID or REBALANCE_IN_PROGRESS (at_least_once):
    librdkafka then rejoins the group, and the rejoin happens inside a consumer poll. A
    batch-retry loop that only slept never polled: every later commit failed with
    "Unknown member" and the instance processed nothing again.
  * TxnOffsetCommit answered with the same errors (exactly_once): the transaction is
    aborted and the batch done again.
  * Redis stopped for longer than max.poll.interval.ms (both guarantees): the retry
    loop polls the consumer, so the member stays in its group; what a rebalance took
    away meanwhile is dropped from the batch, never committed under an old generation.

KEFU_CRASH_SEED=<n> reproduces a run's stream.
"""
import os
import random
import signal
import tempfile
import time

from kefutest import KefuTestCase, free_port, http_get, main, wait_for
from workload import (COURIER_STATUS, Workload, caught_up, end_offsets, log_lines,
                      produce_chunk, progress, seed_from_env, start_kefu, verify)

SESSION = ["kafka.session.timeout.ms=6000", "kafka.heartbeat.interval.ms=500"]


class RebalanceTest(KefuTestCase):
    broker_control = True

    def fault_run(self, guarantee, inject, *settings, after_produce=None):
        seed = seed_from_env()
        print("\n%s: KEFU_CRASH_SEED=%d" % (guarantee, seed), flush=True)
        w = Workload(random.Random(seed), shops=6, events=1500, duplicates=6, bad=4)
        first, rest = w.chunks(2)
        port = free_port()
        logpath = os.path.join(tempfile.mkdtemp(prefix="kefu-rebalance-"), "kefu.log")
        log = open(logpath, "w")
        self.addCleanup(log.close)
        self.produce("courier", COURIER_STATUS)
        produce_chunk(self, first)
        proc = start_kefu(self, log, "processing.guarantee=" + guarantee, "instance.id=reb",
                          "http.listen=127.0.0.1:%d" % port, *(SESSION + list(settings)))
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        try:
            ends = end_offsets(self.broker.bootstrap)
            wait_for(lambda: caught_up(self.redis, self.broker.bootstrap, self.partitions, ends)
                     or proc.poll() is not None, 120, "the first half")
            self.assertIsNone(proc.poll(), "kefu exited")
            inject()
            produce_chunk(self, rest)
            if after_produce:
                after_produce()
            ends = end_offsets(self.broker.bootstrap)
            before = progress(self.redis, self.partitions)
            started = time.monotonic()
            wait_for(lambda: caught_up(self.redis, self.broker.bootstrap, self.partitions, ends)
                     or proc.poll() is not None, 180, "the second half after the fault "
                     "(progress %d of %d)" % (before, sum(ends.values())))
            self.assertIsNone(proc.poll(), "kefu exited")
            wait_for(lambda: http_get(port, "/readyz")[0] == 200, 30, "/readyz 200")
            recovery = time.monotonic() - started
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(60), 0)
            distinct, repeats, per_topic, _ = verify(self, w)
            print("%s (seed %d): %d outputs, %d repeated copies %s, all byte-identical; "
                  "caught up %.1f s after the fault" % (guarantee, seed, distinct, repeats,
                                                        per_topic, recovery), flush=True)
        except BaseException:
            log.flush()
            print("FAILED with KEFU_CRASH_SEED=%d; kefu log %s" % (seed, logpath))
            for line in log_lines(logpath)[-30:]:
                print("  " + line)
            raise

    def test_offset_commit_unknown_member_at_least_once_SPEC5(self):
        self.fault_run("at_least_once", lambda: self.broker.control(
            "errors OffsetCommit UNKNOWN_MEMBER_ID UNKNOWN_MEMBER_ID"))

    def test_offset_commit_rebalance_in_progress_at_least_once_SPEC5(self):
        self.fault_run("at_least_once", lambda: self.broker.control(
            "errors OffsetCommit REBALANCE_IN_PROGRESS REBALANCE_IN_PROGRESS"))

    def test_txn_offset_commit_stale_member_exactly_once_SPEC5(self):
        self.fault_run("exactly_once", lambda: self.broker.control(
            "errors TxnOffsetCommit UNKNOWN_MEMBER_ID REBALANCE_IN_PROGRESS ILLEGAL_GENERATION"))

    def redis_outage(self, guarantee):
        stopped = []

        def stop_redis():
            os.kill(self.redis.proc.pid, signal.SIGSTOP)
            stopped.append(time.monotonic())
            self.addCleanup(lambda: os.kill(self.redis.proc.pid, signal.SIGCONT))

        def resume_redis():
            # The fault itself: Redis away past max.poll.interval.ms (7 s) while kefu
            # retries a batch of the second half.
            time.sleep(max(0.0, stopped[0] + 12 - time.monotonic()))
            os.kill(self.redis.proc.pid, signal.SIGCONT)

        self.fault_run(guarantee, stop_redis, "kafka.max.poll.interval.ms=7000",
                       "redis.timeout_ms=500", "redis.retry_max_ms=1000",
                       after_produce=resume_redis)

    def test_redis_outage_longer_than_max_poll_interval_at_least_once_SPEC6(self):
        self.redis_outage("at_least_once")

    def test_redis_outage_longer_than_max_poll_interval_exactly_once_SPEC6(self):
        self.redis_outage("exactly_once")


if __name__ == "__main__":
    main()
