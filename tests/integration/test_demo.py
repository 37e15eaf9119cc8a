"""`kefu demo` (SPEC §7) and its traffic generator (src/sim).

The demo owns its servers (the embedded cluster in-process, a redis-server child on a
free port in a temporary directory), so this test needs none of the harness's."""
import json
import os
import re
import subprocess
import tempfile
import unittest

from kefutest import KEFU, TOPICS, main

INPUTS = ["config", "agent", "order", "chat", "courier"]
ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
EVENT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,56}$")
TS_2000 = 946684800000


def summary_count(stdout, topic):
    """The count printed after a topic's name at the start of a summary line."""
    m = re.search(r"^\s+%s\s+(\d+)" % re.escape(topic), stdout, re.M)
    return int(m.group(1)) if m else None


def without_timings(stdout):
    return [line for line in stdout.splitlines()
            if not line.startswith(("time:", "processed "))]


class DemoTest(unittest.TestCase):
    def run_demo(self):
        out = subprocess.run([KEFU, "demo", "--events", "3000", "--shops", "5"],
                             capture_output=True, text=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stderr[-3000:])
        return out

    def test_demo_runs_and_summarises(self):
        out = self.run_demo()
        self.assertIn("input records", out.stdout)
        inputs = {k: summary_count(out.stdout, TOPICS[k]) for k in INPUTS}
        for k, n in inputs.items():
            self.assertIsNotNone(n, "no input count for " + TOPICS[k])
            self.assertGreater(n, 0, TOPICS[k])
        self.assertGreaterEqual(summary_count(out.stdout, "total"), 3000)
        self.assertGreater(summary_count(out.stdout, TOPICS["decisions"]), 0)
        # the generator's deliberately bad records, with their reasons
        self.assertGreater(summary_count(out.stdout, TOPICS["dlq"]), 0)
        self.assertIn("invalid buyer_id", out.stdout)
        self.assertRegex(out.stdout, r"events/s")
        # same seed, same summary (SPEC §1.3: no live-only event in the demo)
        again = self.run_demo()
        self.assertEqual(without_timings(out.stdout), without_timings(again.stdout))
        self.assertIn("docs/REPLAY.md", out.stdout)  # the demo ends by pointing to it

    def test_what_if_replays_the_day_and_prints_the_diff(self):
        """kefu demo --what-if: the day replayed with the override, against the recording:
        every DAILY_REPORT's threshold changes, nothing else of routing does."""
        out = subprocess.run([KEFU, "demo", "--events", "3000", "--shops", "5", "--what-if",
                              "threshold=0.95"], capture_output=True, text=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stderr[-3000:])
        self.assertIn("What if threshold=0.95?", out.stdout)
        self.assertRegex(out.stdout, r"threshold: \d+")
        self.assertRegex(out.stdout, r"verdict: VIOLATION \d+ → \d+")
        m = re.search(r"total: recorded (\d+), replayed (\d+), unchanged (\d+)", out.stdout)
        self.assertIsNotNone(m, out.stdout)
        self.assertGreater(int(m.group(3)), 0)
        for line in out.stdout.splitlines():  # routing does not read the threshold
            if line.startswith("kefu.routing.decisions "):
                cols = line.split()
                self.assertEqual(cols[-3:], ["0", "0", "0"], line)

    def test_generated_traffic_is_valid_json_sorted_by_ts_and_reproducible(self):
        with tempfile.TemporaryDirectory() as d:
            for run in ("a", "b"):
                subprocess.run([KEFU, "demo", "--generate-only", os.path.join(d, run + "-"),
                                "--events", "3000", "--shops", "5", "--seed", "7"],
                               check=True, capture_output=True, timeout=60)
            bad = 0
            for key in INPUTS:
                topic = TOPICS[key]
                with open(os.path.join(d, "a-%s.jsonl" % topic)) as f:
                    a = f.read()
                with open(os.path.join(d, "b-%s.jsonl" % topic)) as f:
                    self.assertEqual(a, f.read(), topic)  # same seed, same bytes
                records = [json.loads(line) for line in a.splitlines()]
                self.assertTrue(records, topic)
                if key == "courier":  # a table without ts, keyed courier|region_code
                    for r in records:
                        self.assertTrue(r["courier"] and r["region_code"].isdigit(), r)
                    continue
                ts = [r["ts"] for r in records]
                self.assertEqual(ts, sorted(ts), topic)
                for r in records:
                    self.assertIn("event_id", r)
                    self.assertIn("shop_id", r)
                    self.assertIsInstance(r["ts"], int)
                    ids_ok = EVENT_ID.match(r["event_id"]) and all(
                        ID.match(r[f]) for f in ("shop_id", "buyer_id", "agent_id", "order_id")
                        if f in r)
                    bad += not ids_ok or r["ts"] < TS_2000
            self.assertGreater(bad, 0)  # the 0.1 % meant for the DLQ

    def test_another_seed_gives_other_traffic(self):
        with tempfile.TemporaryDirectory() as d:
            for seed in ("1", "2"):
                subprocess.run([KEFU, "demo", "--generate-only", os.path.join(d, seed + "-"),
                                "--events", "500", "--shops", "3", "--seed", seed],
                               check=True, capture_output=True, timeout=60)
            with open(os.path.join(d, "1-kefu.chat.events.jsonl")) as f1, \
                    open(os.path.join(d, "2-kefu.chat.events.jsonl")) as f2:
                self.assertNotEqual(f1.read(), f2.read())

    def test_what_if_with_keep_running_stops_on_sigterm(self):
        """The in-process replay of --what-if leaves the demo's own signal handling."""
        import signal
        proc = subprocess.Popen([KEFU, "demo", "--events", "500", "--shops", "3", "--what-if",
                                 "threshold=0.5", "--keep-running"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            for line in proc.stderr:  # the connection details come once it keeps running
                if "still running until Ctrl-C" in line:
                    break
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(60), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
            proc.stderr.close()

    def test_usage_errors(self):
        for args in (["--events", "0"], ["--shops", "x"], ["--set", "no-such-key=1"], ["extra"],
                     ["--what-if", "no-such-key=1"], ["--what-if", "threshold=7"]):
            out = subprocess.run([KEFU, "demo", *args], capture_output=True, text=True,
                                 timeout=30)
            self.assertEqual(out.returncode, 2, args)


if __name__ == "__main__":
    main()
