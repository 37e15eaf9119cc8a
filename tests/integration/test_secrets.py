"""SPEC §6: secrets never printed.

For each of the three configuration sources (the file of -c, KEFU_* environment
variables, --set) a Redis password and a SASL password with values of their own, each
holding a random token; redis-server runs with `requirepass` set to that Redis password,
so kefu really authenticates with it. Everything kefu prints is collected and searched
for the tokens (so a fragment of a secret counts too):

- `kefu run --list-config` (also with a password in redis.url);
- the stderr log of a run at log.level=debug with librdkafka's conf and security debug
  contexts, which processes records; /metrics, /healthz, /readyz and a 404 body while it
  runs, and /readyz while it is not ready because Redis now refuses its password;
- crash output: kefu killed with SIGSEGV / SIGABRT / SIGQUIT (no crash handler: the
  test checks what was printed up to the crash; core files are disabled here, see
  docs/OPERATIONS.md "Secrets");
- a run that fails on a wrong Redis password, and one that fails its SASL handshake
  (security.protocol=SASL_PLAINTEXT, which librdkafka 2.0.2's mock cluster does not
  support: the failing attempt is logged at debug level);
- redis.url values with a password that are malformed in several ways, and a valid one
  whose password contains '@' and '/' (it must authenticate).

The mock cluster has no SASL, so the full run keeps security.protocol=plaintext, where
librdkafka accepts and ignores the sasl.* properties.
"""
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import tempfile

from kefutest import (KEFU, Broker, KefuTestCase, Redis, free_port, http_get, main,
                      wait_for)

T0 = 1773068400000


def no_core():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def query(eid, ts):
    return {"event_id": eid, "shop_id": "s1", "ts": ts, "type": "DELIVERABILITY_QUERY",
            "agent_id": "a1", "buyer_id": "b1", "region_code": "440305"}


class Secret:
    """A secret value around a random token; found() looks for the token alone."""

    def __init__(self, template):
        self.token = secrets.token_hex(8)
        self.value = template % self.token

    def found(self, text):
        return self.token in text


