"""A person's GDPR rights over what nurture holds: access (Art. 15, `export`) and erasure (Art. 17, `erase`).

Erasure keeps the rows that counts are made of — enrollments, deliveries, events, consent records — with
everything that names or reaches the person taken out, and keeps a digest of the address so that nothing
adds them again by mistake (people.contacts.check_not_erased, asked by every sign-up, API call, CLI and
import). What is kept and why: docs/compliance.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from nurture.people.contacts import normalise_email, record_event
from nurture.people.owner_actions import Actor
from nurture.people.preferences import Origin, record_consent
from nurture.people.signup import consent_json
from nurture.rules.erasure import address_digest, neutral_data
from nurture.store import consent as consent_store
from nurture.store import contacts as store
from nurture.store import erasure as erasure_store
from nurture.store.models import ConsentAction, Contact, Subscription

ERASED_DOMAIN = "erased.invalid"  # .invalid can never be a real domain (RFC 2606): nothing is ever sent there


def is_erased_contact(contact: Contact) -> bool:
    return contact.email_status == Subscription.ERASED


def erase(session: Session, contact: Contact, actor: Actor, now: datetime) -> None:
    """Erase the person: their address becomes a digest on the erased list; their row keeps its id, stage
    and dates (the map's counts) and loses everything else; their enrollments stop; the timeline keeps what
    happened and loses what it said about them. The caller commits."""
    if is_erased_contact(contact):
        return
    digest = address_digest(contact.email)
    erasure_store.add_erased(session, digest, now)
    for enrollment in store.enrollments_of(session, contact.id):
        store.end_enrollment(session, enrollment.id, "the person was erased", now)
    for channel in ("email", "sms"):  # the consent record shows the withdrawal, as any opt-out's (Art. 7(3))
        if getattr(contact, f"{channel}_status") == Subscription.SUBSCRIBED:
            record_consent(session, contact, channel, ConsentAction.OPT_OUT, Origin(method=actor.via), now)
    session.flush()
    for event in erasure_store.events_of(session, contact.id):
        erasure_store.scrub_event(session, event.id, neutral_data(event.type, event.data))
    erasure_store.scrub_rows(session, contact.id, (contact.email, contact.phone or ""))
    _blank(contact, now)
    # The digest rides on the event for the webhook receivers (rules.webhooks.erased_data): it is what the
    # erased list keeps anyway, and names no one.
    record_event(session, contact.id, "contact.erased", now, actor.stamp({"address_digest": digest}))
    session.flush()


def _blank(contact: Contact, now: datetime) -> None:
    contact.email = f"erased-{contact.id}@{ERASED_DOMAIN}"  # unique, as the column must be
    contact.phone, contact.timezone, contact.source, contact.locale = None, None, None, None
    contact.first_name = contact.last_name = ""
    contact.fields, contact.tags, contact.attribution = {}, [], {}
    contact.email_status = contact.sms_status = Subscription.ERASED
    contact.pending_form, contact.pending_since = None, None
    contact.updated_at = now


def lift(session: Session, address: str) -> bool:
    """Take an address off the erased list, when the person asks to come back (they sign up afresh)."""
    return erasure_store.lift_erased(session, address_digest(normalise_email(address)))


def export(session: Session, contact: Contact) -> dict[str, Any]:
    """Everything held about the contact, as plain data (GDPR Art. 15): the contact, its consent record,
    its enrollments, every message and every event on its timeline, its suppressed addresses."""
    return {
        "contact": _contact_data(contact),
        "consent": [consent_json(c) for c in consent_store.history(session, contact.id)],
        "enrollments": [{"sequence": e.sequence_id, "entry": e.entry, "status": e.status, "step": e.step_id,
                         "due_at": _iso(e.due_at), "stop_reason": e.stop_reason, "since": _iso(e.created_at)}
                        for e in store.enrollments_of(session, contact.id)],
        "messages": [{"sequence": d.sequence_id, "step": d.step_id, "channel": d.channel, "kind": d.kind,
                      "to": d.recipient, "status": d.status, "error": d.error, "sent_at": _iso(d.sent_at),
                      "created_at": _iso(d.created_at)} for d in erasure_store.deliveries_of(session, contact.id)],
        "events": [{"type": e.type, "at": _iso(e.occurred_at), "data": e.data, "key": e.idempotency_key}
                   for e in erasure_store.events_of(session, contact.id)],
        "alerts": [{"kind": a.kind, "subject": a.subject, "body": a.body, "at": _iso(a.created_at)}
                   for a in erasure_store.alerts_about(session, contact.id)],
        "suppressed": [{"address": s.address, "reason": s.reason, "since": _iso(s.created_at)}
                       for s in erasure_store.suppressions_of(session, (contact.email, contact.phone or ""))],
    }


def _contact_data(contact: Contact) -> dict[str, Any]:
    return {"id": contact.id, "email": contact.email, "first_name": contact.first_name,
            "last_name": contact.last_name, "phone": contact.phone, "timezone": contact.timezone,
            "locale": contact.locale, "fields": contact.fields, "tags": contact.tags, "stage": contact.stage,
            "score": contact.score,
            "email_status": contact.email_status, "sms_status": contact.sms_status, "source": contact.source,
            "attribution": contact.attribution, "created_at": _iso(contact.created_at),
            "updated_at": _iso(contact.updated_at)}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
