"""What happens when something happens to a contact: an event, a tag, a stage change.

Events are recorded once (idempotency key), then applied: the lifecycle stage moves forward, the lead score
changes, goals end sequences (a purchase ends lead nurture), waiting steps wake up, and triggers enroll the
contact in new sequences. The decisions are pure (nurture.rules.decisions, the lifecycle rules, the engine:
the same functions `nurture simulate` calls); this module only records events and writes the outcomes,
and its queries are named in nurture.store.events.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from nurture.people.contacts import check_json, check_text, enroll, record_event
from nurture.rules import decisions, engine
from nurture.rules import lifecycle as rules
from nurture.rules.conditions import EventFact, Facts
from nurture.rules.segments import named_by
from nurture.rules.sequence import Sequence, parse_duration
from nurture.store import events as store
from nurture.store.models import Alert, Contact, Enrollment, Event

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime

log = logging.getLogger(__name__)


def record(session: Session, rt: Runtime, contact: Contact, type_: str, data: dict, occurred_at: datetime,
           key: str | None = None) -> tuple[Event, bool]:
    """Record an event and apply it. Returns (event, created); a repeated `key` returns the first event and
    changes nothing."""
    if key and (existing := store.event_by_key(session, key)) is not None:
        return existing, False
    now = rt.clock()
    event = Event(contact_id=contact.id, type=type_, data=data, occurred_at=occurred_at, created_at=now,
                  idempotency_key=key)
    try:
        with session.begin_nested():
            session.add(event)
            session.flush()
    except IntegrityError:  # the same key, recorded by a concurrent request a moment ago
        first = store.event_by_key(session, key or "")
        assert first is not None, "the unique key refused ours, so the first one is there"
        return first, False
    apply(session, rt, contact, EventFact(type_, occurred_at, data), now)
    return event, True


def apply(session: Session, rt: Runtime, contact: Contact, event: EventFact, now: datetime) -> None:
    """Everything an event changes, in the order a person would expect: stage, score, goals, waits,
    triggers (so a purchase that ends lead nurture starts the customer sequence once)."""
    lifecycle = rt.sequences.lifecycle
    if not decisions.counts(event):
        return  # a link scanner's fetch is on the record, and changes nothing
    earlier = store.count_events(session, contact.id or 0, event.type) - 1
    new_stage = rules.stage_after_event(lifecycle, contact.stage, event.type, max(earlier, 0))
    if new_stage:
        set_stage(session, rt, contact, new_stage, f"event {event.type}", now)
    _score(session, rt, contact, event, now)
    end_reached_goals(session, rt, contact, now)
    _wake_waiting(session, rt, contact, event.type, now)
    trigger(session, rt, contact, "event", event.type, now)


def set_stage(session: Session, rt: Runtime, contact: Contact, stage: str, reason: str, now: datetime) -> None:
    """Move the contact forward to `stage` (history on its timeline) and fire the sequences that start
    there. Never backwards (decisions.stage_change): a hot-lead step that says "prospect" leaves a contact
    who bought meanwhile a customer."""
    if decisions.stage_change(rt.sequences.lifecycle, contact.stage, stage) is None:
        return
    record_event(session, contact.id, "stage.changed", now, {"from": contact.stage, "to": stage, "reason": reason})
    contact.stage = stage
    contact.updated_at = now
    session.add(contact)
    session.flush()
    trigger(session, rt, contact, "stage", stage, now)


def _score(session: Session, rt: Runtime, contact: Contact, event: EventFact, now: datetime) -> None:
    scoring = rt.sequences.lifecycle.scoring
    change = decisions.score_change(scoring, contact.score, contact.score_at, event.type, now)
    if change is None:
        return
    contact.score, contact.score_at = change.after, now
    session.add(contact)
    session.flush()
    if change.crossed:
        record_event(session, contact.id, "score.hot", now, {"score": contact.score, "threshold": scoring.threshold})
        _hot_lead(session, rt, contact, now)


def _hot_lead(session: Session, rt: Runtime, contact: Contact, now: datetime) -> None:
    lifecycle = rt.sequences.lifecycle
    sequence = rt.sequences.get(lifecycle.scoring.sequence) if lifecycle.scoring.sequence else None
    if sequence is not None:
        enroll(session, contact, sequence, now)
    if lifecycle.scoring.alert and lifecycle.sales_email:
        name = f"{contact.first_name} {contact.last_name}".strip() or contact.email
        queue_alert(session, contact, "hot-lead", lifecycle.sales_email, f"Hot lead: {name} (score {contact.score:g})",
                    f"{name} <{contact.email}> just passed the lead-score threshold "
                    f"({contact.score:g} >= {lifecycle.scoring.threshold:g}).\n"
                    f"Stage: {contact.stage}. Tags: {', '.join(contact.tags) or 'none'}.\n\n"
                    f"Timeline: nurture contacts show {contact.email}\n", now)


def queue_alert(session: Session, contact: Contact, kind: str, recipient: str, subject: str, body: str,
                now: datetime, send_after: datetime | None = None) -> None:
    """An email to a person at the business, sent by the first tick after `send_after` (default: now)."""
    session.add(Alert(contact_id=contact.id, kind=kind, recipient=recipient, subject=subject, body=body,
                      created_at=now, send_after=send_after or now))


def facts(session: Session, rt: Runtime, contact: Contact, enrollment: Enrollment, sequence: Sequence,
          now: datetime) -> Facts:
    """What `sequence`'s conditions may look at for this contact, from the moment it entered."""
    # Segment files are looked at (a few stats) only for a sequence that asks about a segment.
    segments = rt.segments if named_by(sequence) else None
    return store.load_facts(session, contact, enrollment, sequence, rt.sequences.lifecycle.scoring, now, segments)


