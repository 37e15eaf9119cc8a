"""A small stand-in of the Confluent Schema Registry's REST API, for tests.

No registry server is packaged for Debian. This one follows Confluent's API reference
for the calls kefu and common clients make (docs/DECISIONS.md 57 says what it covers):

  POST /subjects/{s}/versions          register: {"schema": "..."} -> {"id": N}; the same
                                       schema (parsed, compared as canonical JSON) gives
                                       the same id in every subject
  GET  /schemas/ids/{id}               {"schema": "..."}; 404 error_code 40403
  GET  /subjects                       ["s", ...]
  GET  /subjects/{s}/versions          [1, 2, ...]; 404 error_code 40401
  GET  /subjects/{s}/versions/{v}      {"subject", "id", "version", "schema"}; v or "latest"
  POST /subjects/{s}                   lookup of a schema under s; 404 40401 / 40403
  POST /compatibility/subjects/{s}/versions/{v}   {"is_compatible": bool}
  PUT  /config/{s}  {"compatibility": "NONE" | "BACKWARD" | "FORBID"}
       per-subject compatibility. BACKWARD is simplified: a new record schema is
       compatible when every field it has that the latest version lacks has a default.
       FORBID is a test-only level: every new schema of the subject is incompatible (409,
       error_code 409), so tests can force the 409 path.

Ids start at 1000 (so they differ from kefu's built-in ids). With user_info set, every
request needs that basic auth (401, error_code 401 otherwise). With tls=(cert, key) it
serves HTTPS (url https://127.0.0.1:port); tls=(cert, key, client_ca) also requires a
client certificate signed by client_ca (mutual TLS). Errors are
{"error_code": ..., "message": ...} as Confluent sends them.
"""
import base64
import json
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CT = "application/vnd.schemaregistry.v1+json"


def canonical(text):
    return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


