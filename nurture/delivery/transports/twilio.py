"""The Twilio transport: the twilio SDK's Messages API, one HTTP session reused for a whole batch.

Twilio's error codes are translated here, at the edge, into what the send path acts on:
21610 (the recipient replied STOP to this sender) -> permanent, opted out; 21211 / 21614 (not a valid or not
a mobile number) -> permanent, recipient rejected (the number is suppressed); anything else, including 429
and 5xx, is temporary and follows the retry policy.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from nurture.config import TwilioSettings
from nurture.config.sms import TWILIO_TIMEOUT_SECONDS
from nurture.delivery.transports import TransportError
from nurture.rules.sms import OutgoingSms

TWILIO_API = "https://api.twilio.com"
OPTED_OUT = 21610
INVALID_NUMBERS = (21211, 21614)  # "To" not a valid phone number / not a mobile number
TIMEOUT_SECONDS = TWILIO_TIMEOUT_SECONDS
LOOKBACK = 20  # the newest texts to a number looked through for one an interrupted attempt may have sent
CLOCK_SLACK = timedelta(minutes=5)  # Twilio's clock against ours
NOT_SENT = ("failed", "undelivered", "canceled")  # a text Twilio took but did not (or will not) deliver


class ApiBaseHttpClient(TwilioHttpClient):
    """The SDK's own HTTP client, sending requests for api.twilio.com to `api_base` instead (a
    Twilio-compatible provider, or the local server the tests run). Everything else is the SDK's."""

    def __init__(self, api_base: str | None, timeout: float = TIMEOUT_SECONDS) -> None:
        super().__init__(timeout=timeout)
        self.api_base = api_base

    def request(self, method: str, url: str, *args: object, **kwargs: object) -> Response:
        if self.api_base and url.startswith(TWILIO_API):
            url = self.api_base + url.removeprefix(TWILIO_API)
        return super().request(method, url, *args, **kwargs)  # type: ignore[arg-type]


def make_client(settings: TwilioSettings) -> Client:
    # `environment` is given so the SDK does not read TWILIO_EDGE/TWILIO_REGION from the process: settings
    # are read once, in nurture.config, and nowhere else. (An empty mapping would make it fall back.)
    return Client(settings.account_sid, settings.auth_token, http_client=ApiBaseHttpClient(settings.api_base),
                  environment={"TWILIO_EDGE": "", "TWILIO_REGION": ""})


class TwilioTransport:
    def __init__(self, settings: TwilioSettings, client: Client | None = None) -> None:
        self.settings = settings
        self.client = client or make_client(settings)

    def send(self, message: OutgoingSms, time_left: float | None = None) -> str:
        """`time_left`: what is left of the batch's lease; the API request's timeout is cut to it."""
        if time_left is not None and time_left <= 0:
            raise TransportError("the send ran out of time (its claim's lease ends)")
        self.client.http_client.timeout = TIMEOUT_SECONDS if time_left is None else min(TIMEOUT_SECONDS, time_left)
        sender = {"messaging_service_sid": self.settings.messaging_service_sid} \
            if self.settings.messaging_service_sid else {"from_": self.settings.from_number}
        callback = {"status_callback": message.status_callback} if message.status_callback else {}
        try:
            sent = self.client.messages.create(to=message.to, body=message.body, **sender, **callback)
        except TwilioRestException as exc:
            raise translate(exc) from exc
        except (requests.RequestException, TwilioException, OSError) as exc:
            if never_connected(exc):
                raise TransportError(f"Twilio API unreachable: {type(exc).__name__}: {exc}") from exc
            # The request went out and no answer came back (a read timeout — the batch's deadline cuts it
            # too — or the connection dropped): Twilio may have queued the text. The API takes no
            # idempotency key, so the retry may text the person again; the send path marks it.
            raise TransportError(f"no answer from the Twilio API after the request was sent: "
                                 f"{type(exc).__name__}: {exc}", handed_over=True) from exc
        if not sent.sid:
            raise TransportError("Twilio accepted the message without a sid")
        return sent.sid

    def find_sent(self, message: OutgoingSms, since: datetime, time_left: float | None = None) -> str | None:
        """The sid of a text Twilio took for `message.to` from our sender with `message.body`, created on or
        after `since` (less CLOCK_SLACK) and not failed, among the LOOKBACK newest to that number.

        Twilio's Messages API takes no idempotency key and no reference of ours, so a text that went out with
        no answer back can only be found again by what it says, to whom, and when. Words Twilio changed
        (a trial account's prefix, Smart Encoding) are not found: the text is then sent again, marked
        interrupted, as before. A text is taken for this one only on all of those, its time included: a wrong
        match would leave a due text unsent, where no match only risks a second copy, on the record."""
        if time_left is not None and time_left <= 0:
            raise TransportError("no time left to ask Twilio (its claim's lease ends)")
        self.client.http_client.timeout = TIMEOUT_SECONDS if time_left is None else min(TIMEOUT_SECONDS, time_left)
        sender = self.settings.messaging_service_sid
        filters = {} if sender else {"from_": self.settings.from_number}
        try:
            taken = self.client.messages.list(to=message.to, limit=LOOKBACK, page_size=LOOKBACK, **filters)
        except TwilioRestException as exc:
            raise TransportError(f"could not ask Twilio for the earlier text: {exc.status} {exc.msg}") from exc
        except (requests.RequestException, TwilioException, OSError) as exc:
            raise TransportError(f"could not ask Twilio for the earlier text: {type(exc).__name__}: {exc}") from exc
        earliest = (since if since.tzinfo else since.replace(tzinfo=UTC)) - CLOCK_SLACK
        for found in taken:
            if (found.body == message.body and found.sid and str(found.direction).startswith("outbound")
                    and str(found.status) not in NOT_SENT
                    and (not sender or found.messaging_service_sid == sender)
                    and found.date_created is not None and found.date_created >= earliest):
                return found.sid
        return None

    def close(self) -> None:
        session = getattr(self.client.http_client, "session", None)
        if session is not None:
            session.close()


def never_connected(exc: Exception) -> bool:
    """Whether the request failed before it could reach the API: no connection was made (refused, no such
    host, the connect timed out), so Twilio cannot have the message."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if isinstance(exc, requests.ConnectionError) and exc.args else None
    return isinstance(reason, NewConnectionError)  # (as requests wraps a refused or unresolvable connect)


def translate(exc: TwilioRestException) -> TransportError:
    """A Twilio error response -> what the send path does about it."""
    code = exc.code if isinstance(exc.code, int) else None
    reason = f"Twilio {exc.status} error {code}: {exc.msg}"
    if code == OPTED_OUT:
        return TransportError(reason, opted_out=True, code=code)
    if code in INVALID_NUMBERS:
        return TransportError(reason, recipient_rejected=True, code=code)
    return TransportError(reason, code=code)
