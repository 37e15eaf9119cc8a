#!/usr/bin/env python3
"""kefu's bench: throughput, CPU, Redis cost, memory and latency of `kefu run`, each next
to the passthrough baseline (bench/passthrough.c: consume -> produce, no Redis, no rules)
of the same delivery guarantee, measured in the same run against the same kind of
embedded cluster (`kefu broker`) and redis-server. Nothing here asserts a speed: it
reports figures and ratios. See bench/README.md for every flag and figure.

usage: bench/run.py [--build build] [--kefu PATH] [--events 100000] [--shops 50]
                    [--rounds 2] [--rate 1000] [--seconds 10] [--waits 100000]
                    [--million] [--huge-agents 200,2000] [--huge-buyers 200000]
                    [--huge-events 60000] [--only SECTION,...] [--out bench/results.json]

Sections: throughput, replay (kefu replay vs kefu run of one backlog), latency, waits,
huge, million (only with --million).
"""
import argparse
import atexit
import datetime
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import kefutest  # noqa: E402
from kefutest import Broker, Redis  # noqa: E402

KEYED = ["kefu.shop.config", "kefu.agent.events", "kefu.order.events", "kefu.chat.events"]
SECTIONS = ["throughput", "replay", "latency", "waits", "huge", "million"]

# ---------------------------------------------------------------- cleanup
# Everything the bench starts is registered here and stopped on exit, error or signal.
_servers, _procs = [], []


def start_redis():
    r = Redis()
    _servers.append(r)
    return r


def start_broker():
    b = Broker(4)
    _servers.append(b)
    return b


def stop(server):
    try:
        server.stop()
    except Exception as e:  # noqa: BLE001  keep stopping the others
        sys.stderr.write("bench: stopping %r: %s\n" % (server, e))
    if server in _servers:
        _servers.remove(server)


def popen(args, **kw):
    p = subprocess.Popen(args, **kw)
    _procs.append(p)
    return p


def end(p, timeout=20):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in _procs:
        _procs.remove(p)


def cleanup():
    for p in list(_procs):
        end(p, 10)
    for s in list(reversed(_servers)):
        stop(s)


atexit.register(cleanup)


def on_signal(sig, _frame):
    raise SystemExit("bench: signal %d" % sig)


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGHUP, on_signal)

# ---------------------------------------------------------------- helpers
LOG_RE = re.compile(r"processed (\d+) records in (\d+) batches over ([\d.]+) s .*?"
                    r"(\d+) Redis commands in (\d+) round trips")


def redis_stats(redis):
    """total_commands_processed and the per-command calls of INFO commandstats."""
    info = redis.cli("INFO", "all")
    total = int(re.search(r"total_commands_processed:(\d+)", info).group(1))
    per = {m.group(1): int(m.group(2))
           for m in re.finditer(r"cmdstat_([^:]+):calls=(\d+)", info)}
    return total, per


def used_memory(redis):
    return int(re.search(r"used_memory:(\d+)", redis.cli("INFO", "memory")).group(1))


