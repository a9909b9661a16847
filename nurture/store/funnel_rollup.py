"""The funnel's exact rollup: who is in each funnel group since when (funnel_member), how many contacts'
latest time falls on each day (funnel_day), and the contacts changed since (funnel_dirty).

Nothing on the send path calls this. Triggers in the database (migration 0009_funnel_rollup) append the
contact and sequence of every delivery written or changed, and of every event the funnel counts, to
funnel_dirty, in the transaction that makes the change. `fold` (a job the tick queues) takes dirty rows,
works out those contacts' groups again from their own rows (rules.funnel_members), moves them between days
and deletes the dirty rows, all in one transaction: a crash loses nothing, Redis holds nothing, and a row
folded twice changes nothing. A reader (`rolled_counts`) adds the whole days, the period's first partial
day from funnel_member, and for the contacts still dirty takes their stored groups off and their groups
worked out now on: exact whether or not the fold has caught up.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import (
    Boolean,
    String,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal_column,
    or_,
    tuple_,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from nurture.rules import funnel_members as fm
from nurture.store.models import Delivery, Event, FunnelDay, FunnelDirty, FunnelMember, FunnelRollupState

EV_SEQUENCE = literal_column("event.ev_sequence", String)
EV_STEP = literal_column("event.ev_step", String)
EV_BOT = literal_column("event.ev_bot", String)
CHUNK = 500  # contacts per IN (...) list
# A reader works out each dirty contact's groups itself; past this many it counts the raw rows instead
# (store.funnel.count_funnel_raw), as after a rebuild or the migration until the fold has caught up.
DIRTY_LIMIT = 5000

Pair = tuple[int, str]  # contact, sequence
Members = dict[fm.Key, datetime]


def _chunks(items: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# -- the contacts' own rows, as facts ------------------------------------------------------------------

def _delivery_fact(row) -> fm.DeliveryFact:  # noqa: ANN001
    return fm.DeliveryFact(row.sequence_version, row.step_id, row.channel, str(row.status), row.provider_status,
                           row.error, row.created_at, row.sent_at)


DELIVERY_COLUMNS = (Delivery.contact_id, Delivery.sequence_id, Delivery.sequence_version, Delivery.step_id,
                    Delivery.channel, Delivery.status, Delivery.provider_status, Delivery.error,
                    Delivery.created_at, Delivery.sent_at)


def current_members(session: Session, pairs: Iterable[Pair]) -> dict[Pair, Members]:
    """Each pair's groups worked out now from its contact's deliveries and events (the funnel's own
    expressions for the events' sequence, step, version, reason and bot, so nothing is read differently)."""
    wanted = set(pairs)
    deliveries: dict[Pair, list] = defaultdict(list)
    events: dict[Pair, list] = defaultdict(list)
    linked: dict[Pair, list] = defaultdict(list)
    bot = cast(EV_BOT, Boolean)
    human = case((or_(bot.is_(None), bot.is_(False)), 1), else_=0)
    connection = session.connection()  # Core rows: the ORM's result machinery cost more than the queries
    for contacts in _chunks(sorted({contact for contact, _ in wanted})):
        for row in connection.execute(select(*DELIVERY_COLUMNS).where(Delivery.contact_id.in_(contacts))):
            deliveries[(row.contact_id, row.sequence_id)].append(_delivery_fact(row))
        kinds = [k for k in fm.EVENT_KINDS if k not in fm.LINKED]
        # `type || ''`: SQLite's planner would take the type index (ix_event_funnel) and read every event of
        # these kinds for each chunk; this leaves it the contact_id index, the chunk's own few rows.
        kind = Event.type.concat("")
        rows = connection.execute(
            select(Event.contact_id, EV_SEQUENCE.label("sequence"), Event.type,
                   Event.data["version"].as_string().label("version"), EV_STEP.label("step"),
                   Event.data["reason"].as_string().label("reason"), human.label("human"), Event.occurred_at)
            .where(Event.contact_id.in_(contacts), kind.in_(kinds), EV_SEQUENCE.is_not(None)))
        for row in rows:
            events[(row.contact_id, row.sequence)].append(
                fm.EventFact(row.type, row.version, row.step, row.reason, bool(row.human), row.occurred_at))
        rows = connection.execute(
            select(Event.contact_id.label("by"), Event.type, *DELIVERY_COLUMNS[1:])
            .join(Delivery, Delivery.id == Event.delivery_id)
            .where(Event.contact_id.in_(contacts), kind.in_(list(fm.LINKED))))
        for row in rows:
            linked[(row.by, row.sequence_id)].append(fm.LinkedFact(row.type, _delivery_fact(row)))
    return {pair: fm.members(deliveries[pair], events[pair], linked[pair]) for pair in wanted}


def stored_members(session: Session, pairs: Iterable[Pair]) -> dict[Pair, Members]:
    wanted = set(pairs)
    found: dict[Pair, Members] = {pair: {} for pair in wanted}
    columns = (FunnelMember.contact_id, FunnelMember.sequence_id, FunnelMember.version, FunnelMember.key,
               FunnelMember.latest_at)
    for contacts in _chunks(sorted({contact for contact, _ in wanted})):
        rows = session.connection().execute(select(*columns).where(FunnelMember.contact_id.in_(contacts)))
        for contact, sequence, version, key, latest in rows:
            if (contact, sequence) in wanted:
                found[(contact, sequence)][(version, key)] = latest
    return found


# -- the fold --------------------------------------------------------------------------------------------

def fold(session: Session, now: datetime, limit: int = 1000, wait: bool = True) -> int:
    """Fold up to `limit` dirty rows into the rollup; returns how many. Commits. With `wait` False a fold
    already running elsewhere (PostgreSQL) makes this one return 0 at once instead of queuing behind it."""
    if not wait and not _free(session):
        session.rollback()
        return 0
    _take_turn(session, now)
    taken = session.execute(select(FunnelDirty.id, FunnelDirty.contact_id, FunnelDirty.sequence_id)
                            .order_by(FunnelDirty.id).limit(limit)).all()
    if not taken:
        session.commit()
        return 0
    pairs = {(row.contact_id, row.sequence_id) for row in taken}
    # The dirty rows are read before the contacts' rows: a change committed after this read left a dirty
    # row this fold does not delete, so that contact is folded again.
    old, new = stored_members(session, pairs), current_members(session, pairs)
    days: Counter = Counter()
    gone: list[tuple] = []
    came: list[dict] = []
    for pair in pairs:
        _move(pair, old[pair], new[pair], days, gone, came)
    # Core statements, many rows each: through the ORM a member row cost ~0.5 ms of Python.
    for chunk in _chunks(gone):
        session.execute(delete(FunnelMember).where(tuple_(FunnelMember.contact_id, FunnelMember.sequence_id,
                                                          FunnelMember.version, FunnelMember.key).in_(list(chunk))))
    if came:
        session.execute(insert(FunnelMember), came)
    _add_days(session, days)
    for ids in _chunks([row.id for row in taken]):
        session.execute(delete(FunnelDirty).where(FunnelDirty.id.in_(ids)))
    session.commit()
    return len(taken)


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


def _move(pair: Pair, old: Members, new: Members, days: Counter, gone: list[tuple], came: list[dict]) -> None:
    """What changed for one contact: the member rows to delete and to insert, and the days to adjust."""
    contact, sequence = pair
    for (version, key), at in old.items():
        if new.get((version, key)) != at:
            days[(sequence, version, key, fm.day_of(at))] -= 1
            gone.append((contact, sequence, version, key))
    for (version, key), at in new.items():
        if old.get((version, key)) != at:
            days[(sequence, version, key, fm.day_of(at))] += 1
            came.append(dict(contact_id=contact, sequence_id=sequence, version=version, key=key, latest_at=at))


def _add_days(session: Session, days: Counter) -> None:
    rows = [dict(sequence_id=s, version=v, key=k, day=d, n=n) for (s, v, k, d), n in sorted(days.items()) if n]
    if not rows:
        return
    upsert = (pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert)(FunnelDay)
    session.execute(upsert.on_conflict_do_update(index_elements=["sequence_id", "version", "key", "day"],
                                                 set_={"n": FunnelDay.n + upsert.excluded.n}), rows)


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
