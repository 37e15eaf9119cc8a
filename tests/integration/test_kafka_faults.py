"""The Kafka part of the fault matrix (SPEC §5, §6): librdkafka's mock error injection
(`kefu broker --control`, src/io/mock.c) against a long-running `kefu run`.

Each case is one row of CASES: a seeded workload with every rule family active
(tests/lib/workload.py) is produced in two parts; kefu processes the first, the fault is
injected (before the rest is produced, or while kefu works through it), kefu must
process everything, and then the crash test's checks hold:

  (a) no input applied twice (exact dedup ids, order statuses, presence, configs and
      applied offsets in Redis);
  (b) no output lost (every card, every bad record on kefu.dlq; every output a run that
      exited wrote for an input no commit covered is written again by the next run);
  (c) every re-emitted output byte-identical to its first copy;
  (d) the instance healthy afterwards: /readyz 200, and SIGTERM exits 0.

A fenced transactional producer (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH on EndTxn) is a
fatal error in librdkafka: kefu replaces the producer (its init_transactions aborts what
the old one left open) and does the batch again, so these cases too must be ridden out
by the one instance they started with (runs=1), like every other. A row marked fatal may
exit non-zero; the test then restarts kefu as a supervisor would and all the checks
above must still hold (no row is marked so today).

Each case prints one line for the fault matrix:
  MATRIX <fault> <guarantee> runs=<n> applied_twice=<n> lost=<n> reemits_identical=<yes/no>
         recovery_s=<x> kefu_retries=<n>
recovery_s: from the fault's end (the injection for one-shot request errors, which the
next requests consume; `up` for the outage; the restart after a fatal exit) to the first
input kefu completes after it; "none" when it never did. kefu_retries: the batches kefu
logged as retried.

KEFU_FAULT_CASES=all runs every row; a comma-separated list of names runs those; unset,
the CI set (ci=True) runs. KEFU_CRASH_SEED=<n> reproduces a run.
"""
import calendar
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from kefutest import Broker, KefuTestCase, Redis, free_port, main, wait_for
from workload import (COURIER_STATUS, Sampler, Workload, after_kill, caught_up,
                      check_remembered, end_offsets, kefu_args, log_lines, print_failure,
                      produce_chunk, progress, read_inputs, read_outputs, seed_from_env,
                      tally, verify, wait_exit)

# A rebalance on the mock cluster waits session.timeout.ms - 1 s (see test_group.py):
# a short session keeps a rejoin to a few seconds. So the 10 s outage outlasts the
# session: the coordinator drops the member and kefu must rejoin (the *_session45s rows
# keep librdkafka's default session, which the outage does not outlast).
SESSION = ["kafka.session.timeout.ms=6000", "kafka.heartbeat.interval.ms=500"]
# librdkafka's debug log of the transaction manager, the consumer group, produce and
# fetch: it shows whether kefu's clients met the injected errors (seen=).
DEBUG = ["log.level=debug", "kafka.debug=eos,cgrp,msg,fetch"]
EVENTS = 2000
OUTAGE_S = 10.0
WAIT_S = 45  # every wait for kefu is bounded: a wedged instance fails the case


class Case:
    def __init__(self, name, guarantee, commands, when="before_rest", fatal=False, ci=False,
                 outage=False, settings=()):
        self.name, self.guarantee, self.commands = name, guarantee, commands
        self.settings = list(settings)  # kefu settings of this row, after the shared ones
        self.when = when      # "before_rest": inject, then produce the rest;
        #                       "mid": produce the rest, inject while kefu works on it
        self.fatal = fatal    # kefu may exit non-zero; restarted as a supervisor would
        self.ci = ci          # in the default (CI) set
        self.outage = outage  # commands take the broker down; `up 1` after OUTAGE_S


