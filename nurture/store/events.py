"""Queries about a contact's events and enrollments that recording an event (nurture.people.automation),
the send path and `nurture why` ask for by name.

Only reads and conditional writes; what they mean is decided in nurture.rules.decisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, select

from nurture.rules import decisions
from nurture.rules.conditions import EventFact, Facts, event_types
from nurture.rules.lifecycle import Scoring
from nurture.rules.segments import Segment, named_by
from nurture.rules.sequence import Sequence
from nurture.store import segments as segment_store
from nurture.store.models import Contact, Enrollment, EnrollmentStatus, Event, Subscription


def event_by_key(session: Session, key: str) -> Event | None:
    """The event recorded with this idempotency key, if any."""
    return session.exec(select(Event).where(Event.idempotency_key == key)).first()


def count_events(session: Session, contact_id: int, type_: str) -> int:
    return len(session.exec(select(Event.id).where(Event.contact_id == contact_id, Event.type == type_)).all())


def _wanted(sequence: Sequence) -> set[str]:
    """The event types `sequence`'s conditions, goals and waits look at (and opens and clicks): the query
    reads only those, not a busy contact's whole history."""
    wanted = set(decisions.ENGAGEMENT)
    for condition in [*sequence.goals, *(s.condition for s in sequence.steps if s.condition)]:
        wanted |= event_types(condition)
    return wanted | {s.wait_for.event for s in sequence.steps if s.wait_for}


def events_since(session: Session, contact_id: int, types: set[str], since: datetime) -> list[EventFact]:
    rows = session.exec(select(Event).where(Event.contact_id == contact_id, Event.type.in_(types),  # type: ignore[attr-defined]
                                            Event.occurred_at >= since)).all()
    return [EventFact(e.type, e.occurred_at, e.data) for e in rows]


def purchases(session: Session, contact_id: int) -> frozenset[str]:
    """Every product this contact ever bought (purchase events' `product` property)."""
    rows = session.exec(select(Event.data).where(Event.contact_id == contact_id, Event.type == "purchase")).all()
    return decisions.products_bought(rows)


def load_facts(session: Session, contact: Contact, enrollment: Enrollment, sequence: Sequence, scoring: Scoring,
               now: datetime, segments: Mapping[str, Segment] | None = None) -> Facts:
    """What `sequence`'s conditions may look at for this contact, from the moment it entered; and which of
    the `segments` its conditions name the contact is in now (a segment sees all its events)."""
    events = events_since(session, contact.id or 0, _wanted(sequence), enrollment.created_at)
    bought = purchases(session, contact.id or 0) if any(s.offers for s in sequence.steps) else frozenset()
    who = contact_facts(contact)
    inside = segments_of(session, contact.id or 0, named_by(sequence), segments or {}, scoring, now)
    return decisions.facts_for(sequence.id, who, events, bought, scoring, now, inside)


def contact_facts(contact: Contact) -> decisions.ContactFacts:
    return decisions.ContactFacts(frozenset(contact.tags), contact.fields, contact.stage, contact.score,
                                  contact.score_at,
                                  decisions.ContactFacts.channels(contact.email_status, contact.sms_status),
                                  contact.created_at)


def segments_of(session: Session, contact_id: int, ids: set[str], segments: Mapping[str, Segment], scoring: Scoring,
                now: datetime) -> frozenset[str]:
    """Which of these segments the contact is in at `now` (unknown ids: not in)."""
    return frozenset(segment_store.segments_of(session, [segments[sid] for sid in sorted(ids) if sid in segments],
                                               contact_id, now, scoring))


def active_enrollments(session: Session, contact_id: int) -> list[Enrollment]:
    return list(session.exec(select(Enrollment).where(Enrollment.contact_id == contact_id,
                                                      Enrollment.status == EnrollmentStatus.ACTIVE)))


def complete_enrollment(session: Session, enrollment_id: int, reason: str, now: datetime) -> bool:
    """End an enrollment that is still active (a goal reached). Returns whether this call ended it."""
    result = session.execute(update(Enrollment)
                             .where(Enrollment.id == enrollment_id, Enrollment.status == EnrollmentStatus.ACTIVE)
                             .values(status=EnrollmentStatus.COMPLETED, stop_reason=reason, updated_at=now))
    return result.rowcount == 1


def make_due(session: Session, enrollment_id: int, now: datetime) -> None:
    """An active enrollment is due now (the event its wait-for step waits for came)."""
    session.execute(update(Enrollment)
                    .where(Enrollment.id == enrollment_id, Enrollment.status == EnrollmentStatus.ACTIVE)
                    .values(due_at=now, updated_at=now))


def inactive_contacts(session: Session, sequence: Sequence, cutoff: datetime, limit: int) -> list[Contact]:
    """Subscribed contacts with no open, click or purchase since `cutoff` (and signed up before it) whom
    `sequence`'s re-entry policy would take: the win-back trigger's candidates, at most `limit`."""
    if limit <= 0:
        return []
    engaged = select(Event.contact_id).where(Event.type.in_((*decisions.ENGAGEMENT, "purchase")),  # type: ignore[attr-defined]
                                             Event.occurred_at > cutoff)
    # Contacts the policy would refuse are left out here, so they don't fill every run's limit.
    recent = Enrollment.created_at > cutoff if sequence.reentry.policy != "once" else Enrollment.id.is_not(None)  # type: ignore[union-attr]
    taken = select(Enrollment.contact_id).where(Enrollment.sequence_id == sequence.id,
                                                (Enrollment.status == EnrollmentStatus.ACTIVE) | recent)
    return list(session.exec(
        select(Contact).where(Contact.email_status == Subscription.SUBSCRIBED, Contact.created_at <= cutoff,
                              Contact.id.not_in(engaged), Contact.id.not_in(taken))  # type: ignore[union-attr]
        .order_by(Contact.id).limit(limit)))
