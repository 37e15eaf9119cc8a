"""Remembered outputs stay bounded (issue 12 §4, SPEC §5 effectively once): with
at_least_once, a kill between the Kafka commit of a batch and the Redis write of its
task's position (which drops the batch's remembered outputs, ns:{task-N}:out) left those
entries for good. Now the next assignment drops every entry whose input offset is below
where its partition starts (Kafka's committed offset or the Redis position).

The kill is made to land there: the broker answers 1 s late, so a batch's Kafka side takes
seconds after its state is in Redis; Redis writes are then paused (CLIENT PAUSE WRITE),
the batch commits to Kafka, its position write hangs, and kefu is SIGKILLed once the
group's committed offsets (read with python3-confluent-kafka, not kefu) cover the batch.
Counted: the entries left by the kill, then after a restart (which has nothing new to
process). Printed as `REMEMBERED left by the kill: N, after the restart: M`."""
import signal
import tempfile

from kefutest import SLOW, TOPICS, KefuTestCase, main, wait_for
from workload import remembered_outputs, start_kefu

T0 = 1773068400000
N = 60


def committed(bootstrap, partitions):
    """partition -> the offset group "kefu" has committed on the chat topic (-1: none)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "kefu"})
    try:
        tps = c.committed([TopicPartition(TOPICS["chat"], p) for p in range(partitions)],
                          timeout=30)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


class RememberedBoundedTest(KefuTestCase):
    broker_control = True

    def test_kill_between_commit_and_position_write_leaves_nothing_after_restart(self):
        self.produce("chat", [{"event_id": "q%d" % i, "shop_id": "s%d" % (i % 5), "ts": T0 + i,
                               "type": "DELIVERABILITY_QUERY", "agent_id": "a1",
                               "buyer_id": "b%d" % i, "region_code": "440305"}
                              for i in range(N)])
        log = tempfile.NamedTemporaryFile("w+", prefix="kefu-remembered-", suffix=".log")
        self.addCleanup(log.close)
        self.addCleanup(lambda: self.redis.cli("CLIENT", "UNPAUSE"))
        proc = start_kefu(self, log, "processing.guarantee=at_least_once", "http.listen=",
                          "batch.max_records=1000")
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        def log_text():
            with open(log.name, errors="replace") as f:
                return f.read()
        wait_for(lambda: "assigned kefu.chat.events" in log_text(), 60 * SLOW,
                 "kefu's assignment")
        self.broker.control("rtt 1 1000")
        wait_for(lambda: remembered_outputs(self.redis, self.partitions) or
                 proc.poll() is not None, 60 * SLOW, "the batch's state and remembered outputs")
        self.redis.cli("CLIENT", "PAUSE", "600000", "WRITE")
        # the batch's offsets committed in Kafka, its position write held up by the pause
        wait_for(lambda: any(o > 0 for o in committed(self.broker.bootstrap,
                                                      self.partitions).values()) or
                 proc.poll() is not None, 120 * SLOW, "the batch's commit in Kafka")
        self.assertIsNone(proc.poll(), log_text()[-3000:])
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        self.redis.cli("CLIENT", "UNPAUSE")
        self.broker.control("rtt 1 0")
        left = sum(len(v) for v in remembered_outputs(self.redis, self.partitions).values())
        self.assertGreater(left, 0, "the kill did not land between the commit and the "
                           "position write: the test lost its point")
        self.run_kefu("processing.guarantee=at_least_once")
        after = sum(len(v) for v in remembered_outputs(self.redis, self.partitions).values())
        print("REMEMBERED left by the kill: %d, after the restart: %d" % (left, after),
              flush=True)
        self.assertEqual(after, 0, remembered_outputs(self.redis, self.partitions))


if __name__ == "__main__":
    main()
