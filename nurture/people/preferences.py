"""Leaving and coming back: unsubscribe (one sequence or all marketing email), resubscribe, SMS choice.

Every change writes a consent record (who, when, how, from which message) and an event on the contact's
timeline. Honoured at once: the send path re-reads these fields right before every send.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, select

from nurture.people.contacts import record_event
from nurture.store.models import Consent, ConsentAction, Contact, Delivery, Enrollment, EnrollmentStatus, Subscription


class UnknownLink(LookupError):
    """The link's delivery no longer exists (or never did)."""


@dataclass(frozen=True)
class Origin:
    """Where a change came from, for the consent record."""

    method: str  # one-click | preference-page | mailto | cli | api | form | sms-keyword
    delivery_id: int | None = None
    ip: str | None = None
    user_agent: str | None = None
    consent_text: str | None = None
    form_id: str | None = None


@dataclass(frozen=True)
class LinkTarget:
    delivery: Delivery
    contact: Contact
    enrollment: Enrollment | None


def resolve(session: Session, delivery_id: int) -> LinkTarget:
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise UnknownLink(delivery_id)
    contact = session.get(Contact, delivery.contact_id)
    assert contact is not None  # foreign key
    return LinkTarget(delivery, contact, session.get(Enrollment, delivery.enrollment_id))


def record_consent(session: Session, contact: Contact, channel: str, action: ConsentAction, origin: Origin,
                   now: datetime, scope: str = "all") -> None:
    text = origin.consent_text
    session.add(Consent(
        contact_id=contact.id, channel=channel, action=action, method=origin.method, scope=scope,
        form_id=origin.form_id, delivery_id=origin.delivery_id, consent_text=text,
        consent_hash=hashlib.sha256(text.encode()).hexdigest() if text else None,
        ip=origin.ip, user_agent=(origin.user_agent or "")[:500] or None, created_at=now,
    ))


def unsubscribe_all(session: Session, contact: Contact, origin: Origin, now: datetime) -> bool:
    """Stop all marketing email to `contact`. Returns False when it was already unsubscribed (idempotent:
    a mailbox provider may POST twice; only the first writes a record)."""
    changed = session.execute(
        update(Contact).where(Contact.id == contact.id, Contact.email_status != Subscription.UNSUBSCRIBED)
        .values(email_status=Subscription.UNSUBSCRIBED, updated_at=now)
    ).rowcount == 1
    if changed:
        record_consent(session, contact, "email", ConsentAction.OPT_OUT, origin, now)
        record_event(session, contact.id, "email.unsubscribed", now,
                     {"scope": "all", "via": origin.method}, origin.delivery_id)
    return changed


def leave_sequence(session: Session, contact: Contact, enrollment: Enrollment, origin: Origin,
                   now: datetime) -> bool:
    """Stop one sequence for `contact`; other sequences go on."""
    changed = session.execute(
        update(Enrollment).where(Enrollment.id == enrollment.id, Enrollment.status == EnrollmentStatus.ACTIVE)
        .values(status=EnrollmentStatus.STOPPED, stop_reason="unsubscribed from this sequence", updated_at=now)
    ).rowcount == 1
    if changed:
        record_consent(session, contact, "email", ConsentAction.OPT_OUT, origin, now, scope=enrollment.sequence_id)
        record_event(session, contact.id, "email.unsubscribed", now,
                     {"scope": enrollment.sequence_id, "via": origin.method}, origin.delivery_id)
    return changed


def resubscribe(session: Session, contact: Contact, origin: Origin, now: datetime) -> bool:
    """Opt back in to marketing email, with a fresh consent record. Suppressed addresses stay suppressed."""
    changed = session.execute(
        update(Contact).where(Contact.id == contact.id, Contact.email_status != Subscription.SUBSCRIBED)
        .values(email_status=Subscription.SUBSCRIBED, updated_at=now)
    ).rowcount == 1
    if changed:
        record_consent(session, contact, "email", ConsentAction.OPT_IN, origin, now)
        record_event(session, contact.id, "email.resubscribed", now, {"via": origin.method}, origin.delivery_id)
    return changed


def set_sms(session: Session, contact: Contact, wanted: bool, origin: Origin, now: datetime) -> bool:
    """Turn marketing texts on or off. Turning them on needs a phone number and records consent."""
    status = Subscription.SUBSCRIBED if wanted else Subscription.UNSUBSCRIBED
    if wanted and not contact.phone:
        return False
    changed = session.execute(
        update(Contact).where(Contact.id == contact.id, Contact.sms_status != status)
        .values(sms_status=status, updated_at=now)
    ).rowcount == 1
    if changed:
        record_consent(session, contact, "sms", ConsentAction.OPT_IN if wanted else ConsentAction.OPT_OUT, origin, now)
        record_event(session, contact.id, "sms.subscribed" if wanted else "sms.unsubscribed", now,
                     {"via": origin.method}, origin.delivery_id)
    return changed


def consent_history(session: Session, contact_id: int) -> list[Consent]:
    return list(session.exec(select(Consent).where(Consent.contact_id == contact_id).order_by(Consent.id)))
