"""The email as main built it before issue 16's message-side work (c114b02), kept here as the reference the
faster path is held to byte for byte (tests/test_message_equality.py).

Everything that went into the bytes is spelled out the slow, obvious way: itsdangerous's own `dumps` for the
tokens, `hmac.new` for every MAC, `Template.render` for each template, `email.utils.formataddr` for the To
header, `binascii.b2a_qp` over each whole part, `dataclasses.replace` for the envelope sender. Only the
MIME boundary is random; `boundary_of` finds it so that a test can put one in place of the other.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
from datetime import UTC, datetime
from email.header import Header
from email.utils import formataddr, parseaddr

from itsdangerous import URLSafeSerializer, URLSafeTimedSerializer

from nurture.content.views import BrandView, ContactView, SequenceView, StepView
from nurture.rules.links import add_pixel
from nurture.rules.locales import lookup_chain

_HREF = re.compile(r'(<a\b[^>]*?\bhref=")(https?://[^"]+)(")', re.IGNORECASE)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
BOUNDARY = re.compile(rb'boundary="(=_nurture_[0-9a-f]{24})"')


def boundary_of(data: bytes) -> bytes:
    match = BOUNDARY.search(data)
    assert match, data[:400]
    return match[1]


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if number == 0:
            return text


def _mac36(key: bytes, body: str, size: int, width: int) -> str:
    digest = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return _base36(int.from_bytes(digest[:size], "big")).rjust(width, "0")[-width:]


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _header_text(value: str) -> str:
    value = _one_line(value)
    if value.isascii() and len(value) < 900:
        return value
    charset = "us-ascii" if value.isascii() else "utf-8"
    return Header(value, charset, maxlinelen=76).encode(linesep="\r\n")


def _qp(text: str) -> bytes:
    data = text.encode("utf-8").replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")


def reference_email(rt, contact, sequence, step, delivery_id: int, now: datetime) -> tuple[bytes, str, str | None]:
    """(data, envelope sender, locale) of the message, built as c114b02 built it (no DKIM)."""
    settings, secret = rt.settings, rt.settings.secret_key
    token = URLSafeSerializer(secret, salt="nurture.unsubscribe").dumps(delivery_id)
    base = settings.base_url
    referral = _base36(contact.id)
    referral += _mac36(hashlib.sha256(f"nurture.referral:{secret}".encode()).digest(), referral, 5, 6)
    feedback = URLSafeSerializer(secret, salt="nurture.feedback").dumps(delivery_id)
    context = {
        "referral_url": f"{base}/r/{referral}",
        "rating_links": ([(score, f"{base}/feedback/{feedback}?score={score}") for score in range(11)]
                         if step.kind == "feedback" and delivery_id else []),
        "contact": ContactView.of(contact),
        "brand": BrandView(settings.brand_name, settings.support_email, base),
        "postal_address": settings.postal_address,
        "unsubscribe_url": f"{base}/u/{token}/unsubscribe",
        "preferences_url": f"{base}/u/{token}",
        "confirm_url": (f"{base}/confirm/{URLSafeTimedSerializer(secret, salt='nurture.confirm').dumps(contact.id)}"
                        if sequence.transactional else ""),
        "sequence": SequenceView(sequence.id, sequence.name),
        "step": StepView(step.id, step.kind),
    }
    chain = lookup_chain(contact.locale, settings.default_locale)
    subject_source, _ = step.subject_for(chain)
    compiled = rt.catalog.email(step.template, chain)
    subject = subject_source if "{" not in subject_source else rt.env.from_string(
        "{% autoescape false %}" + subject_source + "{% endautoescape %}").render(context)
    subject = " ".join(subject.split())
    html, text = compiled.html.render(context), compiled.text.render(context)
    if settings.track_clicks:
        click = URLSafeSerializer(secret, salt="nurture.click")

        def wrap(match: re.Match[str]) -> str:
            url = match[2].replace("&amp;", "&")
            if url.startswith(base):
                return match[0]
            return f"{match[1]}{base}/c/{click.dumps([delivery_id, url])}{match[3]}"

        html = _HREF.sub(wrap, html)
    if settings.track_opens:
        html = add_pixel(html, f"{base}/o/{token}.gif")
    tag = hmac.new(secret.encode(), str(delivery_id).encode(), hashlib.sha256).hexdigest()[:10]
    mid = f"<nurture.{delivery_id}.{tag}@{settings.mail_domain}>"
    name, address = parseaddr(settings.mail_from)
    t = now.astimezone(UTC)
    headers = [
        f"From: {formataddr((_one_line(name), _one_line(address)), charset='utf-8')}",
        "To: " + formataddr((_one_line(f"{contact.first_name} {contact.last_name}".strip()), _one_line(contact.email)),
                            charset="utf-8"),
        f"Subject: {_header_text(subject)}",
        f"Date: {_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} +0000",
        f"Message-ID: {mid}",
        f"List-Id: {sequence.name} <{sequence.id}.{settings.mail_domain}>",
    ]
    if settings.providers.postmark_on:
        headers.append(f"X-PM-Metadata-nurture-message-id: {mid}")
    mailto = f"mailto:{settings.support_email}?subject=unsubscribe%20{token}"
    headers += [f"List-Unsubscribe: <{base}/u/{token}/unsubscribe>, <{mailto}>",
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                "MIME-Version: 1.0", 'Content-Type: multipart/alternative; boundary="BOUNDARY"']
    body = [b"\r\n".join(h.encode("ascii") for h in headers), b"", b"This is a multipart message in MIME format."]
    for content_type, payload in ((b"text/plain", _qp(text)), (b"text/html", _qp(html))):
        body += [b"--BOUNDARY", b"Content-Type: " + content_type + b'; charset="utf-8"',
                 b"Content-Transfer-Encoding: quoted-printable", b"", payload]
    body += [b"--BOUNDARY--", b""]
    local, _, domain = settings.bounce_address.rpartition("@")
    verp = _base36(delivery_id)
    verp_mac = _mac36(hashlib.sha256(f"nurture.return-path:{secret}".encode()).digest(), verp, 6, 8)
    return b"\r\n".join(body), f"{local}+{verp}.{verp_mac}@{domain}", compiled.locale
