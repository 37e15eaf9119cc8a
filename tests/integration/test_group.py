"""Two instances share the consumer group (SPEC §5): one dies (SIGKILL) or leaves
(SIGTERM, exit 0), the other takes over its tasks, and over the whole stream no input is
applied twice, no output is lost, and repeated outputs are byte-identical."""
import os
import signal
import subprocess

from kefutest import KEFU, KefuTestCase, decode, main, read_raw, schema_table, wait_for

T0 = 1773068400000
SHOPS = ["g%d" % i for i in range(16)]


def queries(first, n):
    return [{"event_id": "q%d" % i, "shop_id": SHOPS[i % len(SHOPS)], "ts": T0 + i * 10,
             "type": "DELIVERABILITY_QUERY", "agent_id": "a1", "region_code": "440305"}
            for i in range(first, first + n)]


class GroupTest(KefuTestCase):
    def start(self, name):
        log = open(os.path.join(self.redis.dir, name + ".log"), "w")
        self.addCleanup(log.close)
        proc = subprocess.Popen(
            [KEFU, "run", "-b", self.broker.bootstrap, "--redis", self.redis.url,
             "--set", "http.listen=", "--set", "idle_advance=false", "--set", "task_idle_ms=50",
             "--set", "batch.max_records=10", "--set", "instance.id=" + name,
             "--set", "kafka.session.timeout.ms=6000", "--set", "kafka.heartbeat.interval.ms=500"],
            stderr=log)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc

    def cards(self):
        ids, _ = schema_table()
        first, copies = {}, 0
        for m in read_raw(self.broker.bootstrap, "kefu.service.cards"):
            card = decode(ids, m.value())["card_id"]
            if card in first:
                copies += 1
                self.assertEqual(first[card], m.value(), card)
            else:
                first[card] = m.value()
        return set(first), copies

    def takeover(self, sig):
        self.produce("chat", queries(0, 800))
        a, b = self.start("a"), self.start("b")
        # both members own tasks (the range assignor splits the 4 partitions), and work
        logs = [os.path.join(self.redis.dir, n + ".log") for n in ("a", "b")]
        wait_for(lambda: all("assigned kefu.chat.events" in open(l).read() for l in logs), 90,
                 "both instances assigned")
        wait_for(lambda: len(self.cards()[0]) >= 200, 90, "processing")
        a.send_signal(sig)
        rc = a.wait(30)
        if sig == signal.SIGTERM:
            self.assertEqual(rc, 0)
        self.produce("chat", queries(800, 800))
        wait_for(lambda: len(self.cards()[0]) == 1600, 120, "b to take over every task")
        b.send_signal(signal.SIGTERM)
        self.assertEqual(b.wait(30), 0)
        got, copies = self.cards()
        self.assertEqual(got, {"q%d-c0" % i for i in range(1600)})
        for shop in SHOPS:
            self.assertEqual(int(self.redis.cli("ZCARD", "kefu:{%s}:dedup" % shop)), 100, shop)
        print("%s: 1600 cards, %d repeated copies" % (signal.Signals(sig).name, copies))

    def test_survivor_takes_over_after_sigkill(self):
        self.takeover(signal.SIGKILL)

    def test_member_leaves_cleanly_on_sigterm(self):
        self.takeover(signal.SIGTERM)


if __name__ == "__main__":
    main()
