"""Redis faults mid-stream (SPEC §5, §6), for processing.guarantee=exactly_once and
at_least_once, each on a seeded workload with every rule family of tests/lib/workload.py:

  - SIGKILL of a Redis with `appendonly yes, appendfsync always`, restarted on the same
    port and directory (nothing acknowledged is lost);
  - DEBUG SLEEP longer than redis.timeout_ms: kefu's commands time out and are retried
    while the server still runs the timed-out ones when it wakes up (the case the CAS on
    applied offsets is for);
  - FUNCTION FLUSH: the data stays, kefu's Lua functions are gone; the retry reconnects
    and loads them again;
  - a restart *without* persistence (state lost): kefu notices and refuses, while
    running (the task positions it saw are gone) and at start (Kafka has committed
    offsets, Redis has nothing); the SRE's remedy (reset the group's offsets) then
    reprocesses from empty state to the same outputs.

After each survivable fault the crash test's checks hold (tests/lib/workload.py
verify()): no input applied twice (exact dedup ids and state), no output lost, every
re-emitted output byte-identical; /readyz is 503 during the fault and 200 afterwards,
and the process exits 0 on SIGTERM. Each prints `RECOVERY <fault> <guarantee> <s> s`:
from Redis answering again to kefu having committed a batch after the fault and
answering /readyz 200.

KEFU_CRASH_SEED=<n> reproduces a workload.
"""
import os
import random
import signal
import subprocess
import tempfile
import threading
import time

from kefutest import Redis, KefuTestCase, free_port, main, metric, wait_for
from kefutest import http_get as http
from workload import (COURIER_STATUS, Workload, caught_up, end_offsets, produce_chunk, progress,
                      redis_positions, remembered_outputs, seed_from_env, start_kefu, verify)

LOST = "Redis lost kefu's state"
# A short session keeps each rejoin of the group at a few seconds on the mock cluster
# (as in test_crash.py).
SESSION = ["kafka.session.timeout.ms=3000", "kafka.heartbeat.interval.ms=300"]


