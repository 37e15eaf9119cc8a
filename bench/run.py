#!/usr/bin/env python3
"""kefu's bench: throughput, latency, memory and Redis cost of `kefu run`, each next to the
passthrough baseline (consume -> produce with offsets in a transaction, no Redis, no rules)
measured in the same run against the same embedded cluster and redis-server.

usage: bench/run.py [--build build] [--events 100000] [--shops 50] [--rate 2000]
                    [--seconds 20] [--out bench/results.json]

Throughput: a backlog of generated traffic (kefu demo --generate-only) is read to the end.
Latency: DELIVERABILITY_QUERY events are produced live at --rate per second for
--seconds; latency = when the output is read back - when the input was produced.
Nothing here asserts a speed: it reports figures and ratios."""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
from kefutest import Broker, Redis  # noqa: E402

KEYED = ["kefu.shop.config", "kefu.agent.events", "kefu.order.events", "kefu.chat.events"]


def redis_commands(redis):
    info = redis.cli("INFO", "stats")
    return int(re.search(r"total_commands_processed:(\d+)", info).group(1))


def generate(kefu, events, shops, workdir):
    prefix = os.path.join(workdir, "traffic-")
    subprocess.run([kefu, "demo", "--generate-only", prefix, "--events", str(events),
                    "--shops", str(shops)], check=True, stdout=subprocess.DEVNULL)
    files = {}
    for path in glob.glob(prefix + "*.jsonl"):
        topic = os.path.basename(path)[len("traffic-"):-len(".jsonl")]
        files[topic] = path
    return files


def produce(kefu, bootstrap, files):
    counts = {}
    for topic in ["kefu.courier.status"] + KEYED:
        if topic not in files:
            continue
        subprocess.run([kefu, "produce", "-b", bootstrap, "-t", topic, files[topic]], check=True,
                       stderr=subprocess.DEVNULL)
        with open(files[topic]) as f:
            counts[topic] = sum(1 for line in f if line.strip())
    return counts


