"""`kefu status` against a running two-instance group (issue 12, docs/OPERATIONS.md
"kefu status"):

  - before the instances start, every record of the backlog is lag and no task has an
    owner;
  - while the group works through the backlog, each report's lag per partition is its end
    offset minus its committed offset, and both lie between what Kafka and Redis said just
    before and just after the report (read with python3-confluent-kafka and redis-cli, no
    kefu code): the committed offset is the later of Kafka's and Redis's, as kefu starts
    a task from;
  - the lag goes to 0 once the backlog is processed; each task is owned by the instance
    whose log says it was assigned;
  - after SIGTERM to one instance its tasks show as owned by the other, the stopped one
    as down, and the group's generation moves on;
  - `--watch` reports until SIGTERM, then exits 0.
status never joins the group: a member that joined would take tasks, and the ownership
checks would fail.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time

from kefutest import KEFU, TOPICS, KefuTestCase, free_port, main, wait_for
from workload import (COURIER_STATUS, Workload, assigned_tasks, caught_up,
                      committed_offsets, end_offsets, log_lines, produce_chunk,
                      redis_positions, start_kefu, wait_exit)

GROUP = "kefu-status-test"
KEY_OF = {v: k for k, v in TOPICS.items()}


class StatusTest(KefuTestCase):
    partitions = 4

    def status(self, *extra):
        args = [KEFU, "status", "-b", self.broker.bootstrap, "--redis", self.redis.url,
                "--set", "group.id=" + GROUP, "--json"]
        for port in self.ports.values():
            args += ["--metrics", "127.0.0.1:%d" % port]
        out = subprocess.run(args + list(extra), capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)

    def committed_now(self):
        """(topic key, partition) -> the later of Kafka's committed offset and Redis's
        position, read without kefu."""
        pos = redis_positions(self.redis, self.partitions)
        for k, v in committed_offsets(self.broker.bootstrap, self.partitions, GROUP).items():
            pos[k] = max(v, pos.get(k, -1))
        return pos

    def checked_status(self):
        """A report whose every partition is bracketed by independent reads."""
        ends0, done0 = end_offsets(self.broker.bootstrap), self.committed_now()
        report = self.status()
        ends1, done1 = end_offsets(self.broker.bootstrap), self.committed_now()
        total = 0
        for task in report["tasks"]:
            lag = 0
            for p in task["partitions"]:
                key = (KEY_OF[p["topic"]], p["partition"])
                self.assertTrue(ends0[key] <= p["end"] <= ends1[key], (key, p))
                committed = -1 if p["committed"] is None else p["committed"]
                self.assertTrue(done0.get(key, -1) <= committed <= done1.get(key, -1),
                                (key, p, done0.get(key), done1.get(key)))
                self.assertEqual(p["lag"], p["end"] - max(committed, 0), (key, p))
                lag += p["lag"]
            self.assertEqual(task["lag"], lag)
            total += lag
        self.assertEqual(report["group"]["lag"], total)
        return report

    def owners(self, report):
        return {t["task"]: t["owners"] for t in report["tasks"]}

    def test_lag_ownership_and_takeover(self):
        started = time.monotonic()
        rng = random.Random(12)
        w = Workload(rng, shops=8, events=4000, duplicates=0, bad=4)
        self.ports = {n: free_port() for n in ("ga", "gb")}
        logdir = tempfile.mkdtemp(prefix="kefu-status-")
        logs = {n: os.path.join(logdir, n + ".log") for n in self.ports}
        procs = {}
        try:
            self.produce("courier", COURIER_STATUS)
            produce_chunk(self, w.chunks(1)[0])
            ends = end_offsets(self.broker.bootstrap)

            before = self.checked_status()
            self.assertEqual(before["group"]["lag"], sum(ends.values()))
            self.assertEqual(before["group"]["members"], [])
            self.assertEqual(sorted(before["group"]["down"]),
                             sorted("127.0.0.1:%d" % p for p in self.ports.values()))
            self.assertTrue(all(o == [] for o in self.owners(before).values()))

            for name, port in self.ports.items():
                f = open(logs[name], "w")
                self.addCleanup(f.close)
                procs[name] = start_kefu(
                    self, f, "group.id=" + GROUP, "instance.id=" + name,
                    "http.listen=127.0.0.1:%d" % port, "processing.guarantee=at_least_once",
                    "kafka.session.timeout.ms=6000", "kafka.heartbeat.interval.ms=500")
                self.addCleanup(lambda p=procs[name]: p.poll() is None and p.kill())

            reports = []

            def done():
                reports.append(self.checked_status())
                r = reports[-1]
                owners = self.owners(r).values()
                return r["group"]["lag"] == 0 and all(len(o) == 1 for o in owners) and \
                    {o[0] for o in owners} == {"ga", "gb"}

            wait_for(done, 60, "status to show the backlog done, every task owned, by both")
            self.assertTrue(caught_up(self.redis, self.broker.bootstrap, self.partitions, ends))
            lags = [r["group"]["lag"] for r in reports]
            print("\nlag over %d reports while the group ran: %s" % (len(lags), lags))
            last = reports[-1]
            self.assertEqual(sorted(last["group"]["members"]), ["ga", "gb"])
            held = {n: assigned_tasks(logs[n]) for n in procs}
            self.assertEqual({t: o[0] for t, o in self.owners(last).items()},
                             {t: n for n, ts in held.items() for t in ts})
            self.assertTrue(held["ga"] and held["gb"], held)
            self.assertTrue(any(p["kafka_committed"] is not None
                                for t in last["tasks"] for p in t["partitions"]))
            self.assertTrue(all(t["last_commit_ms"] for t in last["tasks"]))
            generation = last["group"]["generation"]
            self.assertIsNotNone(generation)

            procs["gb"].send_signal(signal.SIGTERM)
            self.assertEqual(wait_exit(procs["gb"], 30), 0)
            moved = wait_for(
                lambda: (lambda r: r if all(o == ["ga"] for o in self.owners(r).values())
                         else None)(self.checked_status()),
                60, "status to show every task owned by ga")
            self.assertEqual(moved["group"]["members"], ["ga"])
            self.assertEqual(moved["group"]["down"], ["127.0.0.1:%d" % self.ports["gb"]])
            self.assertGreater(moved["group"]["generation"], generation)
            self.assertEqual(assigned_tasks(logs["ga"]), set(range(self.partitions)))

            self.check_watch()
            procs["ga"].send_signal(signal.SIGTERM)
            self.assertEqual(wait_exit(procs["ga"], 30), 0)
            print("generation %s -> %s; %.1f s" % (generation, moved["group"]["generation"],
                                                   time.monotonic() - started))
        except BaseException:
            for name, path in sorted(logs.items()):
                for line in log_lines(path)[:20]:
                    print("  %s: %s" % (name, line))
            raise
        shutil.rmtree(logdir, ignore_errors=True)

    def check_watch(self):
        """--watch without a terminal: one report per interval, no escapes; SIGTERM ends
        it with exit 0."""
        args = [KEFU, "status", "-b", self.broker.bootstrap, "--redis", self.redis.url,
                "--set", "group.id=" + GROUP, "--watch", "--interval", "1"]
        out = tempfile.TemporaryFile(mode="w+")
        self.addCleanup(out.close)
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())

        def reports():
            out.seek(0)
            return out.read().count("group %s " % GROUP) >= 2

        wait_for(reports, 30, "two reports of --watch")
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(wait_exit(proc, 10), 0)
        out.seek(0)
        self.assertNotIn("\033[", out.read())

    def test_usage(self):
        out = subprocess.run([KEFU, "status", "--help"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0)
        self.assertIn("never joins", out.stdout)
        for bad in (["--bogus"], ["--interval", "0"], ["extra"]):
            out = subprocess.run([KEFU, "status", "-b", self.broker.bootstrap] + bad,
                                 capture_output=True, text=True)
            self.assertEqual(out.returncode, 2, bad)
        out = subprocess.run([KEFU, "status", "-b", self.broker.bootstrap, "--redis",
                              "redis://127.0.0.1:%d/0" % free_port()],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 1, out.stderr)


if __name__ == "__main__":
    main()