class RedisFaultsTest(KefuTestCase):
    partitions = 4
    require_503 = True

    # -- helpers ------------------------------------------------------------------------
    def workload(self, guarantee, events=2000):
        seed = seed_from_env()
        print("\n%s %s: KEFU_CRASH_SEED=%d" % (self.id().rsplit(".", 1)[-1], guarantee, seed),
              flush=True)
        return Workload(random.Random(seed), shops=8, events=events, duplicates=10, bad=6)

    def use_aof_redis(self):
        self.redis.stop()
        self.redis = Redis(aof=True)
        self.addCleanup(self.redis.stop)

    def start(self, guarantee, *extra):
        """kefu run (no --exit-when-idle) with /readyz on a free port; its log in a
        temporary file (kept and printed on failure)."""
        self.http_port = free_port()
        fd, self.log_path = tempfile.mkstemp(prefix="kefu-redisfault-", suffix=".log")
        log = os.fdopen(fd, "w")
        path = self.log_path
        self.addCleanup(lambda: getattr(self, "keep_log", False) or os.remove(path))
        self.addCleanup(log.close)
        proc = start_kefu(self, log, "processing.guarantee=" + guarantee, "instance.id=rf",
                          "http.listen=127.0.0.1:%d" % self.http_port, "redis.timeout_ms=500",
                          "redis.retry_max_ms=500", *(SESSION + list(extra)))
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        wait_for(lambda: http(self.http_port, "/healthz")[0] == 200 or proc.poll() is not None,
                 60, "kefu's HTTP endpoint")
        return proc

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def readyz(self):
        return http(self.http_port, "/readyz")

    def wait_progress_past(self, n, proc, what):
        wait_for(lambda: progress(self.redis, self.partitions) > n or proc.poll() is not None,
                 120, what)
        self.assertIsNone(proc.poll(), "kefu exited: " + self.log()[-3000:])

    def finish(self, proc, w):
        """Waits until kefu has read everything, stops it (exit 0) and checks the three
        properties. Returns the check's numbers."""
        wait_for(lambda: caught_up(self.redis, self.broker.bootstrap, self.partitions) or
                 proc.poll() is not None, 180, "kefu to catch up")
        self.assertIsNone(proc.poll(), "kefu exited: " + self.log()[-3000:])
        self.assertEqual(self.readyz()[0], 200, self.readyz())
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(60), 0, self.log()[-3000:])
        distinct, repeats, per_topic, _ = verify(self, w)
        # A position write that failed in the fault is made with a later batch, which
        # also drops the outputs remembered for the committed batch.
        self.assertEqual(remembered_outputs(self.redis, self.partitions), {},
                         "remembered outputs left behind")
        print("  %d outputs, %d repeated copies %s, all byte-identical; inputs applied "
              "twice: 0; outputs lost: 0; no remembered outputs left" % (
                  distinct, repeats, per_topic), flush=True)
        return distinct, repeats

    def fault_run(self, guarantee, fault):
        """Starts on the first half of the stream, waits for progress, injects @p fault
        (a callable that returns once Redis answers again, with the monotonic time it did),
        produces the rest during the fault, and checks everything."""
        w = self.workload(guarantee)
        chunks = w.chunks(2)
        self.produce("courier", COURIER_STATUS)
        produce_chunk(self, chunks[0])
        proc = self.start(guarantee)
        try:
            self.wait_progress_past(len(chunks[0]) // 4, proc, "kefu to make progress")
            seen_503, back = fault(lambda: produce_chunk(self, chunks[1]), proc)
            at_back = progress(self.redis, self.partitions)
            wait_for(lambda: proc.poll() is not None or (
                (progress(self.redis, self.partitions) > at_back or
                 caught_up(self.redis, self.broker.bootstrap, self.partitions)) and
                self.readyz()[0] == 200), 120, "kefu processing again and ready")
            recovery = time.monotonic() - back
            self.assertIsNone(proc.poll(), "kefu exited: " + self.log()[-3000:])
            if self.require_503:
                self.assertTrue(seen_503, "/readyz never answered 503 during the fault")
            print("RECOVERY %s %s %.1f s (/readyz 503 seen during the fault: %s)" % (
                self.fault_name, guarantee, recovery, "yes" if seen_503 else "no"), flush=True)
            self.finish(proc, w)
        except BaseException:
            self.keep_log = True
            print("kefu log %s (kept):\n%s" % (self.log_path, self.log()[-6000:]))
            raise
        conflicts = self.log().count("state conflict")
        print("  retried batches that met the CAS (state conflict): %d" % conflicts)
        return conflicts

    def watch_readyz(self):
        """Polls /readyz in a thread until the returned stop() is called; stop() returns
        whether it answered 503 meanwhile."""
        seen, done = [], threading.Event()

        def poll():
            while not done.is_set():
                if self.readyz()[0] == 503:
                    seen.append(True)
                done.wait(0.02)
        t = threading.Thread(target=poll, daemon=True)
        t.start()

        def stop():
            done.set()
            t.join(10)
            return bool(seen)
        return stop

    # -- SIGKILL, AOF appendfsync always -------------------------------------------------
    def sigkill(self, produce_rest, proc):
        self.redis.kill()
        produce_rest()  # kefu has input to process, and fails at it
        wait_for(lambda: self.readyz()[0] == 503 or proc.poll() is not None, 60,
                 "/readyz 503 with Redis down")
        status, body = self.readyz()
        self.assertEqual(status, 503, body)
        self.assertIn("redis", body.lower())
        self.assertEqual(http(self.http_port, "/healthz")[0], 200)  # alive, just not ready
        self.redis.start()  # same port, same directory: the AOF is loaded
        return True, time.monotonic()

    def sigkill_run(self, guarantee):
        self.use_aof_redis()
        self.fault_name = "redis_sigkill"
        self.fault_run(guarantee, self.sigkill)
        self.assertNotIn(LOST, self.log())

    def test_redis_sigkill_aof_exactly_once_SPEC6(self):
        self.sigkill_run("exactly_once")

    def test_redis_sigkill_aof_at_least_once_SPEC6(self):
        self.sigkill_run("at_least_once")

    # -- DEBUG SLEEP beyond redis.timeout_ms ---------------------------------------------
    def debug_sleep(self, produce_rest, proc):
        watch = self.watch_readyz()
        sleeper = subprocess.Popen(["redis-cli", "-p", str(self.redis.port), "DEBUG", "SLEEP",
                                    "4"], stdout=subprocess.PIPE, text=True)
        wait_for(lambda: self.redis_stalled() or sleeper.poll() is not None, 10,
                 "DEBUG SLEEP to start")
        if sleeper.poll() is not None:
            self.fail("DEBUG SLEEP: %s" % sleeper.stdout.read())
        produce_rest()  # new input while Redis sleeps: kefu's next batch times out
        self.assertEqual(sleeper.communicate(timeout=30)[0].strip(), "OK")
        back = time.monotonic()
        return watch(), back

    def redis_stalled(self):
        """Whether a PING goes unanswered for 300 ms."""
        try:
            subprocess.run(["redis-cli", "-p", str(self.redis.port), "PING"],
                           stdout=subprocess.DEVNULL, timeout=0.3)
            return False
        except subprocess.TimeoutExpired:
            return True

    def debug_sleep_run(self, guarantee):
        self.fault_name = "redis_debug_sleep"
        self.fault_run(guarantee, self.debug_sleep)
        self.assertIn("retrying", self.log())  # it did time out
        self.assertNotIn(LOST, self.log())

    def test_redis_debug_sleep_exactly_once_SPEC6(self):
        self.debug_sleep_run("exactly_once")

    def test_redis_debug_sleep_at_least_once_SPEC6(self):
        self.debug_sleep_run("at_least_once")

    # -- FUNCTION FLUSH: data kept, functions gone ---------------------------------------
    def function_flush(self, produce_rest, proc):
        watch = self.watch_readyz()
        self.assertEqual(self.redis.cli("FUNCTION", "FLUSH").strip(), "OK")
        produce_rest()
        wait_for(lambda: "Function not found" in self.log() or proc.poll() is not None, 60,
                 "kefu to meet the missing function")
        back = time.monotonic()  # Redis never went away: from kefu meeting the fault
        # the retry reconnects at once: /readyz may be 503 for too short a time to see
        return watch(), back

    def test_redis_function_flush_reloaded_at_least_once(self):
        self.fault_name = "redis_function_flush"
        self.require_503 = False
        self.fault_run("at_least_once", self.function_flush)
        self.assertIn("Function not found", self.log())
        self.assertNotIn(LOST, self.log())

    # -- restart without persistence: state lost -----------------------------------------
    def assert_refused(self, proc, what):
        """kefu stops with exit code 1 and says why; /readyz says so while it leaves."""
        reasons = []

        def gone():
            status, body = self.readyz()
            if status == 503 and LOST in body:
                reasons.append(body.strip())
            return proc.poll() is not None
        wait_for(gone, 120, "kefu to refuse (" + what + ")")
        self.assertEqual(proc.wait(10), 1, self.log()[-3000:])
        errors = [line for line in self.log().splitlines() if " ERROR " in line and LOST in line]
        self.assertTrue(errors, "no ERROR line saying the state was lost:\n" + self.log()[-3000:])
        print("  %s: exit 1; %s%s" % (what, errors[0][:400],
                                      "; /readyz: " + reasons[0] if reasons else ""))
        return errors[0]

    def assert_nothing_written(self):
        """kefu wrote nothing to the empty Redis: no shop state, no task key."""
        keys = self.redis.cli("KEYS", "kefu:*").split()
        self.assertEqual(keys, [], "kefu wrote to the empty Redis")

    def test_redis_restart_empty_while_running_refused(self):
        """Case b, both guarantees: the task positions this instance saw are gone after
        the reconnect."""
        for guarantee in ("at_least_once", "exactly_once"):
            with self.subTest(guarantee=guarantee):
                self.setUp_fresh()
                w = self.workload(guarantee, events=600)
                chunks = w.chunks(2)
                self.produce("courier", COURIER_STATUS)
                produce_chunk(self, chunks[0])
                proc = self.start(guarantee)
                self.wait_progress_past(len(chunks[0]) // 4, proc, "kefu to make progress")
                self.redis.kill()
                self.redis.start()  # no persistence: empty
                produce_chunk(self, chunks[1])
                line = self.assert_refused(proc, "Redis restarted empty while running, " +
                                           guarantee)
                self.assertIn("is gone after reconnecting", line)
                self.assert_nothing_written()

    def test_redis_down_at_start_waited_for_SPEC6(self):
        """A kefu (re)started while Redis is down (in a failover: its master not elected
        yet, or refusing writes with NOREPLICAS) waits for it, not ready, instead of
        exiting 1 into a CrashLoopBackOff that outlasts the outage; once Redis answers it
        processes everything, exactly once. A wrong password still fails the start
        (test_secrets.py)."""
        w = self.workload("exactly_once", events=400)
        self.produce("courier", COURIER_STATUS)
        for chunk in w.chunks(1):
            produce_chunk(self, chunk)
        self.use_aof_redis()
        self.redis.kill()
        proc = self.start("exactly_once")
        wait_for(lambda: self.log().count("redis unavailable") >= 2 or proc.poll() is not None,
                 60, "kefu to retry the connection")
        self.assertIsNone(proc.poll(), "kefu exited: " + self.log()[-3000:])
        status, body = self.readyz()
        self.assertEqual(status, 503, body)
        self.assertIn("redis unavailable", body)
        self.assertEqual(http(self.http_port, "/healthz")[0], 200)  # alive, just not ready
        self.redis.start()
        self.finish(proc, w)

    def positions_refused(self, *extra):
        """kefu (with @p extra settings) processes a workload while Redis refuses HSET on
        the position keys (an ACL selector), then idles and tries them again at least
        4 times. Returns (workload, kefu, end offsets, refusals)."""
        w = self.workload("exactly_once", events=300)
        self.produce("courier", COURIER_STATUS)
        self.redis.cli("ACL", "SETUSER", "default", "-hset",
                       "(~kefu:{task-*}:out ~kefu:{shop* +hset)")
        self.assertIn("NOPERM", self.redis.cli("HSET", "kefu:{task-0}:pos", "probe", "1"))
        for chunk in w.chunks(1):
            produce_chunk(self, chunk)
        proc = self.start("exactly_once", *extra)
        ends = end_offsets(self.broker.bootstrap)
        total = sum(ends.values())
        wait_for(lambda: (metric(self.http_port, "kefu_records_in_total") or 0) >= total or
                 proc.poll() is not None, 120, "kefu to read every input record")
        # then its last batches' position writes, refused, and 4 retries while it idles
        # ("again": the write carries only what earlier ones left; 1.5 s of backoff)
        again = "writing positions again: NOPERM"
        wait_for(lambda: self.log().count(again) >= 4 or proc.poll() is not None, 120,
                 "kefu to try its refused position writes again")
        self.assertIsNone(proc.poll(), "kefu exited: " + self.log()[-3000:])
        self.assertFalse(caught_up(self.redis, self.broker.bootstrap, self.partitions, ends))
        return w, proc, ends, self.log().count("writing positions")

    def test_positions_written_when_idle_after_a_failed_write(self):
        """A task's position write that fails after its batch committed (Redis refused
        it, restarted, failed over) is made again while kefu has nothing to process,
        not only with its next input: the positions are where a restart or a new owner
        starts (the mock cluster keeps no offsets sent with a transaction), and what an
        SRE's `kefu status` and this harness read. Once the refusal is lifted the
        positions must reach the end offsets without another record. (A CI run of
        test_redis_cluster waited 120 s for them after a failover hit the idle write:
        it was never made again.)"""
        w, proc, ends, refused = self.positions_refused()
        self.redis.cli("ACL", "SETUSER", "default", "clearselectors", "+hset")
        wait_for(lambda: caught_up(self.redis, self.broker.bootstrap, self.partitions, ends) or
                 proc.poll() is not None, 60, "the positions, with no input after the refusal")
        print("IDLE_POSITIONS %d refused position writes, then the positions at the end "
              "offsets with no new input" % refused, flush=True)
        self.finish(proc, w)

    def test_positions_written_at_stop_after_a_failed_write(self):
        """The same refusal, with the retries' backoff grown long (redis.retry_max_ms one
        minute, kefu's next try seconds away): SIGTERM right after the refusal is lifted
        still writes the positions before kefu exits 0, as a rebalance writes them
        before it gives a task up; they do not wait for the backoff."""
        w, proc, ends, refused = self.positions_refused("redis.retry_max_ms=60000")
        self.redis.cli("ACL", "SETUSER", "default", "clearselectors", "+hset")
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(60), 0, self.log()[-3000:])
        self.assertTrue(caught_up(self.redis, self.broker.bootstrap, self.partitions, ends),
                        "positions left behind at the stop: %s, end offsets %s; kefu's log:\n%s"
                        % (redis_positions(self.redis, self.partitions), ends, self.log()[-6000:]))
        verify(self, w)
        self.assertEqual(remembered_outputs(self.redis, self.partitions), {},
                         "remembered outputs left behind")
        print("STOP_POSITIONS %d refused position writes, then the positions at the end "
              "offsets when kefu stopped" % refused, flush=True)

    def test_redis_empty_at_start_refused_at_least_once(self):
        """Case a: Kafka has the group's committed offsets, Redis has nothing. Then the
        remedy the ERROR line names (offsets reset to the earliest) reprocesses
        everything from empty state to the same outputs."""
        w = self.workload("at_least_once", events=800)
        self.produce("courier", COURIER_STATUS)
        for chunk in w.chunks(1):
            produce_chunk(self, chunk)
        self.run_kefu("processing.guarantee=at_least_once", *SESSION, timeout=180)
        verify(self, w)
        self.redis.kill()
        self.redis.start()  # no persistence: empty
        proc = self.start("at_least_once")
        line = self.assert_refused(proc, "Redis empty at start, at_least_once")
        self.assertIn("has committed", line)
        self.assertIn("--reset-offsets --to-earliest", line)
        self.assert_nothing_written()
        # The remedy: the group's offsets back to the earliest (no Admin API on the mock
        # cluster: a plain commit at each partition's log start), then a normal run.
        self.reset_group_offsets()
        self.run_kefu("processing.guarantee=at_least_once", *SESSION, timeout=180)
        distinct, repeats, per_topic, _ = verify(self, w)
        self.assertGreater(repeats, 0)  # everything came again, byte-identical
        print("  after the offset reset: %d outputs, %d copies again, byte-identical" % (
            distinct, repeats))

    # -- plumbing -------------------------------------------------------------------------
    def setUp_fresh(self):
        """A new broker and Redis for each subtest (the consumer group starts anew)."""
        if getattr(self, "_fresh", False):
            from kefutest import Broker
            self.redis = Redis()
            self.broker = Broker(self.partitions)
            self.addCleanup(self.redis.stop)
            self.addCleanup(self.broker.stop)
        self._fresh = True

    def reset_group_offsets(self, group="kefu"):
        """What `kafka-consumer-groups --reset-offsets --to-earliest` does. The mock
        cluster takes commits only from a member of the group: join it, then commit each
        partition's log start."""
        from confluent_kafka import Consumer, TopicPartition
        from kefutest import TOPICS
        from workload import INPUTS
        assigned = []
        c = Consumer({"bootstrap.servers": self.broker.bootstrap, "group.id": group,
                      "enable.auto.commit": False, "partition.assignment.strategy": "range",
                      "session.timeout.ms": 3000, "heartbeat.interval.ms": 300})
        try:
            c.subscribe([TOPICS[k] for k in INPUTS],
                        on_assign=lambda consumer, parts: assigned.extend(parts))
            def joined():
                c.poll(0.1)
                return bool(assigned)
            wait_for(joined, 60, "the offset reset to join the group")
            tps = []
            for key in INPUTS:
                for p in range(self.partitions):
                    lo, _ = c.get_watermark_offsets(TopicPartition(TOPICS[key], p), timeout=10)
                    tps.append(TopicPartition(TOPICS[key], p, lo))
            c.commit(offsets=tps, asynchronous=False)
        finally:
            c.close()

if __name__ == "__main__":
    main()
