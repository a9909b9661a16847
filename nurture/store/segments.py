"""Segments counted in SQL: a segment's condition compiled to one WHERE clause over the contact table (events
by correlated EXISTS), for SQLite and PostgreSQL, so that counting 100,000 contacts loads none of them.

The definition of membership is the pure evaluation (nurture.rules.segments.holds over all the contact's
counted events); this compiler is held to it by tests that count both ways over generated contacts
(tests/test_segments_count.py). Where SQL and Python differ by nature, the condition language was narrowed
instead (rules.conditions: a field is compared with a scalar; a property compared with a number holds a
number, true/false, or a number written as digits).

    count(session, segment, now)                       how many contacts are in it now
    member_ids(session, segment, now, after_id, limit)  a page of member ids, in id order
    members_among(session, segment, ids, now)           which of these contacts are in it
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Float,
    Integer,
    String,
    and_,
    case,
    cast,
    exists,
    extract,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement, Grouping
from sqlmodel import Session, select

from nurture.rules.conditions import ACTIVITY, ENGAGEMENT, Comparison, Condition
from nurture.rules.lifecycle import Scoring
from nurture.rules.segments import Segment, SegmentError
from nurture.rules.statuses import Subscription
from nurture.store.models import Contact, Event

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
Sql = ColumnElement  # a boolean SQL expression


def _sure(expr: ColumnElement) -> ColumnElement:
    """`expr` as true or false, never NULL: a JSON lookup that finds nothing is NULL, and NOT NULL is NULL,
    so {not: ...} of it would match nobody where Python says everybody."""
    return case((expr, true()), else_=false())


# --- JSON, per dialect --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Json:
    """One JSON value inside a JSON column (a contact's field, an event's property), as SQL."""

    column: ColumnElement
    key: str
    postgres: bool

    @property
    def _key(self) -> ColumnElement:
        return cast(literal(self.key), String)  # typed: `->` takes a text or an integer

    @property
    def kind(self) -> ColumnElement:
        """The value's JSON type, in SQLite's words: null, true, false, integer, real, text, array, object
        (PostgreSQL's json_typeof says string, number, boolean: translated here)."""
        if not self.postgres:
            return func.json_type(self.column, f'$."{self.key}"')
        raw = func.json_typeof(self.column.op("->")(self._key))
        number = case((self.text.op("~")(r"^-?[0-9]+$"), "integer"), else_="real")
        return case((raw == "string", "text"), (raw == "number", number),
                    (raw == "boolean", case((self.text == "true", "true"), else_="false")), else_=raw)

    @property
    def text(self) -> ColumnElement:
        if self.postgres:
            return self.column.op("->>")(self._key)
        return func.json_extract(self.column, f'$."{self.key}"')

    @property
    def number(self) -> ColumnElement:
        """The value as a number when it is one (true and false are 1 and 0, as in Python), else NULL."""
        value = cast(self.text, Float) if self.postgres else self.text
        return case((self.kind.in_(("integer", "real")), value), (self.kind == "true", 1), (self.kind == "false", 0),
                    else_=None)

    def number_or_digits(self) -> ColumnElement:
        """`number`, and also a text holding a number written as digits ("12", "-3.5"): what
        Comparison.holds accepts."""
        digits = (self.text.op("~")(r"^-?[0-9]+(\.[0-9]+)?$") if self.postgres else _sqlite_digits(self.text))
        return case((self.kind.in_(("integer", "real", "true", "false")), self.number),
                    (and_(self.kind == "text", digits), cast(self.text, Float)), else_=None)

    def truthy(self) -> ColumnElement:
        """Python's truth of the value (a missing key is None: false)."""
        if self.postgres:
            size = case((self.kind == "array", func.json_array_length(self.column.op("->")(self._key))), else_=0)
        else:
            size = case((self.kind == "array", func.json_array_length(self.column, f'$."{self.key}"')), else_=0)
        return or_(self.kind == "true", and_(self.kind.in_(("integer", "real")), self.number != 0),
                   and_(self.kind == "text", self.text != ""), size > 0,
                   and_(self.kind == "object", self.text.not_in(("{}",))))

    def equals(self, expected: object) -> ColumnElement:
        """The value == `expected` (a scalar), as Python compares them: None matches a missing key or null;
        a number matches any number or true/false of the same value; a text only a text."""
        if expected is None:
            return or_(self.kind.is_(None), self.kind == "null")
        if isinstance(expected, str):
            return and_(self.kind == "text", self.text == expected)
        return and_(self.kind.in_(("integer", "real", "true", "false")), self.number == _number(expected))


def _number(value: object) -> ColumnElement:
    """A bound number: an int stays an int (SQLite then compares integers exactly, as Python does)."""
    if isinstance(value, bool):
        return literal(int(value), Integer)
    return literal(value, Integer if isinstance(value, int) else Float)


def _sqlite_digits(text: ColumnElement) -> ColumnElement:
    """SQLite has no regular expressions: `text` matches -?[0-9]+(.[0-9]+)? spelt out with trim and replace."""
    body = case((func.substr(text, 1, 1) == "-", func.substr(text, 2)), else_=text)
    return and_(func.length(body) > 0, func.trim(body, "0123456789.") == "",
                func.length(body) - func.length(func.replace(body, ".", "")) <= 1,
                func.substr(body, 1, 1) != ".", func.substr(body, -1, 1) != ".")


# --- the compiler ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Compiler:
    now: datetime
    scoring: Scoring
    postgres: bool
    segments: Mapping[str, Segment]

    def where(self, condition: Condition) -> ColumnElement:
        kind = condition.kind
        if kind in ("all", "any"):
            parts = [self.where(child) for child in condition.children]
            return and_(*parts) if kind == "all" else or_(*parts)
        if kind == "not":
            return not_(self.where(condition.children[0]))
        if kind == "segment":
            return self.segment(str(condition.arg))
        leaf = getattr(self, f"_{kind}", None)
        if leaf is None:
            raise SegmentError(f"{{{kind}: ...}} names a step of a sequence; a segment cannot use it")
        return _sure(leaf(condition))

    def segment(self, segment_id: str) -> ColumnElement:
        other = self.segments.get(segment_id)
        if other is None:
            raise SegmentError(f"unknown segment {segment_id!r}")
        return self.where(other.condition)

    def _tag(self, c: Condition) -> ColumnElement:
        if self.postgres:
            return cast(Contact.tags, JSONB).op("@>")(func.jsonb_build_array(cast(literal(c.arg), String)))
        each = func.json_each(Contact.tags).table_valued("value", "type")
        return exists(select(literal(1)).select_from(each).where(each.c.type == "text", each.c.value == c.arg))

    def _field(self, c: Condition) -> ColumnElement:
        return and_(*(_Json(Contact.fields, key, self.postgres).equals(v) for key, v in c.arg))  # type: ignore[attr-defined]

    def _stage(self, c: Condition) -> ColumnElement:
        return Contact.stage.in_(sorted(c.arg))  # type: ignore[arg-type, attr-defined]

    def _score(self, c: Condition) -> ColumnElement:
        comparison: Comparison = c.arg  # type: ignore[assignment]
        return _compare(self.decayed_score(), comparison)

    def decayed_score(self) -> ColumnElement:
        """The score as rules.lifecycle.decayed_score sees it at `now`, to the microsecond: the periods are
        counted in whole microseconds (both dialects divide integers exactly), never in floating days."""
        every, points = self.scoring.decay_every, self.scoring.decay_points
        score = Contact.score
        if not every or not points:
            return score
        since = self._epoch_microseconds(Contact.score_at)  # type: ignore[arg-type]
        elapsed = literal((self.now - _EPOCH) // _MICROSECOND, BigInteger) - since
        step = literal(every // _MICROSECOND, BigInteger)
        # Floor division: `/` of two integers truncates towards zero in both dialects; a score_at after
        # `now` (elapsed < 0) rounds down as Python's // does.
        periods = case((elapsed >= 0, _divide(elapsed, step)),
                       else_=literal(0, BigInteger) - _divide(step - 1 - elapsed, step))
        decayed = score - periods * literal(points, Float)
        return case((Contact.score_at.is_(None), score), (decayed < 0, 0.0), else_=decayed)  # type: ignore[union-attr]

    def _epoch_microseconds(self, column: ColumnElement) -> ColumnElement:
        if self.postgres:
            return cast(extract("epoch", column) * 1_000_000, BigInteger)  # numeric: exact
        # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's SQLite format, microseconds always written).
        return (cast(func.strftime("%s", column), BigInteger) * 1_000_000
                + cast(func.substr(column, 21, 6), BigInteger))

    def _event(self, c: Condition) -> ColumnElement:
        tests = [Event.type == c.arg]
        for key, expected in c.where:
            value = _Json(Event.data, key, self.postgres)  # type: ignore[arg-type]
            tests.append(_compare(value.number_or_digits(), expected) if isinstance(expected, Comparison)
                         else value.equals(expected))
        return self._events(tests, c.within)

    def _engaged(self, c: Condition) -> ColumnElement:
        return self._events([Event.type.in_(ENGAGEMENT)], c.within)  # type: ignore[attr-defined]

    def _inactive(self, c: Condition) -> ColumnElement:
        since = self.now - c.within  # type: ignore[operator]
        return and_(Contact.created_at <= since, not_(self._events([Event.type.in_(ACTIVITY)], c.within)))  # type: ignore[attr-defined]

    def _consent(self, c: Condition) -> ColumnElement:
        column = Contact.email_status if c.arg == "email" else Contact.sms_status
        return column == Subscription.SUBSCRIBED

    def _bot(self) -> ColumnElement:
        """Python's truth of the event's `bot` (a link scanner's fetch), cheap cases first."""
        full = _Json(Event.data, "bot", self.postgres).truthy()  # type: ignore[arg-type]
        return case(*_bot_fast(self.postgres), else_=full)

    def _events(self, tests: list[ColumnElement], within: timedelta | None) -> ColumnElement:
        """Some event of this contact's, by a person (a link scanner's has `bot` set), passes `tests`."""
        human = not_(_sure(self._bot()))
        tests = [Event.contact_id == Contact.id, human, *tests]
        if within is not None:
            tests.append(Event.occurred_at >= self.now - within)
        return exists(select(literal(1)).select_from(Event).where(*tests))


def _bot_fast(postgres: bool) -> tuple[tuple[ColumnElement, ColumnElement], ...]:
    """The cases of `bot` that its generated column `ev_bot` (migration 0006, indexed for the funnel)
    settles without parsing the event's JSON again: missing or null, and — PostgreSQL keeps the text of
    `data ->> 'bot'` — "" and "true", or a text no number, false, object or array starts with (a non-empty
    string: true). SQLite keeps json_extract's value: a number, or true/false as 1/0. Anything else (the
    text 'false', which may be the JSON false or the string "false") falls through to the full check."""
    bot = literal_column("event.ev_bot")
    if postgres:
        first = func.substr(bot, 1, 1)
        return ((bot.is_(None), false()), (bot == "", false()), (bot == "true", true()),
                (first.not_in(tuple("-0123456789.f{[ ")), true()))
    kind = func.typeof(bot)
    return ((bot.is_(None), false()), (kind.in_(("integer", "real")), bot != 0))


def _divide(dividend: ColumnElement, divisor: ColumnElement) -> ColumnElement:
    """Integer division, truncating (SQLAlchemy's own `/` and `//` may turn it into a float or FLOOR)."""
    return Grouping(Grouping(dividend).op("/")(Grouping(divisor)))


def _compare(value: ColumnElement, comparison: Comparison) -> ColumnElement:
    bound = literal(comparison.value, Float)
    return {">=": value >= bound, "<=": value <= bound, "==": value == bound, "!=": value != bound,
            ">": value > bound, "<": value < bound}[comparison.op]


def condition_sql(session: Session, segment: Segment, now: datetime, scoring: Scoring | None = None) -> ColumnElement:
    """The WHERE clause over `contact` that holds for the segment's members at `now`. `scoring`: the
    lifecycle's scoring rules, when the condition compares the score (its decay); none: no decay.

    On PostgreSQL it also turns JIT compilation off for the rest of the transaction: the CASE expressions
    make the planner's cost estimate pass jit_above_cost, and compiling took ~240 ms of a 340 ms count of
    10,000 contacts (lapsed: 384 -> 138 ms, engaged leads: 422 -> 122 ms without it)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.execute(text("SET LOCAL jit = off"))
    compiler = _Compiler(now, scoring or Scoring(), postgres, {**segment.needs, segment.id: segment})
    # An erased person's row stays for the counts of the map and names no one: in no segment.
    return and_(Contact.email_status != Subscription.ERASED, compiler.where(segment.condition))


def count(session: Session, segment: Segment, now: datetime, scoring: Scoring | None = None) -> int:
    """How many contacts are in `segment` at `now`."""
    where = condition_sql(session, segment, now, scoring)
    return int(session.exec(select(func.count()).select_from(Contact).where(where)).one())


def member_ids(session: Session, segment: Segment, now: datetime, after_id: int | None = None, limit: int = 1000,
               scoring: Scoring | None = None) -> list[int]:
    """Up to `limit` member ids greater than `after_id`, in id order: walk a large segment page by page
    (pass the last id of a page as the next one's `after_id`)."""
    where = condition_sql(session, segment, now, scoring)
    query = select(Contact.id).where(where)
    if after_id is not None:
        query = query.where(Contact.id > after_id)
    return [int(i) for i in session.exec(query.order_by(Contact.id).limit(limit)).all()]  # type: ignore[arg-type]


def members_among(session: Session, segment: Segment, contact_ids: Iterable[int], now: datetime,
                  scoring: Scoring | None = None) -> set[int]:
    """Which of these contacts are in `segment` at `now`."""
    ids = sorted(set(contact_ids))
    if not ids:
        return set()
    where = condition_sql(session, segment, now, scoring)
    return {int(i) for i in session.exec(select(Contact.id).where(where, Contact.id.in_(ids))).all()}  # type: ignore[union-attr]


def sample(session: Session, segment: Segment, now: datetime, limit: int = 20,
           scoring: Scoring | None = None) -> list[Contact]:
    """The newest `limit` members (the console shows them)."""
    where = condition_sql(session, segment, now, scoring)
    return list(session.exec(select(Contact).where(where).order_by(Contact.id.desc()).limit(limit)))  # type: ignore[union-attr]


def segments_of(session: Session, segments: Iterable[Segment], contact_id: int, now: datetime,
                scoring: Scoring | None = None) -> set[str]:
    """Which of `segments` the contact is in at `now`: one query, one column a segment."""
    chosen = list(segments)
    if not chosen:
        return set()
    columns = [case((condition_sql(session, s, now, scoring), 1), else_=0) for s in chosen]
    row = session.execute(select(*columns).where(Contact.id == contact_id)).first()  # a Row even for one column
    return {s.id for s, inside in zip(chosen, row or (), strict=False) if inside}
