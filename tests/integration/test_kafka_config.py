"""kafka.* properties reach the clients they apply to (issue 12, DECISIONS 61): each goes
to kefu run's consumers, its producer, or both, by the scope librdkafka's own property
table gives it, so that no client warns at start about a property meant for the other
(librdkafka's CONFWARN "... is a producer property and will be ignored by this consumer
instance"). librdkafka's `debug=conf` prints every client's configuration: a
consumer-only property shows in the consumers' and not the producer's, a producer-only
one the reverse, a global one in all."""
import re
import subprocess

from kefutest import KEFU, SLOW, KefuTestCase, kefu_run_command, main


def client_configs(log):
    """The "Client configuration:" blocks of a debug=conf log, each as {property: value}."""
    blocks, cur = [], None
    for line in log.splitlines():
        if "CONF: [thrd:app]: Client configuration:" in line:
            cur = {}
            blocks.append(cur)
            continue
        m = re.search(r"CONF: \[thrd:app\]:   ([a-z0-9._]+) = (.*)$", line)
        if m and cur is not None:
            cur[m.group(1)] = m.group(2)
        elif "CONF: [thrd:app]:" in line and "configuration" in line:
            cur = None  # a topic's configuration: not a client's
    return blocks


class KafkaConfigTest(KefuTestCase):
    def test_properties_go_by_scope_without_warnings(self):
        args = [KEFU, "run", "-b", self.broker.bootstrap, "--redis", self.redis.url,
                "--exit-when-idle", "--set", "http.listen=", "--set", "log.level=debug",
                "--set", "kafka.debug=conf",
                "--set", "kafka.fetch.wait.max.ms=123",       # C
                "--set", "kafka.linger.ms=17",                # P (alias of queue.buffering.max.ms)
                "--set", "kafka.socket.keepalive.enable=true"]  # * (both)
        out = subprocess.run(kefu_run_command(args), capture_output=True, text=True,
                             timeout=120 * SLOW)
        self.assertEqual(out.returncode, 0, out.stderr[-3000:])
        self.assertNotIn("CONFWARN", out.stderr)
        self.assertNotIn("will be ignored", out.stderr)
        clients = client_configs(out.stderr)
        consumers = [c for c in clients if "group.id" in c]
        producers = [c for c in clients if "transactional.id" in c]
        self.assertEqual(len(consumers), 2, clients)  # the inputs' and the courier table's
        self.assertEqual(len(producers), 1, clients)
        for c in consumers:
            self.assertEqual(c.get("fetch.wait.max.ms"), "123")
            self.assertNotIn("queue.buffering.max.ms", c)
            self.assertEqual(c.get("socket.keepalive.enable"), "true")
        p = producers[0]
        self.assertNotIn("fetch.wait.max.ms", p)
        self.assertEqual(p.get("queue.buffering.max.ms"), "17")
        self.assertEqual(p.get("socket.keepalive.enable"), "true")


if __name__ == "__main__":
    main()
