#!/usr/bin/env python3
"""chaos.py - `make chaos`: jobd under process and Redis crashes.

A redis-server with AOF (appendfsync always), 3 jobd processes sharing two
Redis queues ("agg": aggregate with ack durable in front of redis; "plain":
redis alone), a webhook receiver, and several clients submitting JOBS jobs
(noop, sleep, and a webhook whose first attempt fails for some) with ids of
their own, retrying a 503 or a lost connection with the same ids. Meanwhile a
driver kill -9s a random jobd and restarts it (>= 20 times), and restarts
Redis (>= 2 times, by SIGKILL and by SIGTERM). Then every jobd runs until the
queues are drained, and every job answered 202 (or 200: already stored) is
read back. The run fails when a job is lost (404), stuck (not final), dead
without a reason, run twice without its lease having expired, or when a jobd
exits by itself (unless --allow-exits). One summary line gives the figures.
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
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import (FINAL_STATES, Receiver, Redis, expected_runs, http_call,  # noqa: E402
                     job_spec, launch, teardown)

QUEUES = ("agg", "plain")
LEASE_S = 2
FREEZE_S = LEASE_S + 1.5  # a frozen jobd's leases expire while it is stopped


def jobd_config(redis_port, hook_port, workers):
    """Short heartbeat and lease so that a killed process's jobs come back fast."""
    backoff = {"base": 0.1, "factor": 0, "jitter": 0, "max": 1}
    return {
        "workers": workers,
        "heartbeat": 0.25,
        "lease_expiry": LEASE_S,
        "shutdown_timeout": 2,
        "poll_interval": 0.2,
        "redis": {"url": f"redis://127.0.0.1:{redis_port}/0", "prefix": "chaos", "timeout": 1},
        "queues": {
            "agg": {"enqueue": [{"name": "aggregate", "ack": "durable"}], "dequeue": ["redis"],
                    "backoff": backoff},
            "plain": {"dequeue": ["redis"], "backoff": backoff},
        },
        "handlers": {"hook": {"kind": "webhook", "url": f"http://127.0.0.1:{hook_port}/hook",
                              "timeout": 5, "connect_timeout": 2}},
    }


