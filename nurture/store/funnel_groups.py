"""Which funnel groups many (contact, sequence) pairs are in, and since when, worked out by the database in
one statement: the SQL twin of rules.funnel_members.members, which stays the definition.

The fold (store.funnel_rollup) used to read each contact's rows into Python and call `members` per pair.
Here the pairs' deliveries and events are read once each (two CTEs, from their contact_id indexes) and
grouped where they are; no row travels to Python. A rebuild (every member row new) went from 2,400-2,600 to
4,100-6,300 pairs/s on PostgreSQL at 1,000,000 deliveries; pairs whose rows did not change fold as fast as
before (bench/README.md, "The fold, set-based").

A group's key is the same JSON text `funnel_members.group` makes (compact, `null` for None, characters
outside ASCII as they are): `to_json(text)` (PostgreSQL) and `json_quote` (SQLite) quote a string exactly as
Python's json.dumps(ensure_ascii=False) does (tests/test_funnel_groups.py holds them to it).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    Integer,
    String,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    or_,
    union_all,
)
from sqlalchemy.sql import ColumnElement, FromClause, Select
from sqlmodel import select

from nurture.rules import funnel_members as fm
from nurture.store.models import Delivery, Event, UTCDateTime


def _ev(name: str) -> Any:
    """A generated column of migration 0006_console_pages (not mapped: no insert ever names it)."""
    return literal_column(f"event.{name}", String)


def quoted(value: ColumnElement, dialect: str) -> ColumnElement:
    """`value` as JSON text, as json.dumps(ensure_ascii=False) writes the str (or None) Python reads from it.
    SQLite: `|| ''` first, so that a JSON object or array json_extract found is quoted as the text Python
    gets, not passed through as JSON (json_quote keeps what another JSON function made)."""
    if dialect == "postgresql":
        return func.coalesce(cast(func.to_json(cast(value, Text)), Text), "null")
    return func.json_quote(value.concat(literal_column("''", Text)))


def key(dialect: str, kind: str, *parts: ColumnElement) -> ColumnElement:
    """funnel_members.group(kind, *parts), built in SQL."""
    text: ColumnElement = literal(fm.group(kind)[:-1], String)  # '["d"' : the kind is a constant
    for part in parts:
        text = text.concat(",").concat(quoted(part, dialect))
    return text.concat("]")


def day(moment: ColumnElement, dialect: str) -> ColumnElement:
    """funnel_members.day_of: whole days since 1970-01-01 of a naive UTC time. SQLite from the stored text's
    date alone: julianday of a full time is a float too coarse to tell a microsecond before midnight."""
    if dialect == "postgresql":
        return cast(cast(moment, Date) - cast(literal("1970-01-01"), Date), Integer)
    return cast(func.julianday(func.substr(moment, 1, 10)) - 2440587.5, Integer)


def members_query(pairs: FromClause, dialect: str) -> Select:
    """contact_id, sequence_id, version, key, latest_at: every group of every pair in `pairs` (a selectable
    with contact_id and sequence_id), under its version and under ALL_VERSIONS, as funnel_members.members."""
    deliveries, events = _deliveries(pairs), _events(pairs, dialect)
    rows = union_all(*_delivery_groups(deliveries, dialect), *_event_groups(events, dialect),
                     _linked_groups(pairs, dialect), *_sent_then(deliveries, events, dialect)).cte("funnel_rows")
    scoped = union_all(
        select(rows.c.contact_id, rows.c.sequence_id, rows.c.version, rows.c.key, rows.c.at)
        .where(rows.c.version.is_not(None)),
        select(rows.c.contact_id, rows.c.sequence_id, literal(fm.ALL_VERSIONS, String).label("version"),
               rows.c.key, rows.c.at)).subquery("funnel_scoped")
    # One row per group: a version named '*' and the all-versions row meet here, as in the dict of `members`.
    return (select(scoped.c.contact_id, scoped.c.sequence_id, scoped.c.version, scoped.c.key,
                   func.max(scoped.c.at).label("latest_at"))
            .group_by(scoped.c.contact_id, scoped.c.sequence_id, scoped.c.version, scoped.c.key))


def _deliveries(pairs: FromClause) -> Any:
    return (select(Delivery.contact_id, Delivery.sequence_id, Delivery.sequence_version.label("version"),
                   Delivery.step_id.label("step"), Delivery.channel, Delivery.status, Delivery.provider_status,
                   Delivery.error, Delivery.created_at, Delivery.sent_at)
            .join(pairs, and_(pairs.c.contact_id == Delivery.contact_id, pairs.c.sequence_id == Delivery.sequence_id))
            .cte("funnel_deliveries"))


def _events(pairs: FromClause, dialect: str) -> Any:
    """The pairs' events that name the sequence, read as store.funnel reads them (the generated columns, the
    JSON's version and reason); `human` is 0 for a click marked as a bot's."""
    bot = cast(_ev("ev_bot"), Boolean)
    kinds = [k for k in fm.EVENT_KINDS if k not in fm.LINKED]
    # `type || ''`: SQLite's planner would take the type index (ix_event_funnel) and read every event of
    # these kinds; this leaves it the contact_id index, the pairs' own few rows.
    return (select(Event.contact_id, _ev("ev_sequence").label("sequence_id"), Event.type,
                   Event.data["version"].as_string().label("version"), _ev("ev_step").label("step"),
                   Event.data["reason"].as_string().label("reason"),
                   case((or_(bot.is_(None), bot.is_(False)), 1), else_=0).label("human"), Event.occurred_at)
            .join(pairs, and_(pairs.c.contact_id == Event.contact_id, pairs.c.sequence_id == _ev("ev_sequence")))
            .where(Event.type.concat("").in_(kinds))
            .cte("funnel_events"))


def _row(source: Any, version: ColumnElement, group: ColumnElement, at: ColumnElement) -> Select:
    return select(source.c.contact_id, source.c.sequence_id, version.label("version"), group.label("key"),
                  at.label("at"))


def _delivery_groups(d: Any, dialect: str) -> list[Select]:
    return [_row(d, d.c.version, key(dialect, "d", d.c.step, d.c.channel, d.c.status, d.c.provider_status,
                                     d.c.error), d.c.created_at)]


def _event_groups(e: Any, dialect: str) -> list[Select]:
    no_version = cast(null(), String)
    return [
        _row(e, e.c.version, key(dialect, "o", e.c.step, e.c.type, e.c.reason), e.c.occurred_at)
        .where(e.c.type.in_(fm.OUTCOMES)),
        _row(e, e.c.version, key(dialect, "f", e.c.step), e.c.occurred_at).where(e.c.type.in_(fm.DEFERRALS)),
        _row(e, e.c.version, key(dialect, "e"), e.c.occurred_at).where(e.c.type == fm.ENROLLED),
        _row(e, no_version, key(dialect, "G"), e.c.occurred_at).where(e.c.type == fm.GOAL),  # all versions only
    ]


def _linked_groups(pairs: FromClause, dialect: str) -> Select:
    """Unsubscribes and bounces: the pair is the event's contact and its delivery's sequence."""
    group = key(dialect, "l", Delivery.step_id, Delivery.channel, Event.type)
    return (select(Event.contact_id, Delivery.sequence_id, Delivery.sequence_version.label("version"),
                   group.label("key"), Delivery.created_at.label("at"))
            .join(Delivery, Delivery.id == Event.delivery_id)
            .join(pairs, and_(pairs.c.contact_id == Event.contact_id, pairs.c.sequence_id == Delivery.sequence_id))
            .where(Event.type.concat("").in_(list(fm.LINKED))))


def _sent_then(d: Any, e: Any, dialect: str) -> list[Select]:
    """Clicked: a sent delivery of a step the contact clicked (not a bot). Goal: a sent delivery sent no
    later than the contact's last goal event. Window functions over the pairs' sent deliveries, human clicks
    and goals side by side, not joins: with the CTEs' row estimates of 1 PostgreSQL's planner joined them by
    a nested loop, 8,000 deliveries times 600 clicks (1.8 s for 2,000 contacts)."""
    never = cast(null(), UTCDateTime)
    rows = union_all(
        select(d.c.contact_id, d.c.sequence_id, d.c.step, d.c.version, d.c.created_at.label("at"), d.c.sent_at,
               literal(1).label("sent"), literal(0).label("click"), never.label("goal_at"))
        .where(d.c.status.in_(fm.SENT)),
        select(e.c.contact_id, e.c.sequence_id, e.c.step, cast(null(), String), never, never, literal(0), literal(1),
               never).where(e.c.type == fm.CLICKED, e.c.human == 1),
        select(e.c.contact_id, e.c.sequence_id, cast(null(), String), cast(null(), String), never, never, literal(0),
               literal(0), e.c.occurred_at).where(e.c.type == fm.GOAL)).subquery("funnel_touches")
    seen = select(rows, func.max(rows.c.click).over(partition_by=(rows.c.contact_id, rows.c.sequence_id, rows.c.step))
                  .label("clicked"),
                  func.max(rows.c.goal_at).over(partition_by=(rows.c.contact_id, rows.c.sequence_id))
                  .label("last_goal")).subquery("funnel_seen")
    return [_row(seen, seen.c.version, key(dialect, "c", seen.c.step), seen.c.at)
            .where(seen.c.sent == 1, seen.c.clicked == 1),
            _row(seen, seen.c.version, key(dialect, "g", seen.c.step), seen.c.at)
            .where(seen.c.sent == 1, seen.c.sent_at.is_not(None), seen.c.sent_at <= seen.c.last_goal)]
