"""The Schema Registry stand-in and kefu's registry ids checked with a real client
(DECISIONS 57): npm's @kafkajs/confluent-schema-registry (tests/interop/registry_js,
installed from its package-lock.json with `npm ci`) registers a schema through
tests/lib/registry_standin.py with basic auth, registers it again (the same id), looks it
up by subject and version, by latest and by schema, encodes and decodes a record, finds
by schema the id `kefu produce --schema-registry` registered, and decodes every output
kefu wrote with the ids the stand-in assigned; the values equal python3-avro's decoding
of the same bytes with the registry's schema text. An id the registry lacks is an error
in the client too."""
import io
import json
import os
import secrets
import shutil
import struct
import subprocess
import tempfile
import unittest

import avro.io
import avro.schema

from kefutest import KEFU, SLOW, SOURCE, TOPICS, KefuTestCase, kefu_run_command, main, read_raw
from registry_standin import Registry

T0 = 1773068400000
JS = os.path.join(SOURCE, "tests", "interop", "registry_js")
OUTPUTS = ["decisions", "invitations", "violations", "responses", "cards", "insights"]
CHECK = json.dumps({"type": "record", "name": "Check", "namespace": "kefu.interop",
                    "fields": [{"name": "a", "type": "string"}, {"name": "n", "type": "long"},
                               {"name": "o", "type": ["null", "string"], "default": None}]})


def query(eid, ts):
    return {"event_id": eid, "shop_id": "s1", "ts": ts, "type": "DELIVERABILITY_QUERY",
            "agent_id": "a1", "buyer_id": "b1", "region_code": "440305"}


def node_ready():
    if not shutil.which("node") or not shutil.which("npm"):
        return False
    if not os.path.isdir(os.path.join(JS, "node_modules", "@kafkajs")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True,
                       capture_output=True, timeout=600)
    return True


class RegistryJsTest(KefuTestCase):
    def test_real_client_registers_decodes_and_reads_kefu_outputs(self):
        self.assertTrue(node_ready(), "node and npm are needed (scripts/deps.sh)")
        user_info = "interop:" + secrets.token_hex(6)
        reg = Registry(user_info=user_info)
        self.addCleanup(reg.stop)
        env = dict(os.environ, KEFU_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO=user_info)
        text = "".join(json.dumps(query("q%d" % i, T0 + i)) + "\n" for i in range(5))
        out = subprocess.run([KEFU, "produce", "-b", self.broker.bootstrap, "-t", TOPICS["chat"],
                              "--schema-registry", reg.url], input=text, capture_output=True,
                             text=True, env=env)
        self.assertEqual(out.returncode, 0, out.stderr)
        out = subprocess.run(kefu_run_command(
            [KEFU, "run", "-b", self.broker.bootstrap, "--redis", self.redis.url,
             "--exit-when-idle", "--set", "http.listen=", "--set", "idle_advance=false",
             "--set", "schema.registry.url=" + reg.url]), capture_output=True, text=True,
            env=env, timeout=120 * SLOW)
        self.assertEqual(out.returncode, 0, out.stderr)
        frames = [{"topic": TOPICS[t], "hex": m.value().hex()}
                  for t in OUTPUTS for m in read_raw(self.broker.bootstrap, TOPICS[t])]
        self.assertTrue(frames, "kefu wrote no output")
        chat_subject = TOPICS["chat"] + "-value"
        chat_id = reg.subjects[chat_subject][0]
        tmp = tempfile.mkdtemp(prefix="kefu-registry-js-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "input.json")
        with open(path, "w") as f:
            json.dump({"url": reg.url, "auth": user_info, "schema": CHECK,
                       "subject": "kefu.interop.check-value",
                       "record": {"a": "x", "n": 1773068400000, "o": "y"},
                       "lookups": [{"subject": chat_subject, "schema": reg.schemas[chat_id]}],
                       "frames": frames}, f)
        run = subprocess.run(["node", os.path.join(JS, "check.js"), path], capture_output=True,
                             text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr)
        got = json.loads(run.stdout)
        self.assertGreaterEqual(got["id"], 1000)
        self.assertEqual(got["again"], {"id": got["id"]})
        self.assertEqual(got["latest"], got["id"])
        self.assertEqual(got["byVersion"], got["id"])
        self.assertEqual(got["bySchema"], got["id"])
        self.assertEqual(got["roundTrip"], {"a": "x", "n": 1773068400000, "o": "y"})
        self.assertEqual(bytes.fromhex(got["encodedHex"])[:5], b"\0" + struct.pack(">i", got["id"]))
        self.assertEqual(got["lookups"], [chat_id])
        self.assertIsNotNone(got["unknown"])
        self.assertEqual(len(got["decoded"]), len(frames))
        for d, f in zip(got["decoded"], frames):
            value = bytes.fromhex(f["hex"])
            sid = struct.unpack(">i", value[1:5])[0]
            self.assertEqual(d["id"], sid)
            self.assertEqual(reg.subjects[f["topic"] + "-value"], [sid])
            schema = avro.schema.parse(reg.schemas[sid])
            want = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(value[5:])))
            self.assertEqual(d["value"], json.loads(json.dumps(want)))


if __name__ == "__main__":
    main()