def generate(tool, events, shops, workdir, name, extra=()):
    prefix = os.path.join(workdir, name + "-")
    subprocess.run([tool, "demo", "--generate-only", prefix, "--events", str(events),
                    "--shops", str(shops)] + list(extra), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    files = {}
    for path in glob.glob(prefix + "*.jsonl"):
        files[os.path.basename(path)[len(name) + 1:-len(".jsonl")]] = path
    return files


def produce(tool, bootstrap, files):
    counts = {}
    for topic in ["kefu.courier.status"] + KEYED:
        if topic not in files:
            continue
        subprocess.run([tool, "produce", "-b", bootstrap, "-t", topic, files[topic]], check=True,
                       stderr=subprocess.DEVNULL)
        with open(files[topic]) as f:
            counts[topic] = sum(1 for line in f if line.strip())
    return counts


def measure_child(args):
    """Runs args to completion: (rc, stdout, stderr, wall s, peak RSS MiB, CPU s) of that
    child (ru_utime + ru_stime from wait4: every thread of it, start-up included)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.monotonic()
        proc = popen(args, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        _procs.remove(proc)
        wall = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        return (proc.returncode, out.read(), err.read(), wall, usage.ru_maxrss / 1024.0,
                usage.ru_utime + usage.ru_stime)


KEFU_SETTINGS = []  # --set: configuration for every kefu run of the bench


def kefu_args(kefu, bootstrap, redis, guarantee, tag, *extra):
    args = [kefu, "run", "-b", bootstrap, "--redis", redis.url,
            "--set", "http.listen=", "--set", "idle_advance=false",
            "--set", "processing.guarantee=" + guarantee,
            "--set", "group.id=bench-" + tag, "--set", "transactional.id.prefix=bench-" + tag,
            "--set", "redis.namespace=bench-" + tag]
    for e in list(extra) + KEFU_SETTINGS:
        args += ["--set", e]
    return args


def run_kefu(kefu, bootstrap, redis, guarantee, tag, expected):
    """One `kefu run --exit-when-idle` over the backlog, in its own consumer group and Redis
    namespace on an emptied Redis, so it reads everything with empty state."""
    redis.cli("FLUSHALL")
    redis.cli("CONFIG", "RESETSTAT")
    rc, out, err, wall, rss, cpu = measure_child(
        kefu_args(kefu, bootstrap, redis, guarantee, tag) + ["--exit-when-idle"])
    if rc != 0:
        raise SystemExit("kefu run failed:\n" + err[-4000:])
    m = LOG_RE.search(err)
    if not m:
        raise SystemExit("kefu run: no closing log line:\n" + err[-2000:])
    records, batches, secs = int(m.group(1)), int(m.group(2)), float(m.group(3))
    sent, trips = int(m.group(4)), int(m.group(5))
    total, per = redis_stats(redis)
    total -= 1  # the CONFIG RESETSTAT itself
    per.pop("info", None)
    per.pop("config|resetstat", None)
    if records < expected:
        raise SystemExit("kefu run read %d of %d records" % (records, expected))
    return {"records": records, "seconds": secs, "batches": batches, "wall_s": round(wall, 2),
            "records_per_s": round(records / secs, 1) if secs else 0,
            "cpu_s": round(cpu, 3), "cpu_us_per_event": round(cpu / records * 1e6, 2),
            "peak_rss_mib": round(rss, 1),
            "redis_commands_sent": sent, "redis_round_trips": trips,
            "redis_round_trips_per_batch": round(trips / batches, 2) if batches else None,
            "redis_server_commands": total,
            "redis_server_commands_per_event": round(total / records, 4),
            "redis_commandstats": per}


def run_passthrough(passthrough, bootstrap, mode, group, expected, fetch_wait=None):
    args = [passthrough, bootstrap, "kefu.dlq", str(expected), "2000", mode, group]
    if fetch_wait is not None:
        args.append(str(fetch_wait))
    rc, out, err, wall, rss, cpu = measure_child(args)
    if rc != 0:
        raise SystemExit("passthrough failed: " + err)
    base = json.loads(out.strip().splitlines()[-1])
    base.update({"wall_s": round(wall, 2), "cpu_s": round(cpu, 3),
                 "cpu_us_per_event": round(cpu / base["records"] * 1e6, 2),
                 "peak_rss_mib": round(rss, 1)})
    return base


def mean(xs):
    return sum(xs) / len(xs) if xs else None


def summary(runs, key):
    v = [r[key] for r in runs]
    return {"min": min(v), "max": max(v), "mean": round(mean(v), 2)}


def ratio(a, b, nd=3):
    return round(a / b, nd) if a is not None and b else None


# ---------------------------------------------------------------- 1-3: throughput
CONTENDERS = [("kefu_exactly_once", "kefu", "exactly_once"),
              ("passthrough_transactional", "passthrough", "transactional"),
              ("kefu_at_least_once", "kefu", "at_least_once"),
              ("passthrough_idempotent", "passthrough", "idempotent")]


def throughput(a, tool, kefu, passthrough, work):
    redis, broker = start_redis(), start_broker()
    try:
        files = generate(tool, a.events, a.shops, work, "traffic")
        counts = produce(tool, broker.bootstrap, files)
        expected = sum(counts.get(t, 0) for t in KEYED)
        runs = {name: [] for name, _, _ in CONTENDERS}
        for rnd in range(a.rounds):
            for name, who, mode in CONTENDERS:
                tag = "%s-%d" % (name, rnd)
                if who == "kefu":
                    r = run_kefu(kefu, broker.bootstrap, redis, mode, tag, expected)
                else:
                    r = run_passthrough(passthrough, broker.bootstrap, mode, "bench-" + tag,
                                        expected)
                r["round"] = rnd + 1
                runs[name].append(r)
                print("bench: throughput %-26s round %d: %8.1f records/s, %.2f us CPU/event"
                      % (name, rnd + 1, r["records_per_s"], r["cpu_us_per_event"]),
                      file=sys.stderr)
        out = {"input_records": counts, "keyed_records": expected, "rounds": a.rounds,
               "order": "ABCD " * a.rounds, "runs": runs, "summary": {}}
        for name in runs:
            s = {"records_per_s": summary(runs[name], "records_per_s"),
                 "cpu_us_per_event": summary(runs[name], "cpu_us_per_event"),
                 "peak_rss_mib": summary(runs[name], "peak_rss_mib")}
            if name.startswith("kefu"):
                for k in ("redis_round_trips_per_batch", "redis_server_commands_per_event"):
                    s[k] = summary(runs[name], k)
            out["summary"][name] = s
        S = out["summary"]
        out["ratio_of_means"] = {
            "exactly_once_to_transactional": ratio(
                S["kefu_exactly_once"]["records_per_s"]["mean"],
                S["passthrough_transactional"]["records_per_s"]["mean"]),
            "at_least_once_to_idempotent": ratio(
                S["kefu_at_least_once"]["records_per_s"]["mean"],
                S["passthrough_idempotent"]["records_per_s"]["mean"]),
            "cpu_exactly_once_to_transactional": ratio(
                S["kefu_exactly_once"]["cpu_us_per_event"]["mean"],
                S["passthrough_transactional"]["cpu_us_per_event"]["mean"]),
            "cpu_at_least_once_to_idempotent": ratio(
                S["kefu_at_least_once"]["cpu_us_per_event"]["mean"],
                S["passthrough_idempotent"]["cpu_us_per_event"]["mean"]),
        }
        return out
    finally:
        stop(broker)
        stop(redis)


# ---------------------------------------------------------------- 4: replay vs live


def run_replay(kefu, archive, redis, out):
    """One `kefu replay` of @p archive to JSON-lines files (--out), state on @p redis in a
    private namespace: the engine's closing line gives records and seconds as for run."""
    redis.cli("FLUSHALL")
    shutil.rmtree(out, ignore_errors=True)
    args = [kefu, "replay", "--archive", archive, "--redis", redis.url, "--out", out]
    for e in KEFU_SETTINGS:
        args += ["--set", e]
    rc, _, err, wall, rss, cpu = measure_child(args)
    if rc != 0:
        raise SystemExit("kefu replay failed:\n" + err[-4000:])
    m = LOG_RE.search(err)
    if not m:
        raise SystemExit("kefu replay: no closing log line:\n" + err[-2000:])
    records, secs = int(m.group(1)), float(m.group(3))
    return {"records": records, "seconds": secs, "wall_s": round(wall, 2),
            "records_per_s": round(records / secs, 1) if secs else 0,
            "cpu_s": round(cpu, 3), "cpu_us_per_event": round(cpu / records * 1e6, 2),
            "peak_rss_mib": round(rss, 1)}


def replay(a, tool, kefu, work):
    """The demo-mix backlog processed live (kefu run, exactly_once and at_least_once) and
    replayed from its archive to files (kefu replay --out), alternately, same machine and
    Redis: replay needs no transactions and never waits for task_idle_ms."""
    redis, broker = start_redis(), start_broker()
    try:
        files = generate(tool, a.events, a.shops, work, "replay")
        counts = produce(tool, broker.bootstrap, files)
        expected = sum(counts.get(t, 0) for t in KEYED)
        archive = os.path.join(work, "replay-archive")
        subprocess.run([tool, "archive", "-b", broker.bootstrap, "-o", archive,
                        "--from-beginning", "-t", ",".join(["kefu.courier.status"] + KEYED)],
                       check=True, stderr=subprocess.DEVNULL)
        runs = {"live_exactly_once": [], "live_at_least_once": [], "replay_to_files": []}
        for rnd in range(a.rounds):
            for name in runs:
                tag = "replay-%s-%d" % (name, rnd)
                if name == "replay_to_files":
                    r = run_replay(kefu, archive, redis, os.path.join(work, "replay-out"))
                else:
                    r = run_kefu(kefu, broker.bootstrap, redis, name[len("live_"):], tag,
                                 expected)
                r["round"] = rnd + 1
                runs[name].append(r)
                print("bench: replay %-20s round %d: %8.1f records/s, %.2f us CPU/event"
                      % (name, rnd + 1, r["records_per_s"], r["cpu_us_per_event"]),
                      file=sys.stderr)
        S = {n: {"records_per_s": summary(v, "records_per_s"),
                 "cpu_us_per_event": summary(v, "cpu_us_per_event"),
                 "wall_s": summary(v, "wall_s")} for n, v in runs.items()}
        rp = S["replay_to_files"]["records_per_s"]["mean"]
        return {"keyed_records": expected, "rounds": a.rounds, "runs": runs, "summary": S,
                "ratio_of_means": {
                    "replay_to_live_exactly_once": ratio(
                        rp, S["live_exactly_once"]["records_per_s"]["mean"]),
                    "replay_to_live_at_least_once": ratio(
                        rp, S["live_at_least_once"]["records_per_s"]["mean"]),
                    # the whole command, start-up (group join, Redis) included
                    "wall_live_exactly_once_to_replay": ratio(
                        S["live_exactly_once"]["wall_s"]["mean"],
                        S["replay_to_files"]["wall_s"]["mean"]),
                    "wall_live_at_least_once_to_replay": ratio(
                        S["live_at_least_once"]["wall_s"]["mean"],
                        S["replay_to_files"]["wall_s"]["mean"])}}
    finally:
        stop(broker)
        stop(redis)


# ---------------------------------------------------------------- 5: latency
BASE_TS = 1773108000000  # 2026-03-10 10:00 in China: a valid ts (SPEC §6)
NSHOPS = 20


def percentile(values, q):
    values = sorted(values)
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


def chat_open(tag, i, ts):
    """A new buyer opening the chat: one routing decision each."""
    return {"event_id": "%s%d" % (tag, i), "shop_id": "bench%d" % (i % NSHOPS), "ts": ts,
            "type": "CHAT_OPEN", "buyer_id": "%sb%d" % (tag, i), "crowd_tags": ["new"]}


def staff_records(base_ts):
    """Three ONLINE agents with room for everyone in each bench shop."""
    recs = []
    for s in range(NSHOPS):
        for a in range(3):
            common = {"shop_id": "bench%d" % s, "ts": base_ts - 1000, "agent_id": "a%d" % a}
            recs.append(dict(common, event_id="p%d-%d" % (s, a), type="PROFILE",
                             level=a + 1, capacity=100000))
            recs.append(dict(common, event_id="o%d-%d" % (s, a), type="PRESENCE",
                             presence="ONLINE"))
    return recs


def produce_lines(tool, bootstrap, topic, records):
    subprocess.run([tool, "produce", "-b", bootstrap, "-t", topic],
                   input="".join(json.dumps(r) + "\n" for r in records), text=True, check=True,
                   stderr=subprocess.DEVNULL)


def live_latency(tool, args, bootstrap, out_topic, rate, seconds, tag):
    """Starts `args` (a processor), waits until it copies/decides a warm-up record, then
    produces CHAT_OPEN records live at `rate`/s (kefu produce, linger.ms=0) and reads
    `out_topic` with a consumer at fetch.wait.max.ms=10; latency per record = arrival -
    production time, matched on the record timestamp (the input's ts, distinct per
    record)."""
    from confluent_kafka import Consumer, TopicPartition
    proc = popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cons = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-latency-reader",
                     "enable.auto.commit": False, "fetch.wait.max.ms": 10,
                     "isolation.level": "read_committed"})
    md = cons.list_topics(out_topic, timeout=10)
    cons.assign([TopicPartition(out_topic, p, 0) for p in md.topics[out_topic].partitions])
    arrivals, stop_reader = {}, threading.Event()

    def reader():
        while not stop_reader.is_set():
            for m in cons.consume(500, 0.05):
                if not m.error():
                    arrivals.setdefault(m.timestamp()[1], time.monotonic())
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    prod = popen([tool, "produce", "-b", bootstrap, "-t", "kefu.chat.events",
                  "-X", "linger.ms=0"], stdin=subprocess.PIPE, text=True,
                 stderr=subprocess.DEVNULL)
    try:
        # warm-up: the group join (3 s on the mock cluster), not measured
        warm_ts = BASE_TS - 100000
        deadline = time.monotonic() + 60
        w = 0
        while not any(warm_ts <= k < warm_ts + 10000 for k in list(arrivals)):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("latency: %s never produced an output" % args[0])
            prod.stdin.write(json.dumps(chat_open(tag + "w", w, warm_ts + w)) + "\n")
            prod.stdin.flush()
            w += 1
            time.sleep(0.2)
        time.sleep(1)
        sent = {}
        n = int(rate * seconds)
        start = time.monotonic()
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            ts = BASE_TS + i
            prod.stdin.write(json.dumps(chat_open(tag, i, ts)) + "\n")
            prod.stdin.flush()
            sent[ts] = time.monotonic()
        prod.stdin.close()
        prod.wait(30)
        deadline = time.monotonic() + 30
        while sum(1 for k in sent if k in arrivals) < n and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop_reader.set()
        t.join(5)
        cons.close()
        end(prod)
        end(proc)
    lat = [(arrivals[k] - sent[k]) * 1000 for k in sent if k in arrivals]
    return {"rate_per_s": rate, "seconds": seconds, "records": n, "received": len(lat),
            "p50_ms": round(percentile(lat, 0.50), 1) if lat else None,
            "p99_ms": round(percentile(lat, 0.99), 1) if lat else None,
            "max_ms": round(max(lat), 1) if lat else None}


