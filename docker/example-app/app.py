#!/usr/bin/env python3
"""An example backend that jobd calls back (webhook handlers), standard library only.

jobd POSTs each attempt of a webhook job as JSON
({"id","queue","type","args","attempt","scheduled_at","created_at"}) with
    Jobd-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
This app checks that signature with the secret it shares with jobd
(JOBD_WEBHOOK_SECRET), refuses stale timestamps, does the job (here: logs it)
and answers 200. A 401 makes the job dead at once (a wrong secret is not fixed
by retrying); a 5xx would make jobd retry it with backoff.
"""
import hashlib
import hmac
import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PLACEHOLDER = "change-me"
MAX_AGE = 300  # seconds a signature stays valid: older ones are replays
MAX_BODY = 1 << 20


def log(event, **fields):
    """One JSON line per event on stdout (docker-compose logs app)."""
    line = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event}
    line.update(fields)
    print(json.dumps(line), flush=True)


def verify(secret, header, body, now):
    """None when header signs body with secret, else the reason it does not."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    stamp, given = parts.get("t", ""), parts.get("v1", "")
    if not stamp.isdigit() or not given:
        return "missing or malformed Jobd-Signature"
    if abs(now - int(stamp)) > MAX_AGE:
        return "signature timestamp too old"
    want = hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, given):
        return "bad signature"
    return None


def send_email(job):
    args = job.get("args") or {}
    log("email.sent", id=job["id"], to=args.get("to"), subject=args.get("subject"))


def perform(job):
    """The target of the "active_job" handler: a framework adapter would run the job here."""
    log("job.performed", id=job["id"], args=job.get("args"))


ROUTES = {"/jobs/send_email": send_email, "/jobd/perform": perform}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: each jobd worker reuses its connection
    secret = b""

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/healthz":
            self.reply(200, {"ok": True})
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self.reply(413, {"error": "bad or too large Content-Length"})
            return
        body = self.rfile.read(length)
        route = ROUTES.get(self.path)
        if route is None:
            self.reply(404, {"error": "no such job endpoint"})
            return
        why = verify(self.secret, self.headers.get("Jobd-Signature", ""), body, time.time())
        if why:
            log("job.rejected", path=self.path, reason=why, id=self.headers.get("Jobd-Job-Id"))
            self.reply(401, {"error": why})
            return
        job = json.loads(body)
        log("job.verified", path=self.path, id=job["id"], type=job["type"],
            attempt=job["attempt"])
        route(job)
        self.reply(200, {"ok": True})

    def log_message(self, fmt, *args):
        pass  # one line per job (above) is enough


def main():
    secret = os.environ.get("JOBD_WEBHOOK_SECRET", "")
    if not secret:
        sys.exit("app: JOBD_WEBHOOK_SECRET is not set")
    if secret == PLACEHOLDER:
        log("warning", msg="JOBD_WEBHOOK_SECRET is the placeholder: change it")
    Handler.secret = secret.encode()
    port = int(os.environ.get("PORT", "3000"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log("app.started", port=port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
