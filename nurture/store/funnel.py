"""A sequence's funnel, counted from the delivery and event records: per step, how many contacts reached
it and what became of them. The arithmetic (rates, totals) is nurture.insight.funnel's.

The cohort is the messages made in the period: a delivery row created since `since` (and its clicks,
unsubscribes, bounces and goals whenever they came), plus the steps that sent nothing — skipped by a
condition, a wait-for resolved, deferred — by when that happened. Every count is of distinct contacts.

Speed (bench/funnel.py, bench/README.md): the queries read indexes made for them (migration
0006_console_pages), not the tables. Events are found by `ev_sequence`, `ev_step` and `ev_bot`, generated
columns that hold exactly what `data ->> 'sequence'` (SQLite: `json_extract`) gave the queries before, so
the index answers and no row's JSON is parsed. Deliveries are read in two parts, those without an error
(from an index that carries every column counted but `error`) and those with one: the two parts are
disjoint and together are the whole cohort, so every count is the same as one scan's. A new metric (say,
revenue per step) is one more function that adds to `FunnelCounts`, called from `count_funnel`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, String, and_, bindparam, cast, distinct, func, literal_column, or_, union_all
from sqlalchemy.sql import Subquery
from sqlmodel import Session, select

from nurture.rules.funnel_members import LINKED, SENT, parse_group
from nurture.store import funnel_rollup
from nurture.store.models import Delivery, Enrollment, Event, SequenceVersion

PerStep = dict[str, dict[str, int]]  # step id -> metric -> contacts
Only = Sequence[int] | None  # some contacts only, or everyone
# The generated columns of migration 0006_console_pages: Event.data["sequence"].as_string() and so on,
# kept in ix_event_funnel. Named by table, so a query that selects from `event` reads them.
EV_SEQUENCE = literal_column("event.ev_sequence", String)
EV_STEP = literal_column("event.ev_step", String)
EV_BOT = literal_column("event.ev_bot", String)


@dataclass
class FunnelCounts:
    steps: PerStep = field(default_factory=lambda: defaultdict(dict))
    skip_reasons: PerStep = field(default_factory=lambda: defaultdict(dict))  # step id -> reason -> contacts
    total: dict[str, int] = field(default_factory=dict)  # the whole sequence: entered, goal

    def add(self, step: str, metric: str, n: int) -> None:
        self.steps[step][metric] = self.steps[step].get(metric, 0) + int(n)

    def merge(self, other: FunnelCounts) -> None:
        """Add the counts of other contacts: each count is of distinct contacts, so they add up."""
        for step, metrics in other.steps.items():
            for metric, n in metrics.items():
                if n:
                    self.add(step, metric, n)
        for step, reasons in other.skip_reasons.items():
            for reason, n in reasons.items():
                if n:
                    self.skip_reasons[step][reason] = self.skip_reasons[step].get(reason, 0) + n
        for metric, n in other.total.items():
            self.total[metric] = self.total.get(metric, 0) + n


def count_funnel(session: Session, sequence_id: str, since: datetime, version: str | None = None) -> FunnelCounts:
    """From the rollup (store.funnel_rollup) when it can answer, else from the raw rows: the same counts.
    The rollup gives everyone but the contacts changed since its last fold; those few are counted from
    their own rows by the raw queries, narrowed to them, and added."""
    for _ in range(3):  # a fold that commits while the rollup is read: read again
        rolled = funnel_rollup.rolled_counts(session, sequence_id, since, version)
        if rolled is not None:
            groups, dirty = rolled
            counts = from_groups(groups)
            if dirty:
                counts.merge(count_funnel_raw(session, sequence_id, since, version, contacts=dirty))
            _waiting(session, counts, sequence_id, since, version)
            return counts
        if funnel_rollup.too_dirty(session, sequence_id):
            break
    return count_funnel_raw(session, sequence_id, since, version)


def from_groups(groups: Mapping[str, int]) -> FunnelCounts:
    """The rollup's groups (rules.funnel_members) turned into the funnel's counts as the raw queries would
    (all but `waiting`, which is counted from the enrollments as they are now). Keys are added up by what
    they parse to first: a key written by an older fold with \\u escapes and today's for the same group
    are one group (a contact is under one of them, never both)."""
    merged: Counter = Counter()
    for key, n in groups.items():
        merged[tuple(parse_group(key))] += n
    counts = FunnelCounts()
    counts.total.update(entered=0, goal=0)
    for (kind, *parts), n in merged.items():
        if n <= 0:
            continue
        if kind == "d":
            _count_delivery_group(counts, *parts, n)
        elif kind == "o":
            _count_outcome(counts, *parts, n)
        elif kind == "f":
            counts.add(parts[0], "deferred", n)
        elif kind == "l":
            counts.add(parts[0], LINKED[parts[2]], n)
        elif kind in ("c", "g"):
            counts.add(parts[0], "clicked" if kind == "c" else "goal", n)
        else:
            counts.total["entered" if kind == "e" else "goal"] = n
    return counts


def count_funnel_raw(session: Session, sequence_id: str, since: datetime, version: str | None = None,
                     contacts: Only = None) -> FunnelCounts:
    """Every count from the delivery and event rows of the period (the funnel's definition); narrowed to
    `contacts` (without `waiting`), what those contacts add to each count."""
    counts = FunnelCounts()
    _deliveries(session, counts, sequence_id, since, version, contacts)
    _outcome_events(session, counts, sequence_id, since, version, contacts)
    _linked_events(session, counts, sequence_id, since, version, contacts)
    _clicks_and_goals(session, counts, sequence_id, since, version, contacts)
    if contacts is None:
        _waiting(session, counts, sequence_id, since, version)
    _totals(session, counts, sequence_id, since, version, contacts)
    return counts


def _in_cohort(sequence_id: str, since: datetime, version: str | None, contacts: Only = None) -> list[Any]:
    where = [Delivery.sequence_id == sequence_id, Delivery.created_at >= since]
    return where + ([Delivery.sequence_version == version] if version is not None else []) + _only(Delivery, contacts)


def _only(table: Any, contacts: Only) -> list[Any]:
    """The condition that keeps the rows of `contacts` (all when None). The ids are written into the SQL
    (they are integers): as 2,000 bind parameters each query spent far longer being built and bound than
    PostgreSQL took to run it (EXPLAIN ANALYZE 15-23 ms, 150-350 ms from Python)."""
    if contacts is None:
        return []
    ids = bindparam("only", [int(c) for c in contacts], expanding=True, literal_execute=True, unique=True)
    return [table.contact_id.in_(ids)]


def _cohort(sequence_id: str, since: datetime, version: str | None, contacts: Only, *columns: Any) -> Subquery:
    """The period's deliveries, status sent or bounced, as the two index-sized halves (error or none):
    together exactly the rows `_in_cohort` matches."""
    where = [*_in_cohort(sequence_id, since, version, contacts), Delivery.status.in_(SENT)]
    return union_all(select(*columns).where(*where, Delivery.error.is_(None)),
                     select(*columns).where(*where, Delivery.error.is_not(None))).subquery()


def _deliveries(session: Session, counts: FunnelCounts, sequence_id: str, since: datetime,
                version: str | None, contacts: Only = None) -> None:
    """Reached (a delivery row), sent, delivered, failed and skipped (with the reason), per step. Grouped by
    step, channel, status, provider status and error: the rows without an error from ix_delivery_funnel
    alone, the few with one (skips, failures) from the table."""
    keys = (Delivery.step_id, Delivery.channel, Delivery.status, Delivery.provider_status)
    clean = session.execute(select(*keys, func.count(distinct(Delivery.contact_id)))
                            .where(*_in_cohort(sequence_id, since, version, contacts), Delivery.error.is_(None))
                            .group_by(*keys))
    for step, channel, status, provider_status, n in clean:
        _count_delivery_group(counts, step, channel, status, provider_status, None, n)
    erred = session.execute(select(*keys, Delivery.error, func.count(distinct(Delivery.contact_id)))
                            .where(*_in_cohort(sequence_id, since, version, contacts), Delivery.error.is_not(None))
                            .group_by(*keys, Delivery.error))
    for step, channel, status, provider_status, error, n in erred:
        _count_delivery_group(counts, step, channel, status, provider_status, error, n)


def _count_delivery_group(counts: FunnelCounts, step: str, channel: str, status: str, provider_status: str | None,
                          error: str | None, n: int) -> None:
    counts.add(step, "reached", n)
    if status in ("sent", "skipped", "failed"):
        counts.add(step, status, n)
    if status == "bounced":  # sent, and the bounce came back after (nurture.people.bounces)
        counts.add(step, "sent", n)
    if status == "skipped":
        reason = error or "no reason recorded"
        counts.skip_reasons[step][reason] = counts.skip_reasons[step].get(reason, 0) + int(n)
    if status == "sent" and (channel == "email" or provider_status == "delivered"):
        # Email has no receipts: sent and not bounced (a bounce moves the row to `bounced`). A text: the
        # carrier's word.
        counts.add(step, "delivered", n)


def _event_step(sequence_id: str, since: datetime, version: str | None, contacts: Only) -> tuple[Any, list[Any]]:
    step = EV_STEP
    where = [EV_SEQUENCE == sequence_id, Event.occurred_at >= since, *_only(Event, contacts)]
    if version is not None:
        where.append(Event.data["version"].as_string() == version)
    return step, where


def _outcome_events(session: Session, counts: FunnelCounts, sequence_id: str, since: datetime,
                    version: str | None, contacts: Only = None) -> None:
    """Steps that sent nothing: skipped by a false condition, a wait-for resolved; and deferrals."""
    step, where = _event_step(sequence_id, since, version, contacts)
    reason = Event.data["reason"].as_string()
    rows = session.execute(
        select(step, Event.type, reason, func.count(distinct(Event.contact_id)))
        .where(Event.type.in_(["step.skipped", "step.branched"]), *where).group_by(step, Event.type, reason))
    for step_id, kind, why, n in rows:
        _count_outcome(counts, step_id, kind, why, n)
    deferred = session.execute(
        select(step, func.count(distinct(Event.contact_id)))
        .where(Event.type.in_(["email.deferred", "sms.deferred"]), *where).group_by(step))
    for step_id, n in deferred:
        counts.add(step_id, "deferred", n)


def _count_outcome(counts: FunnelCounts, step: str | None, kind: str, why: str | None, n: int) -> None:
    counts.add(step, "reached", n)  # type: ignore[arg-type]
    if kind == "step.skipped":
        counts.add(step, "skipped", n)  # type: ignore[arg-type]
        counts.skip_reasons[step][why or "condition false"] = int(n)  # type: ignore[index]


def _linked_events(session: Session, counts: FunnelCounts, sequence_id: str, since: datetime,
                   version: str | None, contacts: Only = None) -> None:
    """Unsubscribes from a message's own link, and bounces: events that name their delivery."""
    kinds = LINKED
    # From the events to their delivery by its key: joined to the two halves instead, SQLite looked up
    # every event of these kinds once per delivery of the period (a million-delivery bench never ended).
    rows = session.execute(
        select(Delivery.step_id, Delivery.channel, Event.type, func.count(distinct(Event.contact_id)))
        .join(Delivery, Delivery.id == Event.delivery_id)
        .where(Event.type.in_(list(kinds)), *_in_cohort(sequence_id, since, version), *_only(Event, contacts))
        .group_by(Delivery.step_id, Delivery.channel, Event.type))
    for step, _channel, kind, n in rows:
        counts.add(step, kinds[kind], n)


def _sent_in_cohort(session: Session, sequence_id: str, since: datetime, version: str | None, contacts: Only) -> Any:
    """The period's sent (or bounced) deliveries, to join events to. PostgreSQL reads them from the two
    index halves and hashes them. SQLite does better the other way round, from the few events of a kind
    to each contact's deliveries (its index on contact_id): the halves would make it probe the events once
    per delivery of the period, 500,000 times over a year of the bench's data."""
    columns = (Delivery.contact_id, Delivery.step_id, Delivery.sent_at)
    if session.get_bind().dialect.name == "postgresql":
        return _cohort(sequence_id, since, version, contacts, *columns)
    where = [*_in_cohort(sequence_id, since, version, contacts), Delivery.status.in_(SENT)]
    return select(*columns).where(*where).subquery()


def _clicks_and_goals(session: Session, counts: FunnelCounts, sequence_id: str, since: datetime,
                      version: str | None, contacts: Only = None) -> None:
    """People who clicked a step's links (a bot's click — a mail scanner's — is marked and not counted),
    and who reached the sequence's goal after the step was sent to them."""
    bot = cast(EV_BOT, Boolean)  # what Event.data["bot"].as_boolean() was, read from the index
    sent = _sent_in_cohort(session, sequence_id, since, version, contacts)
    clicked = session.execute(
        select(sent.c.step_id, func.count(distinct(Event.contact_id)))
        .join(sent, and_(sent.c.contact_id == Event.contact_id, sent.c.step_id == EV_STEP))
        .where(Event.type == "email.clicked", EV_SEQUENCE == sequence_id, or_(bot.is_(None), bot.is_(False)),
               *_only(Event, contacts))
        .group_by(sent.c.step_id))
    for step, n in clicked:
        counts.add(step, "clicked", n)
    goals = session.execute(
        select(sent.c.step_id, func.count(distinct(Event.contact_id)))
        .join(sent, and_(sent.c.contact_id == Event.contact_id, sent.c.sent_at <= Event.occurred_at))
        .where(Event.type == "sequence.goal", EV_SEQUENCE == sequence_id, *_only(Event, contacts))
        .group_by(sent.c.step_id))
    for step, n in goals:
        counts.add(step, "goal", n)


def _waiting(session: Session, counts: FunnelCounts, sequence_id: str, since: datetime, version: str | None) -> None:
    """Contacts at a step now (since `since`) that nothing has been decided for yet: they reached it too."""
    decided = select(Delivery.id).where(Delivery.enrollment_id == Enrollment.id,
                                        Delivery.step_id == Enrollment.step_id).exists()
    query = (select(Enrollment.step_id, func.count(distinct(Enrollment.contact_id)))
             .where(Enrollment.sequence_id == sequence_id, Enrollment.status == "active",
                    Enrollment.step_id.is_not(None), Enrollment.step_entered_at >= since, ~decided)
             .group_by(Enrollment.step_id))
    if version is not None:
        query = query.where(Enrollment.sequence_version == version)
    for step, n in session.execute(query):
        counts.add(step, "waiting", n)
        counts.add(step, "reached", n)


def _totals(session: Session, counts: FunnelCounts, sequence_id: str, since: datetime, version: str | None,
            contacts: Only = None) -> None:
    """The whole sequence: contacts who entered it, and who reached its goal, in the period."""
    where = [EV_SEQUENCE == sequence_id, Event.occurred_at >= since, *_only(Event, contacts)]
    for kind, metric in (("sequence.enrolled", "entered"), ("sequence.goal", "goal")):
        query = select(func.count(distinct(Event.contact_id))).where(Event.type == kind, *where)
        if version is not None and kind == "sequence.enrolled":  # a goal event names no version
            query = query.where(Event.data["version"].as_string() == version)
        counts.total[metric] = int(session.execute(query).scalar_one())


def versions_of(session: Session, sequence_id: str) -> list[tuple[str, datetime]]:
    """The versions of a sequence the service has run, newest first."""
    rows = session.execute(select(SequenceVersion.version, SequenceVersion.loaded_at)
                           .where(SequenceVersion.sequence_id == sequence_id)
                           .order_by(SequenceVersion.loaded_at.desc()))
    return [(version, loaded_at) for version, loaded_at in rows]
