"""Postmark, SendGrid and Mailgun: each proves a webhook request its own way. Pure checks: the request's
parts and the configured secret in, True or False out; `now` is handed in."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import datetime
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from nurture.config.providers import sendgrid_key


def same(given: str, expected: str) -> bool:
    """Constant time: how long a wrong guess takes says nothing about how much of it was right."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


def postmark_ok(user: str | None, password: str | None, expected_user: str, expected_password: str) -> bool:
    """Postmark calls the URL with the credentials in it (https://user:password@host/hooks/postmark):
    HTTP basic auth. Both compared, whatever the first gives."""
    user_ok = same(user or "", expected_user)
    password_ok = same(password or "", expected_password)
    return user is not None and password is not None and user_ok and password_ok


def fresh(timestamp: str, now: datetime, max_age_seconds: int) -> bool:
    """A signed Unix timestamp close enough to now: an old signed request replayed is refused."""
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    return abs(now.timestamp() - int(timestamp)) <= max_age_seconds


def sendgrid_ok(public_key: str, signature: str, timestamp: str, payload: bytes) -> bool:
    """SendGrid's Event Webhook: ECDSA P-256 with SHA-256 over the timestamp header followed by the raw
    body, the signature base64 DER in X-Twilio-Email-Event-Webhook-Signature."""
    try:
        raw = base64.b64decode(signature, validate=True)
        _key(public_key).verify(raw, timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


@lru_cache(maxsize=4)
def _key(text: str) -> ec.EllipticCurvePublicKey:
    return sendgrid_key(text)  # parsed at start-up already (settings); kept parsed: one per process


def mailgun_ok(signing_key: str, timestamp: str, token: str, signature: str) -> bool:
    """Mailgun: hex HMAC-SHA256 of timestamp + token under the webhook signing key."""
    expected = hmac.new(signing_key.encode(), (timestamp + token).encode("utf-8", "replace"), hashlib.sha256)
    return same(signature, expected.hexdigest())
