"""Test harness for kefu's integration and interoperability tests.

Every test owns its servers: a redis-server on a free port in a temporary directory and
`kefu broker` (librdkafka's mock cluster, real Kafka protocol over TCP on loopback), both
stopped when the test ends. Nothing here fakes Kafka or Redis.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

KEFU = os.environ.get("KEFU_BIN", "build/kefu")
SOURCE = os.environ.get("KEFU_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.path.join(SOURCE, "..", "shared")
TOPICS = {
    "chat": "kefu.chat.events", "order": "kefu.order.events", "agent": "kefu.agent.events",
    "config": "kefu.shop.config", "courier": "kefu.courier.status",
    "decisions": "kefu.routing.decisions", "invitations": "kefu.logistics.invitations",
    "violations": "kefu.response.violations", "responses": "kefu.response.events",
    "cards": "kefu.service.cards", "insights": "kefu.inquiry.insights", "dlq": "kefu.dlq",
}


# KEFU_VALGRIND=1 (scripts/memcheck.sh): every `kefu run` of run_kefu() and
# workload.start_kefu() runs under valgrind memcheck, its report in
# $KEFU_VALGRIND_LOG_DIR/kefu-run.<pid>.log; an error or a definite leak makes it exit 99,
# which fails the test. Timeouts are stretched by SLOW.
VALGRIND = os.environ.get("KEFU_VALGRIND", "") not in ("", "0")
SLOW = 10 if VALGRIND else 1


def kefu_run_command(args):
    """@p args (a `kefu run` command line), under valgrind when KEFU_VALGRIND is set."""
    if not VALGRIND:
        return list(args)
    logs = os.environ.get("KEFU_VALGRIND_LOG_DIR") or tempfile.gettempdir()
    return ["valgrind", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
            "--suppressions=" + os.path.join(SOURCE, "tests", "valgrind.supp"),
            "--log-file=" + os.path.join(logs, "kefu-run.%p.log")] + list(args)


# Input topics in the order a stream is produced (the courier table first).
INPUT_ORDER = ["kefu.courier.status", "kefu.shop.config", "kefu.agent.events",
               "kefu.order.events", "kefu.chat.events"]
TOPIC_KEY = {v: k for k, v in TOPICS.items()}


def load_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def schema_table():
    """kefu's schemas by id and by topic, parsed with python3-avro (no kefu code)."""
    import avro.schema
    ids, by_topic = {}, {}
    with open(os.path.join(SOURCE, "schemas", "ids.tsv")) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            sid, topic, path = line.split()
            with open(os.path.join(SOURCE, path)) as sf:
                schema = avro.schema.parse(sf.read())
            ids[int(sid)] = schema
            by_topic["kefu." + topic] = (int(sid), schema)
    return ids, by_topic


def decode(ids, value):
    """A Confluent-framed Avro value decoded with python3-avro."""
    import io
    import struct
    import avro.io
    assert value[0] == 0, "Confluent magic byte"
    schema = ids[struct.unpack(">i", value[1:5])[0]]
    return avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(value[5:])))


def read_raw(bootstrap, topic):
    """Every record of @topic with its raw bytes, via python3-confluent-kafka."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "raw-reader",
                  "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    md = c.list_topics(topic, timeout=10)
    parts = [TopicPartition(topic, p, 0) for p in md.topics[topic].partitions]
    c.assign(parts)
    out, eof = [], set()
    while len(eof) < len(parts):
        m = c.poll(5)
        if m is None:
            break
        if m.error():
            eof.add(m.partition())
        else:
            out.append(m)
    c.close()
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, timeout=10):
    """(status, body) of GET http://127.0.0.1:port/path; (None, "") when nothing answers."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                    timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def metric(port, name):
    """The sum of series @p name (over its labels) on kefu's /metrics at @p port; None
    when it has none or the endpoint does not answer."""
    status, body = http_get(port, "/metrics")
    if status != 200:
        return None
    total = None
    for line in body.splitlines():
        m = re.match(r"%s(\{[^}]*\})?\s+(\S+)" % re.escape(name), line)
        if m:
            total = (total or 0) + float(m.group(2))
    return total


