"""SPEC §1.3 idle advance (live mode): a task that reads nothing for idle_advance_ms gets
its watermark raised to wall clock - idle_advance_ms, so a wait nobody answers still times
out without further input — once, with the cause `idle-<partition>-<watermark>` (RATE-3)."""
import time

from kefutest import KefuTestCase, main


class IdleAdvance(KefuTestCase):
    def test_RATE_3_idle_advance_fires_a_due_wait(self):
        now = int(time.time() * 1000)
        ts = now - 200 * 1000  # its 3-minute deadline is already 20 s in the past
        # a UTC offset that puts ts at about noon local, inside RATE-2's window
        utc_minute = (ts // 60000) % (24 * 60)
        offset = (12 * 60 - utc_minute + 720) % 1440 - 720
        self.produce("config", [{"event_id": "c1", "shop_id": "s1", "ts": ts - 2000,
                                 "utc_offset_minutes": offset}])
        self.produce("chat", [
            {"event_id": "o1", "shop_id": "s1", "ts": ts - 1000, "type": "CHAT_OPEN",
             "buyer_id": "b1"},
            {"event_id": "m1", "shop_id": "s1", "ts": ts, "type": "BUYER_MSG", "buyer_id": "b1"}])
        self.run_kefu("idle_advance=true", "idle_advance_ms=100")
        # --exit-when-idle stops only once every partition is idle: the idle tick came first
        events = self.consume("responses")
        self.assertEqual(len(events), 1, events)
        e = events[0]
        self.assertEqual(e["type"], "RESPONSE_TIMEOUT")
        self.assertEqual(e["responder_kind"], "LEAVE_MESSAGE")  # no agent online
        self.assertRegex(e["cause_event_id"], r"^idle-\d+-\d+$")
        self.assertEqual(e["response_event_id"], e["cause_event_id"] + "-e0")
        self.assertEqual(e["deadline"], ts + 180000)
        self.run_kefu("idle_advance=true", "idle_advance_ms=100")  # fires nothing again
        self.assertEqual(len(self.consume("responses")), 1)


if __name__ == "__main__":
    main()
