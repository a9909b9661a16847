"""The funnel's exact rollup: who is in each funnel group since when (funnel_member), how many contacts'
latest time falls on each day (funnel_day), and the contacts changed since (funnel_dirty).

Nothing on the send path calls this. Triggers in the database (migration 0009_funnel_rollup) append the
contact and sequence of every delivery written or changed, and of every event the funnel counts, to
funnel_dirty, in the transaction that makes the change. `fold` (a job the tick queues) takes dirty rows,
works out those contacts' groups again from their own rows (store.funnel_groups: the definitions of
rules.funnel_members, in SQL, for the whole batch at once), moves them between days and deletes the dirty
rows, all in one transaction: a crash loses nothing, Redis holds nothing, and a row folded twice changes
nothing. A reader (`rolled_counts`) adds the whole days, the period's first partial
day from funnel_member, and for the contacts still dirty takes their stored groups off and their groups
worked out now on: exact whether or not the fold has caught up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    true,
    tuple_,
    union,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.schema import CreateTable
from sqlmodel import Session, select

from nurture.rules import funnel_members as fm
from nurture.store import funnel_groups as fg
from nurture.store.db import READ_SNAPSHOT
from nurture.store.models import Delivery, Event, FunnelDay, FunnelDirty, FunnelMember, FunnelRollupState, UTCDateTime

EV_SEQUENCE = literal_column("event.ev_sequence", String)
# A reader counts the dirty contacts from their own rows (store.funnel.count_funnel_raw narrowed to them);
# past this many it counts all the raw rows instead, as after a rebuild or the migration until the fold has
# caught up.
DIRTY_LIMIT = 5000
CHUNK = 500  # contacts per IN (...) list


def _chunks(items: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# -- the fold --------------------------------------------------------------------------------------------

# Per connection, emptied by each fold before use: the dirty rows this fold took, the pairs' member rows as
# the rollup holds them, and their groups worked out now. Temporary, so they cost no WAL and no other
# session sees them. Every comparison is between these small tables: funnel_member is only ever reached by
# its primary key's (contact_id, sequence_id) from the pairs. Probed by group from the fresh rows instead,
# PostgreSQL's planner took ix_funnel_member_latest while the table's statistics were older than a rebuild
# (one insert took 40 s, reading every member of the sequence for each row).
TAKEN = Table("funnel_taken", MetaData(), Column("id", Integer, primary_key=True),
              Column("contact_id", Integer, nullable=False), Column("sequence_id", String(64), nullable=False),
              prefixes=["TEMPORARY"], postgresql_on_commit="DELETE ROWS")


def _members_table(name: str) -> Table:
    return Table(name, MetaData(), Column("contact_id", Integer, primary_key=True),
                 Column("sequence_id", String(64), primary_key=True), Column("version", String(64), primary_key=True),
                 Column("key", Text, primary_key=True), Column("latest_at", UTCDateTime, nullable=False),
                 prefixes=["TEMPORARY"], postgresql_on_commit="DELETE ROWS")


HELD, FRESH = _members_table("funnel_held"), _members_table("funnel_fresh")


def fold(session: Session, now: datetime, limit: int = 1000, wait: bool = True) -> int:
    """Fold up to `limit` dirty rows into the rollup; returns how many. Commits. With `wait` False a fold
    already running elsewhere (PostgreSQL) makes this one return 0 at once instead of queuing behind it.

    Set-based: a handful of statements for the whole batch, whatever its size, and no row read into Python
    (a rebuild ~2x the pairs/s of the per-contact Python it replaces: bench/README.md)."""
    engine = session.get_bind()
    if engine.dialect.name == "sqlite":
        return _fold_sqlite(engine, now, limit)  # type: ignore[arg-type]
    if not wait and not _free(session):
        session.rollback()
        return 0
    _take_turn(session, now)
    _scratch(session)
    taken = _take(session, limit)
    if taken:
        _fresh(session, "postgresql")
        _write(session, "postgresql")
    session.commit()
    return taken


SNAPSHOT_TRIES = 3


def _fold_sqlite(engine: Engine, now: datetime, limit: int) -> int:
    """SQLite, on a connection of its own (the temporary tables are the connection's), in two transactions.
    First a read, which takes no write lock (store.db.READ_SNAPSHOT): the dirty rows taken, and their pairs'
    groups worked out now from their own rows, into the temporary tables. Then, under the write lock, the
    rollup's rows moved and the dirty rows taken deleted, unless another fold committed in between (its
    groups may be newer than these): then the whole fold again. A change a sender committed after the read
    left a dirty row this fold did not take: that contact is folded again, and until then readers count it
    from its own rows, as PostgreSQL's fold, whose statements each read at their own moment, leaves it.

    In one BEGIN IMMEDIATE transaction the senders waited for the whole fold, working out the groups
    included: the fold cost the send pipeline ~14% of its rate on SQLite (bench/README.md, P1)."""
    with engine.connect() as connection, Session(bind=connection) as session:
        for _ in range(SNAPSHOT_TRIES):
            connection.execution_options(**{READ_SNAPSHOT: True})
            turn = _turn(session)
            _scratch(session)
            taken = _take(session, limit)
            if taken:
                _fresh(session, "sqlite")
            session.commit()
            connection.execution_options(**{READ_SNAPSHOT: False})
            if not taken:
                return 0
            if _turn(session) == turn:  # the write transaction's first statement: no fold came between
                _take_turn(session, now)
                _write(session, "sqlite")
                session.commit()
                return taken
            session.rollback()
    return 0


def _take(session: Session, limit: int) -> int:
    # The dirty rows are read before the contacts' rows: a change committed after this read left a dirty
    # row this fold does not delete, so that contact is folded again.
    session.execute(insert(TAKEN).from_select(
        ["id", "contact_id", "sequence_id"],
        select(FunnelDirty.id, FunnelDirty.contact_id, FunnelDirty.sequence_id).order_by(FunnelDirty.id)
        .limit(limit)))
    # Counted, not the INSERT's rowcount: psycopg reports -1 for an INSERT ... SELECT through SQLAlchemy.
    return int(session.execute(select(func.count()).select_from(TAKEN)).scalar_one())


def _scratch(session: Session) -> None:
    """The temporary tables, made on a connection's first fold; empty (PostgreSQL empties them at each
    commit, SQLite here: a DELETE on a PostgreSQL temporary table would leave dead rows no vacuum visits)."""
    for table in (TAKEN, HELD, FRESH):
        session.execute(CreateTable(table, if_not_exists=True))
        if session.get_bind().dialect.name != "postgresql":
            session.execute(delete(table))


def _pairs() -> Any:
    return select(TAKEN.c.contact_id, TAKEN.c.sequence_id).distinct().subquery("pairs")


def _fresh(session: Session, dialect: str) -> None:
    """The taken pairs' groups worked out now, from their own rows (only reads the database)."""
    columns = [c.name for c in FRESH.c]
    session.execute(insert(FRESH).from_select(columns, fg.members_query(_pairs(), dialect)))


