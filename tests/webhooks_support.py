"""What the webhooks-out tests share: a real HTTP receiver in a thread that can be told to fail its first
N requests, a secret, and a project whose webhooks.yaml points at the receiver."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks spec's example secret
SECRET_ENV = {"WEBHOOK_SECRET_CRM": SECRET, "WEBHOOKS_ALLOW_PRIVATE": "true"}


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    at: datetime | None  # when, by the test's clock


@dataclass
class Receiver:
    """An outbound webhook's receiver: answers `fail_status` to the first `fail_first` requests, then 204."""

    port: int = 0
    fail_first: int = 0
    fail_status: int = 503
    requests: list[Request] = field(default_factory=list)
    clock: Callable[[], datetime] | None = None  # the test's clock: when each request arrived
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/nurture"

    @property
    def accepted(self) -> list[Request]:
        return [r for r in self.requests if 200 <= r.status < 300]

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            status = self.fail_status if len(self.requests) < self.fail_first else 204
            self.requests.append(Request(path, headers, body, status, self.clock() if self.clock else None))
            return status


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = receiver.answer(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def receiver(clock: Callable[[], datetime]) -> Iterator[Receiver]:
    found = Receiver(clock=clock)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(found))
    found.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()


def write_webhooks(project: Path, url: str, events: str = "[contact.created]", name: str = "crm",
                   secret_env: str = "WEBHOOK_SECRET_CRM") -> Path:
    path = project / "webhooks.yaml"
    path.write_text(f"endpoints:\n  - name: {name}\n    url: {url}\n    events: {events}\n"
                    f"    secret_env: {secret_env}\n")
    return path