def latency(a, tool, kefu, passthrough):
    out = {"what": "CHAT_OPEN produced -> routing decision read (kefu) / copied record read "
                   "(passthrough); kafka.fetch.wait.max.ms=10 on kefu, the passthrough and "
                   "the reader"}
    for name, who, mode in CONTENDERS:
        redis, broker = start_redis(), start_broker()
        try:
            produce_lines(tool, broker.bootstrap, "kefu.agent.events",
                          staff_records(BASE_TS - 200000))  # before the warm-up
            if who == "kefu":
                args = kefu_args(kefu, broker.bootstrap, redis, mode, "lat-" + name,
                                 "kafka.fetch.wait.max.ms=10")
                topic = "kefu.routing.decisions"
            else:
                args = [passthrough, broker.bootstrap, "kefu.dlq", str(10 ** 9), "2000", mode,
                        "bench-lat-" + name, "10"]
                topic = "kefu.dlq"
            out[name] = live_latency(tool, args, broker.bootstrap, topic, a.rate, a.seconds,
                                     name[:2])
            print("bench: latency %-26s p50 %s ms p99 %s ms (%d/%d)" % (
                name, out[name]["p50_ms"], out[name]["p99_ms"], out[name]["received"],
                out[name]["records"]), file=sys.stderr)
        finally:
            stop(broker)
            stop(redis)
    for k, (kn, pn) in {"exactly_once_to_transactional": ("kefu_exactly_once",
                                                           "passthrough_transactional"),
                        "at_least_once_to_idempotent": ("kefu_at_least_once",
                                                        "passthrough_idempotent")}.items():
        out["ratio_" + k] = {"p50": ratio(out[kn]["p50_ms"], out[pn]["p50_ms"], 2),
                             "p99": ratio(out[kn]["p99_ms"], out[pn]["p99_ms"], 2)}
    return out


