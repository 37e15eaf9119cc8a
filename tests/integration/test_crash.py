"""Effectively once under SIGKILL (SPEC §5), for processing.guarantee=exactly_once and
at_least_once.

A seeded stream of a few thousand input events over eight shops (shop configs with
couriers, agent PRESENCE/PROFILE, order lifecycles with packages and region codes, many
DELIVERABILITY_QUERY chat events, a few repeated event ids and a few bad records; see
tests/lib/workload.py) is produced in pieces while `kefu run` is started and killed with
SIGKILL at random moments: some at a random delay after start (possibly during the
group join), some at a random delay after the run has visibly made progress, so that
kills land mid-processing. A last run with --exit-when-idle finishes the stream. Then:

  (a) no input applied twice (read with `kefu state show`): per shop, the event ids seen
      are exactly the distinct valid event ids produced (each one's hash present, and as
      many entries as ids), each order has the status of its last event, each agent the
      presence of its last PRESENCE, each config the couriers of the last config, and
      the applied offsets are the last offsets of the shop's valid records per
      partition;
  (b) no output lost: one DELIVERABILITY_RESULT card per distinct query, nothing else;
      every bad record on kefu.dlq, unchanged. As the mock cluster's read_committed
      readers also see what a killed run wrote in its open transaction, a copy alone
      proves little: every output a killed run wrote for an input that no commit
      covered (at or beyond where the next run starts) must be written again later;
  (c) every re-emitted output is byte-identical (key, value, timestamp, headers) to its
      first copy (the mock cluster's read_committed readers also see aborted records,
      so exactly_once shows copies too).

KEFU_CRASH_SEED=<n> reproduces a run (the stream and the kill schedule). KEFU_CRASH_KILLS=<n>
sets the number of kills (default: 3 to 6, seeded, CI-sized); KEFU_CRASH_KILLS=50 is the
long version for nightly runs (docs/TESTING.md, "Long runs"), with a stream that grows
with the kills so that every run still has work to be killed in.
"""
import os
import random
import shutil
import signal
import tempfile
import time

from kefutest import KefuTestCase, main, wait_for
from workload import (COURIER_STATUS, Workload, after_kill, end_offsets, log_lines,
                      produce_chunk, progress, remembered_outputs, seed_from_env, start_kefu,
                      verify)

# A killed run stays in the group until its session times out, and on the mock cluster
# every rebalance after the first waits session.timeout.ms - 1 s: a short session keeps
# each restart at a few seconds.
SESSION = ["kafka.session.timeout.ms=3000", "kafka.heartbeat.interval.ms=300"]


class CrashTest(KefuTestCase):
    partitions = 4

    def crash_run(self, guarantee):
        seed = seed_from_env()
        print("\n%s: KEFU_CRASH_SEED=%d" % (guarantee, seed), flush=True)
        rng = random.Random(seed)
        kills_env = os.environ.get("KEFU_CRASH_KILLS", "").strip()
        nkills = int(kills_env) if kills_env else None
        events = max(3000, 120 * (nkills or 0))
        w = Workload(rng, shops=8, events=events, duplicates=12, bad=8)
        seeded = rng.randint(3, 6)  # drawn always: a seed gives the same stream either way
        nkills = max(2, nkills or seeded)
        chunks = w.chunks(nkills + 1)
        # At least two kills wait for progress first, so that they land mid-processing.
        modes = ["mid", "mid"] + [rng.choice(["start", "mid"]) for _ in range(nkills - 2)]
        rng.shuffle(modes)
        logdir = tempfile.mkdtemp(prefix="kefu-crash-")
        # Small batches: a chunk takes several commits, so a kill that waits for the
        # first of them lands while the rest is in flight, however fast kefu runs.
        settings = ["processing.guarantee=" + guarantee, "instance.id=crash",
                    "batch.max_records=16"] + SESSION
        report, kills = [], []
        started = time.monotonic()
        try:
            self.produce("courier", COURIER_STATUS)
            produce_chunk(self, chunks[0])
            landed = mid = 0
            for i, mode in enumerate(modes):
                log = open(os.path.join(logdir, "run%d.log" % i), "w")
                self.addCleanup(log.close)
                before = progress(self.redis, self.partitions)
                t = time.monotonic()
                proc = start_kefu(self, log, *settings)
                self.addCleanup(lambda p=proc: p.poll() is None and p.kill())
                produce_chunk(self, chunks[i + 1])  # more input while it starts
                total = sum(end_offsets(self.broker.bootstrap).values())
                if mode == "start":
                    delay = rng.uniform(0.5, 4.0)
                    time.sleep(max(0.0, t + delay - time.monotonic()))
                else:
                    wait_for(lambda: progress(self.redis, self.partitions) > before or
                             proc.poll() is not None, 60, "run %d to make progress" % i)
                    delay = rng.uniform(0.0, 0.1)
                    time.sleep(delay)
                at_kill = progress(self.redis, self.partitions)
                alive = proc.poll() is None
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                log.close()
                kills.append(after_kill(self, self.partitions))
                landed += alive
                in_flight = alive and before < at_kill < total
                mid += in_flight
                report.append("run %d: %s kill after %.2f s (%s): progress %d -> %d of %d%s" % (
                    i, mode, time.monotonic() - t, "landed" if alive else "already exited",
                    before, at_kill, total, ", mid-processing" if in_flight else ""))
                print(report[-1], flush=True)
            with open(os.path.join(logdir, "final.log"), "w") as log:
                log.write(self.run_kefu(*(settings + ["task_idle_ms=100"]), timeout=180))
            self.assertTrue(mid >= 1, "no kill landed mid-processing:\n" + "\n".join(report))
            distinct, repeats, per_topic, reemitted = verify(self, w, kills)
            # Remembered outputs are dropped once their commit is known: after the
            # commit, or (a kill between the commit and that write) at the next
            # assignment, for every input before where the partition then starts.
            left = remembered_outputs(self.redis, self.partitions)
            self.assertEqual(left, {}, "remembered outputs never dropped")
            print("%s (seed %d): %d kills landed (%d mid-processing), %d outputs, "
                  "%d repeated copies %s, all byte-identical; %d outputs of uncommitted "
                  "inputs written again; %.1f s" % (
                      guarantee, seed, landed, mid, distinct, repeats, per_topic, reemitted,
                      time.monotonic() - started), flush=True)
        except BaseException:
            print("FAILED %s with KEFU_CRASH_SEED=%d; kefu logs kept in %s" % (
                guarantee, seed, logdir))
            for line in report:
                print("  " + line)
            for name in sorted(os.listdir(logdir)):
                for line in log_lines(os.path.join(logdir, name))[:20]:
                    print("  %s: %s" % (name, line))
            raise
        shutil.rmtree(logdir, ignore_errors=True)

    def test_exactly_once_under_sigkill_SPEC5(self):
        self.crash_run("exactly_once")

    def test_at_least_once_under_sigkill_SPEC5(self):
        self.crash_run("at_least_once")


if __name__ == "__main__":
    main()