EOS, ALO = "exactly_once", "at_least_once"
R3 = lambda err: " ".join([err] * 3)  # noqa: E731 - three in a row: retries, then success
CASES = [
    # -- retriable errors on the producer and transaction path
    Case("produce_retriable", EOS, ["errors Produce " + R3("NOT_ENOUGH_REPLICAS")], "mid",
         ci=True),
    Case("produce_retriable", ALO, ["errors Produce " + R3("NOT_ENOUGH_REPLICAS")], "mid"),
    Case("produce_leader_moved", EOS, ["errors Produce " + R3("NOT_LEADER_FOR_PARTITION")],
         "mid"),
    Case("fetch_retriable", EOS, ["errors Fetch " + R3("NOT_LEADER_FOR_PARTITION")]),
    Case("fetch_retriable", ALO, ["errors Fetch " + R3("UNKNOWN_TOPIC_OR_PART")]),
    Case("endtxn_retriable", EOS,
         ["errors EndTxn COORDINATOR_NOT_AVAILABLE COORDINATOR_NOT_AVAILABLE"], ci=True),
    Case("endtxn_not_coordinator", EOS, ["errors EndTxn NOT_COORDINATOR CONCURRENT_TRANSACTIONS"]),
    Case("addpartitionstotxn_retriable", EOS,
         ["errors AddPartitionsToTxn CONCURRENT_TRANSACTIONS COORDINATOR_LOAD_IN_PROGRESS"]),
    Case("txnoffsetcommit_retriable", EOS,
         ["errors TxnOffsetCommit COORDINATOR_LOAD_IN_PROGRESS NOT_COORDINATOR"]),
    # -- the group changed under a commit
    Case("txnoffsetcommit_rebalance", EOS, ["errors TxnOffsetCommit REBALANCE_IN_PROGRESS"],
         ci=True),
    Case("txnoffsetcommit_unknown_member", EOS, ["errors TxnOffsetCommit UNKNOWN_MEMBER_ID"],
         ci=True),
    Case("offsetcommit_rebalance", ALO, ["errors OffsetCommit REBALANCE_IN_PROGRESS"], ci=True),
    Case("offsetcommit_unknown_member", ALO, ["errors OffsetCommit UNKNOWN_MEMBER_ID"], ci=True),
    # -- fencing: fatal for a transactional producer
    Case("endtxn_producer_fenced", EOS, ["errors EndTxn PRODUCER_FENCED"], ci=True),
    Case("endtxn_invalid_producer_epoch", EOS, ["errors EndTxn INVALID_PRODUCER_EPOCH"]),
    # -- group membership: a rebalance forced by the coordinator, failing joins
    Case("heartbeat_rebalance", EOS, ["errors Heartbeat REBALANCE_IN_PROGRESS"], ci=True),
    Case("heartbeat_rebalance", ALO, ["errors Heartbeat REBALANCE_IN_PROGRESS"]),
    Case("heartbeat_unknown_member", EOS, ["errors Heartbeat UNKNOWN_MEMBER_ID"]),
    Case("joingroup_syncgroup_retriable", EOS,
         ["errors JoinGroup COORDINATOR_LOAD_IN_PROGRESS COORDINATOR_NOT_AVAILABLE",
          "errors SyncGroup REBALANCE_IN_PROGRESS",
          "errors Heartbeat REBALANCE_IN_PROGRESS"], ci=True),
    # -- the broker down for OUTAGE_S mid-stream
    Case("broker_down_10s", EOS, ["down 1"], "mid", outage=True, ci=True),
    Case("broker_down_10s", ALO, ["down 1"], "mid", outage=True, ci=True),
    # the same outage within librdkafka's default session (45 s): the member is not dropped
    Case("broker_down_10s_session45s", EOS, ["down 1"], "mid", outage=True,
         settings=["kafka.session.timeout.ms=45000", "kafka.heartbeat.interval.ms=3000"]),
    Case("broker_down_10s_session45s", ALO, ["down 1"], "mid", outage=True,
         settings=["kafka.session.timeout.ms=45000", "kafka.heartbeat.interval.ms=3000"]),
]


