#!/usr/bin/env python3
"""Checks docs/CAPACITY.md's plan on this machine: a compressed day of demo traffic
(`kefu demo --generate-only`, whose buyers start conversations by the generator's day
curve, hour_weight[] in src/sim/traffic.c) produced live, at the pace of its event
timestamps compressed into --minutes of wall time, to a broker with --partitions
partitions, processed by --instances `kefu run` instances in one consumer group against a
real 3-master/3-replica Redis Cluster. Every --sample seconds it records each instance's
processed records (its /metrics), each master's INFO (instantaneous_ops_per_sec, CPU,
memory) and the lag (records produced - records processed). Then it compares the
measured figures with what bench/results-capacity.json (bench/capacity.py) predicts.
Not run by ctest. Writes bench/results-simulate.json.

usage: bench/simulate.py [--build build] [--events 300000] [--shops 400] [--minutes 6]
                         [--partitions 16] [--instances 4] [--sample 5]
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as bench  # noqa: E402
import capacity  # noqa: E402
import kefutest  # noqa: E402
from kefutest import Broker  # noqa: E402
from rediscluster import RedisCluster  # noqa: E402

TOPICS = ["kefu.shop.config", "kefu.agent.events", "kefu.order.events", "kefu.chat.events",
          "kefu.courier.status"]


def load(files):
    """Every record as (ts, topic, line), in ts order; the day = the chat events' span."""
    recs = []
    for topic, path in files.items():
        with open(path) as f:
            for line in f:
                if line.strip():
                    recs.append((json.loads(line).get("ts", 0), topic, line))
    recs.sort(key=lambda r: r[0])
    chat = [r[0] for r in recs if r[1] == "kefu.chat.events"]
    # the generator writes a few invalid timestamps on purpose (DLQ traffic): the day is
    # the chat events' span without the outer thousandths
    return recs, chat[len(chat) // 1000], chat[-1 - len(chat) // 1000]


def master_sample(cluster):
    out = {}
    for n in cluster.masters():
        i = n.cli("INFO", "all")
        g = lambda k: float(re.search(r"^%s:([\d.]+)" % k, i, re.M).group(1))  # noqa: E731
        out[n.port] = {"ops_per_s": g("instantaneous_ops_per_sec"),
                       "cpu_s": g("used_cpu_sys") + g("used_cpu_user"),
                       "used_memory": g("used_memory"), "commands": g("total_commands_processed")}
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default="build")
    p.add_argument("--events", type=int, default=300000)
    p.add_argument("--shops", type=int, default=400)
    p.add_argument("--minutes", type=float, default=6.0)
    p.add_argument("--partitions", type=int, default=16)
    p.add_argument("--instances", type=int, default=4)
    p.add_argument("--sample", type=float, default=5.0)
    p.add_argument("--costs", default=os.path.join(HERE, "results-capacity.json"))
    p.add_argument("--out", default=os.path.join(HERE, "results-simulate.json"))
    a = p.parse_args()
    tool = os.path.abspath(os.path.join(a.build, "kefu"))
    kefutest.KEFU = tool
    t_start = time.monotonic()
    work = tempfile.mkdtemp(prefix="kefu-simulate-")
    files = bench.generate(tool, a.events, a.shops, work, "sim")
    buyers, shops = capacity.distinct(files)
    recs, day0, day1 = load(files)
    factor = (day1 - day0) / 1000.0 / (a.minutes * 60)
    broker = Broker(a.partitions)
    bench._servers.append(broker)
    cluster = RedisCluster()
    bench._servers.append(cluster)
    prods = {t: bench.popen([tool, "produce", "-b", broker.bootstrap, "-t", t, "-X", "linger.ms=5"],
                            stdin=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL)
             for t in TOPICS}
    ports, insts = [], []
    for k in range(a.instances):
        port = kefutest.free_port()
        args = bench.kefu_args(tool, broker.bootstrap, cluster, "exactly_once", "sim")
        args[args.index("http.listen=")] = "http.listen=127.0.0.1:%d" % port
        args += ["--set", "instance.id=sim-%d" % k]
        ports.append(port)
        insts.append(bench.popen(args, stdout=subprocess.DEVNULL,
                                 stderr=open(os.path.join(work, "kefu-%d.log" % k), "w")))
    m0 = master_sample(cluster)
    samples, produced, i, idle, prev = [], 0, 0, 0, [0] * a.instances
    wall0 = time.monotonic()
    last_sample, last = wall0, {"proc": [0] * a.instances, "m": m0}
    # records before the day (history, setup) go first; then the day at 1/factor speed
    while i < len(recs) or True:
        now = time.monotonic()
        due_ts = day0 + (now - wall0) * factor * 1000.0
        while i < len(recs) and recs[i][0] <= due_ts:
            prods[recs[i][1]].stdin.write(recs[i][2])
            i += 1
            produced += 1
        for pr in prods.values():
            pr.stdin.flush()
        if now - last_sample >= a.sample:
            proc = [bench.records_processed(pt) for pt in ports]
            ms = master_sample(cluster)
            dt = now - last_sample
            samples.append({
                "t": round(now - wall0, 1), "produced": produced,
                "offered_per_s": None if not samples else
                round((produced - samples[-1]["produced"]) / dt, 1),
                "processed": proc,
                "per_instance_per_s": [round((x - y) / dt, 1) for x, y in zip(proc, last["proc"])],
                "lag": produced - sum(proc),
                "masters": {str(pt): {"ops_per_s": v["ops_per_s"],
                                      "cpu_pct": round(100 * (v["cpu_s"] - last["m"][pt]["cpu_s"]) / dt, 1),
                                      "used_memory": int(v["used_memory"])}
                            for pt, v in ms.items() if pt in last["m"]}})
            print(json.dumps(samples[-1]), flush=True)
            last_sample, last = now, {"proc": proc, "m": ms}
            # done: everything produced and no instance progressed over 3 samples (kefu
            # does not count kefu.courier.status records it drops unmatched, so lag may
            # end a few records above 0: see "lag_at_end")
            idle = idle + 1 if i >= len(recs) and sum(proc) == sum(prev) else 0
            prev = proc
            if idle >= 3 or now - wall0 > a.minutes * 60 + 300:
                break
        time.sleep(0.05)
    wall = time.monotonic() - wall0
    for pr in prods.values():
        pr.stdin.close()
    cpu = []
    for pr in insts:
        pr.terminate()
        _, _st, usage = os.wait4(pr.pid, 0)
        bench._procs.remove(pr)
        cpu.append(round(usage.ru_utime + usage.ru_stime, 2))
    m1 = master_sample(cluster)
    shutil.rmtree(work, ignore_errors=True)
    processed = samples[-1]["processed"]
    n = sum(processed)
    res = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "commit": bench.git_commit(), "cpus": os.cpu_count(), "args": vars(a),
           "loadavg_at_end": os.getloadavg(), "records": len(recs), "buyers": buyers,
           "shops": shops, "day_compression": round(factor, 1), "wall_s": round(wall, 1),
           "processed_per_instance": processed, "kefu_cpu_s": cpu,
           "kefu_cpu_s_per_1000_events": round(sum(cpu) / n * 1000, 4),
           "peak_offered_per_s": max((s["offered_per_s"] or 0) for s in samples),
           "peak_per_instance_per_s": max(max(s["per_instance_per_s"]) for s in samples),
           "max_lag": max(s["lag"] for s in samples), "lag_at_end": samples[-1]["lag"],
           "redis_commands_per_event": round(
               sum(m1[p]["commands"] - m0[p]["commands"] for p in m1 if p in m0) / n, 4),
           "redis_cpu_s_per_1000_events": round(
               sum(m1[p]["cpu_s"] - m0[p]["cpu_s"] for p in m1 if p in m0) / n * 1000, 4),
           "peak_master_ops_per_s": max(v["ops_per_s"] for s in samples
                                        for v in s["masters"].values()),
           "redis_used_memory_end": {str(p): int(v["used_memory"]) for p, v in m1.items()},
           "redis_memory_delta": int(sum(m1[p]["used_memory"] - m0[p]["used_memory"]
                                         for p in m1 if p in m0)),
           "samples": samples}
    try:
        with open(a.costs) as f:
            c = next(r for r in json.load(f)["runs"] if r["redis"] == "cluster")
        peak = res["peak_offered_per_s"]
        res["predicted"] = {
            "from": a.costs,
            "per_instance_per_s_at_peak": round(peak / a.instances, 1),
            "kefu_cpu_s_per_1000_events": c["kefu_cpu_s_per_1000_events"],
            "one_instance_max_per_s_per_core": round(1000 / c["kefu_cpu_s_per_1000_events"]),
            "master_ops_per_s_at_peak": round(peak * c["redis_commands_per_event"] / 3, 1),
            "redis_commands_per_event": c["redis_commands_per_event"],
            "redis_cpu_s_per_1000_events": c["redis_cpu_s_per_1000_events"],
            "redis_memory": round(buyers * c["redis_bytes_per_buyer"])}
    except (OSError, StopIteration, KeyError) as e:
        res["predicted"] = {"error": str(e)}
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps({k: v for k, v in res.items() if k != "samples"}, indent=1))
    print("simulate: %.0f s, written to %s" % (time.monotonic() - t_start, a.out), file=sys.stderr)


if __name__ == "__main__":
    main()
