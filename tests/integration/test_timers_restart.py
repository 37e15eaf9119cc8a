"""RATE-3 across a crash: a wait opened before kefu is killed (SIGKILL) times out after
the restart — once, caused by the event that makes it due (SPEC §1.3, §5)."""
import os
import signal
import subprocess

from kefutest import KEFU, KefuTestCase, main, pending_timers, wait_for

D0 = 1773072000000  # 2026-03-10 00:00 in China
T = D0 + 10 * 3600 * 1000


class TimersAcrossRestart(KefuTestCase):
    def test_RATE_3_wait_survives_a_crash_and_times_out_once(self):
        self.produce("agent", [
            {"event_id": "p1", "shop_id": "s1", "ts": T - 5000, "type": "PROFILE",
             "agent_id": "a1"},
            {"event_id": "o1", "shop_id": "s1", "ts": T - 5000, "type": "PRESENCE",
             "agent_id": "a1", "presence": "ONLINE"}])
        self.produce("chat", [
            {"event_id": "c1", "shop_id": "s1", "ts": T - 1000, "type": "CHAT_OPEN",
             "buyer_id": "b1"},
            {"event_id": "m1", "shop_id": "s1", "ts": T, "type": "BUYER_MSG", "buyer_id": "b1"}])
        log = open(os.path.join(self.redis.dir, "kefu.log"), "w")
        self.addCleanup(log.close)
        proc = subprocess.Popen(
            [KEFU, "run", "-b", self.broker.bootstrap, "--redis", self.redis.url,
             "--set", "http.listen=", "--set", "idle_advance=false", "--set", "task_idle_ms=100",
             # a killed member leaves the group after its session times out: keep it short
             "--set", "kafka.session.timeout.ms=6000", "--set", "kafka.heartbeat.interval.ms=500"],
            stderr=log)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        # the wait's timer is written with the shop's state
        wait_for(lambda: any(t["kind"] == "response_wait"
                             for t in pending_timers(self.redis, "s1")),
                 60, "the wait's timer in Redis")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.assertEqual(self.consume("responses"), [])
        # after the restart, an event past the deadline makes the wait due
        self.produce("chat", [{"event_id": "late", "shop_id": "s1", "ts": T + 180001,
                               "type": "BOT_MSG", "buyer_id": "other"}])
        self.run_kefu()
        events = self.consume("responses")
        self.assertEqual(len(events), 1, events)
        e = events[0]
        self.assertEqual(e["type"], "RESPONSE_TIMEOUT")
        self.assertEqual(e["cause_event_id"], "late")
        self.assertEqual(e["response_event_id"], "late-e0")
        self.assertEqual(e["deadline"], T + 180000)
        self.assertEqual(e["ts"], T + 180000)
        self.run_kefu()  # a third run fires nothing again
        self.assertEqual(len(self.consume("responses")), 1)


if __name__ == "__main__":
    main()
