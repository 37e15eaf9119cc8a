"""Three instances joining and leaving one consumer group under load (SPEC §5, §6), for
processing.guarantee=exactly_once and at_least_once.

A seeded stream (tests/lib/workload.py, every rule family) is produced in pieces while
three instances of `kefu run` (cha, chb, chc; one group) are started and stopped at
seeded random moments: an instance that is down is started, one that is up is stopped
with SIGTERM (it must exit 0 and leave the group) or SIGKILL (it vanishes; the group
drops it when its session times out). At least one instance is up at any time, and every
instance is started at least once. After the schedule, the instances still up process
the rest of the stream; then, over the whole stream:

  (a) no input applied twice (exact state in Redis);
  (b) no output lost (every card, every bad record on the DLQ), and every output a
      killed instance wrote for an input of its tasks no commit covered is written
      again later;
  (c) every re-emitted output byte-identical to its first copy.

It prints one line for the fault matrix (see test_kafka_faults.py):
  MATRIX group_churn <guarantee> runs=<n> applied_twice=<n> lost=<n>
         reemits_identical=<yes/no> recovery_s=<x>
recovery_s: from the last membership change to the first input completed after it.

KEFU_CRASH_SEED=<n> reproduces a run (the stream and the schedule); KEFU_CHURN_CHANGES
sets the number of membership changes (default: 6 to 9, seeded).
"""
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time

from kefutest import KefuTestCase, main, wait_for
from workload import (COURIER_STATUS, Sampler, Workload, after_kill, assigned_tasks,
                      caught_up, check_remembered, end_offsets, kefu_args, log_lines,
                      print_failure, produce_chunk, progress, read_inputs, read_outputs,
                      seed_from_env, tally, verify, wait_exit)

GROUP = "kefu-churn"
NAMES = ("cha", "chb", "chc")
# Every rebalance on the mock cluster waits session.timeout.ms - 1 s; a short session
# keeps each change to a few seconds (as in test_crash.py).
SESSION = ["kafka.session.timeout.ms=3000", "kafka.heartbeat.interval.ms=300"]
WAIT_S = 150  # bounded: a wedged group fails the test, it does not hang it


