#!/usr/bin/env python3
"""Measured costs per event for docs/CAPACITY.md: kefu CPU, Redis commands and bytes,
Kafka bytes in and out, Redis memory per active buyer and per shop, on one redis-server
and on a real 3-master/3-replica Redis Cluster (tests/lib/rediscluster.py). One kefu
instance reads a demo-mix backlog (`kefu demo --generate-only`) with `--exit-when-idle`
on each. Writes bench/results-capacity.json. Nothing here asserts a speed.

usage: bench/capacity.py [--build build] [--events 150000] [--shops 200] [--partitions 16]
                         [--out bench/results-capacity.json]
"""
import argparse
import datetime
import json
import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as bench  # noqa: E402  (bench/run.py: cleanup, generate, produce, measure_child)
from kefutest import Broker, Redis  # noqa: E402
import kefutest  # noqa: E402
from rediscluster import RedisCluster  # noqa: E402

INPUTS = set(bench.KEYED) | {"kefu.courier.status"}


def nodes_of(redis):
    """The redis-servers that hold kefu's data: one, or every master of the cluster."""
    return redis.masters() if isinstance(redis, RedisCluster) else [redis]


def info(node):
    text = node.cli("INFO", "all")
    val = {}
    for key in ("total_commands_processed", "total_net_input_bytes", "total_net_output_bytes",
                "used_memory", "used_memory_dataset", "used_cpu_sys", "used_cpu_user", "keyspace_hits"):
        m = re.search(r"^%s:([\d.]+)" % key, text, re.M)
        val[key] = float(m.group(1)) if m else 0.0
    val["cmd"] = {m.group(1): int(m.group(2))
                  for m in re.finditer(r"cmdstat_([^:]+):calls=(\d+)", text)}
    return val


def total(infos, key):
    return sum(i[key] for i in infos)


def topic_bytes(bootstrap, topics):
    """(records, key+value bytes) of each topic, read back whole."""
    out = {}
    for t in topics:
        msgs = kefutest.read_raw(bootstrap, t)
        out[t] = (len(msgs), sum(len(m.value() or b"") + len(m.key() or b"") for m in msgs))
    return out


def list_topics(bootstrap):
    from confluent_kafka.admin import AdminClient
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return sorted(t for t in md.topics if not t.startswith("__"))


