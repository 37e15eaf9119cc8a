"""SPEC §6: Redis AUTH with an ACL user, least privilege (deploy/redis/kefu-acl.conf).

redis-server runs with that file's `user kefu` line (its password filled in) as part of
its configuration, the default user off and an `admin` user for the test's own checks.
kefu runs as `kefu` over the conformance stream small-101, which has every rule family
(the steps and comparison of test_conformance.py), in database 1 so that SELECT is used
too. Then:

- every output matches the expected ones, and Redis denied nothing (ACL LOG is empty);
- every command kefu sent, itself or from its Lua function (INFO commandstats), is one
  the user is granted, and every granted command was used;
- the user cannot do what kefu never does: FLUSHALL, CONFIG, KEYS, SCAN, EVAL, ACL,
  FUNCTION DELETE/FLUSH, reading or writing a key outside `kefu:*` (also from a Lua
  function it loads itself), Pub/Sub.
"""
import os
import re
import secrets
import shutil
import subprocess
import tempfile

import test_conformance
from kefutest import (KEFU, SOURCE, Broker, KefuTestCase, Redis, free_port, http_get,
                      main, wait_for)

ACL_CONF = os.path.join(SOURCE, "deploy", "redis", "kefu-acl.conf")
ADMIN = ("admin", "admin-" + secrets.token_hex(8))


def kefu_user_line():
    """The `user kefu ...` line of deploy/redis/kefu-acl.conf (comments left out)."""
    with open(ACL_CONF) as f:
        lines = [line.strip() for line in f if line.startswith("user ")]
    assert len(lines) == 1, lines
    return lines[0]


def granted_commands(line):
    """The commands the line grants with +name (lower case, subcommands as a|b)."""
    return {tok[1:].lower() for tok in line.split() if tok.startswith("+") and "@" not in tok}


