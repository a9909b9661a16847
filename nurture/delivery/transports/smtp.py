"""SMTP transport: one connection, opened on first use and reused for the whole batch.

Reuse is most of the throughput: a new connection (and TLS handshake) per message costs more than
rendering and building the message together. The client under it is nurture.delivery.transports.smtp_client.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager

from nurture.config import SmtpSettings
from nurture.content.mail import OutgoingEmail
from nurture.delivery.transports import TransportError
from nurture.delivery.transports.smtp_client import SmtpClient, SmtpSslClient
from nurture.rules.pacing import is_throttle


class SmtpTransport:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._connection: SmtpClient | SmtpSslClient | None = None
        self._started: str | None = None  # the Message-ID `start` handed over, until `finish`
        self._announced: OutgoingEmail | None = None  # the message whose envelope `announce` wrote, until `start`

    def _connect(self, deadline: float | None) -> SmtpClient | SmtpSslClient:
        s = self.settings
        # Made unconnected, then connected: the deadline must bound the connect and the greeting too.
        if s.security == "ssl":
            context = ssl.create_default_context()
            connection: SmtpClient | SmtpSslClient = SmtpSslClient(timeout=s.timeout, context=context)
        else:
            connection = SmtpClient(timeout=s.timeout)
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
        self.start(message, time_left)
        return self.finish()

    def start(self, message: OutgoingEmail, time_left: float | None = None) -> None:
        """The first part of `send`: everything up to the message handed over with its final ".", without
        waiting for the server's answer to it. The caller may work meanwhile (the send path composes the
        next message while the server takes this one in) and must then call `finish`, which waits under the
        same deadline. Raises TransportError as `send` does."""
        deadline = None if time_left is None else time.monotonic() + time_left
        if self._started is not None:  # a message started and never finished: its answer is still unread
            self._started = None
            self._reset_if(True)
        announced, self._announced = self._announced, None
        if announced is not None and announced is not message:
            self._reset_if(True)  # another message's envelope is open there: it ends, unsent, with the connection
        with self._errors():
            if self._connection is None:
                self._connection = self._connect(deadline)
            self._connection.deadline = deadline
            self._connection.next_dot_free = message.dot_free
            self._connection.handed_over = False
            self._connection.defer_final_reply = True
            self._connection.sendmail(message.envelope_from, [message.recipient], message.data)
        self._started = message.message_id

    def announce(self, message: OutgoingEmail, time_left: float | None = None) -> None:
        """Write the envelope of the message to be sent next (MAIL, RCPT, DATA), where the server offers
        PIPELINING, without waiting: the server reads it while the send path writes the record of the
        message before and this one's `sending` mark, and `start` reads its replies instead of waiting for
        them. Nothing of the message itself goes before `start`, so a message announced and then not sent
        (its mark failed, the batch stopped, a worker died) is never delivered: `start` of any other message
        and `close` drop the connection, and a server delivers nothing whose data never ended (RFC 5321
        4.1.1.4). Never raises: whatever went wrong is met again by `start`."""
        if self._connection is None or self._started is not None or self._announced is not None:
            return
        self._connection.deadline = None if time_left is None else time.monotonic() + time_left
        try:
            if self._connection.announce(message.envelope_from, message.recipient, message.data):
                self._announced = message
        except (TimeoutError, smtplib.SMTPException, OSError):
            self._reset_if(True)

    def finish(self) -> str:
        """The server's answer to the message `start` handed over: its id once accepted. Raises
        TransportError as `send` does."""
        message_id, self._started = self._started, None
        assert message_id is not None, "finish() without start()"
        with self._errors():
            if self._connection is None:  # (closed under it: as a dropped connection)
                raise smtplib.SMTPServerDisconnected("the connection was closed before the answer")
            self._connection.final_reply()
        return message_id

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """smtplib's errors as TransportError: what the send path does about each."""
        try:
            yield
        except smtplib.SMTPSenderRefused as exc:
            # The envelope sender is the VERP return path (docs/deliverability.md). A relay that lets an
            # account send only from its own address refuses it for every message: a setting to fix, not
            # the recipient's fault, so the message waits (retry) rather than fail for good.
            if exc.smtp_code == 421:  # the server is closing the connection (busy, restarting): not about the sender
                self._reset_if(True)
                raise _reply_error("SMTP server closing the connection", exc.smtp_code, exc.smtp_error,
                                   recipient=False) from exc
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
            handed_over = self._connection is not None and self._connection.handed_over
            self._reset_if(True)
            if handed_over:
                raise TransportError(f"no answer from the SMTP server after the message was sent ({exc}): "
                                     "it may have been accepted", handed_over=True) from exc
            raise TransportError(f"SMTP connection problem: {exc}") from exc

    def _reset_if(self, condition: bool) -> None:
        if condition and self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None

    def close(self) -> None:
        if self._announced is not None:  # an envelope is open there (perhaps in DATA: QUIT would be its text)
            self._announced = None
            self._reset_if(True)
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
