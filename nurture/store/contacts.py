"""The queries of people/: contacts, their enrollments and timelines, and the conditional UPDATEs that
change a contact's consent or a sign-up's state exactly once (a second caller finds the row count 0)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case, func, insert, select, update
from sqlmodel import Session

from nurture.store.models import Contact, Delivery, Enrollment, EnrollmentStatus, Event, Subscription


def by_email(session: Session, email: str) -> Contact | None:
    """The contact with this address, which the caller has normalised (see people.contacts)."""
    return session.scalars(select(Contact).where(Contact.email == email)).first()


def by_phone(session: Session, phone: str) -> list[Contact]:
    """Every contact with this E.164 number, oldest first: a number may be shared by a household."""
    return list(session.scalars(select(Contact).where(Contact.phone == phone).order_by(Contact.id)))


def enrollments_of(session: Session, contact_id: int) -> list[Enrollment]:
    return list(session.scalars(select(Enrollment).where(Enrollment.contact_id == contact_id)
                                .order_by(Enrollment.id)))


def latest_enrollment(session: Session, contact_id: int, sequence_id: str) -> Enrollment | None:
    return session.scalars(
        select(Enrollment).where(Enrollment.contact_id == contact_id, Enrollment.sequence_id == sequence_id)
        .order_by(Enrollment.entry.desc())  # type: ignore[attr-defined]
    ).first()


def delivery_with_contact(session: Session, delivery_id: int) -> tuple[Delivery, Contact] | None:
    """The message a signed link points back to, and its contact; None when either is gone."""
    delivery = session.get(Delivery, delivery_id)
    contact = session.get(Contact, delivery.contact_id) if delivery else None
    return (delivery, contact) if delivery and contact else None


def deliveries_of(session: Session, contact_id: int) -> list[Delivery]:
    return list(session.scalars(select(Delivery).where(Delivery.contact_id == contact_id).order_by(Delivery.id)))


def events_of(session: Session, contact_id: int) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.contact_id == contact_id).order_by(Event.id)))


def insert_event(session: Session, contact_id: int, type_: str, now: datetime, data: dict,
                 delivery_id: int | None = None) -> None:
    """A plain INSERT, not the ORM's unit of work: it runs for every message sent, and nothing reads the
    row back in the same session."""
    session.execute(insert(Event.__table__).values(contact_id=contact_id, type=type_, data=data,  # type: ignore[attr-defined]
                                                   delivery_id=delivery_id, occurred_at=now, created_at=now))


def event_key_taken(session: Session, key: str) -> bool:
    return session.scalars(select(Event.id).where(Event.idempotency_key == key)).first() is not None


def set_status(session: Session, contact_id: int, column: str, status: Subscription, now: datetime) -> bool:
    """Set the contact's consent `column` (email_status, sms_status) to `status`; False when it already
    was, so of two clicks at once only one writes the consent record."""
    field = getattr(Contact, column)
    return session.execute(
        update(Contact).where(Contact.id == contact_id, field != status).values({column: status, "updated_at": now})
    ).rowcount == 1


def stop_enrollment(session: Session, enrollment_id: int, reason: str, now: datetime) -> bool:
    """Stop a running enrollment; False when it had stopped or finished already."""
    return session.execute(
        update(Enrollment).where(Enrollment.id == enrollment_id, Enrollment.status == EnrollmentStatus.ACTIVE)
        .values(status=EnrollmentStatus.STOPPED, stop_reason=reason, updated_at=now)
    ).rowcount == 1


def take_pending(session: Session, contact_id: int, form_id: str, now: datetime) -> bool:
    """Confirm the sign-up waiting for `form_id`: of two clicks at once, exactly one gets True."""
    return session.execute(
        update(Contact).where(Contact.id == contact_id, Contact.pending_form == form_id)
        .values(email_status=Subscription.SUBSCRIBED, pending_form=None, pending_since=None, updated_at=now)
    ).rowcount == 1


def pending_since_before(session: Session, cutoff: datetime, limit: int) -> Sequence[tuple[int, str | None]]:
    """(contact id, form id) of sign-ups waiting for a confirmation since before `cutoff`."""
    return session.execute(select(Contact.id, Contact.pending_form).where(Contact.pending_since < cutoff)
                           .limit(limit)).all()


def lapse_pending(session: Session, contact_id: int, cutoff: datetime, now: datetime) -> bool:
    """End a sign-up not confirmed by `cutoff`: a pending contact becomes expired (one that was subscribed
    already stays so). False when it was confirmed or lapsed meanwhile."""
    return session.execute(
        update(Contact).where(Contact.id == contact_id, Contact.pending_since < cutoff).values(
            email_status=case((Contact.email_status == Subscription.PENDING, Subscription.EXPIRED),
                              else_=Contact.email_status),
            pending_form=None, pending_since=None, updated_at=now)
    ).rowcount == 1


def top_referrers(session: Session, limit: int) -> Sequence[tuple[int, str, str, str, int]]:
    """(contact id, email, first name, last name, referrals) of the contacts with most `referral` events."""
    count = func.count(Event.id)
    return session.execute(
        select(Contact.id, Contact.email, Contact.first_name, Contact.last_name, count)
        .join(Event, Event.contact_id == Contact.id).where(Event.type == "referral")
        .group_by(Contact.id, Contact.email, Contact.first_name, Contact.last_name)
        .order_by(count.desc(), Contact.id).limit(limit)
    ).all()


# --- an owner's actions on an enrollment (people.owner_actions) ------------------------------------------------

RUNNING = (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED)


def pause_enrollment(session: Session, enrollment_id: int, reason: str, now: datetime) -> bool:
    """Hold a running enrollment where it is. Only one no batch holds right now (an expired lease counts
    as free, and its token is cleared so that batch's fence fails): pausing mid-send would turn the step
    into a skip. False when it is not running, or is being sent this moment."""
    return session.execute(
        update(Enrollment).where(Enrollment.id == enrollment_id, Enrollment.status == EnrollmentStatus.ACTIVE,
                                 (Enrollment.claim_token.is_(None)) | (Enrollment.claimed_until < now))  # type: ignore[union-attr,operator]
        .values(status=EnrollmentStatus.PAUSED, stop_reason=reason, claim_token=None, claimed_until=None,
                updated_at=now)
    ).rowcount == 1


def resume_enrollment(session: Session, enrollment_id: int, now: datetime) -> bool:
    """Let a paused enrollment run again from its step (due at once if its time passed while paused)."""
    return session.execute(
        update(Enrollment).where(Enrollment.id == enrollment_id, Enrollment.status == EnrollmentStatus.PAUSED)
        .values(status=EnrollmentStatus.ACTIVE, stop_reason=None, updated_at=now)
    ).rowcount == 1


def end_enrollment(session: Session, enrollment_id: int, reason: str, now: datetime) -> bool:
    """Stop a running or paused enrollment for good. A batch sending it right now skips the step (the
    send path re-reads the status just before the send: store.claims.blocked_reason)."""
    return session.execute(
        update(Enrollment).where(Enrollment.id == enrollment_id, Enrollment.status.in_(RUNNING))  # type: ignore[attr-defined]
        .values(status=EnrollmentStatus.STOPPED, stop_reason=reason, updated_at=now)
    ).rowcount == 1
