"""A local server that plays Twilio's Messages API, for the real twilio SDK to talk HTTP to (no network).

POST /2010-04-01/Accounts/{AccountSid}/Messages.json with HTTP basic auth, form fields as the SDK sends
them, and Twilio's JSON back: the message resource (sid "SM...", status "queued") or Twilio's error body
({"code", "message", "more_info", "status"}). Tests tell it to fail for a number with `fail(...)`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
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
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, to: str, status: int, code: int, message: str, times: int | None = None) -> None:
        """Answer sends to `to` with Twilio's error `code` (HTTP `status`), `times` times or always."""
        self.failures[to] = Failure(status, code, message, times)

    def stall(self, to: str, seconds: float) -> None:
        """Take the next text to `to` (it counts as sent) but answer only after `seconds`: a client that
        stops waiting sooner cannot know that Twilio has it."""
        self.stalls[to] = seconds

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
        if failure is not None:
            return _error(failure.status, failure.code, failure.message)
        text = SentText("SM" + uuid.uuid4().hex, form["To"], form["Body"], form.get("From"),
                        form.get("MessagingServiceSid"), form.get("StatusCallback"))
        with fake.lock:
            fake.texts.append(text)
            stall = fake.stalls.pop(form["To"], 0.0)
        time.sleep(stall)  # (a real delay in the fake server's own thread; the test's clock is not involved)
        return jsonify(_resource(fake, text)), 201

    return app


def _resource(fake: FakeTwilio, text: SentText) -> dict:
    now = format_datetime(datetime.now(UTC))
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
