"""Shared fixtures: real Redis (a private redis-server), a real SMTP server (aiosmtpd), SQLite files and a
fresh PostgreSQL database per run, and an injected clock."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from redis import Redis

from nurture.config import load_settings
from nurture.runtime import Runtime, build_runtime
from nurture.store.db import upgrade

ROOT = Path(__file__).resolve().parent.parent
# The tests' own content: a frozen copy of the starter sequences, templates and forms. Tests read this, never
# the project's live sequences/ (a user's edits must not fail `make test`); only test_starter_content.py does.
CONTENT = Path(__file__).resolve().parent / "content"
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeClock:
    """Time for tests: starts at a fixed instant and moves only when told."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))  # a Monday


# --- Redis -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on a free port: tests never touch the machine's shared Redis."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install -y redis-server; .ci/run does this)")
    port = free_port()
    directory = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(directory)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except Exception:
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    client = Redis.from_url(redis_server)
    client.flushall()
    yield redis_server
    client.flushall()


# --- SMTP --------------------------------------------------------------------------------------------------

@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


def ehlo_lines(session, hostname: str, responses: list[str], pipelining: bool) -> list[str]:  # noqa: ANN001
    """aiosmtpd's EHLO answer, with PIPELINING (RFC 2920) offered before its last line when `pipelining`, as
    Postfix, Exim and the big relays offer it. (A handle_EHLO hook must remember the client's name itself.)"""
    session.host_name = hostname
    return [*responses[:-1], "250-PIPELINING", responses[-1]] if pipelining else responses


@dataclass
class SmtpHandler:
    """Records what it accepts. `replies` maps a recipient to an SMTP reply given at RCPT time (e.g. 550);
    `on_data` may return a reply for a message (e.g. '451 try later') or do something drastic. It offers
    PIPELINING, as the servers nurture meets do; `pipelining=False` is one that does not."""

    received: list[Received] = field(default_factory=list)
    replies: dict[str, str] = field(default_factory=dict)
    on_data: Callable[[Received], str | None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    pipelining: bool = True

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: ANN001, ANN201
        return ehlo_lines(session, hostname, responses, self.pipelining)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201
        reply = self.replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201
        item = Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content)
        if self.on_data is not None:
            reply = self.on_data(item)
            if reply:
                return reply
        with self.lock:
            self.received.append(item)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt_tos]


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: SmtpHandler

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def received(self) -> list[Received]:
        return self.handler.received


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) in a thread, on a free port, receiving the bytes nurture sends."""
    handler = SmtpHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, data_size_limit=10_000_000)
    controller.start()
    yield SmtpServer("127.0.0.1", port, handler)
    controller.stop()


# --- Databases ---------------------------------------------------------------------------------------------

def _postgres_database() -> Iterator[str]:
    import psycopg

    name = f"nurture_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI and is not reachable at {PG_ADMIN_URL}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test that takes this runs on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nurture.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'nurture.db'}"


# --- Runtime -----------------------------------------------------------------------------------------------

@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the fixture sequences and templates (tests/content) that a test may edit."""
    root = tmp_path / "project"
    shutil.copytree(CONTENT / "sequences", root / "sequences")
    shutil.copytree(CONTENT / "email_templates", root / "email_templates")
    shutil.copy(CONTENT / "brand.env", root / "brand.env")
    return root


def worker_env(project: Path, database_url: str, **overrides: str) -> dict[str, str]:
    env = {
        "NURTURE_ROOT": str(project),
        "VAR_DIR": str(project / "var"),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key-0123456789",
        "API_KEY": "test-api-key-0123456789",
        "BASE_URL": "https://nurture.test",
        "MAIL_FROM": "Juniper Pottery Studio <hello@juniper.test>",
        "BRAND_NAME": "Juniper Pottery Studio",
        "POSTAL_ADDRESS": "12 Kiln Lane, Portland, OR 97201",
        "PATH": os.environ.get("PATH", ""),
    }
    env.update(overrides)
    return env


@pytest.fixture
def make_runtime(project: Path, clock: FakeClock) -> Callable[..., Runtime]:
    made: list[Runtime] = []

    def make(database_url: str, **overrides: str) -> Runtime:
        settings = load_settings(worker_env(project, database_url, **overrides))
        rt = build_runtime(settings, clock=clock)
        upgrade(rt.db)
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.db.dispose()


def write_sequence(project: Path, name: str, text: str) -> Path:
    path = project / "sequences" / f"{name}.yaml"
    path.write_text(text)
    return path
