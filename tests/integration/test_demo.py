"""`kefu demo` (README command 1) and its traffic generator."""
import json
import os
import subprocess
import tempfile
import unittest

from kefutest import KEFU, main


class DemoTest(unittest.TestCase):
    def test_demo_runs_and_summarises(self):
        out = subprocess.run([KEFU, "demo", "--events", "3000", "--shops", "5"],
                             capture_output=True, text=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stderr[-3000:])
        self.assertIn("input records", out.stdout)
        self.assertIn("kefu.routing.decisions", out.stdout)
        decisions = int(out.stdout.split("kefu.routing.decisions")[1].split()[0])
        self.assertGreater(decisions, 0)
        dlq = int(out.stdout.split("kefu.dlq")[1].split()[0])
        self.assertGreater(dlq, 0)  # the generator's deliberately bad records

    def test_generated_traffic_is_valid_json_sorted_by_ts_and_reproducible(self):
        with tempfile.TemporaryDirectory() as d:
            for run in ("a", "b"):
                subprocess.run([KEFU, "demo", "--generate-only", os.path.join(d, run + "-"),
                                "--events", "2000", "--seed", "7"], check=True,
                               capture_output=True)
            for topic in ("kefu.chat.events", "kefu.order.events", "kefu.agent.events",
                          "kefu.shop.config", "kefu.courier.status"):
                with open(os.path.join(d, "a-%s.jsonl" % topic)) as f:
                    a = f.read()
                with open(os.path.join(d, "b-%s.jsonl" % topic)) as f:
                    self.assertEqual(a, f.read(), topic)  # same seed, same bytes
                records = [json.loads(line) for line in a.splitlines()]
                self.assertTrue(records, topic)
                if topic == "kefu.courier.status":
                    continue
                ts = [r["ts"] for r in records]
                self.assertEqual(ts, sorted(ts), topic)
                for r in records:
                    self.assertIn("event_id", r)
                    self.assertIn("shop_id", r)


if __name__ == "__main__":
    main()
