"""What `nurture why` reads about one contact: its enrollments, timeline, deliveries and suppressed
addresses — every query by name, read-only."""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session, select

from nurture.store.models import Contact, Delivery, Enrollment, Event, Suppression


def contact_by_email(session: Session, email: str) -> Contact | None:
    """The contact with this (already normalised) address."""
    return session.exec(select(Contact).where(Contact.email == email)).first()


def enrollments_of(session: Session, contact_id: int) -> list[Enrollment]:
    """Every entry of the contact into a sequence, oldest first."""
    return list(session.exec(select(Enrollment).where(Enrollment.contact_id == contact_id)
                             .order_by(Enrollment.created_at, Enrollment.id)))


def events_of(session: Session, contact_id: int) -> list[Event]:
    """The contact's whole timeline, in the order things happened (and were recorded)."""
    return list(session.exec(select(Event).where(Event.contact_id == contact_id)
                             .order_by(Event.occurred_at, Event.id)))


def deliveries_of(session: Session, contact_id: int) -> list[Delivery]:
    return list(session.exec(select(Delivery).where(Delivery.contact_id == contact_id)))


def suppressions_of(session: Session, addresses: Iterable[str]) -> list[Suppression]:
    """The suppression list's entries for these addresses."""
    wanted = [a for a in addresses if a]
    if not wanted:
        return []
    return list(session.exec(select(Suppression).where(Suppression.address.in_(wanted))))  # type: ignore[attr-defined]
