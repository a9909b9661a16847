"""The queries of a CSV import: whole batches at once, never a statement per row.

A batch of a few thousand rows is looked up with a handful of `IN (...)` selects and written by executemany
(one prepared statement for every row: sqlite3 runs it in C, psycopg pipelines it without a round trip a
row), in the caller's one transaction per batch. Rows come back as plain rows, not ORM objects. Per row,
the ORM and a round trip each would have cost more than the whole import's minute at 100,000 rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import Table, bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from nurture.store.models import Consent, Contact, Enrollment, Event, Subscription

# what people.contacts.merge_into fills
MERGED = ("first_name", "last_name", "phone", "timezone", "locale", "fields", "tags")
MERGE_COLUMNS = ("id", "email", *MERGED, "stage", "email_status", "sms_status")
# Bound parameters in one IN list: SQLite before 3.32 allows 999 in a statement.
IN_CHUNK = 900
T = TypeVar("T")


def plan_for_growth(session: Session) -> None:
    """On PostgreSQL, plan each of this transaction's statements for the rows in it. psycopg prepares a
    statement run five times, and the server may then keep one generic plan for it, made while the table
    was nearly empty: a whole-table scan per `email IN (...)` lookup. An import grows the table by
    thousands of rows a batch faster than autovacuum re-analyses it, and one such plan made a 100,000-row
    import take 93 s instead of 50 (its "again" pass 262 s instead of 19). A custom plan reads the table's
    current size, so the index lookup wins as the table grows; planning costs ~0.1 ms a statement."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (dicts with the same keys) in the session's transaction: COPY on PostgreSQL, executemany
    elsewhere. Measured at 100,000 imported rows (six rows written each), pipelined single-row INSERTs kept
    the PostgreSQL server busy for most of two minutes; COPY takes them as one stream."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(table), rows)
        return
    names = list(rows[0])
    raw = session.connection().connection.dbapi_connection  # psycopg's, inside the session's transaction
    assert raw is not None
    columns = ", ".join(f'"{name}"' for name in names)
    statement = f'COPY "{table.name}" ({columns}) FROM STDIN'
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([_plain(row[name]) for name in names])
    except session.get_bind().dialect.loaded_dbapi.IntegrityError as exc:  # as SQLAlchemy raises it for INSERT
        raise IntegrityError(statement, None, exc) from exc


def _plain(value: object) -> object:
    """A value as the column stores it (what the column types' bind processing does for the ORM): JSON as
    text, times as naive UTC (see models.UTCDateTime), statuses as their plain strings."""
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, StrEnum):
        return value.value
    return value


def contacts_by_email(session: Session, emails: Sequence[str]) -> dict[str, SimpleNamespace]:
    """The known contacts among these normalised addresses: plain rows of what a merge reads and writes
    (MERGE_COLUMNS), not ORM objects, which cost ~0.5 ms each to build on this machine."""
    found: dict[str, SimpleNamespace] = {}
    columns = [getattr(Contact, c) for c in MERGE_COLUMNS]
    for part in chunks(emails):
        for row in session.execute(select(*columns).where(Contact.email.in_(part))):  # type: ignore[attr-defined]
            known = SimpleNamespace(**dict(zip(MERGE_COLUMNS, row, strict=True)))  # not row._mapping: 3x dearer
            found[known.email] = known
    return found


def update_merged(session: Session, rows: list[dict[str, Any]]) -> None:
    """Write back merged contacts: each dict holds `contact_id` and every merged column (MERGED, updated_at)."""
    if rows:
        table = Contact.__table__  # type: ignore[attr-defined]
        values = {name: bindparam(name) for name in (*MERGED, "updated_at")}
        session.execute(update(table).where(table.c.id == bindparam("contact_id")).values(values), rows)


def insert_contacts(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Add new contacts (each a dict of Contact's columns); email -> the id each was given.

    A plain executemany and a select of the ids by address, not INSERT ... RETURNING: psycopg parses a
    multi-row statement afresh each time (~0.3 ms a row here), while its executemany pipelines one prepared
    statement."""
    if not rows:
        return {}
    bulk_insert(session, Contact.__table__, rows)  # type: ignore[attr-defined]
    ids: dict[str, int] = {}
    for part in chunks([row["email"] for row in rows]):
        rows = session.execute(select(Contact.email, Contact.id).where(Contact.email.in_(part)))  # type: ignore[attr-defined]
        ids.update((email, contact_id) for email, contact_id in rows)
    return ids


def insert_events(session: Session, rows: list[dict[str, Any]]) -> None:
    """Timeline events (contact_id, type, data, occurred_at, created_at), many rows per statement."""
    if rows:
        bulk_insert(session, Event.__table__, rows)  # type: ignore[attr-defined]


def insert_consents(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        bulk_insert(session, Consent.__table__, rows)  # type: ignore[attr-defined]


def insert_enrollments(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        bulk_insert(session, Enrollment.__table__, rows)  # type: ignore[attr-defined]


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


def latest_enrollments(session: Session, contact_ids: Sequence[int], sequence_id: str) -> dict[int, SimpleNamespace]:
    """Each contact's latest entry into `sequence_id` (entry, status, created_at: what re-entry asks),
    for those that ever entered it."""
    latest: dict[int, SimpleNamespace] = {}
    columns = (Enrollment.contact_id, Enrollment.entry, Enrollment.status, Enrollment.created_at)
    for part in chunks(contact_ids):
        rows = session.execute(select(*columns).where(Enrollment.sequence_id == sequence_id,
                                                      Enrollment.contact_id.in_(part)))  # type: ignore[attr-defined]
        for contact_id, entry, status, created_at in rows:
            known = latest.get(contact_id)
            if known is None or entry > known.entry:
                latest[contact_id] = SimpleNamespace(entry=entry, status=status, created_at=created_at)
    return latest
