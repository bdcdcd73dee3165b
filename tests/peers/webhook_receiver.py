"""The webhook receiver of locker-hub's notification tests, written as a property's SMS gateway
would be, with Python's standard library only (http.server, hmac): it checks each POST's
signature and the body's schema (docs/notify.md, "Webhook") independently of the hub's code.

    python webhook_receiver.py <port> <out dir> <secret>

Prints "listening <port>" when ready. Each POST is written to <out dir>/<n>.json as
{"id", "signature_ok", "fresh", "schema_errors", "body"}. While <out dir>/fail500 exists it
answers 500; while <out dir>/fail404 exists, 404; while <out dir>/hang exists, it answers after
20 s.
"""

import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = {"delivered", "reminder", "expiring", "expired", "at_desk", "withdrawn", "picked_up"}


def schema_errors(body):
    errors = []

    def need(obj, key, types, where=""):
        if key not in obj:
            errors.append(f"{where}{key} is missing")
        elif not isinstance(obj[key], types):
            errors.append(f"{where}{key} has the wrong type")

    if not isinstance(body, dict):
        return ["the body is not an object"]
    need(body, "version", int)
    if body.get("version") != 1:
        errors.append("version is not 1")
    for key in ("id", "site", "kind", "subject", "text"):
        need(body, key, str)
    if body.get("kind") not in KINDS:
        errors.append(f"kind {body.get('kind')!r} is unknown")
    need(body, "parcels", list)
    if not all(isinstance(p, str) for p in body.get("parcels", [])):
        errors.append("parcels are not strings")
    for key in ("pin", "qr"):
        need(body, key, (str, type(None)))
    need(body, "resident", dict)
    resident = body.get("resident") or {}
    for key in ("id", "unit", "language"):
        need(resident, key, str, "resident.")
    for key in ("email", "phone", "secondary_email", "secondary_phone"):
        need(resident, key, (str, type(None)), "resident.")
    return errors


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        out, secret = self.server.out, self.server.secret
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        if os.path.exists(os.path.join(out, "hang")):
            time.sleep(20)
        stamp = self.headers.get("X-Locker-Hub-Timestamp", "")
        given = self.headers.get("X-Locker-Hub-Signature", "")
        expected = "v1=" + hmac.new(secret, stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        record = {
            "id": self.headers.get("X-Locker-Hub-Id"),
            "signature_ok": hmac.compare_digest(given, expected),
            "fresh": stamp.isdigit() and abs(time.time() - int(stamp)) < 300,
            "schema_errors": schema_errors(body),
            "body": body,
        }
        if os.path.exists(os.path.join(out, "fail500")):
            self.answer(500, b"gateway busy")
            return
        if os.path.exists(os.path.join(out, "fail404")):
            self.answer(404, b"no such route")
            return
        with self.server.lock:
            self.server.n += 1
            path = os.path.join(out, f"{self.server.n:04d}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        self.answer(200 if record["signature_ok"] and not record["schema_errors"] else 401, b"ok")

    def answer(self, status, text):
        self.send_response(status)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)


def main():
    port, out, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.out, server.secret, server.n, server.lock = out, secret, 0, threading.Lock()
    print(f"listening {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