class GroupChurnTest(KefuTestCase):
    partitions = 4

    def start(self, name, guarantee, logdir, runs):
        path = os.path.join(logdir, "%s-%d.log" % (name, len(runs)))
        log = open(path, "w")
        self.addCleanup(log.close)
        args = kefu_args(self, "processing.guarantee=" + guarantee, "group.id=" + GROUP,
                         "instance.id=" + name, *SESSION)
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        proc.log_path, proc.name = path, name
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        runs.append(proc)
        return proc

    def churn_run(self, guarantee):
        seed = seed_from_env()
        print("\n%s: KEFU_CRASH_SEED=%d" % (guarantee, seed), flush=True)
        rng = random.Random(seed)
        w = Workload(rng, shops=8, events=3000, duplicates=12, bad=8)
        changes = rng.randint(6, 9)
        if os.environ.get("KEFU_CHURN_CHANGES", "").strip():
            changes = int(os.environ["KEFU_CHURN_CHANGES"])
        chunks = w.chunks(changes + 1)
        logdir = tempfile.mkdtemp(prefix="kefu-churn-")
        runs, up, kills, report = [], {}, [], []
        started = time.monotonic()
        sampler = Sampler(self.redis, self.partitions)
        self.addCleanup(sampler.stop.set)
        try:
            self.produce("courier", COURIER_STATUS)
            produce_chunk(self, chunks[0])
            up[NAMES[0]] = self.start(NAMES[0], guarantee, logdir, runs)
            wait_for(lambda: progress(self.redis, self.partitions) > 0 or
                     up[NAMES[0]].poll() is not None, 60, "the first instance to process")
            sampler.start()
            last_change = time.time()
            for i in range(changes):
                down = [n for n in NAMES if n not in up]
                never = [n for n in down if not any(r.name == n for r in runs)]
                # start when nobody else is up, or to bring every instance in once
                if len(up) == 1 or never or (down and rng.random() < 0.5):
                    name = rng.choice(never or down)
                    action = "start"
                else:
                    name = rng.choice(sorted(up))
                    action = rng.choice(["SIGTERM", "SIGKILL"])
                time.sleep(rng.uniform(0.5, 4.0))  # a seeded moment in the stream
                t = time.monotonic()
                if action == "start":
                    up[name] = self.start(name, guarantee, logdir, runs)
                    rc = None
                else:
                    proc = up.pop(name)
                    held = assigned_tasks(proc.log_path)
                    proc.send_signal(getattr(signal, action))
                    rc = wait_exit(proc, 30)
                    if action == "SIGKILL":
                        kills.append(after_kill(self, self.partitions, GROUP, held))
                    else:
                        self.assertEqual(rc, 0, "%s: exit on SIGTERM; its last warnings: %s" % (
                            name, log_lines(proc.log_path)[-3:]))
                last_change = time.time()
                for n, proc in up.items():
                    self.assertIsNone(proc.poll(), "%s exited by itself with %s" % (
                        n, proc.returncode))
                report.append("change %d: %s %s (%.1f s) with progress %d; up: %s" % (
                    i, action, name, time.monotonic() - t,
                    progress(self.redis, self.partitions), sorted(up)))
                print(report[-1], flush=True)
                produce_chunk(self, chunks[i + 1])  # under load: more input every change
            ends = end_offsets(self.broker.bootstrap)
            done = True
            try:
                wait_for(lambda: caught_up(self.redis, self.broker.bootstrap, self.partitions,
                                           ends) or any(p.poll() is not None
                                                        for p in up.values()),
                         WAIT_S, "the group to process the whole stream")
                done = caught_up(self.redis, self.broker.bootstrap, self.partitions, ends)
            except AssertionError:
                done = False
            sampler.stop.set()
            sampler.join(5)
            recovery = sampler.recovery(last_change) if done else None
            if done and recovery is None:
                recovery = 0.0
            inputs = read_inputs(self.broker.bootstrap)
            outputs = read_outputs(self.broker.bootstrap)
            twice, lost, identical = tally(self, w, inputs, outputs, kills)
            print("MATRIX group_churn %s runs=%d applied_twice=%d lost=%d reemits_identical=%s "
                  "recovery_s=%s" % (guarantee, len(runs), twice, lost,
                                     "yes" if identical else "no",
                                     "%.1f" % recovery if recovery is not None else "none"),
                  flush=True)
            self.assertTrue(done, "the group did not process the whole stream within %d s "
                            "of the last change (progress %d of %d; up: %s, exited: %s)" % (
                                WAIT_S, progress(self.redis, self.partitions),
                                sum(ends.values()), sorted(up),
                                {n: p.returncode for n, p in up.items()
                                 if p.poll() is not None}))
            for name, proc in sorted(up.items()):
                proc.send_signal(signal.SIGTERM)
            for name, proc in sorted(up.items()):
                self.assertEqual(wait_exit(proc, 30), 0, name + ": exit on SIGTERM at the end")
            distinct, repeats, per_topic, reemitted = verify(self, w, kills)
            check_remembered(self, guarantee, self.partitions)
            print("%s (seed %d): %d runs, %d changes, %d kills; %d outputs, %d repeated "
                  "copies %s, all byte-identical; %d outputs of uncommitted inputs written "
                  "again; %.1f s" % (guarantee, seed, len(runs), changes, len(kills), distinct,
                                     repeats, per_topic, reemitted,
                                     time.monotonic() - started), flush=True)
        except BaseException:
            print_failure(guarantee, seed, logdir, report, [p.log_path for p in runs])
            raise
        shutil.rmtree(logdir, ignore_errors=True)

    def test_three_instances_churn_exactly_once_SPEC5(self):
        self.churn_run("exactly_once")

    def test_three_instances_churn_at_least_once_SPEC5(self):
        self.churn_run("at_least_once")


if __name__ == "__main__":
    main()