def end_reached_goals(session: Session, rt: Runtime, contact: Contact, now: datetime) -> None:
    """End every sequence whose goal the contact has now reached — even a step already claimed or queued:
    the send path re-reads the enrollment's status right before sending."""
    for enrollment in store.active_enrollments(session, contact.id or 0):
        sequence = rt.sequences.get(enrollment.sequence_id)
        if sequence is None or not sequence.goals:
            continue
        reached = engine.reached_goal(sequence, facts(session, rt, contact, enrollment, sequence, now), now)
        if reached is None:
            continue
        reason = f"goal reached: {reached}"
        store.complete_enrollment(session, enrollment.id or 0, reason, now)
        record_event(session, contact.id, "sequence.goal", now, {"sequence": sequence.id, "reason": reason})


def _wake_waiting(session: Session, rt: Runtime, contact: Contact, event_type: str, now: datetime) -> None:
    """An enrollment waiting at a wait-for step for this event is due now (it then branches to `then`)."""
    for enrollment in store.active_enrollments(session, contact.id or 0):
        sequence = rt.sequences.get(enrollment.sequence_id)
        step = sequence.step(enrollment.step_id) if sequence and enrollment.step_id else None
        if decisions.wakes(step, event_type):
            store.make_due(session, enrollment.id or 0, now)


def trigger(session: Session, rt: Runtime, contact: Contact, kind: str, value: str, now: datetime) -> list[str]:
    """Enroll the contact in every sequence with this trigger (each under its re-entry policy)."""
    started = []
    for sequence in decisions.started_by(rt.sequences.all(), kind, value):
        _, created = enroll(session, contact, sequence, now)
        if created:
            started.append(sequence.id)
    return started


def tags_added(session: Session, rt: Runtime, contact: Contact, tags: list[str], now: datetime) -> None:
    for tag in tags:
        record_event(session, contact.id, "tag.added", now, {"tag": tag})
        trigger(session, rt, contact, "tag", tag, now)


class InvalidEvent(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


EVENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class EventInput:
    type: str
    data: dict
    occurred_at: datetime | None
    key: str | None


def parse_event_input(type_: object, data: object, occurred_at: object, key: object) -> EventInput:
    """Check what a caller (API, CLI) sent. Raises InvalidEvent naming the field."""
    if not isinstance(type_, str) or not EVENT_TYPE.match(type_):
        raise InvalidEvent("type", "lowercase letters, digits, '.', '_' or '-', like purchase or webinar-attended")
    if not isinstance(data, dict):
        raise InvalidEvent("properties", "must be an object")
    check_json(data, "properties")  # InvalidContact naming the field: NUL or a lone surrogate, deep inside
    when = _occurred_at(occurred_at)
    if key is not None and (not isinstance(key, str) or not 0 < len(check_text(key, "idempotency_key", 200))):
        raise InvalidEvent("idempotency_key", "a string of 1 to 200 characters")
    return EventInput(type_, data, when, key)


def _occurred_at(occurred_at: object) -> datetime | None:
    if occurred_at is None:
        return None
    try:
        when = datetime.fromisoformat(str(occurred_at).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEvent("occurred_at", "an ISO 8601 time like 2026-11-23T10:00:00Z") from None
    if when.tzinfo is None:
        raise InvalidEvent("occurred_at", "needs a timezone (Z or +01:00)")
    try:
        return when.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 is before the year 1 in UTC
        raise InvalidEvent("occurred_at", "a time between the years 1 and 9999 in UTC") from None


def enroll_inactive(session: Session, rt: Runtime, now: datetime, limit: int = 500) -> int:
    """Win-back: enroll subscribed contacts with no open, click or purchase for a sequence's `inactive`
    period (counted from sign-up for those who never engaged). Run by the tick; at most `limit` a run."""
    started = 0
    for sequence in rt.sequences.all():
        for trig in (t for t in sequence.triggers if t.kind == "inactive"):
            delay = parse_duration(trig.value)
            cutoff = now - timedelta(days=delay.days, seconds=delay.seconds)
            for contact in store.inactive_contacts(session, sequence, cutoff, limit - started):
                started += enroll(session, contact, sequence, now)[1]
    return started

