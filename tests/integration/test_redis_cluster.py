"""kefu on a real local Redis Cluster (issue 11 §1): 3 masters with 1 replica each, made
by tests/lib/rediscluster.py with Debian's redis-server and `redis-cli --cluster create`.

  - conformance: small-101 and medium-102 give the outputs of ../shared/conformance (the
    same as on one node, test_conformance.py); the keys spread over all 3 masters and
    `kefu state show` reads every shop over the cluster;
  - resharding under load: the slots of active shops and tasks move between masters
    (`redis-cli --cluster reshard`: SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE)
    while kefu processes a seeded workload (tests/lib/workload.py); afterwards exact
    state (the workload's expectations, and `kefu state show` of every shop equal to a
    single-node run of the same input), no output lost, re-emits byte-identical, and
    kefu_redis_redirects_total > 0 (the migration happened under kefu's traffic);
  - failover with the setting deploy/ recommends (min-replicas-to-write 1 on the
    servers, redis.wait_replicas=1 in kefu): a master SIGKILLed under load, its replica
    promoted, the killed node restarted (it rejoins as the new master's replica, so that
    the new master has a replica to write with); the same checks, and the recovery time
    printed as `RECOVERY cluster_failover_wait <s> s`;
  - asynchronous replication (no WAIT, no min-replicas-to-write): a master's replica is
    cut off (it can no longer authenticate to its master), kefu's writes to that master
    are acknowledged, the master is SIGKILLed and the stale replica promoted; more input
    follows. The promoted replica's applied offsets are below what was acknowledged
    (what is missing can be read from them), and kefu notices (DECISIONS 60): a shop's
    applied offset below one Redis acknowledged to it, at the shop's next write or read,
    stops it with "Redis lost kefu's state" and exit 1, never applying an input twice.
    Printed as `ASYNC_LOSS ...`. Hence WAIT in deploy/ (the failover test above).

KEFU_CRASH_SEED=<n> reproduces a workload.
"""
import os
import random
import signal
import tempfile
import threading
import time

import test_conformance
from kefutest import Broker, KefuTestCase, free_port, main, metric, shops, wait_for
from kefutest import http_get as http
from rediscluster import NODE_TIMEOUT_MS, RedisCluster
from workload import (COURIER_STATUS, Workload, caught_up,
                      hgetall, produce_chunk, progress, read_inputs, read_outputs,
                      remembered_outputs, seed_from_env, start_kefu, tally, verify)

SESSION = ["kafka.session.timeout.ms=3000", "kafka.heartbeat.interval.ms=300"]


