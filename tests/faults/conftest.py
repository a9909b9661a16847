"""The fault suite's machinery: real worker processes (worker.py), a private redis-server that can be shut
down and started again on the same port, an SMTP server that can be slowed, made to refuse, or made to
drop the connection, and the two numbers every fault run is judged by.

Every test here is marked `faults` (`make faults` runs them alone; `make test` runs them with the rest).
Workers read the real clock, so these tests wait for real: each polls for "drained" with a bounded
deadline and asserts nothing about how long it took; the time is reported, not judged.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from redis import Redis
from redis.exceptions import RedisError
from sqlmodel import Session, select

from nurture.store.models import Contact, Delivery, Enrollment, Event
from tests.conftest import ROOT, FakeClock, _postgres_database, ehlo_lines, free_port, worker_env
from tests.helpers import add_contact

FIRST_STEP = "thank-you"  # the customer sequence's first step: due at enrollment
REPORT: list[dict] = []


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    if not REPORT:
        return
    terminalreporter.section("fault runs")
    for run in REPORT:
        terminalreporter.write_line(
            f"{run['fault']:<44} sent {run['sent']:>3}  duplicates {run['duplicates']} "
            f"(interrupted {run['interrupted']})  lost {run['lost']}  failed {run['failed']}  "
            + (f"drained in {run['drain_seconds']:.1f}s" if run["drain_seconds"] is not None else "NOT DRAINED"))
    path = os.environ.get("FAULT_REPORT")
    if path:  # bench-style record of the figures quoted in docs/delivery.md
        Path(path).write_text(json.dumps(REPORT, indent=2))


# --- A Redis that can be restarted ----------------------------------------------------------------------------

@dataclass
class RestartableRedis:
    port: int
    directory: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.answers(), 20, "redis-server to answer")

    def shutdown(self) -> None:
        """SHUTDOWN NOSAVE, as an operator restarting it would (queued jobs are lost with it)."""
        try:
            Redis.from_url(self.url).shutdown(nosave=True)
        except RedisError:
            pass  # the connection drops as the server goes: that is the answer
        assert self.process is not None
        self.process.wait(timeout=20)

    def answers(self) -> bool:
        try:
            return bool(Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except RedisError:
            return False


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database: the several-workers faults are PostgreSQL's (row locks, SKIP LOCKED)."""
    yield from _postgres_database()


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    redis = RestartableRedis(free_port(), tmp_path)
    redis.start()
    yield redis
    if redis.process is not None and redis.process.poll() is None:
        redis.process.terminate()
        redis.process.wait(timeout=20)


# --- An SMTP server that misbehaves on request ------------------------------------------------------------------

@dataclass
class FaultySmtp:
    """Accepts and records messages, unless told otherwise. Runs its own asyncio loop in a thread, and a slow
    reply is an `await`, so one slow session never holds up the others.

    `delay`: seconds before answering each DATA. `script`: per recipient, the replies to give on its next
    attempts, in order ("550 ..." at RCPT, "451 ..."/"421 ..." at DATA, "drop" to close the connection
    without a word, or "accept-drop" to keep the message, as received, and then close without the 250).
    `on_accept`: called with (recipient, session) just before the 250 goes back.
    """

    delay: float = 0.0
    script: dict[str, list[str]] = field(default_factory=dict)
    on_accept: Callable[[str, object], None] | None = None
    received: list[tuple[str, str]] = field(default_factory=list)  # (recipient, Message-ID)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: ANN001, ANN201
        return ehlo_lines(session, hostname, responses, pipelining=True)  # the path a real relay takes

    def _next(self, address: str, stage: str) -> str | None:
        with self.lock:
            replies = self.script.get(address) or []
            if replies and (replies[0].startswith("5") == (stage == "RCPT")):
                return replies.pop(0)
        return None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201
        reply = self._next(address, "RCPT")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201
        recipient = envelope.rcpt_tos[0]
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = self._next(recipient, "DATA")
        if reply == "drop":
            server.transport.close()
            return "421 4.4.2 connection dropped"  # never reaches the client: the connection is gone
        if reply and reply != "accept-drop":
            return reply
        data = envelope.original_content or envelope.content
        message_id = next((line.split(b":", 1)[1].strip().decode() for line in data.splitlines()
                           if line.lower().startswith(b"message-id:")), "")
        with self.lock:
            self.received.append((recipient, message_id))
        if reply == "accept-drop":  # the server has it; the client never hears so
            server.transport.close()
            return "250 never sent"
        if self.on_accept is not None:
            self.on_accept(recipient, session)
        return "250 Message accepted for delivery"

    def count(self) -> int:
        with self.lock:
            return len(self.received)


@pytest.fixture
def faulty_smtp() -> Iterator[tuple[FaultySmtp, str]]:
    handler = FaultySmtp()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    # A 3 s timeout: the workers' 10 s lease must cover three times it (Settings refuses a shorter lease).
    yield handler, f"smtp://127.0.0.1:{port}?timeout=3"
    controller.stop()


# --- Worker processes -----------------------------------------------------------------------------------------