# ---------------------------------------------------------------- 3-4: open waits
def safe_int(s):
    s = s.strip()
    return int(s) if s.lstrip("-").isdigit() else 0


def waits_file(f, lo, hi, waits):
    """Buyers lo..hi-1 of `waits`: each opens a chat and writes once, inside 100 s."""
    for i in range(lo, hi):
        ts = BASE_TS + (i * 100000) // waits
        shop, buyer = "bench%d" % (i % NSHOPS), "w%d" % i
        f.write(json.dumps({"event_id": "o%d" % i, "shop_id": shop, "ts": ts,
                            "type": "CHAT_OPEN", "buyer_id": buyer}) + "\n")
        f.write(json.dumps({"event_id": "m%d" % i, "shop_id": shop, "ts": ts,
                            "type": "BUYER_MSG", "buyer_id": buyer}) + "\n")


def produce_waits(tool, bootstrap, lo, hi, waits):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as f:
        waits_file(f, lo, hi, waits)
        f.flush()
        subprocess.run([tool, "produce", "-b", bootstrap, "-t", "kefu.chat.events", f.name],
                       check=True, stderr=subprocess.DEVNULL)


def topic_size(bootstrap, topic):
    """Records (and transaction markers) in @p topic: its high watermarks, summed."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watermarks"})
    try:
        md = c.list_topics(topic, timeout=10)
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in md.topics[topic].partitions)
    finally:
        c.close()


# The mock cluster keeps only about 5 MB per partition (older records are dropped), so
# more than this many buyers are produced while kefu runs, CHUNK at a time, keeping
# kefu's backlog between CHUNK and 2 * CHUNK buyers.
PRELOAD, CHUNK = 100000, 30000


def records_processed(port):
    """kefu's kefu_records_processed_total (0 before its HTTP server is up)."""
    try:
        body = kefutest.http_get(port, "/metrics", timeout=5)[1]
    except OSError:
        return 0
    return sum(int(float(line.split()[-1])) for line in body.splitlines()
               if line.startswith("kefu_records_processed_total"))


