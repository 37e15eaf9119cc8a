"""Progress on long work (issue 12 §4): `kefu produce` of a large file and each phase of
`kefu demo` draw a progress line (records, rate, percentage and time left when the total
is known) on a terminal, and print nothing of it otherwise. The terminal is a real
pseudo-terminal (Python's pty) as stderr."""
import json
import os
import pty
import subprocess
import tempfile
import threading

from kefutest import KEFU, SLOW, TOPICS, KefuTestCase, main

T0 = 1773068400000


def run_on_pty(args, stdin=None, timeout=120):
    """Runs @p args with stderr on a pseudo-terminal: (exit code, what the terminal got)."""
    master, slave = pty.openpty()
    got = []

    def read():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            got.append(data)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    proc = subprocess.Popen(args, stdin=stdin, stdout=subprocess.DEVNULL, stderr=slave,
                            env=dict(os.environ, TERM="xterm"))
    os.close(slave)
    rc = proc.wait(timeout * SLOW)
    reader.join(10)
    os.close(master)
    return rc, b"".join(got).decode(errors="replace")


class ProgressTest(KefuTestCase):
    def write_file(self, n):
        f = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)
        self.addCleanup(os.unlink, f.name)
        for i in range(n):
            f.write(json.dumps({"event_id": "q%d" % i, "shop_id": "s%d" % (i % 7), "ts": T0 + i,
                                "type": "DELIVERABILITY_QUERY", "agent_id": "a1",
                                "buyer_id": "b%d" % i, "region_code": "440305"}) + "\n")
        f.close()
        return f.name

    def test_produce_shows_progress_on_a_terminal_only(self):
        path = self.write_file(20000)
        args = [KEFU, "produce", "-b", self.broker.bootstrap, "-t", TOPICS["chat"], path]
        rc, tty = run_on_pty(args)
        self.assertEqual(rc, 0, tty)
        self.assertIn("\r\x1b[Kkefu produce: ", tty)
        self.assertRegex(tty, r"kefu produce: \d+ records, \d+/s, \d+% of \d+ bytes, \d+:\d\d left")
        self.assertIn("20000 records written", tty)
        # not a terminal: only the closing line
        out = subprocess.run(args, capture_output=True, text=True, timeout=120 * SLOW)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotIn("\r", out.stderr)
        self.assertNotIn("% of", out.stderr)
        self.assertIn("20000 records written", out.stderr)

    def test_demo_phases_show_progress_on_a_terminal(self):
        rc, tty = run_on_pty([KEFU, "demo", "--shops", "3", "--events", "3000"], timeout=300)
        self.assertEqual(rc, 0, tty[-3000:])
        self.assertRegex(tty, r"kefu demo: producing: \d+ records, \d+/s, \d+% of \d+ records")
        self.assertRegex(tty, r"kefu demo: processing: \d+ records, \d+/s")


if __name__ == "__main__":
    main()