@dataclass
class Workers:
    """worker.py processes sharing one queue; `ticking` are the ones that also run the tick. Each one's
    output goes to worker-N.log in `logs`, to read when a run goes wrong."""

    env: dict[str, str]
    logs: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    ticking: set[int] = field(default_factory=set)

    def start(self, count: int, tick: bool = False) -> list[subprocess.Popen]:
        started = []
        for _ in range(count):
            args = [sys.executable, str(ROOT / "worker.py")] + ([] if tick else ["--no-tick"])
            log = open(self.logs / f"worker-{len(self.processes)}.log", "wb")  # noqa: SIM115 (the child holds it)
            # A session of its own, so a SIGKILL can be aimed at one worker's tree (see kill_tree).
            process = subprocess.Popen(args, env=self.env, cwd=ROOT, start_new_session=True, stdout=log,
                                       stderr=subprocess.STDOUT)
            log.close()
            self.processes.append(process)
            if tick:
                self.ticking.add(process.pid)
            started.append(process)
        return started

    def alive(self) -> list[subprocess.Popen]:
        return [p for p in self.processes if p.poll() is None]

    def stop(self) -> None:
        for process in self.alive():
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kill_tree(process.pid)
                process.wait(timeout=10)


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL a worker, its work horse and its tick process: what a crashed machine leaves of them."""
    for victim in [pid, *children_of(pid)]:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def workers(project: Path) -> Iterator[Callable[..., Workers]]:
    made: list[Workers] = []

    def make(database_url: str, **settings: str) -> Workers:
        defaults = {"EMAIL_BACKEND": "smtp", "TICK_SECONDS": "1", "BATCH_SIZE": "5", "CLAIM_LEASE_SECONDS": "10"}
        group = Workers(worker_env(project, database_url, **{**defaults, **settings}), project)
        made.append(group)
        return group

    yield make
    for group in made:
        group.stop()


# --- The two numbers ----------------------------------------------------------------------------------------

def wait_until(condition: Callable[[], bool], deadline_seconds: float, what: str) -> float:
    """Poll `condition` until it holds; fail after the deadline (a bound, not a timing assertion)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > deadline_seconds:
            pytest.fail(f"gave up waiting for {what} after {deadline_seconds}s")
        time.sleep(0.2)
    return time.monotonic() - started


def drain(rt, deadline_seconds: float) -> float | None:  # noqa: ANN001
    """Seconds until every first step ended sent or failed, or None if that had not happened by the deadline
    (the caller reports the figures first, then fails)."""
    started = time.monotonic()
    while not settled(rt):
        if time.monotonic() - started > deadline_seconds:
            return None
        time.sleep(0.2)
    return time.monotonic() - started


def enroll(rt, clock: FakeClock, count: int) -> list[str]:  # noqa: ANN001
    """`count` contacts whose first step is due now, by the real clock the workers read."""
    clock.now = datetime.now(UTC)
    emails = [f"f{n:03d}@example.com" for n in range(count)]
    for email in emails:
        add_contact(rt, email, "customer")
    return emails


def first_steps(rt) -> dict[str, Delivery | None]:  # noqa: ANN001
    """Each contact's delivery of the first step (None while it has none)."""
    with Session(rt.db) as session:
        rows = session.exec(select(Contact.email, Delivery).join(Enrollment, Enrollment.contact_id == Contact.id)
                            .outerjoin(Delivery, (Delivery.enrollment_id == Enrollment.id)
                                       & (Delivery.step_id == FIRST_STEP))).all()
    return dict(rows)


def settled(rt) -> bool:  # noqa: ANN001
    return all(d is not None and d.status in ("sent", "failed") for d in first_steps(rt).values())


def interrupted_deliveries(rt) -> set[int]:  # noqa: ANN001
    with Session(rt.db) as session:
        return set(session.exec(select(Event.delivery_id).where(Event.type == "email.interrupted")).all())


@dataclass
class Outcome:
    sent: int
    duplicates: dict[str, int]  # recipient -> extra copies received
    lost: list[str]
    failed: dict[str, str]  # recipient -> reason
    interrupted: set[int]


def judge(rt, smtp: FaultySmtp, fault: str, drain_seconds: float | None) -> Outcome:  # noqa: ANN001
    """Count what the server got against what the database says, report it, and return it."""
    steps = first_steps(rt)
    copies = Counter(recipient for recipient, _ in smtp.received)
    outcome = Outcome(
        sent=sum(1 for d in steps.values() if d is not None and d.status == "sent"),
        duplicates={email: n - 1 for email, n in copies.items() if n > 1},
        lost=[email for email, d in steps.items() if d is None or d.status not in ("sent", "failed")
              or (d.status == "failed" and not d.error)],
        failed={email: d.error or "" for email, d in steps.items() if d is not None and d.status == "failed"},
        interrupted=interrupted_deliveries(rt),
    )
    REPORT.append({"fault": fault, "sent": outcome.sent, "duplicates": sum(outcome.duplicates.values()),
                   "interrupted": len(outcome.interrupted), "lost": len(outcome.lost),
                   "failed": len(outcome.failed), "drain_seconds": drain_seconds})
    return outcome


def assert_exactly_once(rt, smtp: FaultySmtp, outcome: Outcome) -> None:  # noqa: ANN001
    """No contact got the step twice, except in the documented window (a crash after the server's 250 and
    before the commit), and each such resend is on the record as `email.interrupted` with the same
    Message-ID; and every due step ended sent, or failed with a reason."""
    steps = first_steps(rt)
    assert outcome.lost == []
    for email in outcome.duplicates:
        delivery = steps[email]
        assert delivery is not None and delivery.id in outcome.interrupted, f"{email} got the step twice"
        assert len({mid for r, mid in smtp.received if r == email}) == 1, f"{email}: two Message-IDs"
