"""SPEC §6 faults: Redis unavailable (pause, retry with backoff, not ready, resume
without loss) and SIGTERM (finish the batch, leave the group, exit 0)."""
import json
import os
import signal
import subprocess

from kefutest import (KEFU, KefuTestCase, free_port, http_get, main, seen_count, seen_ids,
                      wait_for)

T0 = 1773068400000


def queries(prefix, n, shop="s1"):
    return [{"event_id": "%s%d" % (prefix, i), "shop_id": shop, "ts": T0 + i,
             "type": "DELIVERABILITY_QUERY", "agent_id": "a1", "region_code": "440305"}
            for i in range(n)]


class FaultsTest(KefuTestCase):
    def start(self, http_port):
        args = [KEFU, "run", "-b", self.broker.bootstrap, "--redis", self.redis.url,
                "--set", "http.listen=127.0.0.1:%d" % http_port, "--set", "idle_advance=false",
                "--set", "task_idle_ms=100", "--set", "redis.timeout_ms=300",
                "--set", "redis.retry_max_ms=500", "--set", "batch.max_records=10"]
        log = open(os.path.join(self.redis.dir, "kefu.log"), "w+")
        proc = subprocess.Popen(args, stderr=log)
        proc.log = log
        self.addCleanup(log.close)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc

    def http(self, port, path):
        return http_get(port, path)

    def card_ids(self):
        return [c["card_id"] for c in self.consume("cards")]

    def test_redis_outage_pauses_and_resumes_without_loss(self):
        port = free_port()
        self.produce("chat", queries("a", 30))
        proc = self.start(port)
        wait_for(lambda: len(self.card_ids()) == 30, 60, "first 30 cards")
        self.assertEqual(self.http(port, "/readyz")[0], 200)
        os.kill(self.redis.proc.pid, signal.SIGSTOP)  # Redis stops answering
        try:
            self.produce("chat", queries("b", 30))
            wait_for(lambda: self.http(port, "/readyz")[0] == 503, 30, "/readyz 503")
            self.assertEqual(self.http(port, "/healthz")[0], 200)  # alive, just not ready
            self.assertEqual(len(self.card_ids()), 30)  # nothing consumed meanwhile
        finally:
            os.kill(self.redis.proc.pid, signal.SIGCONT)
        wait_for(lambda: len(self.card_ids()) >= 60, 60, "cards after the outage")
        wait_for(lambda: self.http(port, "/readyz")[0] == 200, 30, "/readyz 200 again")
        ids = self.card_ids()
        self.assertEqual(set(ids), {"a%d-c0" % i for i in range(30)} | {"b%d-c0" % i for i in range(30)})
        want = {"a%d" % i for i in range(30)} | {"b%d" % i for i in range(30)}
        self.assertEqual(seen_ids(self.redis, "s1", want), want)
        self.assertEqual(seen_count(self.redis, "s1"), 60)
        metrics = self.http(port, "/metrics")[1]
        self.assertIn('kefu_records_in_total{topic="kefu.chat.events"} 60', metrics)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(30), 0)

    def test_sigterm_finishes_and_exits_zero(self):
        port = free_port()
        self.produce("chat", queries("c", 200))
        proc = self.start(port)
        wait_for(lambda: len(self.card_ids()) > 0, 60, "processing to start")
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(30), 0)
        proc.log.seek(0)
        err = proc.log.read()
        self.assertIn("leaving the consumer group", err)
        # whatever was committed is complete; a restart finishes the rest exactly once
        self.run_kefu()
        ids = self.card_ids()
        self.assertEqual(set(ids), {"c%d-c0" % i for i in range(200)})
        want = {"c%d" % i for i in range(200)}
        self.assertEqual(seen_ids(self.redis, "s1", want), want)
        self.assertEqual(seen_count(self.redis, "s1"), 200)


if __name__ == "__main__":
    main()