def open_waits(tool, kefu, waits, tag="waits"):
    """`waits` buyers each open a chat and write once, unanswered, inside 100 s of event
    time, so every wait is still open (deadline 180 s) when processing ends: each is an
    active buyer in Redis."""
    redis, broker = start_redis(), start_broker()
    try:
        staff = staff_records(BASE_TS)
        produce_lines(tool, broker.bootstrap, "kefu.agent.events", staff)
        done = min(waits, PRELOAD)
        produce_waits(tool, broker.bootstrap, 0, done, waits)
        before = used_memory(redis)
        redis.cli("CONFIG", "RESETSTAT")
        expected = 2 * waits + len(staff)
        port = kefutest.free_port()
        with tempfile.TemporaryFile("w+") as err:
            start = time.monotonic()
            # No --exit-when-idle: kefu may catch up with a chunk before the next is
            # produced. Its counter of records processed says when it is through; then SIGTERM
            # (kefu finishes the batch in hand and prints its closing line).
            args = kefu_args(kefu, broker.bootstrap, redis, "exactly_once", tag)
            args[args.index("http.listen=")] = "http.listen=127.0.0.1:%d" % port
            proc = popen(args, stdout=subprocess.DEVNULL, stderr=err, text=True)
            exited = None  # (pid, status, rusage) once kefu has exited (wait4, not poll)
            while True:
                r = os.wait4(proc.pid, os.WNOHANG)
                if r[0]:
                    exited = r
                    break
                read = records_processed(port)
                if done == waits and read >= expected:
                    proc.send_signal(signal.SIGTERM)
                    break
                if done == waits or 2 * done - read > 2 * CHUNK:
                    time.sleep(0.2)
                    continue
                nxt = min(waits, done + CHUNK)
                produce_waits(tool, broker.bootstrap, done, nxt, waits)
                done = nxt
            _, status, usage = exited or os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            _procs.remove(proc)
            wall = time.monotonic() - start
            err.seek(0)
            err = err.read()
        rss, cpu = usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime
        if proc.returncode != 0:
            raise SystemExit("kefu run failed:\n" + err[-4000:])
        m = LOG_RE.search(err)
        records, batches, secs = int(m.group(1)), int(m.group(2)), float(m.group(3))
        if records != expected:
            raise SystemExit("open waits: kefu read %d records of %d (the mock cluster dropped "
                             "some)" % (records, expected))
        total, _ = redis_stats(redis)
        ns = "bench-" + tag
        timers = sum(safe_int(redis.cli("ZCARD", "%s:{bench%d}:timers" % (ns, s)))
                     for s in range(NSHOPS))
        after = used_memory(redis)
        return {"active_buyers": waits, "records": records, "seconds": secs,
                "wall_s": round(wall, 1), "preloaded_buyers": min(waits, PRELOAD),
                "records_per_s": round(records / secs, 1) if secs else 0,
                "cpu_us_per_event": round(cpu / records * 1e6, 2),
                "peak_rss_mib": round(rss, 1),
                "redis_round_trips_per_batch": round(int(m.group(5)) / batches, 2),
                "redis_server_commands_per_event": round((total - 1) / records, 4),
                "redis_used_memory_delta": after - before,
                "redis_bytes_per_active_buyer": round((after - before) / waits, 1),
                "timers_in_redis (pre-redesign key layout; 0 if absent)": timers}
    finally:
        stop(broker)
        stop(redis)


