"""Transports: one small class per channel, one `send()` that returns a provider id or raises
`TransportError`. Transports never touch the database: the caller records every outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from nurture.content.mail import OutgoingEmail
from nurture.rules.sms import OutgoingSms


class TransportError(Exception):
    """A send failed. `permanent` says whether trying again could help; `recipient_rejected` says the
    address itself was refused (a hard bounce), which suppresses it for every later send; `opted_out` says
    the recipient told the provider to stop (Twilio 21610): the contact is opted out of the channel, and the
    address is not suppressed, because the recipient may opt back in; `throttle` says the receiving side
    asked to slow down (SMTP 421/451/454 about the recipient): its domain group backs off, and the message
    waits without using up one of its retries.

    `handed_over` says the message had been handed over whole when the exchange broke off with no answer
    (the SMTP data and its final "." sent, or Twilio's API request sent, and then a timeout or a dropped
    connection): the provider may have it. It is retried all the same, as a temporary failure, and the
    send path puts that on the contact's record (`<channel>.interrupted`), as it does for a worker that
    died in the same place: should the first copy have arrived, the second is not a silent duplicate."""

    def __init__(self, message: str, permanent: bool = False, recipient_rejected: bool = False,
                 code: int | None = None, opted_out: bool = False, throttle: bool = False,
                 handed_over: bool = False) -> None:
        super().__init__(message)
        self.handed_over = handed_over
        self.throttle = throttle and not (permanent or recipient_rejected or opted_out)
        self.permanent = permanent or recipient_rejected or opted_out
        self.recipient_rejected = recipient_rejected
        self.opted_out = opted_out
        self.code = code


class EmailTransport(Protocol):
    def send(self, message: OutgoingEmail, time_left: float | None = None) -> str: ...

    def close(self) -> None: ...


class SmsTransport(Protocol):
    def send(self, message: OutgoingSms, time_left: float | None = None) -> str: ...

    def find_sent(self, message: OutgoingSms, since: datetime, time_left: float | None = None) -> str | None:
        """The provider's id for a text like `message` (same number, same words) that it took on or after
        `since`, or None. Asked before an attempt that follows one handed over with no answer back (see
        TransportError), so that the text is not sent twice. Raises TransportError when it cannot tell."""

    def close(self) -> None: ...
