"""SMTP transport: one connection, opened on first use and reused for the whole batch.

Reuse is most of the throughput: a new connection (and TLS handshake) per message costs more than
rendering and building the message together.
"""

from __future__ import annotations

import smtplib
import ssl

from nurture.config import SmtpSettings
from nurture.content.mail import OutgoingEmail
from nurture.delivery.transports import TransportError
from nurture.rules.pacing import is_throttle


class SmtpTransport:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._connection: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "ssl":
            connection: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                                        context=ssl.create_default_context())
        else:
            connection = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
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