# ---------------------------------------------------------------- 6: one huge shop
def huge(a, tool, kefu, passthrough, work):
    out = {"shops": a.shops, "huge_buyers": a.huge_buyers, "events": a.huge_events,
           "huge_share_of_conversations": 0.5, "runs": {}}
    for agents in a.huge_agents:
        redis, broker = start_redis(), start_broker()
        try:
            files = generate(tool, a.huge_events, a.shops, work, "huge%d" % agents,
                             ["--huge-shop", "%d:%d" % (agents, a.huge_buyers)])
            counts = produce(tool, broker.bootstrap, files)
            expected = sum(counts.get(t, 0) for t in KEYED)
            k = run_kefu(kefu, broker.bootstrap, redis, "exactly_once", "huge%d" % agents,
                         expected)
            p = run_passthrough(passthrough, broker.bootstrap, "transactional",
                                "bench-huge-pt%d" % agents, expected)
            k.pop("redis_commandstats")
            conv = counts.get("kefu.chat.events", 0) + counts.get("kefu.order.events", 0)
            out["runs"][str(agents)] = {
                "input_records": counts, "kefu": k, "passthrough_transactional": p,
                "kefu_cpu_us_per_chat_or_order_event": round(k["cpu_s"] / conv * 1e6, 2),
                "ratio_records_per_s_to_passthrough": ratio(k["records_per_s"],
                                                            p["records_per_s"])}
            print("bench: huge shop %5d agents: %8.1f records/s, %.2f us CPU/event"
                  % (agents, k["records_per_s"], k["cpu_us_per_event"]), file=sys.stderr)
        finally:
            stop(broker)
            stop(redis)
    if len(a.huge_agents) >= 2:
        lo, hi = str(a.huge_agents[0]), str(a.huge_agents[-1])
        R = out["runs"]
        out["growth_%s_to_%s_agents" % (lo, hi)] = {
            "cpu_us_per_event": ratio(R[hi]["kefu"]["cpu_us_per_event"],
                                      R[lo]["kefu"]["cpu_us_per_event"]),
            "cpu_us_per_chat_or_order_event": ratio(R[hi]["kefu_cpu_us_per_chat_or_order_event"],
                                                    R[lo]["kefu_cpu_us_per_chat_or_order_event"]),
            "records_per_s": ratio(R[hi]["kefu"]["records_per_s"],
                                   R[lo]["kefu"]["records_per_s"])}
    return out


