"""What is kept of a person who asked to be forgotten: a one-way digest of their address, and which of
their timeline's facts are no one's personal data (so the counts stay right).

Pure: people.erasure does the erasing, people.contacts and sign-up ask `address_digest` before adding.
"""

from __future__ import annotations

import hashlib

# Unkeyed on purpose: a key (SECRET_KEY) would be rotated one day, and every erased address would quietly
# become addable again. The prefix keeps these digests from matching a plain sha256 list made elsewhere.
DIGEST_PREFIX = b"nurture-erased-address:"

# The keys of an event's data that say what the system did, never who to: the funnel and the map count by
# them (sequence, step, version, stage moves), and none holds an address, a name or what a person typed.
NEUTRAL_KEYS = frozenset({"sequence", "version", "step", "entry", "first_step", "channel", "kind", "scope", "via",
                          "target", "from", "to", "bot", "until", "retry_at", "by"})
# Reasons written by the engine itself ("condition false: tag vip", "outside the send window"). A bounce's
# or a failure's reason quotes the receiving server, which often quotes the address: those are dropped.
NEUTRAL_REASON_EVENTS = frozenset({"step.skipped", "step.branched", "sequence.goal", "email.deferred",
                                   "sms.deferred", "email.skipped", "sms.skipped", "stage.changed"})


def address_digest(normalised: str) -> str:
    """SHA-256 (hex) of a normalised address (people.contacts.normalise_email): the same person typing
    'Ann@Example.com ' later gives the same digest."""
    return hashlib.sha256(DIGEST_PREFIX + normalised.encode()).hexdigest()


def neutral_data(event_type: str, data: dict) -> dict:
    """An event's data with everything personal taken out."""
    kept = {key: value for key, value in data.items() if key in NEUTRAL_KEYS and not isinstance(value, dict)}
    if event_type in NEUTRAL_REASON_EVENTS and isinstance(data.get("reason"), str):
        kept["reason"] = data["reason"]
    return kept
