"""A real local Redis Cluster for the tests: Debian's redis-server, N masters with R
replicas each, made by `redis-cli --cluster create` on free ports in a temporary
directory (issue 11). It answers the calls the tests make of kefutest.Redis (url, cli,
snapshot, state, stop), over the whole cluster, so a test written for one node runs on
the cluster by swapping the object."""

import os
import random
import shutil
import socket
import subprocess
import tempfile

from kefutest import KEFU, wait_for, Redis

NODE_TIMEOUT_MS = 2000  # cluster-node-timeout: how soon a dead master's replica takes over


def free_cluster_port():
    """A free port P whose cluster bus port P + 10000 is free too (both below 65536)."""
    while True:
        port = random.randrange(20000, 55000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue


class Node:
    def __init__(self, root, port, args):
        self.port = port
        self.dir = os.path.join(root, str(port))
        os.makedirs(self.dir)
        self.args = args
        self.proc = None
        self.start()

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--appendonly", "no",
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--enable-debug-command", "local"] + self.args
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.cli("PING").strip() == "PONG" or self.proc.poll() is not None,
                 10, "redis-server on %d" % self.port)
        if self.proc.poll() is not None:
            raise RuntimeError("redis-server on %d exited with %d" %
                               (self.port, self.proc.returncode))

    def cli(self, *args):
        out = subprocess.run(["redis-cli", "-p", str(self.port), "--raw", *args],
                             capture_output=True, timeout=60)
        return out.stdout.decode("utf-8", "backslashreplace")

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        """SIGKILL: no shutdown, nothing saved."""
        self.proc.kill()
        self.proc.wait(10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class RedisCluster:
    """@p masters masters with @p replicas replicas each; @p args: more options for every
    node (e.g. "--min-replicas-to-write", "1")."""

    def new_node(self, args, attempts=5):
        """A node on a free port. A port found free can be taken before redis-server binds
        it (a test running beside this one, an outgoing connection's ephemeral port): the
        server then exits at start, and another port is tried (a CI run lost
        test_async_loss_without_wait_is_reported to that)."""
        for attempt in range(attempts):
            port = free_cluster_port()
            try:
                return Node(self.root, port, args)
            except RuntimeError:
                shutil.rmtree(os.path.join(self.root, str(port)), ignore_errors=True)
                if attempt == attempts - 1:
                    raise

    def __init__(self, masters=3, replicas=1, args=()):
        self.root = tempfile.mkdtemp(prefix="kefu-rcluster-")
        self.nodes = []
        try:
            for _ in range(masters * (1 + replicas)):
                self.nodes.append(self.new_node(list(args)))
            out = subprocess.run(
                ["redis-cli", "--cluster", "create",
                 *["127.0.0.1:%d" % n.port for n in self.nodes],
                 "--cluster-replicas", str(replicas), "--cluster-yes"],
                capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                raise RuntimeError("redis-cli --cluster create: " + out.stdout + out.stderr)
            self.wait_ok(masters)
            if replicas:  # with min-replicas-to-write, a master takes writes only then
                wait_for(lambda: all("connected_slaves:%d" % replicas in
                                     m.cli("INFO", "replication") for m in self.masters()),
                         60, "every master's replicas to connect")
                self.wait_replicated()
        except BaseException:
            self.stop()
            raise
        self.auth = None
        # every node is a seed: kefu finds the cluster from any that answers
        self.url = "redis://" + ",".join("127.0.0.1:%d" % n.port for n in self.nodes)

    # -- topology ---------------------------------------------------------------------
    def topology(self, via=None):
        """[(id, port, role, master_id, slot_count, connected)] from CLUSTER NODES, asked
        of @p via (a Node; default: the first live node)."""
        via = via or next(n for n in self.nodes if n.alive())
        rows = []
        for line in via.cli("CLUSTER", "NODES").splitlines():
            f = line.split()
            if len(f) < 8:
                continue
            port = int(f[1].split("@")[0].rsplit(":", 1)[1] or 0)
            role = "master" if "master" in f[2] else "replica"
            failed = "fail" in f[2] and "fail?" not in f[2]
            slots = 0
            for r in f[8:]:
                if r.startswith("["):
                    continue  # a migrating/importing mark
                lo, _, hi = r.partition("-")
                slots += int(hi or lo) - int(lo) + 1
            rows.append((f[0], port, role, f[3], slots, f[7] == "connected" and not failed))
        return rows

    def node(self, port):
        return next(n for n in self.nodes if n.port == port)

    def masters(self):
        """The live masters that serve slots, as Nodes."""
        return [self.node(p) for _, p, role, _, slots, ok in self.topology()
                if role == "master" and slots and ok and self.node(p).alive()]

    def node_id(self, node):
        return node.cli("CLUSTER", "MYID").strip()

    def master_of(self, key):
        """The Node that serves @p key's slot."""
        slot = int(self.nodes[0].cli("CLUSTER", "KEYSLOT", key).strip())
        for n in self.masters():
            for lo, hi in self.slot_ranges(n):
                if lo <= slot <= hi:
                    return n
        raise AssertionError("no master serves slot %d" % slot)

    def slot_ranges(self, node):
        nid = self.node_id(node)
        for line in node.cli("CLUSTER", "NODES").splitlines():
            f = line.split()
            if f and f[0] == nid:
                out = []
                for r in f[8:]:
                    if not r.startswith("["):
                        lo, _, hi = r.partition("-")
                        out.append((int(lo), int(hi or lo)))
                return out
        return []

    def replicas_of(self, node):
        nid = self.node_id(node)
        return [self.node(p) for _, p, role, mid, _, _ in self.topology()
                if role == "replica" and mid == nid]

    def ok(self, masters=None):
        """Every live node says cluster_state:ok and agrees on @p masters serving masters."""
        for n in self.nodes:
            if not n.alive():
                continue
            if "cluster_state:ok" not in n.cli("CLUSTER", "INFO"):
                return False
        if masters is not None:
            live = [r for r in self.topology() if r[2] == "master" and r[4] and r[5]]
            if len(live) != masters:
                return False
        return True

    def wait_ok(self, masters=None, timeout=60):
        wait_for(lambda: self.ok(masters), timeout, "the cluster to be ok")

    def wait_replicated(self, timeout=30):
        """Every live replica has caught up with its master's offset."""
        def caught_up():
            for m in self.masters():
                info = m.cli("INFO", "replication")
                offs = [l for l in info.splitlines() if l.startswith("slave")]
                master_off = next(int(l.split(":")[1]) for l in info.splitlines()
                                  if l.startswith("master_repl_offset:"))
                for l in offs:
                    fields = dict(kv.split("=") for kv in l.split(":", 1)[1].split(","))
                    if fields.get("state") != "online" or int(fields["offset"]) < master_off:
                        return False
            return True
        wait_for(caught_up, timeout, "replicas to catch up")

    def kill_master(self, node):
        """SIGKILL @p node and wait until one of its replicas serves its slots."""
        replicas = [r.port for r in self.replicas_of(node)]
        node.kill()
        wait_for(lambda: any(p in replicas and role == "master" and slots
                             for _, p, role, _, slots, ok in self.topology() if ok),
                 30 + 3 * NODE_TIMEOUT_MS / 1000, "a replica of %d to be promoted" % node.port)
        self.wait_ok()

    def reshard(self, src, dst, slots):
        """Moves @p slots slots from master @p src to master @p dst with redis-cli
        --cluster reshard (CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE)."""
        out = subprocess.run(
            ["redis-cli", "--cluster", "reshard", "127.0.0.1:%d" % src.port,
             "--cluster-from", self.node_id(src), "--cluster-to", self.node_id(dst),
             "--cluster-slots", str(slots), "--cluster-yes", "--cluster-pipeline", "10"],
            capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise AssertionError("reshard: " + out.stdout[-2000:] + out.stderr)
        self.wait_ok()

    # -- what kefutest.Redis offers -----------------------------------------------------
    def cli(self, *args, auth=None):
        """KEYS and DBSIZE: over every master; anything else: redis-cli -c (follows
        redirects) on a live node."""
        cmd = args[0].upper() if args else ""
        if cmd == "KEYS":
            return "".join(m.cli(*args) for m in self.masters())
        if cmd == "DBSIZE":
            return "%d\n" % sum(int(m.cli("DBSIZE").strip() or 0) for m in self.masters())
        port = next(n.port for n in self.nodes if n.alive())
        out = subprocess.run(["redis-cli", "-c", "-p", str(port), "--raw", *args],
                             capture_output=True, timeout=60)
        return out.stdout.decode("utf-8", "backslashreplace")

    def cli_args(self, auth=None):
        port = next(n.port for n in self.nodes if n.alive())
        return ["redis-cli", "-c", "-p", str(port)]

    def cli_env(self, auth=None):
        return dict(os.environ)

    snapshot = Redis.snapshot  # KEYS over every master, DUMP through -c
    state = Redis.state        # kefu state show --redis <every seed>

    def flush(self):
        for m in self.masters():
            m.cli("FLUSHALL")

    def ping(self):
        return self.ok()

    def stop(self):
        for n in self.nodes:
            n.stop()
        shutil.rmtree(self.root, ignore_errors=True)


__all__ = ["RedisCluster", "Node", "KEFU", "NODE_TIMEOUT_MS"]