def wait_for(predicate, timeout=30.0, what="condition"):
    """Polls predicate until it is true; never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


class Redis:
    """A redis-server of the test's own. aof=True: every write fsynced to the append-only
    file before it is acknowledged (--appendonly yes --appendfsync always), so a SIGKILL
    loses nothing; kill() and start() restart it on the same port and directory. DEBUG is
    enabled for loopback clients (DEBUG SLEEP stalls it). @p args: more server options
    (e.g. "--aclfile", path); @p auth: (user, password) that cli() authenticates with
    (None: no AUTH)."""

    def __init__(self, aof=False, args=(), auth=None):
        self.dir = tempfile.mkdtemp(prefix="kefu-redis-")
        self.port = free_port()
        self.aof = aof
        self.args = list(args)
        self.auth = auth
        self.url = "redis://127.0.0.1:%d/0" % self.port
        for attempt in range(5):
            try:
                self.start()
                break
            except RuntimeError:
                # the free port was taken before redis-server bound it (a test beside this
                # one): another port; restarts (kill, start) keep theirs
                if attempt == 4:
                    raise
                self.port = free_port()
                self.url = "redis://127.0.0.1:%d/0" % self.port

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--dir", self.dir, "--enable-debug-command", "local"]  # DEBUG SLEEP
        args += ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else \
            ["--appendonly", "no"]
        args += self.args
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.ping() or self.proc.poll() is not None, 10, "redis-server")
        if self.proc.poll() is not None:
            raise RuntimeError("redis-server exited with %d" % self.proc.returncode)

    def kill(self):
        """SIGKILL: no shutdown, no final save."""
        self.proc.kill()
        self.proc.wait(10)

    def cli_args(self, auth=None):
        """redis-cli's command line, authenticated as @p auth (default: self.auth); the
        password goes in REDISCLI_AUTH (see cli_env), never on the command line."""
        auth = auth or self.auth
        args = ["redis-cli", "-p", str(self.port)]
        if auth and auth[0]:
            args += ["--user", auth[0]]
        return args

    def cli_env(self, auth=None):
        auth = auth or self.auth
        env = dict(os.environ)
        if auth:
            env["REDISCLI_AUTH"] = auth[1]
        return env

    def cli(self, *args, auth=None):
        out = subprocess.run(self.cli_args(auth) + ["--raw", *args], capture_output=True,
                             env=self.cli_env(auth))
        return out.stdout.decode("utf-8", "backslashreplace")

    def snapshot(self, pattern):
        """Every key matching pattern with its serialized value (DUMP), for equality."""
        keys = sorted(self.cli("KEYS", pattern).split())
        return {k: subprocess.run(self.cli_args() + ["DUMP", k], capture_output=True,
                                  env=self.cli_env()).stdout for k in keys}

    def state(self, shop, *what):
        """`kefu state show` of @p shop as data: the shop record (config, queue, rate,
        timers, applied, counts, seen days); with @p what "buyers", "agents", "orders" or
        "seen", every such entity by id (seen: "%016x" of each event id's hash -> ts); with
        "buyer", "agent" or "order" and an id, that entity. Authenticated as self.auth,
        the password in the environment (KEFU_REDIS_PASSWORD), never on the command line."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
        if self.auth:
            env["KEFU_REDIS_USER"], env["KEFU_REDIS_PASSWORD"] = self.auth
        out = subprocess.run([KEFU, "state", "show", "--redis", self.url, shop, *what],
                             capture_output=True, text=True, env=env, timeout=60)
        if out.returncode != 0:
            raise AssertionError("kefu state show %s: exit %d: %s" % (
                " ".join((shop,) + what), out.returncode, out.stderr.strip()))
        return json.loads(out.stdout)

    def ping(self):
        try:
            return self.cli("PING").strip() == "PONG"
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


MASK64 = (1 << 64) - 1


def event_hash(event_id):
    """kefu's 64-bit hash of an event id (src/engine/cache.c engine_event_hash): FNV-1a 64
    over the id's bytes, then a final mix; never 0."""
    h = 14695981039346656037
    for b in event_id.encode():
        h = ((h ^ b) * 1099511628211) & MASK64
    h ^= h >> 33
    h = (h * 0xff51afd7ed558ccd) & MASK64
    h ^= h >> 33
    return h or 1


def seen_ids(redis, shop, candidate_ids):
    """The ids of @p candidate_ids that @p shop's event-id days hold (by hash)."""
    seen = redis.state(shop, "seen")
    return {i for i in candidate_ids if "%016x" % event_hash(i) in seen}


def seen_count(redis, shop, record=None):
    """How many event-id entries @p shop's days hold, an id seen twice counted twice
    (@p record: the shop's state(shop) when already read)."""
    record = record or redis.state(shop)
    return sum(day["events"] for day in record["seen"].values())


def pending_timers(redis, shop):
    """Every pending timer of @p shop: the shop's own and every buyer's."""
    timers = list(redis.state(shop)["timers"])
    for buyer in redis.state(shop, "buyers").values():
        timers += buyer["timers"]
    return timers


def due_buckets(redis, shop):
    """The pending due buckets of @p shop: bucket number -> buyer ids it lists."""
    return {int(k): v for k, v in redis.state(shop)["due"].items()}


def earliest_timers(redis, shop):
    """buyer id -> the deadline of its earliest pending timer, for buyers with one."""
    return {b: min(t["deadline"] for t in v["timers"])
            for b, v in redis.state(shop, "buyers").items() if v["timers"]}


def shops(redis, ns="kefu"):
    """The shops that have state in @p redis (their applied offsets)."""
    keys = redis.cli("KEYS", "%s:{*}:applied" % ns).split()
    return sorted(k[len(ns) + 2:-len("}:applied")] for k in keys)


class Broker:
    """`kefu broker`; with control=True, faults are injected with control() (librdkafka's
    mock error injection, see `kefu broker --help`)."""

    def __init__(self, partitions=4, brokers=1, control=False):
        args = [KEFU, "broker", "--partitions", str(partitions), "--brokers", str(brokers)]
        self.proc = subprocess.Popen(args + (["--control"] if control else []),
                                     stdin=subprocess.PIPE if control else None,
                                     stdout=subprocess.PIPE, text=True)
        self.bootstrap = self.proc.stdout.readline().strip()
        if not self.bootstrap:
            raise RuntimeError("kefu broker printed no bootstrap servers")

    def control(self, command):
        """One fault-injection command; raises unless the broker answers ok."""
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().strip()
        if reply != "ok":
            raise AssertionError("kefu broker: %s: %s" % (command, reply))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(20)
        for f in (self.proc.stdin, self.proc.stdout):
            if f:
                f.close()


class KefuTestCase(unittest.TestCase):
    """Starts a broker and a redis-server per test."""

    partitions = 4
    brokers = 1
    broker_control = False  # True: self.broker.control() injects faults

    def setUp(self):
        self.redis = Redis()
        self.broker = Broker(self.partitions, self.brokers, self.broker_control)
        self.addCleanup(self.redis.stop)
        self.addCleanup(self.broker.stop)

    # -- producing ------------------------------------------------------------------
    def produce(self, topic, records):
        """Writes JSON records with `kefu produce` (murmur2 partitioning, Avro)."""
        text = "".join(json.dumps(r) + "\n" for r in records)
        out = subprocess.run([KEFU, "produce", "-b", self.broker.bootstrap, "-t", TOPICS[topic]],
                             input=text, capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)

    def produce_raw(self, topic, key, value, partition=None):
        """Writes raw bytes with python3-confluent-kafka (no kefu code)."""
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": self.broker.bootstrap,
                      "partitioner": "murmur2_random"})
        kwargs = {} if partition is None else {"partition": partition}
        p.produce(TOPICS[topic], key=key, value=value, **kwargs)
        self.assertEqual(p.flush(30), 0)

    # -- running --------------------------------------------------------------------
    def run_kefu(self, *settings, timeout=120, expect=0):
        args = [KEFU, "run", "-b", self.broker.bootstrap, "--redis", self.redis.url,
                "--exit-when-idle", "--set", "http.listen=", "--set", "idle_advance=false",
                "--set", "task_idle_ms=%d" % (200 * SLOW)]
        for s in settings:
            args += ["--set", s]
        out = subprocess.run(kefu_run_command(args), capture_output=True, text=True,
                             timeout=timeout * SLOW)
        if out.returncode != expect:
            sys.stderr.write(out.stderr)
        self.assertEqual(out.returncode, expect)
        return out.stderr

    def consume(self, topic, meta=False):
        args = [KEFU, "consume", "-b", self.broker.bootstrap, "-t", TOPICS[topic],
                "--from-beginning", "--exit"]
        if meta:
            args.append("--meta")
        out = subprocess.run(args, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def main():
    unittest.main(verbosity=2)