def selected_cases():
    text = os.environ.get("KEFU_FAULT_CASES", "").strip()
    if text == "all":
        return CASES
    if text:
        names = set(text.split(","))
        return [c for c in CASES if c.name in names or "%s/%s" % (c.name, c.guarantee) in names]
    return [c for c in CASES if c.ci]


def error_words(commands):
    """The injected Kafka error names with their librdkafka descriptions."""
    from confluent_kafka import KafkaError
    words = set()
    for command in commands:
        w = command.split()
        if w[0] == "errors":
            for name in w[2:]:
                words.add(name)
                code = getattr(KafkaError, name, None)
                if code is not None:
                    words.add(KafkaError(code).str())
    return words


def log_time(line):
    """Epoch seconds of a kefu log line ("2026-03-09T00:00:00.000Z LEVEL ..."), or None."""
    try:
        return calendar.timegm(time.strptime(line[:19], "%Y-%m-%dT%H:%M:%S")) + \
            int(line[20:23]) / 1000.0
    except ValueError:
        return None


def fault_seen(log_path, words, since):
    """The times (epoch s) of the lines of a kefu log written at or after @p since that
    name one of the injected errors."""
    out = []
    with open(log_path, errors="replace") as f:
        for line in f:
            t = log_time(line)
            if t is not None and t >= since - 0.001 and any(w in line for w in words):
                out.append(t)
    return out


