#!/usr/bin/env python3
"""Profiles one `kefu run --exit-when-idle` over a demo-mix backlog (as bench/run.py's
throughput section builds it) under `perf record -e cpu-clock -g`, or under any other
wrapper given with --wrap (e.g. "valgrind --tool=callgrind").

    /usr/bin/python3 bench/profile.py [--events 50000] [--guarantee exactly_once]
                                      [--huge-shop A:BUYERS] [--out perf.data]
                                      [--wrap "perf record ..."]

It prints kefu's closing log line and the wrapper's output file; `perf report -i FILE`
reads it. Never run by ctest."""
import argparse
import os
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as bench  # noqa: E402  (bench/run.py: servers, generator, kefu arguments)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--events", type=int, default=50000)
    ap.add_argument("--shops", type=int, default=50)
    ap.add_argument("--guarantee", default="exactly_once",
                    choices=["exactly_once", "at_least_once"])
    ap.add_argument("--out", default="perf.data")
    ap.add_argument("--wrap", default=None,
                    help="command prefix (default: perf record -e cpu-clock -g -o OUT)")
    ap.add_argument("--set", action="append", default=[], help="extra kefu --set KEY=VALUE")
    ap.add_argument("--huge-shop", default=None, metavar="A:BUYERS",
                    help="add the bench's huge shop (A agents, BUYERS buyers) to the backlog")
    a = ap.parse_args()
    tool = os.path.join(a.build, "kefu")
    wrap = shlex.split(a.wrap) if a.wrap else ["perf", "record", "-e", "cpu-clock", "-g",
                                               "-o", a.out]
    redis, broker = bench.start_redis(), bench.start_broker()
    with tempfile.TemporaryDirectory() as work:
        extra = ["--huge-shop", a.huge_shop] if a.huge_shop else []
        files = bench.generate(tool, a.events, a.shops, work, "traffic", extra)
        counts = bench.produce(tool, broker.bootstrap, files)
        print("profile: backlog %d records" % sum(counts.values()), file=sys.stderr)
        args = wrap + bench.kefu_args(tool, broker.bootstrap, redis, a.guarantee, "prof",
                                      *a.set) + ["--exit-when-idle"]
        p = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        m = bench.LOG_RE.search(p.stderr)
        print(m.group(0) if m else p.stderr[-3000:])
        for line in p.stderr.splitlines():  # the wrapper's own lines, not kefu's log
            if not line.startswith("20") and not line.startswith("profile:"):
                print(line)
        if not a.wrap:  # a wrapper names its own output
            print("profile: wrote %s" % a.out, file=sys.stderr)
        return p.returncode


if __name__ == "__main__":
    sys.exit(main())
