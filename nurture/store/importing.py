"""The queries of a CSV import: whole batches at once, never a statement per row.

A batch of a few thousand rows is looked up with a handful of `IN (...)` selects and written with multi-row
INSERTs (SQLAlchemy's insertmanyvalues: one statement per ~1,000 rows, ids back through RETURNING on both
SQLite and PostgreSQL), in the caller's one transaction per batch. A statement per row costs ~0.3 ms on
SQLite and a round trip on PostgreSQL: 100,000 of them alone would take most of a minute.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import insert, select, update
from sqlmodel import Session

from nurture.store.models import Consent, Contact, Enrollment, Event, Subscription

# Bound parameters in one IN list: SQLite before 3.32 allows 999 in a statement.
IN_CHUNK = 900
T = TypeVar("T")


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def contacts_by_email(session: Session, emails: Sequence[str]) -> dict[str, Contact]:
    """The known contacts among these normalised addresses, as ORM objects (a merge changes them)."""
    found: dict[str, Contact] = {}
    for part in chunks(emails):
        for contact in session.scalars(select(Contact).where(Contact.email.in_(part))):  # type: ignore[attr-defined]
            found[contact.email] = contact
    return found


def insert_contacts(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Add new contacts (each a dict of Contact's columns); email -> the id each was given."""
    if not rows:
        return {}
    table = Contact.__table__  # type: ignore[attr-defined]
    result = session.execute(insert(table).returning(table.c.email, table.c.id, sort_by_parameter_order=True), rows)
    return dict(result.tuples().all())


def insert_events(session: Session, rows: list[dict[str, Any]]) -> None:
    """Timeline events (contact_id, type, data, occurred_at, created_at), many rows per statement."""
    if rows:
        session.execute(insert(Event.__table__), rows)  # type: ignore[attr-defined]


def insert_consents(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(Consent.__table__), rows)  # type: ignore[attr-defined]


def insert_enrollments(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(Enrollment.__table__), rows)  # type: ignore[attr-defined]


def subscribe_unasked(session: Session, contact_ids: Iterable[int], now: datetime) -> list[int]:
    """Subscribe to email those of these contacts whose status is still `none` (never asked): an import's
    consent never overrides an unsubscribe, a pending double opt-in or one that lapsed. Returns the ids
    changed, so that only they get a consent record."""
    ids = list(contact_ids)
    changed: list[int] = []
    for part in chunks(ids):
        changed += session.scalars(
            update(Contact).where(Contact.id.in_(part), Contact.email_status == Subscription.NONE)  # type: ignore[union-attr]
            .values(email_status=Subscription.SUBSCRIBED, updated_at=now).returning(Contact.id)).all()
    return changed


def latest_enrollments(session: Session, contact_ids: Sequence[int], sequence_id: str) -> dict[int, Enrollment]:
    """Each contact's latest entry into `sequence_id`, for those that ever entered it."""
    latest: dict[int, Enrollment] = {}
    for part in chunks(contact_ids):
        rows = session.scalars(select(Enrollment).where(Enrollment.sequence_id == sequence_id,
                                                        Enrollment.contact_id.in_(part)))  # type: ignore[attr-defined]
        for enrollment in rows:
            known = latest.get(enrollment.contact_id)
            if known is None or enrollment.entry > known.entry:
                latest[enrollment.contact_id] = enrollment
    return latest