class Tally:
    """Counters shared by the client threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.accepted = {}  # id -> (queue, spec)
        self.status = {202: 0, 200: 0}
        self.retried_503 = 0
        self.retried_conn = 0
        self.refused = []  # (status, body) of answers that are not 200/202/503
        self.given_up = 0

    def add(self, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)


class Client(threading.Thread):
    """Submits its batches at an even pace over `seconds`, each to a random
    jobd, until each is answered 202 or 200."""

    def __init__(self, k, batches, slots, tally, seconds, give_up_at):
        super().__init__(daemon=True)
        self.k, self.batches, self.slots, self.tally = k, batches, slots, tally
        self.seconds, self.give_up_at = seconds, give_up_at
        self.rng = random.Random(1000 + k)

    def run(self):
        t0 = time.monotonic()
        for i, (queue, specs, single) in enumerate(self.batches):
            due = t0 + self.seconds * i / max(1, len(self.batches))
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            body = json.dumps(specs[0] if single else specs)
            self.submit(queue, specs, body)

    def submit(self, queue, specs, body):
        while time.monotonic() < self.give_up_at:
            slot = self.rng.choice(self.slots)
            status, answer = http_call(slot.port, "POST", f"/queues/{queue}/jobs", body, timeout=5)
            if status in (200, 202):
                with self.tally.lock:
                    self.tally.status[status] += 1
                    for s in specs:
                        self.tally.accepted[s["id"]] = (queue, s)
                return
            if status == 0:
                self.tally.add(retried_conn=1)
            elif status == 503:
                self.tally.add(retried_503=1)
            else:
                with self.tally.lock:
                    self.tally.refused.append((status, answer))
                return
            time.sleep(self.rng.uniform(0.05, 0.25))
        self.tally.add(given_up=1)


def make_batches(n_jobs, n_clients, rng):
    """Per client: a list of (queue, [job specs], single) of sizes 1..40."""
    per = [[] for _ in range(n_clients)]
    made = 0
    k = 0
    while made < n_jobs:
        size = 1 if rng.random() < 0.2 else rng.randint(2, 40)
        size = min(size, n_jobs - made)
        specs = [job_spec(rng, f"c{k}-{made + j}", 0.15, 0.5) for j in range(size)]
        per[k].append((rng.choice(QUEUES), specs, size == 1))
        made += size
        k = (k + 1) % n_clients
    return per


class Driver:
    """Kills and restarts jobd processes and Redis on a schedule, freezes a
    jobd (SIGSTOP) for longer than its lease so that a live process loses its
    leases, and restarts any jobd that exited by itself (counted, with its
    last ERROR line)."""

    def __init__(self, slots, redis, seconds, kills, freezes, redis_restarts, rng):
        self.slots, self.redis, self.rng = slots, redis, rng
        self.events = sorted([(rng.uniform(3, seconds - 2), "kill") for _ in range(kills)] +
                             [(rng.uniform(3, seconds - 2 - FREEZE_S), "freeze")
                              for _ in range(freezes)] +
                             [(seconds * (i + 1) / (redis_restarts + 1), "redis")
                              for i in range(redis_restarts)])
        self.restart_at = {}  # slot -> monotonic time of its restart
        self.thaw_at = {}  # slot -> monotonic time of its SIGCONT
        self.kills = 0
        self.freezes = 0
        self.redis_restarts = []  # signal names
        self.self_exits = []  # (slot, exit status, last ERROR line)

    def idle(self):
        """The slots that run and are neither frozen nor about to restart."""
        return [s for s in self.slots if s not in self.restart_at and s not in self.thaw_at]

    def kill(self, slot, restart_in):
        if slot.kill(signal.SIGKILL):
            self.kills += 1
        self.restart_at[slot] = time.monotonic() + restart_in

    def freeze(self, slot):
        slot.proc.send_signal(signal.SIGSTOP)
        self.freezes += 1
        self.thaw_at[slot] = time.monotonic() + FREEZE_S

    def restart_redis(self):
        sig = signal.SIGKILL if len(self.redis_restarts) % 2 == 0 else signal.SIGTERM
        self.redis.stop(sig)
        self.redis_restarts.append(signal.Signals(sig).name)
        time.sleep(self.rng.uniform(0.2, 0.6))
        self.redis.start()
        # A jobd starting while Redis reads its AOF back.
        if self.idle():
            self.kill(self.rng.choice(self.idle()), 0)

    def tick(self, t0):
        """One round: due events, due restarts and thaws, self-exits. True
        while events remain."""
        now = time.monotonic()
        while self.events and t0 + self.events[0][0] <= now:
            _, what = self.events.pop(0)
            # One slot at least stays up, so that clients always find one.
            if what == "redis":
                self.restart_redis()
            elif len(self.idle()) > 1:
                slot = self.rng.choice(self.idle())
                if what == "kill":
                    self.kill(slot, self.rng.uniform(0.05, 0.5))
                else:
                    self.freeze(slot)
        for slot in list(self.thaw_at):
            if self.thaw_at[slot] <= time.monotonic():
                slot.proc.send_signal(signal.SIGCONT)
                del self.thaw_at[slot]
        for slot in self.slots:
            if slot in self.restart_at:
                if self.restart_at[slot] <= time.monotonic():
                    slot.start()
                    del self.restart_at[slot]
            elif not slot.alive():
                self.self_exits.append((slot.slot, slot.proc.returncode, slot.last_error_line()))
                self.restart_at[slot] = time.monotonic() + 0.2
        return bool(self.events)

    def settle(self, timeout):
        """Runs ticks until every slot runs and answers /healthz."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.tick(0)
            if len(self.idle()) == len(self.slots) and all(s.healthy() for s in self.slots):
                return True
            time.sleep(0.1)
        return False


def queue_pending(slots):
    """Jobs not final yet in both queues by the stores' counts, or None."""
    for slot in slots:
        total = 0
        for q in QUEUES:
            status, info = http_call(slot.port, "GET", f"/queues/{q}", timeout=2)
            if status != 200:
                break
            c = info.get("counts", {})
            total += sum(c.get(k, 0) for k in ("scheduled", "enqueued", "running", "retrying"))
        else:
            return total
    return None