def _write(session: Session, dialect: str) -> None:
    """The taken pairs' member rows replaced by the fresh ones, their days moved, the taken dirty rows gone."""
    pairs = _pairs()
    columns = [c.name for c in FRESH.c]
    mine = tuple_(FunnelMember.contact_id, FunnelMember.sequence_id).in_(select(pairs.c.contact_id,
                                                                                pairs.c.sequence_id))
    session.execute(insert(HELD).from_select(columns, select(*[FunnelMember.__table__.c[c] for c in columns])
                                             .where(mine)))
    _move_days(session, dialect)
    kept = exists().where(*_same(FRESH, FunnelMember.__table__))
    session.execute(delete(FunnelMember).where(mine, ~kept))
    # What is left of the pairs' member rows did not move: the fresh rows the rollup did not hold come in.
    session.execute(insert(FunnelMember).from_select(columns, select(*FRESH.c).where(~exists().where(
        *_same(FRESH, HELD)))))
    session.execute(delete(FunnelDirty).where(FunnelDirty.id.in_(select(TAKEN.c.id))))


def _same(one: Any, other: Any) -> list[Any]:
    """The same member row: contact, sequence, version, group and time."""
    return [one.c[c] == other.c[c] for c in ("contact_id", "sequence_id", "version", "key", "latest_at")]


def _move_days(session: Session, dialect: str) -> None:
    """Each member row that goes takes one off its day; each that comes adds one to its day."""
    def moved(source: Table, against: Table, n: int) -> Any:
        return (select(source.c.sequence_id, source.c.version, source.c.key,
                       fg.day(source.c.latest_at, dialect).label("day"), literal(n).label("n"))
                .where(~exists().where(*_same(source, against))))

    moves = union_all(moved(HELD, FRESH, -1), moved(FRESH, HELD, 1)).subquery("moves")
    by_day = (select(moves.c.sequence_id, moves.c.version, moves.c.key, moves.c.day, func.sum(moves.c.n))
              .where(true())  # SQLite: an INSERT ... SELECT with an upsert needs a WHERE (its parser's ambiguity)
              .group_by(moves.c.sequence_id, moves.c.version, moves.c.key, moves.c.day)
              .having(func.sum(moves.c.n) != 0))
    upsert = (pg_insert if dialect == "postgresql" else sqlite_insert)(FunnelDay)
    upsert = upsert.from_select(["sequence_id", "version", "key", "day", "n"], by_day)
    session.execute(upsert.on_conflict_do_update(index_elements=["sequence_id", "version", "key", "day"],
                                                 set_={"n": FunnelDay.n + upsert.excluded.n}))