def measure(a, tool, kind, files, buyers, shops):
    broker = Broker(a.partitions)
    bench._servers.append(broker)
    redis = RedisCluster() if kind == "cluster" else Redis()
    bench._servers.append(redis)
    try:
        counts = bench.produce(tool, broker.bootstrap, files)
        in_topics = [t for t in list_topics(broker.bootstrap) if t in INPUTS]
        kin = topic_bytes(broker.bootstrap, in_topics)
        before = [info(n) for n in nodes_of(redis)]
        args = bench.kefu_args(tool, broker.bootstrap, redis, "exactly_once", "cap-" + kind)
        rc, _out, err, wall, rss, cpu = bench.measure_child(args + ["--exit-when-idle"])
        if rc != 0:
            raise SystemExit("kefu run failed:\n" + err[-3000:])
        m = bench.LOG_RE.search(err)
        records, batches, secs = int(m.group(1)), int(m.group(2)), float(m.group(3))
        if kind == "cluster":
            redis.wait_replicated()  # replicas' output buffers drained before used_memory
        after = [info(n) for n in nodes_of(redis)]
        out_topics = [t for t in list_topics(broker.bootstrap) if t not in INPUTS]
        kout = topic_bytes(broker.bootstrap, out_topics)
        d = {k: total(after, k) - total(before, k) for k in
             ("total_commands_processed", "total_net_input_bytes", "total_net_output_bytes",
              "used_memory", "used_memory_dataset", "used_cpu_sys", "used_cpu_user")}
        cmds = {}
        for b, x in zip(before, after):
            for c, n in x["cmd"].items():
                cmds[c] = cmds.get(c, 0) + n - b["cmd"].get(c, 0)
        cmds = {c: n for c, n in cmds.items() if n and not c.startswith(("info", "cluster"))}
        info_calls = 1  # the INFO of "after" on each node is counted by that node
        server_cmds = d["total_commands_processed"] - info_calls * len(after)
        in_b = sum(b for _, b in kin.values())
        out_b = sum(b for _, b in kout.values())
        return {
            "redis": kind, "masters": len(after), "partitions": a.partitions,
            "records": records, "batches": batches, "kefu_seconds": secs,
            "records_per_s": round(records / secs, 1), "wall_s": round(wall, 2),
            "input_records": sum(counts.values()),
            "kefu_cpu_s": round(cpu, 3),
            "kefu_cpu_s_per_1000_events": round(cpu / records * 1000, 4),
            "kefu_peak_rss_mib": round(rss, 1),
            "redis_commands_per_event": round(server_cmds / records, 4),
            "redis_commandstats": cmds,
            "redis_net_in_bytes_per_event": round(d["total_net_input_bytes"] / records, 1),
            "redis_net_out_bytes_per_event": round(d["total_net_output_bytes"] / records, 1),
            "redis_cpu_s_per_1000_events": round(
                (d["used_cpu_sys"] + d["used_cpu_user"]) / records * 1000, 4),
            "redis_used_memory_delta": int(d["used_memory"]),
            "buyers": buyers, "shops": shops,
            "redis_bytes_per_buyer": round(d["used_memory"] / buyers, 1),
            "redis_bytes_per_shop": round(d["used_memory"] / shops, 1),
            "redis_dataset_bytes_per_buyer": round(d["used_memory_dataset"] / buyers, 1),
            "redis_keys": sum(int(n.cli("DBSIZE").strip() or 0) for n in nodes_of(redis)),
            "kafka_in_bytes_per_event": round(in_b / records, 1),
            "kafka_out_bytes_per_event": round(out_b / records, 1),
            "kafka_out_records_per_event": round(sum(n for n, _ in kout.values()) / records, 3),
            "kafka_topics_in": {t: list(v) for t, v in kin.items()},
            "kafka_topics_out": {t: list(v) for t, v in kout.items()},
        }
    finally:
        bench.stop(redis)
        bench.stop(broker)


def distinct(files):
    """(buyers, shops) of the backlog; a buyer id is the shop's own, so a buyer is a pair."""
    buyers, shops = set(), set()
    for path in files.values():
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if "shop_id" in r:
                    shops.add(r["shop_id"])
                    if "buyer_id" in r:
                        buyers.add((r["shop_id"], r["buyer_id"]))
    return len(buyers), len(shops)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default="build")
    p.add_argument("--events", type=int, default=150000)
    p.add_argument("--shops", type=int, default=200)
    p.add_argument("--partitions", type=int, default=16)
    p.add_argument("--only", default="single,cluster")
    p.add_argument("--out", default=os.path.join(HERE, "results-capacity.json"))
    a = p.parse_args()
    tool = os.path.abspath(os.path.join(a.build, "kefu"))
    kefutest.KEFU = tool
    import rediscluster
    if hasattr(rediscluster, "KEFU"):
        rediscluster.KEFU = tool
    start = time.monotonic()
    work = tempfile.mkdtemp(prefix="kefu-capacity-")
    files = bench.generate(tool, a.events, a.shops, work, "cap")
    buyers, shops = distinct(files)
    res = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "commit": bench.git_commit(), "cpus": os.cpu_count(),
           "loadavg_at_start": os.getloadavg(), "args": vars(a), "runs": []}
    for kind in a.only.split(","):
        r = measure(a, tool, kind, files, buyers, shops)
        print(json.dumps({k: v for k, v in r.items() if not isinstance(v, dict)}), flush=True)
        res["runs"].append(r)
    shutil.rmtree(work, ignore_errors=True)
    res["loadavg_at_end"] = os.getloadavg()
    res["run_seconds"] = round(time.monotonic() - start, 1)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print("capacity: %.0f s, written to %s" % (res["run_seconds"], a.out), file=sys.stderr)


if __name__ == "__main__":
    main()