def read_back(slots, accepted):
    """GET of every accepted job, 4 at a time: {id: (status, view)}."""
    ids = list(accepted)
    out = {}

    def part(chunk, port):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for jid in chunk:
            for _ in range(5):
                st, view = http_call(port, "GET", f"/queues/{accepted[jid][0]}/jobs/{jid}",
                                     conn=conn)
                if st != 0 and st != 503:
                    break
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                time.sleep(0.2)
            out[jid] = (st, view)
        conn.close()

    with ThreadPoolExecutor(4) as ex:
        for i in range(4):
            ex.submit(part, ids[i::4], slots[i % len(slots)].port)
    return out


def log_counts(slots):
    """Events of the jobd logs that explain re-runs: jobs requeued by the
    reaper, outcomes refused as stale, processes declared dead while alive."""
    counts = {"requeued": 0, "stale": 0, "lease_lost": 0, "loading_exits": 0}
    for slot in slots:
        try:
            with open(slot.log, "rb") as f:
                text = f.read().decode(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if "redis.requeued" in line:
                word = line.split(": ", 1)[-1].split()[0]
                counts["requeued"] += int(word) if word.isdigit() else 0
            elif "job.stale" in line:
                counts["stale"] += 1
            elif "redis.lease_lost" in line:
                counts["lease_lost"] += 1
    return counts


def analyse(accepted, views, deliveries):
    """The figures of the end state and the list of what went wrong."""
    fig = {"succeeded": 0, "dead": 0, "cancelled": 0, "lost": 0, "stuck": 0,
           "extra_attempts": 0, "hook_jobs": 0, "deliveries": 0, "redelivered": 0,
           "unexplained": 0}
    problems = []
    for jid, (queue, spec) in accepted.items():
        status, view = views.get(jid, (0, None))
        if status == 404:
            fig["lost"] += 1
            problems.append(f"lost: {queue}/{jid} answered 404")
            continue
        if status != 200 or not isinstance(view, dict):
            fig["stuck"] += 1
            problems.append(f"unreadable: {queue}/{jid} answered {status}")
            continue
        state, attempts = view.get("state"), view.get("attempts", 0)
        if state not in FINAL_STATES:
            fig["stuck"] += 1
            problems.append(f"stuck: {queue}/{jid} is {state} after the drain")
            continue
        fig[state] += 1
        if state != "succeeded":
            problems.append(f"{state}: {queue}/{jid} attempts {attempts}: {view.get('last_error')}")
        fig["extra_attempts"] += max(0, attempts - expected_runs(spec))
        if spec["type"] != "hook":
            continue
        fig["hook_jobs"] += 1
        runs = deliveries.get(jid, [])
        fig["deliveries"] += len(runs)
        fig["redelivered"] += max(0, len(runs) - expected_runs(spec))
        if len(set(runs)) != len(runs):
            fig["unexplained"] += len(runs) - len(set(runs))
            problems.append(f"duplicate without lease expiry: {jid} attempts delivered {runs}")
        if runs and max(runs) > attempts:
            problems.append(f"delivery not counted: {jid} delivered {runs}, attempts {attempts}")
        if state == "succeeded" and not runs:
            problems.append(f"succeeded without a delivery: {jid}")
    return fig, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobd", required=True, help="the jobd binary")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("CHAOS_JOBS", 20000)))
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("CHAOS_SECONDS", 100)),
                    help="length of the load and of the kills")
    ap.add_argument("--kills", type=int, default=int(os.environ.get("CHAOS_KILLS", 24)))
    ap.add_argument("--freezes", type=int, default=int(os.environ.get("CHAOS_FREEZES", 3)),
                    help=f"times a jobd is stopped (SIGSTOP) for {FREEZE_S} s")
    ap.add_argument("--redis-restarts", type=int, default=2)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--drain", type=float, default=60, help="seconds allowed to drain")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED", time.time())))
    ap.add_argument("--allow-exits", action="store_true",
                    default=os.environ.get("CHAOS_ALLOW_EXITS") == "1",
                    help="do not fail on a jobd that exited by itself")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="jobd-chaos.")
    redis, receiver, slots = Redis(work), Receiver(), []
    ok = False
    try:
        launch(work, redis, receiver, a.jobd, lambda rp, hp: jobd_config(rp, hp, a.workers),
               slots, 3)

        tally = Tally()
        driver = Driver(slots, redis, a.seconds, a.kills, a.freezes, a.redis_restarts, rng)
        batches = make_batches(a.jobs, a.clients, rng)
        t0 = time.monotonic()
        clients = [Client(k, batches[k], slots, tally, a.seconds * 0.95, t0 + a.seconds + 60)
                   for k in range(a.clients)]
        for c in clients:
            c.start()
        while driver.tick(t0) or any(c.is_alive() for c in clients):
            time.sleep(0.05)
        load_s = time.monotonic() - t0
        if not driver.settle(30):
            raise RuntimeError("the jobd processes did not come back after the chaos")

        drain_t0 = time.monotonic()
        pending = None
        while time.monotonic() - drain_t0 < a.drain:
            driver.tick(0)
            pending = queue_pending(slots)
            if pending == 0:
                break
            time.sleep(0.5)
        drain_s = time.monotonic() - drain_t0

        views = read_back(slots, tally.accepted)
        with receiver.lock:
            deliveries = {k: list(v) for k, v in receiver.deliveries.items()}
        fig, problems = analyse(tally.accepted, views, deliveries)
        logs = log_counts(slots)
        loading = sum(1 for _, _, line in driver.self_exits if "LOADING" in line)

        if len(tally.accepted) != a.jobs:
            problems.append(f"only {len(tally.accepted)} of {a.jobs} jobs accepted "
                            f"({tally.given_up} batches given up, {len(tally.refused)} refused: "
                            f"{tally.refused[:3]})")
        if driver.kills < 20 and a.kills >= 20:
            problems.append(f"only {driver.kills} jobd kills")
        if len(driver.redis_restarts) < min(2, a.redis_restarts):
            problems.append(f"only {len(driver.redis_restarts)} Redis restarts")
        for slot, rc, line in driver.self_exits:
            msg = f"jobd {slot} exited by itself with status {rc}: {line}"
            if a.allow_exits:
                print("chaos: note: " + msg, file=sys.stderr)
            else:
                problems.append(msg)
        if pending != 0:
            problems.append(f"the queues' counts still show {pending} unfinished jobs "
                            f"after {a.drain:.0f} s")

        for p in problems[:40]:
            print("chaos: " + p, file=sys.stderr)
        if len(problems) > 40:
            print(f"chaos: ... and {len(problems) - 40} more", file=sys.stderr)
        total_s = time.monotonic() - started
        print(f"chaos: {len(tally.accepted)} jobs accepted by 3 jobd on 2 Redis queues "
              f"(202: {tally.status[202]} answers, 200 replayed: {tally.status[200]}; "
              f"retried: {tally.retried_503} x 503, {tally.retried_conn} x no answer) in "
              f"{load_s:.0f} s with {driver.kills} jobd kill -9, {driver.freezes} jobd frozen for "
              f"{FREEZE_S} s and {len(driver.redis_restarts)} "
              f"Redis restarts ({'+'.join(driver.redis_restarts)}), {len(driver.self_exits)} jobd "
              f"exits by themselves ({loading} on LOADING); after {drain_s:.1f} s of drain: "
              f"{fig['succeeded']} succeeded, {fig['dead']} dead, {fig['cancelled']} cancelled, "
              f"{fig['lost']} lost, {fig['stuck']} stuck; {fig['extra_attempts']} attempts counted "
              f"by lease expiry ({logs['requeued']} jobs requeued by reapers, {logs['stale']} "
              f"stale outcomes, {logs['lease_lost']} live processes declared dead); webhook: "
              f"{fig['deliveries']} deliveries for {fig['hook_jobs']} jobs, {fig['redelivered']} "
              f"duplicate executions ({fig['unexplained']} without a lease expiry); "
              f"{'OK' if not problems else f'{len(problems)} PROBLEMS'} "
              f"(seed {a.seed}, {total_s:.0f} s)")
        ok = not problems
    finally:
        teardown("chaos", work, ok, signal.SIGKILL, slots, receiver, redis, a.keep)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