def _free(session: Session) -> bool:
    if session.get_bind().dialect.name != "postgresql":
        return True  # SQLite: this transaction already holds the write lock (BEGIN IMMEDIATE)
    return session.execute(select(FunnelRollupState.id).where(FunnelRollupState.id == 1)
                           .with_for_update(skip_locked=True)).first() is not None


def _take_turn(session: Session, now: datetime) -> None:
    """The first write of a fold: PostgreSQL holds this row's lock to the commit, so folds take turns."""
    moved = session.execute(update(FunnelRollupState).where(FunnelRollupState.id == 1)
                            .values(folds=FunnelRollupState.folds + 1, folded_at=now)).rowcount
    if not moved:
        session.add(FunnelRollupState(id=1, folds=1, folded_at=now))
        session.flush()


def backlog(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(FunnelDirty)).scalar_one())


def mark_everything(session: Session, now: datetime) -> int:
    """Start again: forget the rollup and mark every contact of every sequence dirty (as the migration
    does for the rows it finds). Readers count raw rows until the fold has caught up. Commits."""
    _take_turn(session, now)
    for table in (FunnelMember, FunnelDay, FunnelDirty):
        session.execute(delete(table))
    linked = (select(Event.contact_id, Delivery.sequence_id).join(Delivery, Delivery.id == Event.delivery_id)
              .where(Event.type.in_(list(fm.LINKED))))
    named = select(Event.contact_id, EV_SEQUENCE).where(Event.type.in_(list(fm.EVENT_KINDS)), EV_SEQUENCE.is_not(None))
    everyone = union(select(Delivery.contact_id, Delivery.sequence_id), named, linked)
    session.execute(insert(FunnelDirty).from_select(["contact_id", "sequence_id"], everyone))
    marked = backlog(session)
    session.commit()
    return marked


# -- reading ---------------------------------------------------------------------------------------------

def _scope(version: str | None):  # noqa: ANN202
    """The version's rows, and the whole sequence's goal, which is kept for all versions only."""
    chosen = version if version is not None else fm.ALL_VERSIONS
    goal = and_(FunnelMember.version == fm.ALL_VERSIONS, FunnelMember.key == fm.group("G"))
    return chosen, goal


def rolled_counts(session: Session, sequence_id: str, since: datetime,
                  version: str | None) -> tuple[Counter, list[int]] | None:
    """Group key -> contacts in the group in the period since `since`, for everyone but the contacts still
    dirty, and those contacts (the caller counts them from their own rows). None when too many are dirty
    for that to be quicker than counting all the raw rows, or when a fold committed while reading
    (PostgreSQL reads each statement at its own moment: the caller tries again)."""
    turn = _turn(session)
    dirty = _dirty_contacts(session, sequence_id)
    if len(dirty) > DIRTY_LIMIT:
        return None
    chosen, goal = _scope(version)
    first_day = fm.day_of(since)
    in_scope = or_(FunnelMember.version == chosen, goal)
    days = session.execute(select(FunnelDay.key, func.sum(FunnelDay.n))
                           .where(FunnelDay.sequence_id == sequence_id, FunnelDay.day > first_day,
                                  or_(FunnelDay.version == chosen,
                                      and_(FunnelDay.version == fm.ALL_VERSIONS, FunnelDay.key == fm.group("G"))))
                           .group_by(FunnelDay.key))
    partial = session.execute(select(FunnelMember.key, func.count())
                              .where(FunnelMember.sequence_id == sequence_id, in_scope, FunnelMember.latest_at >= since,
                                     FunnelMember.latest_at < fm.start_of_day(first_day + 1))
                              .group_by(FunnelMember.key))
    counts: Counter = Counter()
    for key, n in [*days, *partial]:
        counts[key] += int(n)
    for contacts in _chunks(dirty):  # what the rollup holds for them comes off
        stored = session.execute(select(FunnelMember.key, func.count())
                                 .where(FunnelMember.contact_id.in_(contacts), FunnelMember.sequence_id == sequence_id,
                                        in_scope, FunnelMember.latest_at >= since)
                                 .group_by(FunnelMember.key))
        for key, n in stored:
            counts[key] -= int(n)
    return (counts, dirty) if _turn(session) == turn else None


def too_dirty(session: Session, sequence_id: str) -> bool:
    return len(_dirty_contacts(session, sequence_id)) > DIRTY_LIMIT


def _dirty_contacts(session: Session, sequence_id: str) -> list[int]:
    return list(session.execute(select(FunnelDirty.contact_id).distinct()
                                .where(FunnelDirty.sequence_id == sequence_id).limit(DIRTY_LIMIT + 1)).scalars())


def _turn(session: Session) -> int:
    return int(session.execute(select(FunnelRollupState.folds).where(FunnelRollupState.id == 1)).scalar() or 0)
