"""A local server that plays Twilio's Messages API, for the real twilio SDK to talk HTTP to (no network).

POST /2010-04-01/Accounts/{AccountSid}/Messages.json with HTTP basic auth, form fields as the SDK sends
them, and Twilio's JSON back: the message resource (sid "SM...", status "queued") or Twilio's error body
({"code", "message", "more_info", "status"}). Tests tell it to fail for a number with `fail(...)`.
GET on the same path lists the texts taken, newest first, filtered by To and From, one page of PageSize,
as Twilio's Messages list does; `fail_lists(...)` makes it answer an error instead.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-twilio-auth-token-0123456789"
FROM_NUMBER = "+15005550006"


@dataclass
class SentText:
    sid: str
    to: str
    body: str
    from_: str | None
    messaging_service_sid: str | None
    status_callback: str | None
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class Failure:
    status: int
    code: int
    message: str
    times: int | None  # None: every time


@dataclass
class FakeTwilio:
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    base_url: str = ""
    texts: list[SentText] = field(default_factory=list)
    failures: dict[str, Failure] = field(default_factory=dict)
    stalls: dict[str, float] = field(default_factory=dict)  # number -> seconds to wait before answering, once
    drops: set[str] = field(default_factory=set)  # numbers whose next text is dropped with no answer, once
    requests: int = 0
    lists: int = 0  # GET requests for the Messages list
    list_failure: Failure | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # each text's date_created (tests: their clock)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, to: str, status: int, code: int, message: str, times: int | None = None) -> None:
        """Answer sends to `to` with Twilio's error `code` (HTTP `status`), `times` times or always."""
        self.failures[to] = Failure(status, code, message, times)

    def stall(self, to: str, seconds: float) -> None:
        """Take the next text to `to` (it counts as sent) but answer only after `seconds`: a client that
        stops waiting sooner cannot know that Twilio has it."""
        self.stalls[to] = seconds

    def drop(self, to: str) -> None:
        """Read the next text to `to` whole, then close the connection with no answer and keep nothing: the
        client cannot tell this from a text taken and its answer lost."""
        self.drops.add(to)

    def fail_lists(self, status: int, code: int, message: str, times: int | None = None) -> None:
        self.list_failure = Failure(status, code, message, times)

    def to(self, number: str) -> list[SentText]:
        return [t for t in self.texts if t.to == number]

    def _failure(self, to: str) -> Failure | None:
        failure = self.failures.get(to)
        if failure is None:
            return None
        if failure.times is not None:
            failure.times -= 1
            if failure.times <= 0:
                del self.failures[to]
        return failure


def _error(status: int, code: int, message: str) -> tuple[Response, int]:
    return jsonify(code=code, message=message, more_info=f"https://www.twilio.com/docs/errors/{code}",
                   status=status), status


def create_app(fake: FakeTwilio) -> Flask:
    app = Flask("twilio_fake")

    @app.post("/2010-04-01/Accounts/<account_sid>/Messages.json")
    def create_message(account_sid: str) -> tuple[Response, int]:
        with fake.lock:
            fake.requests += 1
        auth = request.authorization
        if auth is None or (auth.username, auth.password) != (fake.account_sid, fake.auth_token) \
                or account_sid != fake.account_sid:
            return _error(401, 20003, "Authenticate")
        form = request.form
        if not form.get("To"):
            return _error(400, 21604, "A 'To' phone number is required.")
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return _error(400, 21603, "A 'From' phone number is required.")
        if not form.get("Body"):
            return _error(400, 21602, "Message body is required.")
        with fake.lock:
            failure = fake._failure(form["To"])
            dropped = form["To"] in fake.drops
            fake.drops.discard(form["To"])
        if failure is not None:
            return _error(failure.status, failure.code, failure.message)
        if dropped:
            _drop_connection()
        text = SentText("SM" + uuid.uuid4().hex, form["To"], form["Body"], form.get("From"),
                        form.get("MessagingServiceSid"), form.get("StatusCallback"), fake.clock())
        with fake.lock:
            fake.texts.append(text)
            stall = fake.stalls.pop(form["To"], 0.0)
        time.sleep(stall)  # (a real delay in the fake server's own thread; the test's clock is not involved)
        return jsonify(_resource(fake, text)), 201

    @app.get("/2010-04-01/Accounts/<account_sid>/Messages.json")
    def list_messages(account_sid: str) -> tuple[Response, int]:
        auth = request.authorization
        if auth is None or (auth.username, auth.password) != (fake.account_sid, fake.auth_token) \
                or account_sid != fake.account_sid:
            return _error(401, 20003, "Authenticate")
        with fake.lock:
            fake.lists += 1
            failure = fake.list_failure
            if failure is not None and failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    fake.list_failure = None
            texts = list(reversed(fake.texts))
        if failure is not None:
            return _error(failure.status, failure.code, failure.message)
        to, from_ = request.args.get("To"), request.args.get("From")
        size = int(request.args.get("PageSize", 50))
        found = [t for t in texts if (not to or t.to == to) and (not from_ or t.from_ == from_)][:size]
        uri = f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json?PageSize={size}"
        return jsonify(messages=[_resource(fake, t) for t in found], uri=uri, first_page_uri=uri + "&Page=0",
                       next_page_uri=None, previous_page_uri=None, page=0, page_size=size, start=0,
                       end=max(0, len(found) - 1)), 200

    return app


def _drop_connection() -> None:
    """Close the client's connection without answering (werkzeug's dev server hands its socket in the
    environ), as a connection that breaks after the request went out."""
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
    raise ConnectionAbortedError("dropped on purpose")


def _resource(fake: FakeTwilio, text: SentText) -> dict:
    now = format_datetime(text.created)
    return {
        "account_sid": fake.account_sid, "api_version": "2010-04-01", "body": text.body,
        "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
        "error_code": None, "error_message": None, "from": text.from_, "messaging_service_sid":
        text.messaging_service_sid, "num_media": "0", "num_segments": "1", "price": None, "price_unit": "USD",
        "sid": text.sid, "status": "accepted" if text.messaging_service_sid else "queued",
        "subresource_uris": {"media": f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{text.sid}/Media.json"},
        "to": text.to, "uri": f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{text.sid}.json",
    }


@contextmanager
def serve_fake_twilio() -> Iterator[FakeTwilio]:
    """The fake API on a free local port, in a thread; `base_url` is what TWILIO_API_BASE takes."""
    fake = FakeTwilio()
    server = make_server("127.0.0.1", 0, create_app(fake), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.base_url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield fake
    finally:
        server.shutdown()
