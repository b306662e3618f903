#!/usr/bin/env python3
"""soak.py - `make soak`: one jobd under steady mixed load for SECONDS.

Redis (AOF everysec), one jobd with an inline queue, an aggregate -> redis
queue and a plain redis queue, a webhook receiver, and clients at a fixed
rate: single jobs and batches (noop, sleep, webhook, failing jobs that end
dead), delayed jobs cancelled again, GETs, pages of lists and of the dead
set, /queues and /readyz. jobd's RSS and open fds are sampled every 10 s;
the run fails when either grew by 5 % or more from one minute in to the end
(the smallest of 3 samples at each end), or when a request got a 5xx.
"""

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import (Receiver, Redis, http_call, job_spec, launch, proc_sample,  # noqa: E402
                     teardown)

QUEUES = ("local", "agg", "plain")
SAMPLE_EVERY = 10
BASELINE_AT = 60
WINDOW = 3  # samples compared at each end


def jobd_config(redis_port, hook_port):
    """Retention short enough that the stores reach their steady size in the first minute."""
    backoff = {"base": 0.2, "factor": 0, "jitter": 0, "max": 1}
    return {
        "workers": 8,
        "redis": {"url": f"redis://127.0.0.1:{redis_port}/0", "prefix": "soak"},
        "retention": {"finished": 20, "max_finished": 2000},
        "dead": {"max_age": 20, "max_jobs": 200},
        "queues": {
            "local": {"dequeue": ["inline"], "backoff": backoff, "max_attempts": 2},
            "agg": {"enqueue": ["aggregate"], "dequeue": ["redis"], "backoff": backoff,
                    "max_attempts": 2},
            "plain": {"dequeue": ["redis"], "backoff": backoff, "max_attempts": 2},
        },
        "handlers": {"hook": {"kind": "webhook", "url": f"http://127.0.0.1:{hook_port}/hook",
                              "timeout": 5}},
    }


class Load(threading.Thread):
    """One client: `rate` jobs a second in singles and batches, with reads in between."""

    def __init__(self, k, port, rate, queues, stop, errors):
        super().__init__(daemon=True)
        self.k, self.port, self.rate, self.stop, self.errors = k, port, rate, stop, errors
        self.queues = queues
        self.rng = random.Random(k)
        self.n = 0
        self.requests = 0
        self.ids = []

    def check(self, what, status):
        self.requests += 1
        if status >= 500 or status == 0:
            self.errors.append(f"{what}: {status}")

    def one_round(self):
        rng, q = self.rng, self.rng.choice(self.queues)
        size = 1 if rng.random() < 0.5 else rng.randint(2, 20)
        specs = []
        for _ in range(size):
            self.n += 1
            jid = f"s{self.k}-{self.n}"
            spec = {"id": jid, "type": "fail"} if rng.random() < 0.02 else \
                job_spec(rng, jid, 0.2, 0.3)
            if spec["type"] == "sleep":
                spec["args"]["ms"] = rng.randrange(1, 50)
            specs.append(spec)
        body = json.dumps(specs[0] if size == 1 else specs)
        st, _ = http_call(self.port, "POST", f"/queues/{q}/jobs", body)
        self.check("submit", st)
        self.ids.append((q, specs[-1]["id"]))
        self.ids = self.ids[-50:]
        # a delayed job, cancelled again
        jid = f"d{self.k}-{self.n}"
        st, _ = http_call(self.port, "POST", f"/queues/{q}/jobs",
                          json.dumps({"id": jid, "type": "noop", "delay": 60}))
        self.check("submit delayed", st)
        st, _ = http_call(self.port, "DELETE", f"/queues/{q}/jobs/{jid}")
        self.check("cancel", st)
        q2, jid2 = rng.choice(self.ids)
        st, _ = http_call(self.port, "GET", f"/queues/{q2}/jobs/{jid2}")
        self.check("get", st)
        st, page = http_call(self.port, "GET", f"/queues/{q}/jobs?limit=20&state=succeeded")
        self.check("list", st)
        cursor = (page or {}).get("next_cursor")
        if cursor:
            st, _ = http_call(self.port, "GET", f"/queues/{q}/jobs?limit=20&cursor={cursor}")
            self.check("list page 2", st)
        st, _ = http_call(self.port, "GET", f"/queues/{q}/dead?limit=10")
        self.check("dead list", st)
        for path in ("/queues", "/readyz"):
            st, _ = http_call(self.port, "GET", path)
            self.check(path, st)
        return size + 1

    def run(self):
        t0, made = time.monotonic(), 0
        while not self.stop.is_set():
            made += self.one_round()
            due = t0 + made / self.rate
            if due > time.monotonic():
                self.stop.wait(due - time.monotonic())


