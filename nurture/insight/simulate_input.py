"""Reading `nurture simulate`'s command line: the made-up contact (--contact), the events (--event) and
the start (--start). Every mistake raises SimulationInputError naming the option and what was expected."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo

from nurture.insight.timeline import SimContact
from nurture.people.automation import EVENT_TYPE
from nurture.people.contacts import InvalidContact, check_locale, check_timezone, normalise_phone
from nurture.rules import engine
from nurture.rules.conditions import EventFact
from nurture.rules.lifecycle import Lifecycle
from nurture.rules.sequence import parse_duration
from nurture.rules.statuses import Subscription

EMAIL_STATUSES = (Subscription.SUBSCRIBED, Subscription.PENDING, Subscription.UNSUBSCRIBED, Subscription.EXPIRED)
SMS_STATUSES = (Subscription.NONE, Subscription.SUBSCRIBED, Subscription.UNSUBSCRIBED)
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


class SimulationInputError(ValueError):
    """A --contact, --event or --start value that cannot be read; the message says which and why."""


def _typed(value: str) -> object:
    """'9' -> 9 and '4.5' -> 4.5, as they would arrive in JSON from the API; anything else stays text."""
    if _NUMBER.match(value):
        return float(value) if "." in value else int(value)
    return value


def _pairs(parts: Iterable[str], what: str) -> dict[str, str]:
    pairs = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise SimulationInputError(f"{what}: expected key=value, got {part!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def _choice(value: str, allowed: tuple[str, ...], key: str) -> str:
    if value not in allowed:
        raise SimulationInputError(f"--contact: {key} is one of {', '.join(allowed)}, got {value!r}")
    return value


def parse_contact(spec: str, lifecycle: Lifecycle) -> SimContact:
    """'timezone=America/New_York,tags=vip;beta,stage=lead,plan=pro' -> SimContact. Keys that are not
    contact attributes become custom fields (for `{field: ...}` conditions)."""
    pairs = _pairs(filter(None, (p.strip() for p in spec.split(","))), "--contact")
    try:
        locale = check_locale(pairs.pop("locale", None))
        timezone = check_timezone(pairs.pop("timezone", None))
        phone = normalise_phone(pairs.pop("phone", None))
        score = float(pairs.pop("score", 0))
        contact_id = int(pairs.pop("id")) if "id" in pairs else None
    except InvalidContact as exc:
        raise SimulationInputError(f"--contact: {exc}") from None
    except ValueError:
        raise SimulationInputError("--contact: score is a number, id a whole number") from None
    stage = pairs.pop("stage", "lead")
    if stage not in lifecycle.stages:
        raise SimulationInputError(f"--contact: unknown stage {stage!r} (stages: {', '.join(lifecycle.stages)})")
    for ignored in ("first_name", "last_name", "email"):
        pairs.pop(ignored, None)
    # A contact given a phone number here is assumed to have agreed to texts, unless told otherwise.
    assumed = Subscription.SUBSCRIBED if phone else Subscription.NONE
    sms_status = _choice(pairs.pop("sms_status", assumed), SMS_STATUSES, "sms_status")
    return SimContact(
        timezone=timezone, phone=phone, score=score, stage=stage, sms_status=sms_status, id=contact_id,
        locale=locale,
        tags=frozenset(t.strip() for t in pairs.pop("tags", "").split(";") if t.strip()),
        email_status=_choice(pairs.pop("email_status", Subscription.SUBSCRIBED), EMAIL_STATUSES, "email_status"),
        fields={key: _typed(value) for key, value in pairs.items()},
    )


def parse_instant(text: str, what: str) -> datetime:
    """An ISO 8601 time with its timezone -> aware UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SimulationInputError(f"{what}: expected an ISO 8601 time like 2026-11-23T09:00:00Z, got {text!r}") \
            from None
    if moment.tzinfo is None:
        raise SimulationInputError(f"{what}: {text!r} needs a timezone (Z or +01:00)")
    return moment.astimezone(UTC)


def parse_event(spec: str, start: datetime, zone: tzinfo) -> EventFact:
    """'purchase@3d' (3 days after `start`, days on the contact's wall clock, as waits count them),
    'webinar-attended@2d4h', 'rating@5d score=9' (with properties) or 'purchase@2026-11-26T10:00:00Z'."""
    head, *props = spec.split()
    type_, sep, when = head.partition("@")
    if not sep or not EVENT_TYPE.match(type_):
        raise SimulationInputError(f"--event: expected TYPE@WHEN like purchase@3d, got {spec!r}")
    try:
        at = engine.add_delay(start, parse_duration(when), zone)
    except ValueError:
        at = parse_instant(when, f"--event {type_}")
    return EventFact(type_, at, {key: _typed(value) for key, value in _pairs(props, "--event").items()})
