"""P4 intake: sign-ups through the real form endpoint under gunicorn, against a bare Flask endpoint.

    python bench/intake.py [--database postgresql|sqlite] [--seconds 5] [--rounds 5] [--clients 4]
                           [--rate 100] [--steady-seconds 20]

Two gunicorn servers, each started with the Procfile's `web:` command line (the app spec aside, and the
caller's WEB_CONCURRENCY passed on, so both get the same workers): nurture's app on a fresh database
(PostgreSQL by default: a database created for the run and dropped at the end) with a private
redis-server (the per-IP rate limit and the worker nudge use it, as in production), and bench/bare_app.py.
FORM_RATE_LIMIT is raised out of the way (every request comes from 127.0.0.1); nothing else is changed.

  capacity  `--clients` threads, each posting one form after the other (a new connection each time, as the
            sync worker closes it), for `--seconds`, to one server and then the other; `--rounds` rounds,
            each a run of both, the bare one first in every other round; each round gives a ratio of its
            two rates, and the median of those is the figure: target signup / bare >= 0.3.
  steady    `--rate` sign-ups a second on a fixed schedule for `--steady-seconds` (open loop: a request
            is sent at its time whether or not earlier ones have come back, and its latency counts from
            that time, so a stall shows in the figures instead of slowing the load): target p99 < 100 ms.
            Not run when the capacity measured is below the rate (the backlog would only grow).

Every sign-up is a new address on the starter form (beginners-guide: double opt-in, the SMS box ticked
with a phone number), posted as a browser would (urlencoded, with the signed start time and the empty
honeypot). Checks: every answer is the 303 to the thank-you page, and the database holds one contact
per sign-up sent. The client is raw sockets with prepared bytes, so it costs the server's cores little.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from dispatch import cpu_seconds, descendants_of
from harness import (
    ROOT,
    SetupError,
    log,
    machine,
    percentile,
    postgres_database,
    project_env,
    project_runtime,
    start_redis,
    stop_processes,
    summary,
)
from smtp_sink import free_port
from sqlalchemy import func, select
from sqlmodel import Session

from nurture.content.forms import HONEYPOT, STARTED
from nurture.store.db import upgrade
from nurture.store.models import Contact

FORM = "beginners-guide"
RATIO_TARGET, P99_TARGET_MS = 0.3, 100.0


class Server:
    """One gunicorn, started with the Procfile's command line and `app` as the app spec."""

    def __init__(self, name: str, app: str, env: dict[str, str], tmp: Path, stack: contextlib.ExitStack) -> None:
        self.name, self.port = name, free_port()
        command = procfile_web().replace("${PORT:-8000}", str(self.port)).replace("'nurture.web:create_app()'", app)
        self.log_path = tmp / f"gunicorn-{name}.log"
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen(["sh", "-c", f"exec {command}"], cwd=ROOT, env=env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        stack.callback(stop_processes, [(self.process, f"gunicorn {name}")])
        self.command = command

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SetupError(f"gunicorn {self.name} exited:\n{self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                if request(self.port, f"GET /forms/{FORM} HTTP/1.1\r\nHost: x\r\n\r\n".encode())[0] == 200:
                    return
            time.sleep(0.1)
        raise SetupError(f"gunicorn {self.name} did not answer within {timeout:.0f} s")

    def workers(self) -> int:
        return len(re.findall(r"Booting worker", self.log_path.read_text()))

    def cpu(self) -> float:
        """CPU seconds used so far by gunicorn and its workers (from /proc)."""
        return sum(cpu_seconds(pid, children=False) for pid in [self.process.pid, *descendants_of(self.process.pid)])


def procfile_web() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.split(":", 1)[1].strip()
    raise SetupError("the Procfile has no web: line")


def request(port: int, data: bytes) -> tuple[int, bytes]:
    """One request on a new connection; (status, response head). The sync worker closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    return int(response[9:12]), response[:response.find(b"\r\n\r\n")]


class Signups:
    """Prepared POST requests, each a new address; thread-safe to draw from."""

    def __init__(self, started: str, prefix: str) -> None:
        self.started, self.prefix, self.sent = started, prefix, 0
        self._lock = threading.Lock()

    def next(self) -> bytes:
        with self._lock:
            self.sent += 1
            i = self.sent
        body = urlencode({"email": f"{self.prefix}{i:07d}@example.com", "first_name": "Ann", "phone": "+15035550100",
                          "sms_consent": "on", "interest": "Mugs", HONEYPOT: "", STARTED: self.started}).encode()
        head = (f"POST /forms/{FORM} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: nurture-bench\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n")
        return head.encode() + body


def check_answer(status: int, head: bytes) -> str | None:
    if status != 303 or f"/forms/{FORM}/thanks".encode() not in head:
        return f"{status} {head[:200]!r}"
    return None


def capacity(port: int, signups: Signups, clients: int, seconds: float) -> tuple[float, list[str]]:
    """Requests a second, `clients` posting back to back for `seconds`."""
    done, errors = [0] * clients, []
    stop = time.perf_counter() + seconds

    def client(k: int) -> None:
        while time.perf_counter() < stop:
            status, head = request(port, signups.next())
            if (problem := check_answer(status, head)) is not None:
                errors.append(problem)
            done[k] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - start), errors


def steady(port: int, signups: Signups, rate: float, seconds: float) -> tuple[list[float], list[str]]:
    """Latencies (ms) of `rate` requests a second on a fixed schedule, each timed from its scheduled start."""
    count = int(rate * seconds)
    prepared = [signups.next() for _ in range(count)]
    latencies, errors = [0.0] * count, []
    start = time.perf_counter() + 0.05

    def one(i: int) -> None:
        due = start + i / rate
        status, head = request(port, prepared[i])
        latencies[i] = 1000 * (time.perf_counter() - due)
        if (problem := check_answer(status, head)) is not None:
            errors.append(problem)

    with ThreadPoolExecutor(max_workers=64) as pool:
        for i in range(count):
            time.sleep(max(0.0, start + i / rate - time.perf_counter()))
            pool.submit(one, i)
    return latencies, errors


def nurture_env(tmp: Path, database_url: str, redis_url: str) -> dict[str, str]:
    passed = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "WEB_CONCURRENCY")}
    env = project_env(tmp, database_url, redis_url, FORM_RATE_LIMIT="1000000 per minute")
    return {**passed, **env, "PATH": f"{Path(sys.executable).parent}:{passed.get('PATH', '')}",
            "PYTHONPATH": str(Path(__file__).resolve().parent)}


@contextlib.contextmanager
def servers(database: str) -> Iterator[tuple[Server, Server, Session, str]]:
    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="nurture-bench-intake-"))
        stack.callback(shutil.rmtree, tmp, True)
        redis_url, _ = start_redis(tmp, stack)
        url = stack.enter_context(postgres_database()) if database == "postgresql" else f"sqlite:///{tmp / 'n.db'}"
        env = nurture_env(tmp, url, redis_url)
        rt = project_runtime(env)
        stack.callback(rt.db.dispose)
        upgrade(rt.db)
        started = rt.signer.form_token(FORM, datetime.now(UTC) - timedelta(minutes=1))
        real = Server("signup", "'nurture.web:create_app()'", env, tmp, stack)
        bare = Server("bare", "'bare_app:app'", env, tmp, stack)
        real.wait_ready()
        bare.wait_ready()
        yield real, bare, stack.enter_context(Session(rt.db)), started


def contacts_in(session: Session) -> int:
    return session.execute(select(func.count()).select_from(Contact)).scalar_one()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--seconds", type=float, default=5.0, help="each capacity run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--steady-seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    try:
        with servers(args.database) as (real, bare, session, started):
            log(f"setup: {machine()}; {real.workers()} gunicorn worker(s) each: {real.command}")
            return measure(args, real, bare, session, started)
    except SetupError as exc:
        log(f"bench: setup failed: {exc}")
        return 2


def measure(args: argparse.Namespace, real: Server, bare: Server, session: Session, started: str) -> int:
    signups, bare_posts = Signups(started, "intake"), Signups(started, "bare")
    rates: dict[str, list[float]] = {"signup": [], "bare": []}
    cpu: dict[str, list[float]] = {"signup": [], "bare": []}  # server CPU ms per request, each round
    problems: list[str] = []
    # The machine's speed drifts by half within minutes (bench/README.md): each round's two runs are
    # back to back, and compared with each other, not with another round's; which goes first alternates,
    # so that a drift over the run does not always favour the same one.
    turns = (("bare", bare, bare_posts), ("signup", real, signups))
    for round_number in range(args.rounds):
        for name, server, posts in turns if round_number % 2 == 0 else turns[::-1]:
            before = server.cpu()
            rate, errors = capacity(server.port, posts, args.clients, args.seconds)
            rates[name].append(rate)
            cpu[name].append(1000 * (server.cpu() - before) / max(1.0, rate * args.seconds))
            problems += [f"{name}: {e}" for e in errors[:3]]
    median = {name: statistics.median(values) for name, values in rates.items()}
    cpu_median = {name: statistics.median(values) for name, values in cpu.items()}
    for name, values in rates.items():
        print(f"capacity {name}: " + ", ".join(f"{v:.0f}/s" for v in values) + f" (median {median[name]:.0f}/s; "
              f"{args.clients} clients, {args.seconds:.0f} s each); server CPU {cpu_median[name]:.2f} ms a request",
              flush=True)
    # On a busy machine the rates swing with the load; CPU per request is steadier, and its ratio is what
    # the rates' ratio comes to when the server, not waiting, is what limits.
    print(f"cpu ratio={cpu_median['bare'] / cpu_median['signup']:.2f} (bare CPU / sign-up CPU per request)",
          flush=True)
    p99 = float("inf")
    if median["signup"] < args.rate:  # the backlog would only grow: its p99 is the length of the run
        print(f"steady {args.rate:.0f}/s: not run, the capacity ({median['signup']:.0f}/s) is below it", flush=True)
    else:
        latencies, errors = steady(real.port, signups, args.rate, args.steady_seconds)
        problems += [f"steady: {e}" for e in errors[:3]]
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        print(f"steady {args.rate:.0f}/s for {args.steady_seconds:.0f} s ({len(latencies)} sign-ups): p50 "
              f"{p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.1f} ms", flush=True)
    if (stored := contacts_in(session)) != signups.sent:
        problems.append(f"{stored} contacts stored for {signups.sent} sign-ups sent")
    for problem in problems:
        print(f"FAILED: {problem}", flush=True)
    ratios = [signup / bare for signup, bare in zip(rates["signup"], rates["bare"], strict=True)]
    ratio = statistics.median(ratios)
    print("round ratios: " + ", ".join(f"{r:.2f}" for r in ratios) + f" (median {ratio:.2f}; the medians' ratio "
          f"{median['signup'] / median['bare']:.2f})", flush=True)
    print(f"ratio={ratio:.2f} (target >= {RATIO_TARGET}); p99 {p99:.1f} ms at {args.rate:.0f}/s (target < "
          f"{P99_TARGET_MS:.0f} ms)", flush=True)
    figure = (f"{median['signup']:.0f} sign-ups/s against {median['bare']:.0f}/s bare (medians); median of "
              f"{len(ratios)} rounds' ratios {ratio:.2f}; p99 {p99:.0f} ms at {args.rate:.0f}/s")
    summary(f"P4 intake ({args.database})", figure, f">= {RATIO_TARGET} and p99 < {P99_TARGET_MS:.0f} ms",
            ratio >= RATIO_TARGET and p99 < P99_TARGET_MS and not problems)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