class SecretsTest(KefuTestCase):
    def setUp(self):  # KefuTestCase's, with a Redis that has a password
        self.broker = Broker(self.partitions)
        self.addCleanup(self.broker.stop)
        self.tmp = tempfile.mkdtemp(prefix="kefu-secrets-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.printed = []  # (what, text): everything kefu printed or served

    def start_redis(self, password):
        self.redis = Redis(args=["--requirepass", password], auth=("", password))
        self.addCleanup(self.redis.stop)

    # -- kefu with its secrets from one source ------------------------------------------
    def command(self, source, given, *settings, extra=()):
        """(args, env) of `kefu run` with @p given (key -> value) through @p source and
        @p settings (KEY=VALUE) with --set."""
        args = [KEFU, "run", "-b", self.broker.bootstrap]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
        if source == "file":
            path = os.path.join(self.tmp, "kefu-%s.conf" % secrets.token_hex(4))
            with open(path, "w") as f:
                f.write("# kefu run -c\n")
                for k, v in given.items():
                    f.write("%s = %s\n" % (k, v))
            args += ["-c", path]
        elif source == "env":
            for k, v in given.items():
                env["KEFU_" + k.upper().replace(".", "_")] = v
        else:
            for k, v in given.items():
                args += ["--set", "%s=%s" % (k, v)]
        for s in settings:
            args += ["--set", s]
        return args + list(extra), env

    def run_once(self, source, given, *settings, extra=(), expect=None, what="run"):
        args, env = self.command(source, given, *settings, extra=extra)
        out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120,
                             preexec_fn=no_core)
        self.printed.append((what + " stdout", out.stdout))
        self.printed.append((what + " stderr", out.stderr))
        if expect is not None:
            self.assertEqual(out.returncode, expect, out.stderr[-3000:])
        return out

    def start(self, source, given, *settings, what="run"):
        args, env = self.command(source, given, *settings)
        log = open(os.path.join(self.tmp, "log-%s" % secrets.token_hex(4)), "w+",
                   errors="replace")
        self.addCleanup(log.close)
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log,
                                preexec_fn=no_core)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        return proc, log

    def log_text(self, log):
        log.flush()
        log.seek(0)
        return log.read()

    def finish(self, proc, log, what, sig=signal.SIGTERM):
        proc.send_signal(sig)
        rc = proc.wait(60)
        self.printed.append((what + " stderr", self.log_text(log)))
        return rc

    def assertNowhere(self, *hidden):
        leaks = ["%s: %s" % (what, line) for what, text in self.printed
                 for line in text.splitlines() if any(s.found(line) for s in hidden)]
        self.assertEqual(leaks, [], "a secret was printed")

    # -- the checks, per source ----------------------------------------------------------
    def check_source(self, source, crash_signal):
        redis_pw = Secret("s3cr3t@redis/" + source + "-%s")  # '@' and '/': URL-hostile
        sasl_pw = Secret("s3cr3t-sasl-" + source + "-%s")
        url_pw = Secret("s3cr3t-url-" + source + "-%s")
        wrong_pw = Secret("s3cr3t-wrong-" + source + "-%s")
        hidden = (redis_pw, sasl_pw, url_pw, wrong_pw)
        self.start_redis(redis_pw.value)
        self.produce("courier", [{"courier": "ZTO", "region_code": "44", "deliverable": True,
                                  "reason": None, "valid_from": T0 - 86400000}])
        self.produce("config", [{"event_id": "c1", "shop_id": "s1", "ts": T0,
                                 "couriers": ["ZTO"]}])
        self.produce("chat", [query("q1", T0 + 1)])
        port = free_port()
        given = {"redis.password": redis_pw.value, "kafka.sasl.username": "kefu-sasl-user",
                 "kafka.sasl.password": sasl_pw.value}
        redis_url = "redis.url=" + self.redis.url
        common = (redis_url, "idle_advance=false", "task_idle_ms=200")

        # --list-config, with a password in the URL too
        listed = self.run_once(source, dict(given, **{
            "redis.url": "redis://kefu:%s@127.0.0.1:%d/0" % (url_pw.value, self.redis.port)}),
            extra=["--list-config"], expect=0, what="--list-config").stdout
        self.assertRegex(listed, r"(?m)^redis\.password +string +\[redacted\]")
        self.assertRegex(listed, r"(?m)^kafka\.sasl\.password +kafka +\[redacted\]")
        self.assertIn("redis://kefu:***@127.0.0.1", listed)
        self.assertIn("kefu-sasl-user", listed)  # not a secret

        # a debug run that processes records, its endpoints while it runs
        proc, log = self.start(source, given, *common, "log.level=debug",
                               "kafka.debug=conf,security", "http.listen=127.0.0.1:%d" % port)
        wait_for(lambda: http_get(port, "/readyz")[0] == 200, 60, "kefu ready")
        wait_for(lambda: re.search(r"kefu_records_in_total\{[^}]*chat[^}]*\} [1-9]",
                                   http_get(port, "/metrics")[1]), 30, "records counted")
        for path in ("/metrics", "/healthz", "/readyz", "/nope"):
            status, body = http_get(port, path)
            self.printed.append(("GET " + path, body))
        self.assertIn("kefu_records_in_total", dict(self.printed)["GET /metrics"])
        # Redis now refuses the password: /readyz says why, without it
        self.redis.cli("CONFIG", "SET", "requirepass", wrong_pw.value)
        self.redis.auth = ("", wrong_pw.value)
        self.redis.cli("CLIENT", "KILL", "TYPE", "normal")
        self.produce("chat", [query("q2", T0 + 2)])
        # (first the closed connection, then the refused AUTH of the reconnect)
        status, body = wait_for(lambda: (lambda r: r[0] == 503 and "WRONGPASS" in r[1] and r)(
            http_get(port, "/readyz")), 60, "kefu not ready: WRONGPASS")
        self.printed.append(("GET /readyz, not ready", body))
        self.redis.cli("CONFIG", "SET", "requirepass", redis_pw.value)
        self.redis.auth = ("", redis_pw.value)
        self.finish(proc, log, "debug run")
        text = dict(self.printed)["debug run stderr"]
        self.assertIn("DEBUG kafka: CONF:", text)  # librdkafka's conf dump was logged
        self.assertIn("sasl.password = [redacted]", text)

        # crash output (a group and transactional ids of its own: the dead member and its
        # open transaction would hold up the runs below until they time out)
        proc, log = self.start(source, given, *common, "log.level=debug",
                               "http.listen=127.0.0.1:%d" % port, "group.id=crashed",
                               "transactional.id.prefix=crashed")
        self.produce("chat", [query("q3", T0 + 3)])
        wait_for(lambda: http_get(port, "/readyz")[0] == 200, 60, "kefu ready")
        rc = self.finish(proc, log, "killed with %s" % crash_signal.name, crash_signal)
        if "AddressSanitizer" in self.printed[-1][1]:
            # the sanitizer build catches SIGSEGV itself: its report (checked below with
            # everything else printed) and exit code 1
            self.assertEqual(rc, 1)
        else:
            self.assertEqual(rc, -crash_signal)

        # a wrong Redis password: kefu fails at start, and says why without it
        out = self.run_once(source, dict(given, **{"redis.password": wrong_pw.value}), *common,
                       "http.listen=", extra=["--exit-when-idle"], expect=1,
                       what="wrong password")
        self.assertIn("WRONGPASS", out.stderr)

        # SASL configured for real: the mock cluster cannot do it, kefu logs the failure
        proc, log = self.start(source, given, *common, "log.level=debug", "http.listen=",
                               "kafka.security.protocol=SASL_PLAINTEXT",
                               "kafka.sasl.mechanisms=PLAIN", "kafka.debug=security,conf")
        wait_for(lambda: "SASL" in self.log_text(log) and "Handshake" in self.log_text(log),
                 60, "the SASL handshake failure logged")
        self.finish(proc, log, "SASL run")

        # malformed URLs with a password: refused (exit 2) without echoing it
        for url in ("redis://kefu:%s@", "redis://kefu:%s@127.0.0.1:99999/0",
                    "rediss://kefu:%s@127.0.0.1", "redis:/kefu:%s@127.0.0.1",
                    "kefu:%s@127.0.0.1:6379", "redis://kefu:%s%%zz@127.0.0.1",
                    "redis://kefu:%s@127.0.0.1?db=1", "http://kefu:%s@127.0.0.1"):
            out = self.run_once(source, {"redis.url": url % url_pw.value}, "http.listen=",
                           expect=2, what="redis.url " + url)
            self.assertIn("redis.url", out.stderr)
        # a valid URL whose password holds '@' and '/': kefu authenticates with it
        out = self.run_once(source, {"redis.url": "redis://:%s@127.0.0.1:%d/0" % (
            redis_pw.value, self.redis.port)}, "idle_advance=false", "task_idle_ms=200",
            "http.listen=", extra=["--exit-when-idle"], expect=0, what="password in URL")
        self.assertNowhere(*hidden)

    def test_config_file(self):
        self.check_source("file", signal.SIGSEGV)

    def test_environment(self):
        self.check_source("env", signal.SIGABRT)

    def test_set(self):
        self.check_source("set", signal.SIGQUIT)


if __name__ == "__main__":
    main()
