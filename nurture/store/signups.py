"""The writes of a sign-up from an address no contact has: four Core statements, one round trip each.

The ORM writes the same rows in twelve (a flush per INSERT to learn the new id, a SELECT before each
enrollment, an UPDATE per consent change): that was most of a sign-up's cost (bench/README.md, P4). Here
the contact is inserted with its final columns (`INSERT ... ON CONFLICT (email) DO NOTHING RETURNING id`:
no SELECT first, and a taken address answers None instead of raising), then its consent records, its
enrollment and its timeline events, each table in one statement whatever the number of rows.

The statements are built once: executing a prepared statement with new parameters skips building and
most of the compiling (SQLAlchemy caches the compiled form by the statement's structure).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Insert, bindparam, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from nurture.store.models import Consent, Contact, Enrollment, Event

_CONTACTS = Contact.__table__  # type: ignore[attr-defined]


def _new_contact(build: type) -> Insert:
    return build(_CONTACTS).on_conflict_do_nothing(index_elements=[_CONTACTS.c.email]).returning(_CONTACTS.c.id)


_NEW_CONTACT = {"postgresql": _new_contact(postgresql.insert), "sqlite": _new_contact(sqlite.insert)}
_CONSENTS = insert(Consent.__table__)  # type: ignore[attr-defined]
_ENROLLMENTS = insert(Enrollment.__table__)  # type: ignore[attr-defined]
_EVENTS = insert(Event.__table__)  # type: ignore[attr-defined]
_SET_FIELDS = update(_CONTACTS).where(_CONTACTS.c.id == bindparam("contact_id"))
_EVENT_COLUMNS = ("contact_id", "type", "data", "delivery_id", "occurred_at", "created_at")


def insert_new_contact(session: Session, row: Mapping[str, object]) -> int | None:
    """Insert the contact `row` (its email normalised by the caller); its id, or None when a contact has
    that address already (the caller merges into it instead). Columns left out take the model's defaults."""
    connection = session.connection()
    return connection.execute(_NEW_CONTACT[connection.dialect.name], dict(row)).scalar()


def set_fields(session: Session, contact_id: int, fields: Mapping[str, object]) -> None:
    """Replace the new contact's custom fields (the lead magnet's link carries the contact's id)."""
    session.connection().execute(_SET_FIELDS, {"contact_id": contact_id, "fields": dict(fields)})


def insert_signup_rows(session: Session, consents: Sequence[Mapping[str, object]],
                       enrollments: Sequence[Mapping[str, object]], events: Sequence[Mapping[str, object]]) -> None:
    """A new contact's consent records, enrollments and events, one statement per table, rows inserted in
    the order given (a timeline is read in id order). Every row of a table names the same columns."""
    connection = session.connection()
    for statement, rows in ((_CONSENTS, consents), (_ENROLLMENTS, enrollments), (_EVENTS, events)):
        if rows:
            connection.execute(statement, [dict(row) for row in rows])


def event_row(contact_id: int, type_: str, at: object, data: Mapping[str, object],
              delivery_id: int | None = None) -> dict[str, object]:
    """One event's columns for `insert_signup_rows` (the same columns store.contacts.insert_event writes)."""
    return dict(zip(_EVENT_COLUMNS, (contact_id, type_, dict(data), delivery_id, at, at), strict=True))