# ---------------------------------------------------------------- report
def fmt(x, nd=0):
    if x is None:
        return "–"
    return ("{:,.%df}" % nd).format(x)


def table(res):
    """The headline table of bench/README.md, in Markdown."""
    rows = ["| | passthrough | kefu | kefu / passthrough |", "|---|---|---|---|"]
    tp = res.get("throughput")
    if tp:
        S, R = tp["summary"], tp["ratio_of_means"]

        def rng(s):
            return "%s–%s" % (fmt(s["min"]), fmt(s["max"]))
        rows.append("| exactly_once vs transactional passthrough, records/s (min–max of %d) "
                    "| %s | %s | %s |" % (tp["rounds"],
                                          rng(S["passthrough_transactional"]["records_per_s"]),
                                          rng(S["kefu_exactly_once"]["records_per_s"]),
                                          R["exactly_once_to_transactional"]))
        rows.append("| at_least_once vs idempotent passthrough, records/s (min–max of %d) "
                    "| %s | %s | %s |" % (tp["rounds"],
                                          rng(S["passthrough_idempotent"]["records_per_s"]),
                                          rng(S["kefu_at_least_once"]["records_per_s"]),
                                          R["at_least_once_to_idempotent"]))
        rows.append("| CPU per event, EOS / ALO (mean) | %s / %s µs | %s / %s µs | %s / %s |" % (
            fmt(S["passthrough_transactional"]["cpu_us_per_event"]["mean"], 1),
            fmt(S["passthrough_idempotent"]["cpu_us_per_event"]["mean"], 1),
            fmt(S["kefu_exactly_once"]["cpu_us_per_event"]["mean"], 1),
            fmt(S["kefu_at_least_once"]["cpu_us_per_event"]["mean"], 1),
            R["cpu_exactly_once_to_transactional"], R["cpu_at_least_once_to_idempotent"]))
        e = S["kefu_exactly_once"]
        rows.append("| Redis round trips per batch / server commands per event (EOS, mean) "
                    "| | %s / %s | |" % (fmt(e["redis_round_trips_per_batch"]["mean"], 2),
                                         fmt(e["redis_server_commands_per_event"]["mean"], 2)))
    rp = res.get("replay")
    if rp:
        S, R = rp["summary"], rp["ratio_of_means"]
        rows.append("| kefu replay to files vs kefu run (EOS / ALO) of the same backlog, "
                    "records/s (mean of %d) | | %s vs %s / %s | %s / %s |" % (
                        rp["rounds"], fmt(S["replay_to_files"]["records_per_s"]["mean"]),
                        fmt(S["live_exactly_once"]["records_per_s"]["mean"]),
                        fmt(S["live_at_least_once"]["records_per_s"]["mean"]),
                        R["replay_to_live_exactly_once"], R["replay_to_live_at_least_once"]))
        rows.append("| same, wall time of the whole command (start-up included), s | | "
                    "%s vs %s / %s | ×%s / ×%s faster |" % (
                        fmt(S["replay_to_files"]["wall_s"]["mean"], 2),
                        fmt(S["live_exactly_once"]["wall_s"]["mean"], 2),
                        fmt(S["live_at_least_once"]["wall_s"]["mean"], 2),
                        R["wall_live_exactly_once_to_replay"],
                        R["wall_live_at_least_once_to_replay"]))
    w = res.get("waits")
    if w:
        rows.append("| Redis bytes per active buyer (%s open waits) | | %s | |"
                    % (fmt(w["active_buyers"]), fmt(w["redis_bytes_per_active_buyer"])))
    lt = res.get("latency")
    if lt:
        for g, kn, pn in (("EOS", "kefu_exactly_once", "passthrough_transactional"),
                          ("ALO", "kefu_at_least_once", "passthrough_idempotent")):
            r = lt["ratio_exactly_once_to_transactional" if g == "EOS"
                   else "ratio_at_least_once_to_idempotent"]
            rows.append("| latency p50 / p99, CHAT_OPEN → decision at %d/s, %s | %s / %s ms "
                        "| %s / %s ms | %s / %s |" % (
                            lt[kn]["rate_per_s"], g, fmt(lt[pn]["p50_ms"]),
                            fmt(lt[pn]["p99_ms"]), fmt(lt[kn]["p50_ms"]),
                            fmt(lt[kn]["p99_ms"]), r["p50"], r["p99"]))
    m = res.get("million")
    if m:
        rows.append("| peak RSS with %s active buyers | | %s MiB | |"
                    % (fmt(m["active_buyers"]), fmt(m["peak_rss_mib"], 1)))
    elif w:
        rows.append("| peak RSS with %s active buyers (--million not run) | | %s MiB | |"
                    % (fmt(w["active_buyers"]), fmt(w["peak_rss_mib"], 1)))
    h = res.get("huge")
    if h and len(h["runs"]) >= 2:
        keys = list(h["runs"])
        lo, hi = h["runs"][keys[0]], h["runs"][keys[-1]]
        g = h["growth_%s_to_%s_agents" % (keys[0], keys[-1])]
        rows.append("| huge shop: µs CPU/event at %s vs %s agents (%s buyers), all records "
                    "| %s vs %s µs | %s vs %s µs | ×%s |" % (
                        keys[0], keys[-1], fmt(h["huge_buyers"]),
                        fmt(lo["passthrough_transactional"]["cpu_us_per_event"], 1),
                        fmt(hi["passthrough_transactional"]["cpu_us_per_event"], 1),
                        fmt(lo["kefu"]["cpu_us_per_event"], 1),
                        fmt(hi["kefu"]["cpu_us_per_event"], 1), g["cpu_us_per_event"]))
        rows.append("| huge shop: kefu CPU per chat/order record (same such traffic) | | "
                    "%s vs %s µs | ×%s |" % (
                        fmt(lo["kefu_cpu_us_per_chat_or_order_event"], 1),
                        fmt(hi["kefu_cpu_us_per_chat_or_order_event"], 1),
                        g["cpu_us_per_chat_or_order_event"]))
        rows.append("| huge shop: records/s at %s vs %s agents | %s vs %s | %s vs %s | ×%s |" % (
            keys[0], keys[-1], fmt(lo["passthrough_transactional"]["records_per_s"]),
            fmt(hi["passthrough_transactional"]["records_per_s"]),
            fmt(lo["kefu"]["records_per_s"]), fmt(hi["kefu"]["records_per_s"]),
            g["records_per_s"]))
    return "\n".join(rows)


