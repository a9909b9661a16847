"""The consent record's queries: a contact's history (the API, `contacts consent`), and the opt-ins a
confirmation or an SMS keyword looks back to."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from nurture.store.models import Consent, ConsentAction


def history(session: Session, contact_id: int) -> list[Consent]:
    """Every consent record of the contact, oldest first."""
    return list(session.scalars(select(Consent).where(Consent.contact_id == contact_id).order_by(Consent.id)))


def opt_in_text(session: Session, contact_id: int, form_id: str) -> str | None:
    """The consent text of the contact's latest email opt-in through `form_id`: the words the person saw
    when they signed up (the form file may have changed since)."""
    return session.scalars(
        select(Consent.consent_text).where(Consent.contact_id == contact_id, Consent.form_id == form_id,
                                           Consent.channel == "email", Consent.action == ConsentAction.OPT_IN)
        .order_by(Consent.id.desc())  # type: ignore[union-attr]
    ).first()


def ever_opted_in(session: Session, contact_id: int, channel: str) -> bool:
    """Whether the contact ever opted in on `channel` (a later opt-out does not change the answer)."""
    query = select(Consent.id).where(Consent.contact_id == contact_id, Consent.channel == channel,
                                     Consent.action == ConsentAction.OPT_IN)
    return session.scalars(query.limit(1)).first() is not None
