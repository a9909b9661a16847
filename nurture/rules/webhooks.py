"""Webhooks out, the pure part: which internal events go out under which public name, the payload, the
Standard Webhooks signature, and when a failed message is tried again. No I/O, no clock: handed `now`.

The scheme is Standard Webhooks (standardwebhooks.com): headers `webhook-id`, `webhook-timestamp` (Unix
seconds) and `webhook-signature` = `v1,` + base64(HMAC-SHA256(secret, "id.timestamp.body")); the secret is
written `whsec_` + base64 of its bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# Internal event type (what record_event is called with) -> the public name receivers subscribe to.
PUBLIC_NAMES: dict[str, str] = {
    "contact.created": "contact.created",
    "email.confirmed": "contact.confirmed",  # a double opt-in confirmed
    "stage.changed": "stage.changed",
    "email.sent": "delivery.sent",
    "sms.sent": "delivery.sent",
    "email.bounced": "delivery.bounced",  # a hard bounce (soft ones are retried, not news)
    "sms.bounced": "delivery.bounced",
    "email.unsubscribed": "unsubscribed",
    "sms.unsubscribed": "unsubscribed",
    "rating": "feedback",
    "feedback.comment": "feedback",
    "referral": "referral",  # recorded on the referrer when a friend signs up with their code
    "sequence.goal": "goal.reached",
    "sequence.completed": "sequence.completed",
    "score.hot": "lead.hot",
    "contact.erased": "contact.erased",  # carries the address digest alone: see erased_data
}
ERASED = "contact.erased"
EVENT_NAMES: tuple[str, ...] = tuple(dict.fromkeys(PUBLIC_NAMES.values()))
PING = "webhook.ping"  # the owner's test message; sent to one endpoint whatever it subscribed to

# When a failed message is tried again, after its first attempt: Standard Webhooks' suggested schedule
# (seconds, minutes, then hours), about 27 hours in all, so a receiver down for a night still gets everything.
RETRY_AFTER: tuple[timedelta, ...] = (
    timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
    timedelta(hours=5), timedelta(hours=10), timedelta(hours=10),
)
DISABLE_AFTER = timedelta(hours=24)  # an endpoint failing continuously this long is switched off


class WebhookStatus(StrEnum):
    """A message to one endpoint: waiting for its (next) attempt, accepted, or given up on."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # the retry schedule is spent, or its endpoint was removed from the file


@dataclass(frozen=True)
class Endpoint:
    """One receiver, as webhooks.yaml describes it. `events` holds public names; empty means all of them."""

    name: str
    url: str
    secret_env: str
    events: tuple[str, ...] = ()

    def wants(self, public_name: str) -> bool:
        return not self.events or public_name in self.events


class BadSecret(ValueError):
    """A secret that is not `whsec_` followed by base64 of at least 24 bytes."""


def secret_bytes(secret: str) -> bytes:
    """The key of a `whsec_...` secret. Raises BadSecret with what is wrong (never the secret itself)."""
    if not secret.startswith("whsec_"):
        raise BadSecret("must start with whsec_")
    try:
        key = base64.b64decode(secret[len("whsec_"):], validate=True)
    except (binascii.Error, ValueError):
        raise BadSecret("must be whsec_ followed by base64") from None
    if len(key) < 24:
        raise BadSecret("must hold at least 24 random bytes (192 bits)")
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one message."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, message_id: str, now: datetime, body: bytes) -> dict[str, str]:
    timestamp = int(now.timestamp())
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, message_id, timestamp, body), "content-type": "application/json"}


def payload(public_name: str, occurred_at: datetime, data: dict) -> dict:
    """The JSON body: `type`, `timestamp` (when it happened, ISO 8601 UTC) and `data` (see docs/webhooks.md)."""
    return {"type": public_name, "timestamp": occurred_at.isoformat().replace("+00:00", "Z"), "data": data}


def erased_data(contact_id: int | None, event_data: dict) -> dict:
    """What receivers learn of an erasure: the contact's id and the digest of its address (people.erasure),
    nothing that names the person, nor who erased them. A receiver finds its own copy by the id, or by
    computing the digest of the addresses it holds (docs/webhooks.md)."""
    return {"contact": {"id": contact_id}, "address_digest": event_data.get("address_digest")}


def body_bytes(message: dict) -> bytes:
    """The bytes that are signed and sent: compact, keys sorted, so a retry sends exactly the same body."""
    return json.dumps(message, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def retry_at(attempts: int, now: datetime) -> datetime | None:
    """When to try a message again after its `attempts`-th failure; None once the schedule is spent."""
    if attempts < 1 or attempts > len(RETRY_AFTER):
        return None
    return now + RETRY_AFTER[attempts - 1]


def accepted(status_code: int) -> bool:
    """Only a 2xx is acceptance. A redirect is a failure (it is not followed: it could lead anywhere)."""
    return 200 <= status_code < 300


def should_disable(failing_since: datetime | None, now: datetime) -> bool:
    return failing_since is not None and now - failing_since >= DISABLE_AFTER