def http_status(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


class KafkaFaultsTest(KefuTestCase):
    partitions = 4

    def setUp(self):
        self.redis = Redis()
        self.addCleanup(self.redis.stop)
        self.broker = Broker(self.partitions, control=True)
        self.addCleanup(self.broker.stop)

    def start(self, case, port, logdir, n):
        # "mid": small batches, so that kefu is still working through the rest of the
        # stream when the fault lands (test_crash.py checks the same: kills mid-processing)
        small = ["batch.max_records=4"] if case.when == "mid" else []
        log = open(os.path.join(logdir, "run%d.log" % n), "w")
        self.addCleanup(log.close)
        args = kefu_args(self, "processing.guarantee=" + case.guarantee, "instance.id=fault",
                         "http.listen=127.0.0.1:%d" % port, "redis.retry_max_ms=1000",
                         *(SESSION + DEBUG + small + case.settings))
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        proc.log_path = log.name
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc

    def run_case(self, case):
        seed = seed_from_env()
        print("\n%s %s: KEFU_CRASH_SEED=%d" % (case.name, case.guarantee, seed), flush=True)
        rng = random.Random(seed)
        w = Workload(rng, shops=8, events=EVENTS, duplicates=12, bad=8)
        chunks = w.chunks(3)
        first, rest = chunks[0], [x for c in chunks[1:] for x in c]
        logdir = tempfile.mkdtemp(prefix="kefu-kfault-")
        port = free_port()
        procs, kills, notes, notes_printed = [], [], [], []
        recovery = None
        try:
            self.produce("courier", COURIER_STATUS)
            produce_chunk(self, first)
            procs.append(self.start(case, port, logdir, 0))
            wait_for(lambda: progress(self.redis, self.partitions) > 0 or
                     procs[-1].poll() is not None, 60, "kefu to process the first part")
            self.assertIsNone(procs[-1].poll(), "kefu exited before the fault")
            wait_for(lambda: http_status(port, "/readyz") == 200, 30, "/readyz 200 before")
            if case.when == "mid":
                produce_chunk(self, rest)
            ends = end_offsets(self.broker.bootstrap) if case.when == "mid" else None
            at_fault = progress(self.redis, self.partitions)
            sampler = Sampler(self.redis, self.partitions)
            sampler.start()
            self.addCleanup(sampler.stop.set)
            injected = fault_end = time.time()
            for command in case.commands:
                self.broker.control(command)
            if case.outage:  # the deliberate outage: the one fixed sleep
                not_ready = False
                deadline = time.monotonic() + OUTAGE_S
                while time.monotonic() < deadline:
                    not_ready |= http_status(port, "/readyz") == 503
                    time.sleep(0.2)
                self.broker.control("up 1")
                fault_end = time.time()
                notes.append("/readyz 503 seen during the outage: %s" % (
                    "yes" if not_ready else "no"))
            if case.when != "mid":
                produce_chunk(self, rest)
                ends = end_offsets(self.broker.bootstrap)
            total = sum(ends.values())
            notes.append("progress at the fault %d of %d" % (at_fault, total))
            deadline = time.monotonic() + WAIT_S
            restarted = 0.0
            while not caught_up(self.redis, self.broker.bootstrap, self.partitions, ends):
                proc = procs[-1]
                if proc.poll() is not None:
                    notes.append("run %d exited with %s" % (len(procs) - 1, proc.returncode))
                    kills.append(after_kill(self, self.partitions))
                    if len(procs) >= 4:
                        break
                    procs.append(self.start(case, port, logdir, len(procs)))  # supervisor
                    restarted = time.time()
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            done = caught_up(self.redis, self.broker.bootstrap, self.partitions, ends)
            sampler.stop.set()
            sampler.join(5)
            words = error_words(case.commands)
            seen = [t for p in procs for t in fault_seen(p.log_path, words, injected)]
            # The fault ends with the last injected error kefu met (the outage: with
            # `up`), or with the restart after a fatal exit.
            fault_end = max([fault_end, restarted] + seen)
            recovery = sampler.recovery(fault_end) if done else None
            if done and recovery is None:
                recovery = 0.0  # nothing was left to process after the fault's end
            inputs = read_inputs(self.broker.bootstrap)
            outputs = read_outputs(self.broker.bootstrap)
            twice, lost, identical = tally(self, w, inputs, outputs, kills)
            retries = sum("not done, retrying" in line
                          for p in procs for line in log_lines(p.log_path, ("WARN",)))
            print("MATRIX %s %s runs=%d applied_twice=%d lost=%d reemits_identical=%s "
                  "recovery_s=%s kefu_retries=%d seen=%s caught_up=%s" % (
                      case.name, case.guarantee, len(procs), twice, lost,
                      "yes" if identical else "no",
                      "%.1f" % recovery if recovery is not None else "none", retries,
                      len(seen) if words else "-",
                      "yes" if done else "no"), flush=True)
            for note in notes:
                print("  " + note, flush=True)
            notes_printed = list(notes)
            self.assertTrue(done, "%s/%s: kefu did not process the whole stream within %d s "
                            "after the fault (progress %d of %d; %s)" % (
                                case.name, case.guarantee, WAIT_S,
                                progress(self.redis, self.partitions), total, "; ".join(notes)))
            proc = procs[-1]
            self.assertIsNone(proc.poll(), "kefu exited after processing: %s" % notes)
            wait_for(lambda: http_status(port, "/readyz") == 200, 30, "/readyz 200 after the "
                     "fault (last: %s)" % http_status(port, "/readyz"))
            self.assertEqual(http_status(port, "/healthz"), 200)
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(wait_exit(proc, 30), 0, "exit on SIGTERM after the fault")
            verify(self, w, kills)  # exact, also across the restarts
            check_remembered(self, case.guarantee, self.partitions)
            if not case.fatal:
                self.assertEqual(len(procs), 1, "kefu exited on a fault it must ride out: "
                                 + "; ".join(notes))
        except BaseException:
            print_failure("%s %s" % (case.name, case.guarantee), seed, logdir,
                          [n for n in notes if n not in notes_printed],
                          [p.log_path for p in procs], 12, 8)
            raise
        if os.environ.get("KEFU_KEEP_LOGS"):
            print("  kefu logs kept in " + logdir)
        else:
            shutil.rmtree(logdir, ignore_errors=True)


def _add_cases():
    for case in selected_cases():
        def test(self, case=case):
            self.run_case(case)
        name = "test_%s_%s_SPEC6" % (case.name, case.guarantee)
        test.__name__ = name
        setattr(KafkaFaultsTest, name, test)


_add_cases()

if __name__ == "__main__":
    main()