class RedisAclTest(KefuTestCase):
    run_stream = test_conformance.ConformanceTest.run_stream

    def setUp(self):  # KefuTestCase's, with this Redis
        self.password = "kefu-" + secrets.token_hex(12)
        line = kefu_user_line()
        self.assertIn(">CHANGE_ME", line.split())
        self.line = line.replace(">CHANGE_ME", ">" + self.password)
        confdir = tempfile.mkdtemp(prefix="kefu-acl-")
        self.addCleanup(shutil.rmtree, confdir, True)
        conf = os.path.join(confdir, "acl.conf")
        with open(conf, "w") as f:
            f.write("user default off\n")
            f.write("user %s on >%s ~* &* +@all\n" % ADMIN)
            f.write(self.line + "\n")
        self.redis = Redis(args=["--include", conf], auth=ADMIN)
        self.addCleanup(self.redis.stop)
        self.redis.url = "redis://127.0.0.1:%d/1" % self.redis.port
        self.broker = Broker(self.partitions)
        self.addCleanup(self.broker.stop)
        self.kefu = ("kefu", self.password)

    def as_kefu(self, *args):
        return self.redis.cli(*args, auth=self.kefu).strip()

    def assertDenied(self, *args):
        reply = self.as_kefu(*args)
        self.assertTrue(reply.startswith("NOPERM"), "%s: %r" % (" ".join(args), reply))

    def commands_used(self):
        stats = self.redis.cli("INFO", "commandstats")
        return {m.group(1) for m in re.finditer(r"^cmdstat_([a-z|_-]+):calls=", stats, re.M)}

    def test_every_rule_family_works_as_the_acl_user(self):
        self.redis.cli("CONFIG", "RESETSTAT")
        self.redis.cli("ACL", "LOG", "RESET")
        settings = ("redis.user=kefu", "redis.password=" + self.password)
        self.run_stream("small-101", *settings)
        # a tombstone resets a shop's config to the defaults: kefu_apply's DEL
        shop = test_conformance.load_jsonl(os.path.join(
            test_conformance.CONFORMANCE, "small-101", "input", "kefu.shop.config.jsonl"))[0]
        cfg_key = "kefu:{%s}:cfg" % shop["shop_id"]
        self.assertEqual(self.redis.cli("-n", "1", "EXISTS", cfg_key).strip(), "1")
        self.produce_raw("config", shop["shop_id"].encode(), None)
        self.run_kefu(*settings)
        self.assertEqual(self.redis.cli("-n", "1", "EXISTS", cfg_key).strip(), "0")
        self.assertEqual(self.redis.cli("ACL", "LOG").strip(), "", "Redis denied kefu something")
        # the test's own commands as admin left out (EXISTS is granted, but the test's
        # own calls hide kefu's; the ACL LOG above shows any denial of the others)
        used = self.commands_used() - {"config|resetstat", "acl|log", "info", "exists"}
        granted = granted_commands(self.line)
        self.assertEqual(sorted(used - granted - {"auth"}), [], "used but not granted")
        # EXISTS: kefu sends it only after a reconnect (lost-state check), which this
        # run has none of; ACL DRYRUN shows the user may
        self.assertEqual(self.redis.cli("ACL", "DRYRUN", "kefu", "EXISTS",
                                        "kefu:{task-0}:pos").strip(), "OK")
        # ASKING (a slot migrating on a cluster) and WAIT (redis.wait_replicas) are
        # never needed on this single node; ACL DRYRUN shows the user may send them
        for args in (["ASKING"], ["WAIT", "1", "0"]):
            self.assertEqual(self.redis.cli("ACL", "DRYRUN", "kefu", *args).strip(), "OK")
        self.assertEqual(sorted(granted - used - {"exists", "asking", "wait"}), [],
                         "granted but never used")
        # kefu's state is there, in database 1 and under its namespace only
        keys = self.redis.cli("-n", "1", "KEYS", "*").split()
        self.assertTrue(keys)
        self.assertEqual([k for k in keys if not k.startswith("kefu:")], [])
        self.assertEqual(self.redis.cli("-n", "0", "DBSIZE").strip(), "0")

    def test_another_namespace_is_refused_and_kefu_waits_not_ready(self):
        """The key pattern must follow redis.namespace: with the default ACL and
        namespace "other", Redis refuses kefu's first state read; kefu says so, stays
        not ready and retries (docs/OPERATIONS.md, "Redis ACL")."""
        self.produce("config", [{"event_id": "c1", "shop_id": "s1", "ts": 1773014400000,
                                 "couriers": ["ZTO"]}])
        port = free_port()
        log = tempfile.TemporaryFile(mode="w+", errors="replace")
        args = [KEFU, "run", "-b", self.broker.bootstrap, "--redis", self.redis.url,
                "--set", "redis.user=kefu", "--set", "redis.password=" + self.password,
                "--set", "redis.namespace=other", "--set", "idle_advance=false",
                "--set", "http.listen=127.0.0.1:%d" % port]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        self.addCleanup(proc.wait, 30)
        self.addCleanup(proc.terminate)

        def logged_noperm():
            log.seek(0)
            return "NOPERM" in log.read()
        wait_for(logged_noperm, 60, "kefu to log Redis's NOPERM")
        wait_for(lambda: http_get(port, "/readyz")[0] == 503, 60, "/readyz to answer 503")
        self.assertIsNone(proc.poll())
        self.assertEqual(self.redis.cli("-n", "1", "KEYS", "*").split(), [])

    def test_least_privilege(self):
        self.assertEqual(self.as_kefu("SET", "kefu:probe", "1"), "OK")  # the user works
        self.assertEqual(self.as_kefu("GET", "kefu:probe"), "1")
        self.redis.cli("SET", "app:secret", "x")
        for args in (["FLUSHALL"], ["FLUSHDB"], ["CONFIG", "GET", "*"],
                     ["CONFIG", "SET", "dir", "/tmp"], ["KEYS", "*"], ["KEYS", "kefu:*"],
                     ["SCAN", "0"], ["INFO"], ["CLIENT", "LIST"],
                     ["CLUSTER", "RESET"], ["CLUSTER", "FAILOVER"], ["CLUSTER", "NODES"],
                     ["SHUTDOWN"], ["ACL", "WHOAMI"],
                     ["ACL", "SETUSER", "kefu", "+@all"], ["EVAL", "return 1", "0"],
                     ["SCRIPT", "FLUSH"], ["FUNCTION", "FLUSH"], ["FUNCTION", "DELETE", "kefu"],
                     ["PUBLISH", "kefu:c", "x"],
                     ["GET", "app:secret"], ["SET", "app:x", "1"], ["DEL", "app:secret"],
                     ["HSET", "other:{s1}:agents", "a", "b"], ["RENAME", "kefu:probe", "app:y"],
                     ["FCALL", "kefu_apply", "1", "app:x", "0"]):
            with self.subTest(command=" ".join(args)):
                self.assertDenied(*args)
        # (commands that would block redis-cli: asked of the server instead)
        # (commands that would block redis-cli or that Redis refuses before the ACL:
        # asked of the server instead)
        for args in (["MONITOR"], ["SUBSCRIBE", "kefu:c"], ["PSUBSCRIBE", "*"],
                     ["DEBUG", "SLEEP", "0"]):
            with self.subTest(command=" ".join(args)):
                reply = self.redis.cli("ACL", "DRYRUN", "kefu", *args).strip()
                self.assertIn("no permissions", reply)
        # A function the user loads runs with the user's rights: it cannot reach out.
        lib = ("#!lua name=probe\n"
               "redis.register_function('probe', function(keys, args) "
               "return redis.call('SET', 'app:x', '1') end)")
        self.assertEqual(self.as_kefu("FUNCTION", "LOAD", "REPLACE", lib), "probe")
        reply = self.as_kefu("FCALL", "probe", "1", "kefu:probe")
        self.assertIn("can't access", reply)
        self.assertEqual(self.redis.cli("EXISTS", "app:x").strip(), "0")
        self.assertEqual(self.redis.cli("GET", "app:secret").strip(), "x")
        # and a wrong password gets nothing
        reply = self.redis.cli("GET", "kefu:probe", auth=("kefu", "wrong"))
        self.assertNotEqual(reply.strip(), "1")


if __name__ == "__main__":
    main()
