"""The contact list's one query: a page of contacts, newest first, searched and filtered, by cursor.

Keyset pagination (`id < cursor`), never OFFSET: page 2,000 of a million contacts costs what page 1 does.
The search matches an address or a name by its start on every database (indexed on PostgreSQL by the
pattern-ops indexes of migration 0008_contacts), and anywhere inside them on PostgreSQL when pg_trgm is there.
bench/contact_search.py measures it over 1,000,000 contacts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from sqlalchemy import cast, exists, func, literal, literal_column, or_, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from nurture.store.models import Contact, Enrollment, EnrollmentStatus, Subscription

# Below three characters a trigram index cannot narrow anything down: such a search is by prefix.
TRIGRAM_MIN = 3
# Which engines have the trigram indexes (asked once per process and database, not per search).
_trigrams: WeakKeyDictionary[Engine, bool] = WeakKeyDictionary()


@dataclass(frozen=True)
class Filters:
    """What the list is narrowed to. `query` is lower-cased text; the others match exactly. Erased
    contacts are left out unless `email_status` asks for them."""

    query: str = ""
    stage: str | None = None
    tag: str | None = None
    sequence: str | None = None  # contacts in it now (running or paused)
    email_status: str | None = None
    sms_status: str | None = None


def page(session: Session, filters: Filters, limit: int, before: int | None = None) -> list[Contact]:
    """Up to `limit` contacts matching `filters`, newest first, with ids below `before` when given."""
    statement = select(Contact).where(*_conditions(session, filters))
    if before is not None:
        statement = statement.where(Contact.id < before)
    newest_first = statement.order_by(Contact.id.desc()).limit(limit)  # type: ignore[union-attr]
    if session.get_bind().dialect.name != "postgresql" or filters == Filters():
        return list(session.scalars(newest_first))
    # Newest first, PostgreSQL walks the primary key backwards and stops after `limit` matches: a few ms when
    # matches are common, but a search that matches few or none of a million contacts walks them all (1.2 s
    # measured). Then the search's own indexes (trigram, pattern, tags, stage) find the few, sorted after.
    # Which case a search is, the planner cannot tell (its estimates assume columns independent), so the walk
    # gets a budget, and a walk over it means few matches.
    walked = _within(session, newest_first, WALK_BUDGET_MS)
    if walked is not None:
        return walked
    return list(session.scalars(statement.order_by((Contact.id + 0).desc()).limit(limit)))  # type: ignore[operator]


# Past this a walk has read ~100,000 rows (measured: a million in ~0.5 s) and found less than a page: fewer
# than one match in 2,000, which the index-first plan finds and sorts in a few ms.
WALK_BUDGET_MS = 60
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement stopped by statement_timeout


def _within(session: Session, statement: Select, budget_ms: int) -> list[Contact] | None:
    """The statement's rows, or None when it ran past `budget_ms` (stopped, its savepoint rolled back)."""
    try:
        with session.begin_nested():
            previous = session.execute(text("SELECT current_setting('statement_timeout'), "
                                            "set_config('statement_timeout', :budget, true)"),
                                       {"budget": f"{budget_ms}ms"}).scalar_one()
            rows = list(session.scalars(statement))
            session.execute(text("SELECT set_config('statement_timeout', :previous, true)"), {"previous": previous})
            return rows
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != QUERY_CANCELED:
            raise
        return None


def running_sequences(session: Session, contact_ids: Iterable[int]) -> dict[int, list[tuple[str, str]]]:
    """contact id -> [(sequence, status)] of its enrollments that are running or paused."""
    ids = list(contact_ids)
    found: dict[int, list[tuple[str, str]]] = {i: [] for i in ids}
    if not ids:
        return found
    rows = session.execute(select(Enrollment.contact_id, Enrollment.sequence_id, Enrollment.status)
                           .where(Enrollment.contact_id.in_(ids), Enrollment.status.in_(_RUNNING))  # type: ignore[attr-defined]
                           .order_by(Enrollment.id))
    for contact_id, sequence_id, status in rows:
        found[contact_id].append((sequence_id, status))
    return found


_RUNNING = (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED)


def _conditions(session: Session, filters: Filters) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if filters.query:
        where.append(_matches(session, filters.query))
    if filters.stage:
        where.append(Contact.stage == filters.stage)
    if filters.tag:
        where.append(_has_tag(session, filters.tag))
    if filters.sequence:
        where.append(exists().where(Enrollment.contact_id == Contact.id, Enrollment.sequence_id == filters.sequence,
                                    Enrollment.status.in_(_RUNNING)))  # type: ignore[attr-defined]
    if filters.email_status:
        where.append(Contact.email_status == filters.email_status)
    else:
        where.append(Contact.email_status != Subscription.ERASED)
    if filters.sms_status:
        where.append(Contact.sms_status == filters.sms_status)
    return where


def _full_name() -> ColumnElement[str]:
    """The expression migration 0008_contacts indexes: lower(first_name || ' ' || last_name)."""
    # The space inline, not a bound parameter: PostgreSQL matches an expression index only to the same text.
    return func.lower(Contact.first_name.op("||")(literal_column("' '")).op("||")(Contact.last_name))


def _matches(session: Session, query: str) -> ColumnElement[bool]:
    """An address or a name that starts with `query` (or, with trigrams, contains it). Addresses are
    stored lower-case (people.contacts.normalise_email); LIKE's own wildcards in `query` are escaped."""
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if len(query) >= TRIGRAM_MIN and trigrams(session):
        inside = f"%{escaped}%"
        return or_(Contact.email.like(inside, escape="\\"), _full_name().like(inside, escape="\\"))
    start = f"{escaped}%"
    return or_(Contact.email.like(start, escape="\\"), _full_name().like(start, escape="\\"),
               func.lower(Contact.last_name).like(start, escape="\\"))


def _has_tag(session: Session, tag: str) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        return cast(Contact.tags, JSONB).contains([tag])  # the GIN index of migration 0008_contacts
    each = func.json_each(Contact.tags).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value == tag))


def trigrams(session: Session) -> bool:
    """Whether this database has the trigram indexes (PostgreSQL with pg_trgm at migration 0008_contacts)."""
    engine = session.get_bind().engine
    if engine not in _trigrams:
        _trigrams[engine] = engine.dialect.name == "postgresql" and session.execute(
            text("SELECT 1 FROM pg_indexes WHERE indexname = 'ix_contact_email_trgm'")).first() is not None
    return _trigrams[engine]