def measure_child(args, env=None):
    """Runs args to completion: (rc, stdout, stderr, wall s, peak RSS MiB of that child)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.monotonic()
        proc = subprocess.Popen(args, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read(), wall, usage.ru_maxrss / 1024.0


def throughput(kefu, passthrough, bootstrap, redis, expected):
    rc, out, err, wall, base_rss = measure_child(
        [passthrough, bootstrap, "kefu.dlq", str(expected)])
    if rc != 0:
        raise SystemExit("passthrough failed: " + err)
    base = json.loads(out.strip().splitlines()[-1])
    before = redis_commands(redis)
    rc, out, err, wall, rss = measure_child(
        [kefu, "run", "-b", bootstrap, "--redis", redis.url, "--exit-when-idle",
         "--set", "http.listen=", "--set", "idle_advance=false"])
    if rc != 0:
        raise SystemExit("kefu run failed:\n" + err[-4000:])
    m = re.search(r"processed (\d+) records in (\d+) batches over ([\d.]+) s .*?"
                  r"(\d+) Redis commands in (\d+) round trips", err)
    records, batches, secs = int(m.group(1)), int(m.group(2)), float(m.group(3))
    sent, trips = int(m.group(4)), int(m.group(5))
    cmds = redis_commands(redis) - before
    out = subprocess.run([kefu, "consume", "-b", bootstrap, "-t", "kefu.routing.decisions",
                          "--from-beginning", "--exit"], capture_output=True, text=True)
    decisions = len(out.stdout.splitlines())
    return {
        "passthrough": {"records": base["records"], "seconds": base["seconds"],
                        "records_per_s": base["records_per_s"], "batches": base["batches"],
                        "peak_rss_mib": round(base_rss, 1)},
        "kefu": {"records": records, "seconds": secs, "batches": batches,
                 "records_per_s": round(records / secs, 1) if secs else 0,
                 "decisions": decisions,
                 "decisions_per_s": round(decisions / secs, 1) if secs else 0,
                 "peak_rss_mib": round(rss, 1),
                 "redis_commands_sent": sent,
                 "redis_commands_sent_per_event": round(sent / records, 4) if records else None,
                 "redis_round_trips": trips,
                 "redis_round_trips_per_batch": round(trips / batches, 2) if batches else None,
                 "redis_server_commands_incl_lua": cmds,
                 "redis_server_commands_per_event": round(cmds / records, 4) if records else None},
    }


BASE_TS = int(time.time() * 1000) - 3600 * 1000


def percentile(values, q):
    values = sorted(values)
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


def query(tag, i, ts):
    return {"event_id": "%s%d" % (tag, i), "shop_id": "bench%d" % (i % 20), "ts": ts,
            "type": "DELIVERABILITY_QUERY", "agent_id": "a1", "region_code": "440305"}


def chat_open(tag, i, ts):
    """A new buyer opening the chat: one routing decision each (routing-heavy mix)."""
    return {"event_id": "%s%d" % (tag, i), "shop_id": "bench%d" % (i % 20), "ts": ts,
            "type": "CHAT_OPEN", "buyer_id": "%sb%d" % (tag, i), "crowd_tags": ["new"]}


def staff(kefu, bootstrap, base_ts):
    """Three ONLINE agents with room for everyone in each bench shop."""
    recs = []
    for s in range(20):
        for a in range(3):
            common = {"shop_id": "bench%d" % s, "ts": base_ts - 1000, "agent_id": "a%d" % a}
            recs.append(dict(common, event_id="p%d-%d" % (s, a), type="PROFILE",
                             level=a + 1, capacity=100000))
            recs.append(dict(common, event_id="o%d-%d" % (s, a), type="PRESENCE",
                             presence="ONLINE"))
    subprocess.run([kefu, "produce", "-b", bootstrap, "-t", "kefu.agent.events"],
                   input="".join(json.dumps(r) + "\n" for r in recs), text=True, check=True,
                   stderr=subprocess.DEVNULL)


def live_latency(kefu, args, bootstrap, out_topic, rate, seconds, tag, make=query):
    """Starts `args` (a processor), produces `make` records at `rate`/s via kefu produce's
    stdin, and reads `out_topic` with kefu consume --meta; latency per record is
    arrival - production time, matched on the record timestamp (the input's ts)."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(4)  # the mock cluster's first group join takes 3 s (SPEC §5); not measured
    sent = {}
    cons = subprocess.Popen([kefu, "consume", "-b", bootstrap, "-t", out_topic, "--meta"],
                            stdout=subprocess.PIPE, text=True)
    arrivals = {}

    def reader():
        for line in cons.stdout:
            rec = json.loads(line)
            arrivals[rec["timestamp"]] = time.monotonic()
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    prod = subprocess.Popen([kefu, "produce", "-b", bootstrap, "-t", "kefu.chat.events",
                             "-X", "linger.ms=0"], stdin=subprocess.PIPE, text=True,
                            stderr=subprocess.DEVNULL)
    base_ts = BASE_TS  # valid ts (SPEC §6), distinct per record
    n = int(rate * seconds)
    start = time.monotonic()
    for i in range(n):
        target = start + i / rate
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        ts = base_ts + i
        rec = make(tag, i, ts)
        prod.stdin.write(json.dumps(rec) + "\n")
        prod.stdin.flush()
        sent[ts] = time.monotonic()
    prod.stdin.close()
    prod.wait()
    deadline = time.monotonic() + 30
    while len([k for k in sent if k in arrivals]) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.terminate()
    proc.wait(30)
    cons.terminate()
    lat = [(arrivals[k] - sent[k]) * 1000 for k in sent if k in arrivals]
    return {"rate_per_s": rate, "seconds": seconds, "records": n, "received": len(lat),
            "p50_ms": round(percentile(lat, 0.50), 1) if lat else None,
            "p99_ms": round(percentile(lat, 0.99), 1) if lat else None}


def used_memory(redis):
    return int(re.search(r"used_memory:(\d+)", redis.cli("INFO", "memory")).group(1))


def memory_usage(redis, key):
    out = redis.cli("MEMORY", "USAGE", key).strip()
    return int(out) if out.isdigit() else 0


def open_waits(kefu, waits):
    """RATE's cost: `waits` buyers each open a chat and write once, unanswered, inside 100
    s of event time, so every wait is still open (deadline 180 s) when processing ends."""
    redis, broker = Redis(), Broker(4)
    try:
        base = 1773108000000  # 2026-03-10 10:00 in China
        staff(kefu, broker.bootstrap, base)
        lines = []
        for i in range(waits):
            ts = base + (i * 100000) // waits
            shop, buyer = "bench%d" % (i % 20), "w%d" % i
            lines.append(json.dumps({"event_id": "o%d" % i, "shop_id": shop, "ts": ts,
                                     "type": "CHAT_OPEN", "buyer_id": buyer}))
            lines.append(json.dumps({"event_id": "m%d" % i, "shop_id": shop, "ts": ts,
                                     "type": "BUYER_MSG", "buyer_id": buyer}))
        subprocess.run([kefu, "produce", "-b", broker.bootstrap, "-t", "kefu.chat.events"],
                       input="\n".join(lines) + "\n", text=True, check=True,
                       stderr=subprocess.DEVNULL)
        before = used_memory(redis)
        rc, out, err, wall, rss = measure_child(
            [kefu, "run", "-b", broker.bootstrap, "--redis", redis.url, "--exit-when-idle",
             "--set", "http.listen=", "--set", "idle_advance=false"])
        if rc != 0:
            raise SystemExit("kefu run failed:\n" + err[-4000:])
        m = re.search(r"processed (\d+) records in (\d+) batches over ([\d.]+) s", err)
        records, secs = int(m.group(1)), float(m.group(3))
        timers = sum(int(redis.cli("ZCARD", "kefu:{bench%d}:timers" % s)) for s in range(20))
        timer_bytes = sum(memory_usage(redis, "kefu:{bench%d}:timers" % s) for s in range(20))
        meta_bytes = sum(memory_usage(redis, "kefu:{bench%d}:meta" % s) for s in range(20))
        buyer_bytes = sum(memory_usage(redis, "kefu:{bench%d}:buyers" % s) for s in range(20))
        return {"open_waits": waits, "records": records, "seconds": secs,
                "records_per_s": round(records / secs, 1) if secs else 0,
                "peak_rss_mib": round(rss, 1),
                "timers_in_redis": timers,
                "redis_bytes_total_per_open_wait": round((used_memory(redis) - before) / waits, 1),
                "redis_bytes_timers_per_timer": round(timer_bytes / timers, 1) if timers else None,
                "redis_bytes_day_tally_per_consultation": round(meta_bytes / waits, 1),
                "redis_bytes_buyer_per_buyer": round(buyer_bytes / waits, 1)}
    finally:
        broker.stop()
        redis.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--events", type=int, default=100000)
    ap.add_argument("--shops", type=int, default=50)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results.json"))
    ap.add_argument("--waits", type=int, default=100000, help="open waits for the timer cost")
    a = ap.parse_args()
    kefu = os.path.join(a.build, "kefu")
    passthrough = os.path.join(a.build, "bench", "kefu-passthrough")
    os.environ["KEFU_BIN"] = kefu
    import kefutest
    kefutest.KEFU = kefu

    results = {"events": a.events, "shops": a.shops, "machine": os.uname().machine,
               "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as work:
        redis, broker = Redis(), Broker(4)
        try:
            files = generate(kefu, a.events, a.shops, work)
            counts = produce(kefu, broker.bootstrap, files)
            keyed = sum(counts.get(t, 0) for t in KEYED)
            results["input_records"] = counts
            results["throughput"] = throughput(kefu, passthrough, broker.bootstrap, redis, keyed)
        finally:
            broker.stop()
            redis.stop()
        redis, broker = Redis(), Broker(4)
        try:
            results["latency"] = {
                "passthrough": live_latency(
                    kefu, [passthrough, broker.bootstrap, "kefu.dlq", str(10 ** 9)],
                    broker.bootstrap, "kefu.dlq", a.rate, a.seconds, "p"),
                "kefu": live_latency(
                    kefu, [kefu, "run", "-b", broker.bootstrap, "--redis", redis.url,
                           "--set", "http.listen=", "--set", "idle_advance=false",
                           "--set", "group.id=kefu-bench"],
                    broker.bootstrap, "kefu.service.cards", a.rate, a.seconds, "k"),
            }
            staff(kefu, broker.bootstrap, BASE_TS)
            results["latency"]["kefu_routing"] = live_latency(
                kefu, [kefu, "run", "-b", broker.bootstrap, "--redis", redis.url,
                       "--set", "http.listen=", "--set", "idle_advance=false",
                       "--set", "group.id=kefu-bench-routing",
                       "--set", "transactional.id.prefix=bench-routing"],
                broker.bootstrap, "kefu.routing.decisions", a.rate, a.seconds, "r", chat_open)
        finally:
            broker.stop()
            redis.stop()
    results["timers"] = open_waits(kefu, a.waits)
    results["timers"]["ratio_records_per_s_to_passthrough"] = round(
        results["timers"]["records_per_s"] / results["throughput"]["passthrough"]["records_per_s"], 3)
    tp = results["throughput"]
    tp["ratio_kefu_to_passthrough"] = round(
        tp["kefu"]["records_per_s"] / tp["passthrough"]["records_per_s"], 3)
    with open(a.out, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
        f.write("\n")
    print(json.dumps(results, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