def crc16(data):
    """CRC16-CCITT (XMODEM), Redis Cluster's key hash."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def key_slot(tag):
    return crc16(tag.encode()) % 16384


class RedisClusterTest(KefuTestCase):
    partitions = 4

    def use_cluster(self, args=()):
        self.single = self.redis  # KefuTestCase's own redis-server: the single-node reference
        self.redis = RedisCluster(args=args)
        self.addCleanup(self.redis.stop)

    # -- helpers ------------------------------------------------------------------------
    def workload(self, events=2000):
        seed = seed_from_env()
        print("\n%s: KEFU_CRASH_SEED=%d" % (self.id().rsplit(".", 1)[-1], seed), flush=True)
        return Workload(random.Random(seed), shops=8, events=events, duplicates=10, bad=6)

    def start(self, *extra):
        self.http_port = free_port()
        fd, self.log_path = tempfile.mkstemp(prefix="kefu-rcluster-", suffix=".log")
        log = os.fdopen(fd, "w")
        path = self.log_path
        self.addCleanup(lambda: getattr(self, "keep_log", False) or os.remove(path))
        self.addCleanup(log.close)
        proc = start_kefu(self, log, "instance.id=rc", "http.listen=127.0.0.1:%d" % self.http_port,
                          "redis.timeout_ms=1000", "redis.retry_max_ms=500",
                          *(SESSION + list(extra)))
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        wait_for(lambda: http(self.http_port, "/healthz")[0] == 200 or proc.poll() is not None,
                 60, "kefu's HTTP endpoint")
        return proc

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_progress_past(self, n, proc, what):
        wait_for(lambda: progress(self.redis, self.partitions) > n or proc.poll() is not None,
                 120, what)
        self.assertIsNone(proc.poll(), "kefu exited: " + self.log()[-3000:])

    def stop_when_caught_up(self, proc):
        wait_for(lambda: caught_up(self.redis, self.broker.bootstrap, self.partitions) or
                 proc.poll() is not None, 180, "kefu to catch up")
        self.assertIsNone(proc.poll(), "kefu exited: " + self.log()[-3000:])
        wait_for(lambda: http(self.http_port, "/readyz")[0] == 200, 30, "/readyz 200")
        redirects = metric(self.http_port, "kefu_redis_redirects_total")
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(60), 0, self.log()[-3000:])
        return redirects

    def finish(self, proc, w):
        redirects = self.stop_when_caught_up(proc)
        distinct, repeats, per_topic, _ = verify(self, w)
        self.assertEqual(remembered_outputs(self.redis, self.partitions), {},
                         "remembered outputs left behind")
        print("  %d outputs, %d repeated copies %s, all byte-identical; inputs applied "
              "twice: 0; outputs lost: 0" % (distinct, repeats, per_topic), flush=True)
        return redirects

    def same_state_as_single_node(self, w):
        """Runs kefu once more over the same input against the single redis-server (its
        own consumer group, outputs to the same topics, so after verify()) and compares
        `kefu state show` of every shop and its buyers, agents and orders."""
        from workload import kefu_args
        import subprocess
        args = kefu_args(self, "group.id=single", "instance.id=single") + ["--exit-when-idle"]
        i = args.index("--redis")
        args[i + 1] = self.single.url
        out = subprocess.run(args, capture_output=True, text=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stderr[-3000:])
        self.assertEqual(shops(self.single), shops(self.redis))
        for s in w.shops:
            for what in ((), ("buyers",), ("agents",), ("orders",), ("seen",)):
                self.assertEqual(self.redis.state(s, *what), self.single.state(s, *what),
                                 "kefu state show %s %s: cluster and single node differ" %
                                 (s, " ".join(what)))
        print("  kefu state show of %d shops (record, buyers, agents, orders, seen): the "
              "same on the cluster and on one node" % len(w.shops), flush=True)

    def keys_per_master(self):
        return {m.port: len(m.cli("KEYS", "kefu:*").split()) for m in self.redis.masters()}

    # -- 1. every rule family ------------------------------------------------------------
    def test_conformance_on_cluster(self):
        self.use_cluster()
        for i, name in enumerate(("small-101", "medium-102")):
            if i:  # a fresh broker and empty state for the next stream
                self.redis.flush()
                self.broker.stop()
                self.broker = Broker(self.partitions)
                self.addCleanup(self.broker.stop)
            test_conformance.ConformanceTest.run_stream(self, name)
            per_master = self.keys_per_master()
            print("%s: kefu keys per master %s" % (name, per_master), flush=True)
            self.assertEqual(len(per_master), 3)
            self.assertTrue(all(n > 0 for n in per_master.values()), per_master)
            found = shops(self.redis)
            self.assertTrue(found)
            for s in found:
                rec = self.redis.state(s)
                self.assertTrue(rec["applied"], (s, rec))
            print("%s: kefu state show over the cluster: %d shops" % (name, len(found)))

    # -- 2. resharding under load --------------------------------------------------------
    def reshard_plan(self, w):
        """(source master, destination master, slot count) moves: for the two masters
        whose first slot range holds active tags (shops, tasks) nearest its start, the
        slots from the start of that range up to and including the second such tag
        (`redis-cli --cluster reshard` moves a source's lowest slots first)."""
        tags = list(w.shops) + ["task-%d" % t for t in range(self.partitions)]
        masters = self.redis.masters()
        plan = []
        for m in masters:
            lo, hi = self.redis.slot_ranges(m)[0]
            inside = sorted(key_slot(t) - lo for t in tags if lo <= key_slot(t) <= hi)
            if len(inside) >= 2:
                plan.append((inside[1] + 1, m, [t for t in tags
                                                if lo <= key_slot(t) <= lo + inside[1]]))
        plan.sort(key=lambda x: x[0])
        moves = []
        for count, m, moved in plan[:2]:
            dst = next(d for d in masters if d.port != m.port and
                       all(d.port != mv[1].port for mv in moves))
            moves.append((count, m, dst, moved))
        return moves

    def test_reshard_under_load(self):
        self.use_cluster()
        w = self.workload()
        chunks = w.chunks(3)
        self.produce("courier", COURIER_STATUS)
        produce_chunk(self, chunks[0])
        proc = self.start()
        try:
            self.wait_progress_past(len(chunks[0]) // 4, proc, "kefu to make progress")
            moved_total, moved_tags = 0, []
            for i, (count, src, dst, tags) in enumerate(self.reshard_plan(w)):
                producer = threading.Thread(target=produce_chunk, args=(self, chunks[1 + i]))
                producer.start()  # kefu has input while the slots move
                before = progress(self.redis, self.partitions)
                t0 = time.monotonic()
                self.redis.reshard(src, dst, count)
                took = time.monotonic() - t0
                after = progress(self.redis, self.partitions)
                producer.join()
                for t in tags:
                    owner = self.redis.master_of("kefu:{%s}:x" % t)
                    self.assertEqual(owner.port, dst.port, t)
                moved_total += count
                moved_tags += tags
                print("RESHARD %d slots %d -> %d in %.1f s, holding %s; kefu's progress "
                      "meanwhile: %d -> %d inputs" % (count, src.port, dst.port, took, tags,
                                                      before, after), flush=True)
            redirects = self.finish(proc, w)
            print("RESHARD total: %d slots moved, %d active tags (%s), "
                  "kefu_redis_redirects_total %s" % (moved_total, len(moved_tags), moved_tags,
                                                     redirects), flush=True)
            self.assertTrue(redirects and redirects > 0,
                            "kefu followed no redirect: the slots did not move under its traffic")
            self.same_state_as_single_node(w)
        except BaseException:
            self.keep_log = True
            print("kefu log %s (kept):\n%s" % (self.log_path, self.log()[-6000:]))
            raise

    # -- 3. failover with WAIT -----------------------------------------------------------
    def applied_sum(self, shop_list):
        total = 0
        for s in shop_list:
            total += sum(int(v) for v in hgetall(self.redis, "kefu:{%s}:applied" % s).values()
                         if v.strip().lstrip("-").isdigit())
        return total

    def victim(self, w):
        """The master that serves the most active shops, and those shops."""
        by_port = {}
        for s in w.shops:
            by_port.setdefault(self.redis.master_of("kefu:{%s}:applied" % s).port, []).append(s)
        port = max(by_port, key=lambda p: len(by_port[p]))
        return self.redis.node(port), by_port[port]

    def test_failover_with_wait(self):
        self.use_cluster(args=("--min-replicas-to-write", "1"))
        w = self.workload()
        chunks = w.chunks(2)
        self.produce("courier", COURIER_STATUS)
        produce_chunk(self, chunks[0])
        proc = self.start("redis.wait_replicas=1")
        try:
            self.wait_progress_past(len(chunks[0]) // 4, proc, "kefu to make progress")
            victim, its_shops = self.victim(w)
            produce_chunk(self, chunks[1])  # kefu is busy when the master dies
            base = self.applied_sum(its_shops)
            t_kill = time.monotonic()
            self.redis.kill_master(victim)
            t_promoted = time.monotonic()
            victim.start()  # rejoins as the new master's replica (min-replicas-to-write 1)
            self.redis.wait_ok(3)
            t_rejoined = time.monotonic()
            wait_for(lambda: self.applied_sum(its_shops) > base or proc.poll() is not None or
                     caught_up(self.redis, self.broker.bootstrap, self.partitions),
                     120, "kefu to commit a batch of the failed master's shops")
            recovery = time.monotonic() - t_kill
            self.assertIsNone(proc.poll(), "kefu exited: " + self.log()[-3000:])
            print("RECOVERY cluster_failover_wait %.1f s from the SIGKILL to kefu's next "
                  "commit of the failed master's shops %s (replica promoted after %.1f s, "
                  "killed node back as its replica after %.1f s; cluster-node-timeout %d ms)" %
                  (recovery, its_shops, t_promoted - t_kill, t_rejoined - t_kill,
                   NODE_TIMEOUT_MS), flush=True)
            self.finish(proc, w)
            self.assertNotIn("Redis lost kefu's state", self.log())
        except BaseException:
            self.keep_log = True
            print("kefu log %s (kept):\n%s" % (self.log_path, self.log()[-6000:]))
            raise

    # -- 4. asynchronous replication: a write acknowledged, then lost --------------------
    def cut_off(self, replica, master):
        """The replica can no longer authenticate to its master (a user that does not
        exist there), and its link is dropped: it stops replicating, deterministically."""
        replica.cli("CONFIG", "SET", "masteruser", "kefu-nobody")
        replica.cli("CONFIG", "SET", "masterauth", "wrong")
        replica.cli("CLIENT", "KILL", "TYPE", "master")
        wait_for(lambda: "connected_slaves:0" in master.cli("INFO", "replication"), 30,
                 "the replica to be cut off")

    def test_async_loss_without_wait_is_reported(self):
        self.use_cluster()
        w = self.workload()
        chunks = w.chunks(3)
        self.produce("courier", COURIER_STATUS)
        produce_chunk(self, chunks[0])
        proc = self.start("redis.wait_replicas=0")
        try:
            self.wait_progress_past(len(chunks[0]) // 4, proc, "kefu to make progress")
            victim, its_shops = self.victim(w)
            replica = self.redis.replicas_of(victim)[0]
            self.redis.wait_replicated()
            self.cut_off(replica, victim)
            base = self.applied_sum(its_shops)
            produce_chunk(self, chunks[1])
            # kefu's writes to the master are acknowledged (no WAIT) but never replicated
            wait_for(lambda: self.applied_sum(its_shops) > base + 50 or proc.poll() is not None,
                     60, "kefu to write to the cut-off master")
            acked = self.applied_sum(its_shops)
            self.redis.kill_master(victim)
            # the promoted replica holds the applied offsets of before the cut: what is
            # missing is what an SRE reads from them (docs/OPERATIONS.md, "Redis Cluster")
            promoted = self.applied_sum(its_shops)
            self.assertLess(promoted, acked, "the promoted replica has every acknowledged write")
            replica.cli("CONFIG", "SET", "masteruser", "")
            replica.cli("CONFIG", "SET", "masterauth", "")
            produce_chunk(self, chunks[2])  # the victim's shops are written again
            print("ASYNC_LOSS applied offsets (sum) of %s: %d when the replica was cut off, "
                  "%d acknowledged before the SIGKILL (not replicated)" % (
                      its_shops, base, acked), flush=True)
            wait_for(lambda: proc.poll() is not None or
                     caught_up(self.redis, self.broker.bootstrap, self.partitions), 180,
                     "kefu to catch up or stop")
            lost_reported = "Redis lost kefu's state" in self.log()
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
            inputs = read_inputs(self.broker.bootstrap)
            outputs = read_outputs(self.broker.bootstrap)
            twice, lost, identical = tally(self, w, inputs, outputs, ())
            print("ASYNC_LOSS kefu exit %s, loss reported in its log: %s; inputs applied twice "
                  "or differing copies: %d; inputs or outputs lost: %d; re-emits identical: %s" %
                  (proc.returncode, lost_reported, twice, lost, identical), flush=True)
            # The guarantee: never an input applied twice, and the loss reported.
            self.assertGreater(lost, 0, "no acknowledged write lost: the test lost its point")
            self.assertTrue(lost_reported, "kefu went on from the older state without a word")
            self.assertIn("went back to older state", self.log())
            self.assertEqual(proc.returncode, 1, "kefu should stop (exit 1) on the loss")
            self.assertEqual(twice, 0, "an input applied twice after the failover")
        except BaseException:
            self.keep_log = True
            print("kefu log %s (kept):\n%s" % (self.log_path, self.log()[-3000:]))
            raise


if __name__ == "__main__":
    main()