def git_commit():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="this build: passthrough, broker, generator, produce (default build)")
    ap.add_argument("--kefu", help="the kefu binary whose `kefu run` is measured "
                                   "(default BUILD/kefu)")
    ap.add_argument("--events", type=int, default=100000, help="demo-mix backlog size")
    ap.add_argument("--shops", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of the four contenders")
    ap.add_argument("--rate", type=int, default=1000, help="live CHAT_OPEN per second")
    ap.add_argument("--seconds", type=int, default=10, help="seconds of live production")
    ap.add_argument("--waits", type=int, default=100000, help="active buyers (open waits)")
    ap.add_argument("--million", action="store_true",
                    help="also the open-waits run with 1,000,000 active buyers (slow)")
    ap.add_argument("--huge-agents", default="200,2000",
                    help="agent counts of the huge shop, comma-separated")
    ap.add_argument("--huge-buyers", type=int, default=200000)
    ap.add_argument("--huge-events", type=int, default=60000)
    ap.add_argument("--only", default=",".join(s for s in SECTIONS if s != "million"),
                    help="sections to run: " + ",".join(SECTIONS))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="configuration for every kefu run (repeatable), e.g. state.cache_mb=64")
    ap.add_argument("--label", default="", help="a note stored as results.json's label")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results.json"))
    a = ap.parse_args()
    KEFU_SETTINGS.extend(a.set)
    a.huge_agents = [int(x) for x in a.huge_agents.split(",") if x]
    only = set(a.only.split(","))
    if a.million:
        only.add("million")
    tool = os.path.join(a.build, "kefu")
    kefu = os.path.abspath(a.kefu or tool)
    passthrough = os.path.join(a.build, "bench", "kefu-passthrough")
    kefutest.KEFU = tool

    started = time.monotonic()
    res = {"machine": "%s, %d cpus (shared with other work), %s" % (
               os.uname().machine, os.cpu_count(), os.uname().sysname),
           "cpus": os.cpu_count(),
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
           "bench_commit": git_commit(), "kefu": kefu, "label": a.label,
           "args": {k: v for k, v in vars(a).items()}}
    try:
        with tempfile.TemporaryDirectory() as work:
            if "throughput" in only:
                res["throughput"] = throughput(a, tool, kefu, passthrough, work)
            if "replay" in only:
                res["replay"] = replay(a, tool, kefu, work)
            if "latency" in only:
                res["latency"] = latency(a, tool, kefu, passthrough)
            if "waits" in only:
                res["waits"] = open_waits(tool, kefu, a.waits)
            if "million" in only:
                res["million"] = open_waits(tool, kefu, 1000000, "million")
            if "huge" in only:
                res["huge"] = huge(a, tool, kefu, passthrough, work)
    finally:
        cleanup()
    res["run_seconds"] = round(time.monotonic() - started, 1)
    res["table"] = table(res)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    print(res["table"])
    print("bench: %.0f s, written to %s" % (res["run_seconds"], a.out), file=sys.stderr)


if __name__ == "__main__":
    main()
