"""cluster.py - the parts the chaos and soak suites start and stop: a
redis-server with AOF, jobd processes, a webhook receiver, and HTTP clients.
Python 3 standard library only. Every process started here is stopped by its
PID (Cluster.stop), and every wait is bounded in time."""

import http.client
import http.server
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time


def free_port():
    """A free loopback port below the kernel's ephemeral range (as tests/ports.sh)."""
    lo = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo = int(f.read().split()[0])
    except (OSError, ValueError):
        pass
    lo = lo if lo > 11000 else 32768
    for _ in range(200):
        port = random.randrange(10000, lo)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port found")


def wait_until(what, pred, timeout, step=0.05):
    """Polls pred until it is true; RuntimeError naming what after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(step)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def signal_and_wait(proc, sig, grace):
    """Sends sig to proc if it runs and waits for its exit (SIGKILL after
    grace seconds). False when it was not running."""
    if proc is None or proc.poll() is not None:
        return False
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    return True


def launch(work, redis, receiver, jobd_bin, config, slots, n):
    """Starts Redis and the receiver, writes config(redis port, receiver
    port) to the scratch folder, starts n jobd slots on it (appended to
    slots at once, so that teardown finds them even if this fails) and waits
    (30 s) until each answers /readyz 200."""
    redis.start()
    receiver.start()
    cfg_path = os.path.join(work, "jobd.json")
    with open(cfg_path, "w") as f:
        json.dump(config(redis.port, receiver.port), f)
    for i in range(n):
        slots.append(Jobd(os.path.abspath(jobd_bin), work, i, cfg_path))
        slots[-1].start()
    wait_until(f"{n} jobd ready", lambda: all(
        http_call(s.port, "GET", "/readyz", timeout=0.5)[0] == 200 for s in slots), 30, 0.1)


def teardown(name, work, ok, sig, jobds, receiver, redis, keep=False):
    """Stops what a suite started (jobd and Redis by sig) and removes its
    scratch folder, which is kept (and named) when the run failed."""
    for j in jobds:
        j.kill(sig)
    receiver.stop()
    redis.stop(sig)
    if ok and not keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"{name}: logs kept in {work}", file=sys.stderr)


def redis_cmd(port, *args, timeout=1.0):
    """One Redis command over RESP; the reply's first line as text, or None when unreachable."""
    payload = f"*{len(args)}\r\n".encode()
    for a in args:
        a = str(a).encode()
        payload += b"$%d\r\n%s\r\n" % (len(a), a)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(payload)
            return s.makefile("rb").readline().decode(errors="replace").strip()
    except OSError:
        return None


class Redis:
    """A redis-server of its own on a free port, AOF appendfsync always."""

    def __init__(self, workdir, fsync="always"):
        self.dir = os.path.join(workdir, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.fsync = fsync
        self.proc = None

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--appendonly", "yes",
                "--appendfsync", self.fsync, "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log")]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        # PONG, or -LOADING while the AOF is read back: either means it runs.
        wait_until("redis-server to answer", lambda: self._answers() or self.proc.poll() is not None, 20)
        if self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.proc.returncode}")

    def _answers(self):
        reply = redis_cmd(self.port, "PING")
        return reply is not None and (reply == "+PONG" or reply.startswith("-LOADING"))

    def stop(self, sig=signal.SIGKILL):
        """Stops it with sig and waits for its exit (SIGKILL after 10 s)."""
        signal_and_wait(self.proc, sig, 10)


class Jobd:
    """One jobd slot: a port and a config, restarted as new processes; each
    start appends to the slot's log with a marker line."""

    def __init__(self, jobd_bin, workdir, slot, config_path):
        self.bin = jobd_bin
        self.slot = slot
        self.port = free_port()
        self.config = config_path
        self.log = os.path.join(workdir, f"jobd-{slot}.log")
        self.proc = None
        self.starts = 0
        self.lock = threading.Lock()

    def start(self):
        with self.lock:
            self.starts += 1
            with open(self.log, "ab") as log:
                log.write(f"=== chaos: start {self.starts} of slot {self.slot}\n".encode())
                log.flush()
                env = dict(os.environ, JOBD_LISTEN=f"127.0.0.1:{self.port}")
                self.proc = subprocess.Popen([self.bin, "--config", self.config], env=env,
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        """Signals the running process and waits for it (SIGKILL after 30 s)."""
        with self.lock:
            return signal_and_wait(self.proc, sig, 30)

    def healthy(self):
        return http_call(self.port, "GET", "/healthz", timeout=0.5)[0] == 200

    def last_error_line(self):
        """The last ERROR line of the slot's log ('' when none)."""
        try:
            with open(self.log, "rb") as f:
                lines = [l for l in f.read().decode(errors="replace").splitlines() if " ERROR " in l]
            return lines[-1] if lines else ""
        except OSError:
            return ""


def http_call(port, method, path, body=None, timeout=5.0, conn=None):
    """One HTTP request; (status, parsed JSON or None). status 0 = no answer.
    With conn (an http.client.HTTPConnection) the connection is reused."""
    own = conn is None
    try:
        if own:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        return resp.status, parsed
    except (OSError, http.client.HTTPException):
        if conn:
            conn.close()
        return 0, None
    finally:
        if own and conn:
            conn.close()


class Receiver:
    """The webhook receiver: records every delivery (job id, attempt), takes
    args.ms milliseconds to answer, and answers 500 to the first attempt of a
    job whose args say fail_first."""

    def __init__(self):
        self.lock = threading.Lock()
        self.deliveries = {}  # job id -> [attempt, ...] in arrival order
        self.count = 0
        receiver = self

        class Hook(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    job = json.loads(body)
                    jid, attempt = job["id"], int(job["attempt"])
                    args = job.get("args") or {}
                    fail = bool(args.get("fail_first")) and attempt == 1
                    delay = min(float(args.get("ms", 0)), 5000) / 1000
                except (ValueError, KeyError, TypeError, AttributeError):
                    self.send_response(400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.deliveries.setdefault(jid, []).append(attempt)
                    receiver.count += 1
                time.sleep(delay)
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                # A killed jobd drops its connections mid-request: expected here.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Hook)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def proc_sample(pid):
    """(RSS in KiB, open fds) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        return rss, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration, ValueError):
        return None


def job_spec(rng, jid, webhook_share, fail_share):
    """One job of the mix: noop, sleep (10-300 ms) or the webhook ("hook",
    answered at once or after 50-200 ms), some of whose first attempts fail."""
    r = rng.random()
    if r < webhook_share:
        return {"id": jid, "type": "hook",
                "args": {"fail_first": rng.random() < fail_share, "ms": rng.choice((0, 0, 50, 200))}}
    if r < webhook_share + 0.25:
        return {"id": jid, "type": "sleep", "args": {"ms": rng.randrange(10, 300)}}
    return {"id": jid, "type": "noop"}


def expected_runs(spec):
    """Attempts a job needs when nothing goes wrong."""
    return 2 if spec["type"] == "hook" and spec["args"]["fail_first"] else 1


FINAL_STATES = ("succeeded", "dead", "cancelled")
