"""Which funnel groups one contact is in for one sequence, and since when — the exact rollup's unit.

Every count of the funnel (nurture.store.funnel) is of distinct contacts in a group: the deliveries of a
step with one channel, status, provider status and error; the people who clicked a step; who reached the
goal after a step was sent ... A period always ends now, so a contact is counted in a period exactly when
its *latest* row of the group falls in it, however many rows (re-entries) it has. `members` gives that
latest time per group, from the contact's own rows; the store keeps it (funnel_member) and counts how
many contacts' latest time falls on each day (funnel_day).

Pure: handed the rows as facts, no database, no clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

ALL_VERSIONS = "*"
SENT = ("sent", "bounced")  # a bounced message was sent: the bounce came back after
OUTCOMES = ("step.skipped", "step.branched")
DEFERRALS = ("email.deferred", "sms.deferred")
LINKED = {"email.unsubscribed": "unsubscribed", "sms.unsubscribed": "unsubscribed",
          "email.bounced": "bounced", "sms.bounced": "bounced", "sms.undelivered": "bounced"}
CLICKED, GOAL, ENROLLED = "email.clicked", "sequence.goal", "sequence.enrolled"
# The kinds of event whose arrival can move a contact in a funnel (the triggers of 0009_funnel_rollup).
EVENT_KINDS = (*OUTCOMES, *DEFERRALS, *LINKED, CLICKED, GOAL, ENROLLED)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Key = tuple[str, str]  # (version or ALL_VERSIONS, group key)


@dataclass(frozen=True)
class DeliveryFact:
    version: str
    step: str
    channel: str
    status: str
    provider_status: str | None
    error: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class EventFact:
    """An event naming the sequence (its `ev_sequence`): version, step and reason as the funnel reads them
    from its JSON; `human` is False for a click marked as a bot's."""

    type: str
    version: str | None
    step: str | None
    reason: str | None
    human: bool
    occurred_at: datetime


@dataclass(frozen=True)
class LinkedFact:
    """An unsubscribe or bounce event, with the delivery (of this sequence) it names."""

    type: str
    delivery: DeliveryFact


def group(kind: str, *parts: str | None) -> str:
    """A group's key: JSON, so that None and '' (and any text in an error) stay apart. Characters outside
    ASCII as they are, as the database's own JSON quoting writes them (store.funnel_groups builds the same
    key in SQL); a key written before with \\u escapes parses to the same group (store.funnel.from_groups)."""
    return json.dumps([kind, *parts], separators=(",", ":"), ensure_ascii=False)


def parse_group(key: str) -> list:
    return json.loads(key)


def day_of(moment: datetime) -> int:
    return (moment - EPOCH).days


def start_of_day(day: int) -> datetime:
    return EPOCH + timedelta(days=day)


def members(deliveries: Iterable[DeliveryFact], events: Iterable[EventFact],
            linked: Iterable[LinkedFact]) -> dict[Key, datetime]:
    """(version, group) -> the latest time that puts this contact in the group, under its own version and
    under ALL_VERSIONS. The goal of the whole sequence names no version: it is kept under ALL_VERSIONS only."""
    found: dict[Key, datetime] = {}

    def note(version: str | None, key: str, at: datetime) -> None:
        for scope in ((version, ALL_VERSIONS) if version is not None else (ALL_VERSIONS,)):
            if (scope, key) not in found or at > found[(scope, key)]:
                found[(scope, key)] = at

    deliveries, events = list(deliveries), list(events)
    for d in deliveries:
        note(d.version, group("d", d.step, d.channel, d.status, d.provider_status, d.error), d.created_at)
    for e in events:
        if e.type in OUTCOMES:
            note(e.version, group("o", e.step, e.type, e.reason), e.occurred_at)
        elif e.type in DEFERRALS:
            note(e.version, group("f", e.step), e.occurred_at)
        elif e.type == ENROLLED:
            note(e.version, group("e"), e.occurred_at)
        elif e.type == GOAL:
            note(None, group("G"), e.occurred_at)
    for link in linked:
        d = link.delivery
        note(d.version, group("l", d.step, d.channel, link.type), d.created_at)
    _sent_then(deliveries, events, note)
    return found


def _sent_then(deliveries: list[DeliveryFact], events: list[EventFact], note) -> None:  # noqa: ANN001
    """Clicked: a sent delivery of a step the contact clicked (not a bot). Goal: a sent delivery sent no
    later than the contact's last goal event."""
    clicked = {e.step for e in events if e.type == CLICKED and e.human}
    goals = [e.occurred_at for e in events if e.type == GOAL]
    last_goal = max(goals) if goals else None
    for d in deliveries:
        if d.status not in SENT:
            continue
        if d.step in clicked:
            note(d.version, group("c", d.step), d.created_at)
        if last_goal is not None and d.sent_at is not None and d.sent_at <= last_goal:
            note(d.version, group("g", d.step), d.created_at)
