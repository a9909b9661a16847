"""Building the bytes of an email: multipart/alternative, quoted-printable, the list headers.

Assembled from stdlib primitives rather than `EmailMessage`: the latter costs ~2.4 ms per 5 KB message here
(pure-Python quoted-printable and header folding), more than rendering and sending together. `binascii`'s
QP encoder is C and also keeps every line under SMTP's 998-byte limit (it soft-wraps at 76); the lines of
the compiled template come already encoded with the rendered content (see nurture.content.qp), so only what
a message changes is encoded for it. Tests parse the result with the `email` package to hold it to
the standard.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.header import Header
from email.utils import formataddr, parseaddr
from functools import lru_cache

import dkim

from nurture.config import DkimSettings
from nurture.content.qp import dot_line, encode_marked
from nurture.content.rendering import RenderedEmail

# Signed headers. List-Unsubscribe and List-Unsubscribe-Post must be covered (RFC 8058 section 4), or a
# relay could add a one-click link to someone else's mail.
DKIM_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id", b"list-id", b"list-unsubscribe",
                b"list-unsubscribe-post", b"mime-version", b"content-type"]


@dataclass(frozen=True)
class OutgoingEmail:
    """What a transport needs: the envelope and the finished bytes."""

    envelope_from: str
    recipient: str
    message_id: str
    data: bytes
    locale: str | None = None  # whose localized template was used (None: the default files); for `why`
    # True: no line of `data` starts with "." (so SMTP's DATA has nothing to dot-stuff and need not look).
    # False: not known, or some line does.
    dot_free: bool = False


@dataclass(frozen=True)
class Envelope:
    mail_from: str  # "Name <addr>"
    to_address: str
    to_name: str
    message_id: str
    date: datetime
    list_id: str
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None
    extra_headers: tuple[str, ...] = ()  # whole "Name: value" lines, ASCII, made by nurture (never user text)
    envelope_from: str | None = None  # MAIL FROM (the send path's signed VERP address); None: From's address


def one_line(value: str) -> str:
    """Collapse CR, LF and other line breaks: a name or subject must never start a new header."""
    return " ".join(value.split())


def _header_text(value: str) -> str:
    value = one_line(value)
    if value.isascii() and len(value) < 900:
        return value
    charset = "us-ascii" if value.isascii() else "utf-8"
    return Header(value, charset, maxlinelen=76).encode(linesep="\r\n")


# What formataddr quotes or escapes in a display name (email.utils.specialsre and escapesre, together).
_SPECIALS = frozenset('()<>@,:;."[]\\')


def _address(name: str, address: str) -> str:
    name, address = one_line(name), one_line(address)
    if name and name.isascii() and address.isascii() and _SPECIALS.isdisjoint(name):
        return f"{name} <{address}>"  # what formataddr makes of it, without its regexes (~1 µs a message)
    return formataddr((name, address), charset="utf-8")


@lru_cache(maxsize=8)
def _sender(mail_from: str) -> tuple[str, str]:
    """MAIL_FROM as (name, address). It is the same string for every message, and parseaddr is not cheap."""
    return parseaddr(mail_from)


@lru_cache(maxsize=8)
def _from_header(mail_from: str) -> str:
    return _address(*_sender(mail_from))


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _date_header(moment: datetime) -> str:
    """`email.utils.format_datetime` for an aware datetime, given in UTC: the same text in a third of the
    time (it formats through a tuple and a %-format for every message)."""
    t = moment.astimezone(UTC)
    return (f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} +0000")


def make_message_id(unique: str, domain: str) -> str:
    return f"<{unique}.{secrets.token_hex(4)}@{domain}>"


def build_email(envelope: Envelope, content: RenderedEmail) -> OutgoingEmail:
    # 24 random hex digits, as secrets.token_hex(12) made them, without a getrandom system call a message:
    # the boundary need not be secret, only absent from the parts, and "=_" can never occur in QP text.
    # (`random` reseeds itself in a forked child, so two work horses do not repeat each other.)
    boundary = f"=_nurture_{random.getrandbits(96):024x}"
    headers = [
        f"From: {_from_header(envelope.mail_from)}",
        f"To: {_address(envelope.to_name, envelope.to_address)}",
        f"Subject: {_header_text(content.subject)}",
        f"Date: {_date_header(envelope.date)}",
        f"Message-ID: {envelope.message_id}",
        f"List-Id: {envelope.list_id}",
        *envelope.extra_headers,
    ]
    if envelope.unsubscribe_url:
        targets = [f"<{envelope.unsubscribe_url}>"]
        if envelope.unsubscribe_mailto:
            targets.append(f"<{envelope.unsubscribe_mailto}>")
        headers += [f"List-Unsubscribe: {', '.join(targets)}", "List-Unsubscribe-Post: List-Unsubscribe=One-Click"]
    headers += ["MIME-Version: 1.0", f'Content-Type: multipart/alternative; boundary="{boundary}"']
    text, text_dotted = encode_marked(content.text, content.text_blocks)
    html, html_dotted = encode_marked(content.html, content.html_blocks)
    head = b"\r\n".join(h.encode("ascii") for h in headers)
    body = [head, b"", b"This is a multipart message in MIME format."]
    for content_type, payload in ((b"text/plain", text), (b"text/html", html)):
        body += [
            b"--" + boundary.encode(),
            b'Content-Type: ' + content_type + b'; charset="utf-8"',
            b"Content-Transfer-Encoding: quoted-printable",
            b"",
            payload,
        ]
    body += [b"--" + boundary.encode() + b"--", b""]
    return OutgoingEmail(
        envelope_from=envelope.envelope_from or _sender(envelope.mail_from)[1],
        recipient=envelope.to_address,
        message_id=envelope.message_id,
        data=b"\r\n".join(body),
        locale=content.locale,
        # The rest of the lines (the preamble, boundaries, part headers) start with letters or "-".
        dot_free=not (text_dotted or html_dotted or dot_line(head)),
    )


def dkim_sign(message: OutgoingEmail, settings: DkimSettings) -> OutgoingEmail:
    """Prepend a DKIM-Signature (rsa-sha256, relaxed/simple). Costs ~1 ms per message for a 2048-bit key."""
    signature = dkim.sign(message.data, settings.selector.encode(), settings.domain.encode(),
                          settings.private_key, include_headers=DKIM_HEADERS)
    return replace(message, data=signature + message.data, dot_free=message.dot_free and not dot_line(signature))
