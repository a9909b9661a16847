"""Leaving and coming back: unsubscribe (one sequence or all marketing email), resubscribe, SMS choice.

Every change writes a consent record (who, when, how, from which message) and an event on the contact's
timeline. Honoured at once: the send path re-reads these fields right before every send.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from nurture.people.contacts import record_event
from nurture.store import consent as consent_store
from nurture.store import contacts as store
from nurture.store.models import Consent, ConsentAction, Contact, Delivery, Enrollment, Subscription


class UnknownLink(LookupError):
    """The link's delivery no longer exists (or never did)."""


@dataclass(frozen=True)
class Origin:
    """Where a change came from, for the consent record."""

    method: str  # one-click | unsubscribe-link | preference-page | mailto | cli | api | form | sms-keyword
    delivery_id: int | None = None
    ip: str | None = None
    user_agent: str | None = None
    consent_text: str | None = None
    form_id: str | None = None
    by: str | None = None  # a person acting for the contact (an owner in the console): kept on the timeline


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


def consent_row(contact_id: int | None, channel: str, action: ConsentAction, origin: Origin, now: datetime,
                scope: str = "all") -> dict[str, object]:
    """The consent record's columns: one definition for the ORM path and a new address's sign-up (which
    inserts its rows in one statement, nurture.people.new_signup)."""
    text = origin.consent_text
    return {
        "contact_id": contact_id, "channel": channel, "action": action, "method": origin.method, "scope": scope,
        "form_id": origin.form_id, "delivery_id": origin.delivery_id, "consent_text": text,
        "consent_hash": hashlib.sha256(text.encode()).hexdigest() if text else None,
        "ip": origin.ip, "user_agent": (origin.user_agent or "")[:500] or None, "created_at": now,
    }


def record_consent(session: Session, contact: Contact, channel: str, action: ConsentAction, origin: Origin,
                   now: datetime, scope: str = "all") -> None:
    session.add(Consent(**consent_row(contact.id, channel, action, origin, now, scope)))


def unsubscribe_all(session: Session, contact: Contact, origin: Origin, now: datetime) -> bool:
    """Stop all marketing email to `contact`. Returns False when it was already unsubscribed (idempotent:
    a mailbox provider may POST twice; only the first writes a record)."""
    changed = store.set_status(session, contact.id, "email_status", Subscription.UNSUBSCRIBED, now)
    if changed:
        record_consent(session, contact, "email", ConsentAction.OPT_OUT, origin, now)
        record_event(session, contact.id, "email.unsubscribed", now,
                     {"scope": "all", "via": origin.method, **_by(origin)}, origin.delivery_id)
    return changed


def leave_sequence(session: Session, contact: Contact, enrollment: Enrollment, origin: Origin,
                   now: datetime) -> bool:
    """Stop one sequence for `contact`; other sequences go on."""
    changed = store.stop_enrollment(session, enrollment.id, "unsubscribed from this sequence", now)
    if changed:
        record_consent(session, contact, "email", ConsentAction.OPT_OUT, origin, now, scope=enrollment.sequence_id)
        record_event(session, contact.id, "email.unsubscribed", now,
                     {"scope": enrollment.sequence_id, "via": origin.method}, origin.delivery_id)
    return changed


def resubscribe(session: Session, contact: Contact, origin: Origin, now: datetime) -> bool:
    """Opt back in to marketing email, with a fresh consent record. Suppressed addresses stay suppressed."""
    changed = store.set_status(session, contact.id, "email_status", Subscription.SUBSCRIBED, now)
    if changed:
        record_consent(session, contact, "email", ConsentAction.OPT_IN, origin, now)
        record_event(session, contact.id, "email.resubscribed", now, {"via": origin.method}, origin.delivery_id)
    return changed


def set_sms(session: Session, contact: Contact, wanted: bool, origin: Origin, now: datetime) -> bool:
    """Turn marketing texts on or off. Turning them on needs a phone number and records consent."""
    status = Subscription.SUBSCRIBED if wanted else Subscription.UNSUBSCRIBED
    if wanted and not contact.phone:
        return False
    changed = store.set_status(session, contact.id, "sms_status", status, now)
    if changed:
        record_consent(session, contact, "sms", ConsentAction.OPT_IN if wanted else ConsentAction.OPT_OUT, origin, now)
        record_event(session, contact.id, "sms.subscribed" if wanted else "sms.unsubscribed", now,
                     {"via": origin.method, **_by(origin)}, origin.delivery_id)
    return changed


def _by(origin: Origin) -> dict[str, str]:
    return {"by": origin.by} if origin.by else {}


def consent_history(session: Session, contact_id: int) -> list[Consent]:
    return consent_store.history(session, contact_id)