def growth(base, last):
    return 100.0 * (last - base) / base if base else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobd", required=True)
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    ap.add_argument("--rate", type=float, default=200, help="jobs a second, all clients")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--limit", type=float, default=5.0, help="allowed growth in percent")
    ap.add_argument("--queues", default=",".join(QUEUES),
                    help="the queues that get load (to find which one grows)")
    a = ap.parse_args()
    if a.seconds < BASELINE_AT + 2 * WINDOW * SAMPLE_EVERY:
        ap.error(f"--seconds must be at least {BASELINE_AT + 2 * WINDOW * SAMPLE_EVERY}")
    work = tempfile.mkdtemp(prefix="jobd-soak.")
    redis, receiver, slots = Redis(work, fsync="everysec"), Receiver(), []
    ok = False
    try:
        launch(work, redis, receiver, a.jobd, jobd_config, slots, 1)
        jobd = slots[0]
        stop, errors = threading.Event(), []
        clients = [Load(k, jobd.port, a.rate / a.clients, a.queues.split(","), stop, errors) for k in range(a.clients)]
        t0 = time.monotonic()
        for c in clients:
            c.start()
        samples = []  # (seconds, rss KiB, fds)
        while time.monotonic() - t0 < a.seconds:
            next_at = t0 + SAMPLE_EVERY * (len(samples) + 1)
            time.sleep(max(0.0, next_at - time.monotonic()))
            s = proc_sample(jobd.proc.pid)
            if s is None:
                raise RuntimeError(f"jobd is gone: {jobd.last_error_line()}")
            samples.append((round(time.monotonic() - t0), s[0], s[1]))
            print(f"soak: {samples[-1][0]:4d} s  rss {s[0] / 1024:7.1f} MiB  fds {s[1]}",
                  file=sys.stderr, flush=True)
        stop.set()
        for c in clients:
            c.join(10)
        # The smallest of three samples, at one minute and at the end:
        # connections in flight at a sampling moment are not growth.
        first = [s for s in samples if s[0] >= BASELINE_AT][:WINDOW]
        base = (first[0][0], min(s[1] for s in first), min(s[2] for s in first))
        last = (samples[-1][0], min(s[1] for s in samples[-WINDOW:]),
                min(s[2] for s in samples[-WINDOW:]))
        peak_rss = max(s[1] for s in samples if s[0] >= BASELINE_AT)
        rss_g, fd_g = growth(base[1], last[1]), growth(base[2], last[2])
        jobs = sum(c.n for c in clients)
        reqs = sum(c.requests for c in clients)
        ok = rss_g < a.limit and fd_g < a.limit and not errors
        for e in errors[:20]:
            print(f"soak: bad answer: {e}", file=sys.stderr)
        print(f"soak: {a.seconds:.0f} s, {jobs} jobs and {reqs} requests, {len(errors)} failed; "
              f"jobd RSS {base[1] / 1024:.1f} MiB at {base[0]} s -> {last[1] / 1024:.1f} MiB at "
              f"{last[0]} s ({rss_g:+.1f} %, peak {peak_rss / 1024:.1f} MiB), open fds "
              f"{base[2]} -> {last[2]} ({fd_g:+.1f} %); limit {a.limit:.0f} %: "
              f"{'OK' if ok else 'FAILED'}")
    finally:
        teardown("soak", work, ok, signal.SIGTERM, slots, receiver, redis)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
