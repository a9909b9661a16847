"""Events from other systems (Stripe, a shop, a booking tool) recorded on a contact, exactly as an API event.

The contact is found by email or created — a buyer is not a subscriber: a contact created here has no
marketing consent (`email_status` none), so marketing steps skip them until they opt in somewhere; a known
contact keeps the consent it has. A retry of the same event (its key) records nothing and creates no one.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session

from nurture.people import automation
from nurture.people.contacts import ContactInput, InvalidContact, check_json, normalise_email, record_event, upsert
from nurture.people.preferences import Origin, record_consent
from nurture.rules.inbound import Inbound
from nurture.store import events as store
from nurture.store.contacts import set_status
from nurture.store.models import ConsentAction, Contact, Event, Subscription

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime


def record_inbound(session: Session, rt: Runtime, inbound: Inbound) -> tuple[Event, bool]:
    """Record `inbound` on its contact and apply it (stage, goals, triggers). Returns (event, created).
    Raises InvalidContact when its email cannot be an address or its data cannot be stored."""
    if (first := store.event_by_key(session, inbound.key)) is not None:
        return first, False
    email = normalise_email(inbound.email)
    check_json(inbound.data, "properties")
    contact = _contact(session, rt, email, inbound)
    if inbound.opted_in:
        _opt_in(session, contact, inbound.opted_in, rt.clock())
    when = inbound.occurred_at or rt.clock()
    return automation.record(session, rt, contact, inbound.type, inbound.data, when, inbound.key)


def _opt_in(session: Session, contact: Contact, consent_text: str, now: datetime) -> None:
    """Marketing email on for a buyer who ticked the box at checkout and had never subscribed (or let a
    double opt-in lapse). One who unsubscribed stays so: that choice is undone only where it was made
    (a resubscribe link, a form), never by a payment page."""
    if contact.email_status not in (Subscription.NONE, Subscription.EXPIRED):
        return
    origin = Origin(method="stripe-checkout", consent_text=consent_text)
    if set_status(session, contact.id or 0, "email_status", Subscription.SUBSCRIBED, now):
        record_consent(session, contact, "email", ConsentAction.OPT_IN, origin, now)
        record_event(session, contact.id, "email.subscribed", now, {"via": origin.method})
        session.refresh(contact)


def _contact(session: Session, rt: Runtime, email: str, inbound: Inbound) -> Contact:
    source = str(inbound.data.get("source", "integration"))
    offered = ContactInput(email=email, first_name=inbound.names.get("first_name", ""),
                           last_name=inbound.names.get("last_name", ""), phone=inbound.names.get("phone") or None,
                           source=source)
    try:
        found = upsert(session, offered, rt.clock())
    except InvalidContact as exc:
        if exc.field == "email":
            raise
        # A name or phone we cannot take must not lose the purchase: the address alone finds the contact.
        found = upsert(session, ContactInput(email=email, source=source), rt.clock())
    if found.created:
        found.contact.email_status = Subscription.NONE
        session.add(found.contact)
        session.flush()
    return found.contact