class Registry:
    def __init__(self, port=0, user_info=None, first_id=1000, state_of=None, tls=None):
        """state_of: a stopped Registry whose schemas and subjects this one starts with
        (a registry that restarts keeps its ids)."""
        self.lock = threading.Lock()
        self.schemas = {}      # id -> schema text
        self.by_canon = {}     # canonical text -> id
        self.subjects = {}     # subject -> [id, ...] (versions 1..n)
        self.compat = {}       # subject -> level
        self.next_id = first_id
        if state_of is not None:
            self.schemas, self.by_canon = dict(state_of.schemas), dict(state_of.by_canon)
            self.subjects = {k: list(v) for k, v in state_of.subjects.items()}
            self.compat, self.next_id = dict(state_of.compat), state_of.next_id
        self.user_info = user_info
        self.requests = []     # (method, path)
        reg = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                reg.handle(self, "GET")

            def do_POST(self):
                reg.handle(self, "POST")

            def do_PUT(self):
                reg.handle(self, "PUT")

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[0], tls[1])
            if len(tls) > 2:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(tls[2])
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.url = "https://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    # -- the API ------------------------------------------------------------------------
    def handle(self, h, method):
        with self.lock:
            self.requests.append((method, h.path))
        if self.user_info is not None:
            want = "Basic " + base64.b64encode(self.user_info.encode()).decode()
            if h.headers.get("Authorization") != want:
                return self.send(h, 401, {"error_code": 401, "message": "Unauthorized"})
        body = None
        if method in ("POST", "PUT"):
            n = int(h.headers.get("Content-Length") or 0)
            try:
                body = json.loads(h.rfile.read(n) or b"{}")
            except ValueError:
                return self.send(h, 422, {"error_code": 42201, "message": "Invalid JSON"})
        path = h.path.split("?")[0]
        with self.lock:
            status, doc = self.route(method, path, body)
        self.send(h, status, doc)

    def send(self, h, status, doc):
        data = json.dumps(doc).encode()
        h.send_response(status)
        h.send_header("Content-Type", CT)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def route(self, method, path, body):
        from urllib.parse import unquote
        m = re.fullmatch(r"/subjects/([^/]+)/versions", path)
        if m and method == "POST":
            return self.register(unquote(m.group(1)), body)
        if m and method == "GET":
            s = unquote(m.group(1))
            if s not in self.subjects:
                return 404, {"error_code": 40401, "message": "Subject '%s' not found." % s}
            return 200, list(range(1, len(self.subjects[s]) + 1))
        m = re.fullmatch(r"/subjects/([^/]+)/versions/([^/]+)", path)
        if m and method == "GET":
            return self.version(unquote(m.group(1)), m.group(2))
        m = re.fullmatch(r"/subjects/([^/]+)", path)
        if m and method == "POST":
            return self.lookup(unquote(m.group(1)), body)
        m = re.fullmatch(r"/schemas/ids/(-?\d+)", path)
        if m and method == "GET":
            sid = int(m.group(1))
            if sid not in self.schemas:
                return 404, {"error_code": 40403, "message": "Schema %d not found" % sid}
            return 200, {"schema": self.schemas[sid]}
        if path == "/subjects" and method == "GET":
            return 200, sorted(self.subjects)
        m = re.fullmatch(r"/compatibility/subjects/([^/]+)/versions/([^/]+)", path)
        if m and method == "POST":
            s = unquote(m.group(1))
            ok, _ = self.compatible(s, body.get("schema", ""))
            return 200, {"is_compatible": ok}
        m = re.fullmatch(r"/config/([^/]+)", path)
        if m and method == "PUT":
            level = body.get("compatibility")
            if level not in ("NONE", "BACKWARD", "FORBID"):
                return 422, {"error_code": 42203, "message": "Invalid compatibility level"}
            self.compat[unquote(m.group(1))] = level
            return 200, {"compatibility": level}
        return 404, {"error_code": 404, "message": "HTTP 404 Not Found"}

    def parse(self, body):
        text = body.get("schema") if isinstance(body, dict) else None
        if not isinstance(text, str):
            return None
        try:
            return canonical(text)
        except ValueError:
            return None

    def compatible(self, subject, text):
        level = self.compat.get(subject, "BACKWARD")
        versions = self.subjects.get(subject, [])
        if level == "FORBID":
            return False, "compatibility FORBID (test switch)"
        if level == "NONE" or not versions:
            return True, ""
        try:
            new, old = json.loads(text), json.loads(self.schemas[versions[-1]])
        except ValueError:
            return False, "invalid schema"
        if not (isinstance(new, dict) and isinstance(old, dict)):
            return True, ""
        old_names = {f["name"] for f in old.get("fields", [])}
        for f in new.get("fields", []):
            if f["name"] not in old_names and "default" not in f:
                return False, "new field '%s' has no default" % f["name"]
        return True, ""

    def register(self, subject, body):
        canon = self.parse(body)
        if canon is None:
            return 422, {"error_code": 42201, "message": "Either the input schema or one of "
                         "its references is invalid"}
        sid = self.by_canon.get(canon)
        if sid is not None and sid in self.subjects.get(subject, []):
            return 200, {"id": sid}
        ok, why = self.compatible(subject, body["schema"])
        if not ok:
            return 409, {"error_code": 409, "message": "Schema being registered is incompatible "
                         "with an earlier schema for subject \"%s\": %s" % (subject, why)}
        if sid is None:
            sid = self.next_id
            self.next_id += 1
            self.schemas[sid] = body["schema"]
            self.by_canon[canon] = sid
        self.subjects.setdefault(subject, []).append(sid)
        return 200, {"id": sid}

    def version(self, subject, v):
        versions = self.subjects.get(subject)
        if not versions:
            return 404, {"error_code": 40401, "message": "Subject '%s' not found." % subject}
        n = len(versions) if v == "latest" else int(v) if v.isdigit() else 0
        if not 1 <= n <= len(versions):
            return 404, {"error_code": 40402, "message": "Version %s not found." % v}
        sid = versions[n - 1]
        return 200, {"subject": subject, "id": sid, "version": n, "schema": self.schemas[sid]}

    def lookup(self, subject, body):
        canon = self.parse(body)
        versions = self.subjects.get(subject)
        if not versions:
            return 404, {"error_code": 40401, "message": "Subject '%s' not found." % subject}
        sid = self.by_canon.get(canon)
        if sid not in versions:
            return 404, {"error_code": 40403, "message": "Schema not found"}
        return 200, {"subject": subject, "id": sid, "version": versions.index(sid) + 1,
                     "schema": self.schemas[sid]}

    def add(self, subject, text):
        """Registers @p text directly (as another producer would); returns its id."""
        with self.lock:
            status, doc = self.register(subject, {"schema": text})
        assert status == 200, doc
        return doc["id"]


if __name__ == "__main__":
    import sys
    r = Registry(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(r.url, flush=True)
    r.thread.join()
