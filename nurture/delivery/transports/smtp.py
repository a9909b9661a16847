"""SMTP transport: one connection, opened on first use and reused for the whole batch.

Reuse is most of the throughput: a new connection (and TLS handshake) per message costs more than
rendering and building the message together.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from typing import BinaryIO

from nurture.config import SmtpSettings
from nurture.content.mail import OutgoingEmail
from nurture.delivery.transports import TransportError
from nurture.rules.pacing import is_throttle


class _Deadline:
    """Every wait of the SMTP exchange bounded by the time left until `deadline` (time.monotonic()), not
    only by the timeout: the timeout bounds each wait, and a server that answers a little at a time (a
    tarpit, a multi-line reply drip-fed) would otherwise hold one send for many timeouts."""

    deadline: float | None = None
    sock: socket.socket | None
    file: _ArmedReader | None
    timeout: float

    def _wait_for(self, timeout: float) -> float:
        if self.deadline is None:
            return timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the send ran out of time (its claim's lease ends)")
        return min(timeout, left)

    def _arm(self) -> None:
        if self.sock is not None:
            self.sock.settimeout(self._wait_for(self.timeout))

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return super()._get_socket(host, port, self._wait_for(timeout))  # type: ignore[misc]

    def send(self, s: bytes | str) -> None:
        self._arm()
        super().send(s)  # type: ignore[misc]

    def getreply(self) -> tuple[int, bytes]:
        # smtplib reads a reply line by line from a file over the socket: each line is armed anew, so a
        # reply drip-fed a line at a time is bounded too, not only its first line.
        if getattr(self, "file", None) is None and self.sock is not None:
            self.file = _ArmedReader(self.sock.makefile("rb"), self._arm)
        return super().getreply()  # type: ignore[misc]


class _ArmedReader:
    """A reply file whose every line waits only as long as the deadline allows."""

    def __init__(self, file: BinaryIO, arm: Callable[[], None]) -> None:
        self.file, self.arm = file, arm

    def readline(self, size: int = -1) -> bytes:
        self.arm()
        return self.file.readline(size)

    def close(self) -> None:
        self.file.close()


class _Smtp(_Deadline, smtplib.SMTP):
    pass


class _SmtpSsl(_Deadline, smtplib.SMTP_SSL):
    pass


class SmtpTransport:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._connection: _Smtp | _SmtpSsl | None = None

    def _connect(self, deadline: float | None) -> _Smtp | _SmtpSsl:
        s = self.settings
        # Made unconnected, then connected: the deadline must bound the connect and the greeting too.
        if s.security == "ssl":
            connection: _Smtp | _SmtpSsl = _SmtpSsl(timeout=s.timeout, context=ssl.create_default_context())
        else:
            connection = _Smtp(timeout=s.timeout)
        connection.deadline = deadline
        connection.connect(s.host, s.port)
        if s.security == "starttls":
            connection.starttls(context=ssl.create_default_context())
        if s.username:
            connection.login(s.username, s.password or "")
        return connection

    def send(self, message: OutgoingEmail, time_left: float | None = None) -> str:
        """Send over the batch's connection. `time_left` (seconds): the send must be over by then, or it is
        given up as a temporary failure — the batch passes what is left of its claim's lease, so a send
        never outlives it (another worker would take the step over and send it again)."""
        deadline = None if time_left is None else time.monotonic() + time_left
        try:
            if self._connection is None:
                self._connection = self._connect(deadline)
            self._connection.deadline = deadline
            self._connection.sendmail(message.envelope_from, [message.recipient], message.data)
        except smtplib.SMTPSenderRefused as exc:
            # The envelope sender is the VERP return path (docs/deliverability.md). A relay that lets an
            # account send only from its own address refuses it for every message: a setting to fix, not
            # the recipient's fault, so the message waits (retry) rather than fail for good.
            raise _reply_error(f"relay refused the envelope sender {exc.sender} (set BOUNCE_ADDRESS to an "
                               f"address this relay lets you send from)", exc.smtp_code, exc.smtp_error,
                               recipient=False, permanent=False) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            self._reset_if(code == 421)  # smtplib has closed the connection itself: open a new one next time
            raise _reply_error("recipient refused", code, reply, recipient=True, throttle=True) from exc
        except smtplib.SMTPResponseException as exc:
            # sender refused, data refused, auth failed: the server answered; the code says whether to retry
            self._reset_if(exc.smtp_code in (421,))
            raise _reply_error(type(exc).__name__, exc.smtp_code, exc.smtp_error, recipient=False,
                               throttle=isinstance(exc, smtplib.SMTPDataError)) from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self._reset_if(True)
            raise TransportError(f"SMTP connection problem: {exc}") from exc
        return message.message_id

    def _reset_if(self, condition: bool) -> None:
        if condition and self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.deadline = None  # QUIT after the last send is not bound by its lease
            try:
                self._connection.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._connection = None


def _reply_error(what: str, code: int, reply: bytes | str, recipient: bool,
                 permanent: bool | None = None, throttle: bool = False) -> TransportError:
    """`throttle`: the reply is about this message's recipient (RCPT, DATA), so a "slow down" in it is about
    the recipient's domain; after HELO or AUTH, or to the envelope sender, it is not."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    permanent = 500 <= code < 600 if permanent is None else permanent
    return TransportError(f"{what}: {code} {text}", permanent=permanent,
                          recipient_rejected=recipient and permanent, code=code,
                          throttle=throttle and is_throttle(code, text))
