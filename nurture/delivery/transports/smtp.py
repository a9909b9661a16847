"""SMTP transport: one connection, opened on first use and reused for the whole batch.

Reuse is most of the throughput: a new connection (and TLS handshake) per message costs more than
rendering and building the message together.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Sequence

from nurture.config import SmtpSettings
from nurture.content.mail import OutgoingEmail
from nurture.delivery.transports import TransportError
from nurture.rules.pacing import is_throttle


# An address made only of these (dot-atom text, the '@' and nothing that needs quoting) is what
# smtplib.quoteaddr returns it as, in angle brackets: tests/test_smtp_client.py holds the two equal.
_PLAIN = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]+\Z")


class _PlainAddresses:
    """smtplib's MAIL and RCPT run each address through `email.utils.parseaddr` (~0.1 ms, two a message:
    more than the rest of the client's work on the message). The send path's addresses are checked when
    they are stored and the envelope sender is nurture's own, so a plain one goes out as it is; anything
    else (a display name, a quoted local part, non-ASCII) takes smtplib's own path."""

    def mail(self, sender: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        # (SMTPUTF8 among the options switches smtplib's command encoding: left to it.)
        if not _PLAIN.match(sender) or any(o.lower() == "smtputf8" for o in options):
            return super().mail(sender, options)  # type: ignore[misc]
        self.putcmd("mail", f"FROM:<{sender}>{_options(self, options)}")  # type: ignore[attr-defined]
        return self.getreply()  # type: ignore[attr-defined]

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        if not _PLAIN.match(recip):
            return super().rcpt(recip, options)  # type: ignore[misc]
        self.putcmd("rcpt", f"TO:<{recip}>{_options(self, options)}")  # type: ignore[attr-defined]
        return self.getreply()  # type: ignore[attr-defined]


def _options(client: object, options: Sequence[str]) -> str:
    """As smtplib writes them: ESMTP options only to a server that spoke ESMTP."""
    return " " + " ".join(options) if options and getattr(client, "does_esmtp", False) else ""


class _Client(_PlainAddresses, smtplib.SMTP):
    pass


class _ClientSSL(_PlainAddresses, smtplib.SMTP_SSL):
    pass


class SmtpTransport:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._connection: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "ssl":
            connection: smtplib.SMTP = _ClientSSL(s.host, s.port, timeout=s.timeout,
                                                  context=ssl.create_default_context())
        else:
            connection = _Client(s.host, s.port, timeout=s.timeout)
            if s.security == "starttls":
                connection.starttls(context=ssl.create_default_context())
        if s.username:
            connection.login(s.username, s.password or "")
        return connection

    def send(self, message: OutgoingEmail) -> str:
        try:
            if self._connection is None:
                self._connection = self._connect()
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
