"""Is this webhook body from who holds the shared secret? The signature styles generic hooks may use.

Pure: handed the body, the header's value, the secret and `now` (Calendly's signature carries a time, and a
copy replayed later than TOLERANCE is refused). Stripe's own scheme is checked by the stripe package.

    nurture   X-Nurture-Signature: sha256=<hex HMAC-SHA256 of the body>     (what our docs tell a sender to do)
    shopify   X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the body>
    calendly  Calendly-Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

HEADERS = {"nurture": "X-Nurture-Signature", "shopify": "X-Shopify-Hmac-Sha256",
           "calendly": "Calendly-Webhook-Signature"}
TOLERANCE = timedelta(minutes=5)  # Stripe's default too: long enough for a slow proxy, short for a replay


def _mac(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def nurture_header(body: bytes, secret: str) -> str:
    """The header value a sender computes (also what our tests and docs use)."""
    return "sha256=" + _mac(secret, body).hex()


def _nurture(body: bytes, header: str, secret: str, now: datetime) -> bool:
    scheme, _, given = header.strip().partition("=")
    return scheme.lower() == "sha256" and hmac.compare_digest(given.strip().lower(), _mac(secret, body).hex())


def _shopify(body: bytes, header: str, secret: str, now: datetime) -> bool:
    try:
        given = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, _mac(secret, body))


def _calendly(body: bytes, header: str, secret: str, now: datetime) -> bool:
    parts = dict(item.strip().partition("=")[::2] for item in header.split(","))
    stamp, given = parts.get("t", ""), parts.get("v1", "")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 11:
        return False
    expected = _mac(secret, stamp.encode() + b"." + body).hex()
    if not hmac.compare_digest(given.lower(), expected):
        return False
    return abs(now - datetime.fromtimestamp(int(stamp), UTC)) <= TOLERANCE


VERIFY = {"nurture": _nurture, "shopify": _shopify, "calendly": _calendly}


def verify(style: str, body: bytes, header: str | None, secret: str, now: datetime) -> bool:
    """True when `header` is a valid signature of `body` under `secret` in this style; False for anything
    else (a missing header, a garbled one, another secret, a stale Calendly time)."""
    if not header or not secret or not header.isascii():
        return False
    return VERIFY[style](body, header, secret, now)
