"""The funnel counts exactly what its definition says, on SQLite and PostgreSQL, both ways it is read: from
its indexes (nurture/store/funnel.py, `count_funnel_raw`) and from the rollup (nurture/store/funnel_rollup.py)
with nothing folded, part of it folded, and all of it. Every count is checked against the same counts
worked out in Python from all the rows, over mixed data (re-enrolled contacts, several channels, statuses,
errors, versions, bots, goals before and after a send, links to deliveries), for several periods (some on a
midnight, some exactly on a row's time) and versions, and again after new deliveries, clicks arriving later,
status changes (sent to bounced, an erasure's error scrubbed) and rows written while the fold catches up;
after a rebuild, and after the migration found rows already there."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session

from nurture.config import load_settings
from nurture.rules.funnel_members import day_of, start_of_day
from nurture.runtime import build_runtime
from nurture.store import funnel_rollup
from nurture.store.funnel import count_funnel
from nurture.store.models import Contact, Delivery, Enrollment, Event
from tests.conftest import worker_env
from tests.funnel_support import backlog, fold_all, fold_some, migrate_to, raw, rolled

SEQUENCES = ("lead-nurture", "customer")
STEPS = ("edu-1", "edu-2", "offer")
VERSIONS = ("v1", "v2")
STATUSES = ("sent", "sent", "sent", "bounced", "skipped", "failed", "sending")
ERRORS = (None, "unsubscribed", "suppressed", "550 no such user")
LINKED = ("email.unsubscribed", "sms.unsubscribed", "email.bounced", "sms.undelivered")
OUTCOMES = ("step.skipped", "step.branched", "email.deferred", "sms.deferred")


class World:
    """Rows made at random (seeded), written to the database and kept here to count by hand."""

    def __init__(self, rt, seed: int) -> None:  # noqa: ANN001
        self.rt, self.random, self.now = rt, random.Random(seed), rt.clock()
        self.contacts: list[int] = []
        self.enrollments: list[Enrollment] = []
        self.deliveries: list[Delivery] = []
        self.events: list[Event] = []

    def when(self) -> datetime:
        return self.now - timedelta(days=self.random.randint(0, 90), minutes=self.random.randint(0, 1440))

    def grow(self, contacts: int) -> None:
        with Session(self.rt.db, expire_on_commit=False) as session:
            for _ in range(contacts):
                self._contact(session)
            session.commit()

    def _contact(self, session: Session) -> None:
        pick = self.random.choice
        at = self.when()
        contact = Contact(email=f"c{len(self.contacts)}-{self.random.random()}@example.com", created_at=at,
                          updated_at=at)
        session.add(contact)
        session.flush()
        self.contacts.append(contact.id)
        for entry in range(1, self.random.choice((2, 2, 3)) + 1):  # some come back: a step twice
            sequence, version = pick(SEQUENCES), pick(VERSIONS)
            enrollment = Enrollment(contact_id=contact.id, sequence_id=sequence, sequence_version=version,
                                    entry=entry, status=pick(("active", "completed")), step_id=pick(STEPS),
                                    step_entered_at=self.when(), created_at=at, updated_at=at)
            session.add(enrollment)
            session.flush()
            self.enrollments.append(enrollment)
            for step in STEPS[:self.random.randint(0, 3)]:
                for channel in (("email", "sms") if self.random.random() < 0.2 else ("email",)):
                    self._delivery(session, contact.id, enrollment, step, channel)
            self._events(session, contact.id, sequence, version)

    def _delivery(self, session: Session, contact_id: int, enrollment: Enrollment, step: str, channel: str) -> None:
        pick = self.random.choice
        at, status = self.when(), pick(STATUSES)
        delivery = Delivery(contact_id=contact_id, enrollment_id=enrollment.id, sequence_id=enrollment.sequence_id,
                            sequence_version=enrollment.sequence_version, step_id=step, channel=channel,
                            status=status, error=pick(ERRORS) if status in ("skipped", "failed", "sent") else None,
                            provider_status=pick((None, "delivered", "sent")) if channel == "sms" else None,
                            created_at=at, updated_at=at, sent_at=at if status in ("sent", "bounced") else None)
        session.add(delivery)
        session.flush()
        self.deliveries.append(delivery)
        if self.random.random() < 0.3:
            self._event(session, contact_id, pick(LINKED), {"step": step}, delivery.id)

    def _events(self, session: Session, contact_id: int, sequence: str, version: str) -> None:
        pick = self.random.choice
        about = {"sequence": sequence, "version": version}
        self._event(session, contact_id, "sequence.enrolled", about)
        for _ in range(self.random.randint(0, 3)):
            bot = pick(({}, {"bot": False}, {"bot": True}))
            self._event(session, contact_id, "email.clicked", {**about, "step": pick(STEPS), **bot})
        if self.random.random() < 0.3:
            self._event(session, contact_id, "sequence.goal", {"sequence": sequence})
        if self.random.random() < 0.4:
            self._event(session, contact_id, pick(OUTCOMES),
                        {**about, "step": pick(STEPS), "reason": pick((None, "no phone", "if: false"))})

    def _event(self, session: Session, contact_id: int, kind: str, data: dict, delivery_id: int | None = None,
               at: datetime | None = None) -> None:
        at = at or self.when()
        event = Event(contact_id=contact_id, type=kind, data=data, delivery_id=delivery_id, occurred_at=at,
                      created_at=at)
        session.add(event)
        self.events.append(event)

    def change_statuses(self) -> None:
        """Some sent messages bounce later; some texts get their carrier's receipt."""
        with Session(self.rt.db, expire_on_commit=False) as session:
            for delivery in self.random.sample(self.deliveries, len(self.deliveries) // 5):
                row = session.get(Delivery, delivery.id)
                if row.status == "sent":
                    row.status = delivery.status = "bounced"
                elif row.channel == "sms":
                    row.provider_status = delivery.provider_status = "delivered"
            session.commit()

    def click_later(self) -> None:
        """Clicks (a bot's among them) and goals arriving today for messages sent days ago."""
        sent = [d for d in self.deliveries if d.status in ("sent", "bounced")]
        with Session(self.rt.db, expire_on_commit=False) as session:
            for d in self.random.sample(sent, min(len(sent), 15)):
                bot = self.random.choice(({}, {"bot": True}))
                self._event(session, d.contact_id, "email.clicked",
                            {"sequence": d.sequence_id, "version": d.sequence_version, "step": d.step_id, **bot},
                            at=self.now)
                if self.random.random() < 0.3:
                    self._event(session, d.contact_id, "sequence.goal", {"sequence": d.sequence_id}, at=self.now)
            session.commit()

    def scrub_errors(self) -> None:
        """What an erasure does to a person's deliveries: the error (which may quote the address) goes."""
        with Session(self.rt.db, expire_on_commit=False) as session:
            for delivery in self.random.sample(self.deliveries, len(self.deliveries) // 10):
                session.get(Delivery, delivery.id).error = delivery.error = None
            session.commit()

    def on_the_boundaries(self, moments: list[datetime]) -> None:
        """Deliveries exactly on a period's start and a microsecond before it."""
        with Session(self.rt.db, expire_on_commit=False) as session:
            contact = self.contacts[0]
            enrollment = next(e for e in self.enrollments if e.contact_id == contact)
            for n, at in enumerate(moments):
                for step, when in ((f"edge-{n}", at), (f"edge-{n}", at - timedelta(microseconds=1)),
                                   (f"before-{n}", at - timedelta(microseconds=1))):
                    delivery = Delivery(contact_id=contact, enrollment_id=enrollment.id,
                                        sequence_id=enrollment.sequence_id, sequence_version="v1", step_id=step,
                                        channel="email" if when == at else "sms", status="sent", created_at=when,
                                        updated_at=when, sent_at=when)
                    session.add(delivery)
                    session.flush()
                    self.deliveries.append(delivery)
            session.commit()


def expected(world: World, sequence: str, since: datetime, version: str | None) -> dict:
    """The funnel's definition (docs/console.md), counted in Python over every row."""
    steps: dict = defaultdict(lambda: defaultdict(int))
    reasons: dict = defaultdict(dict)
    cohort = [d for d in world.deliveries if d.sequence_id == sequence and d.created_at >= since
              and (version is None or d.sequence_version == version)]
    by_id = {d.id: d for d in cohort}
    groups = defaultdict(set)
    for d in cohort:
        groups[(d.step_id, d.channel, d.status, d.provider_status, d.error)].add(d.contact_id)
    for (step, channel, status, provider_status, error), people in groups.items():
        n = len(people)
        steps[step]["reached"] += n
        if status in ("sent", "skipped", "failed"):
            steps[step][status] += n
        if status == "bounced":
            steps[step]["sent"] += n
        if status == "skipped":
            key = error or "no reason recorded"
            reasons[step][key] = reasons[step].get(key, 0) + n
        if status == "sent" and (channel == "email" or provider_status == "delivered"):
            steps[step]["delivered"] += n
    ours = [e for e in world.events if e.data.get("sequence") == sequence and e.occurred_at >= since
            and (version is None or e.data.get("version") == version)]
    outcome = defaultdict(set)
    for e in ours:
        if e.type in ("step.skipped", "step.branched"):
            outcome[(e.data.get("step"), e.type, e.data.get("reason"))].add(e.contact_id)
    for (step, kind, why), people in outcome.items():
        steps[step]["reached"] += len(people)
        if kind == "step.skipped":
            steps[step]["skipped"] += len(people)
            reasons[step][why or "condition false"] = len(people)
    deferred = defaultdict(set)
    for e in ours:
        if e.type in ("email.deferred", "sms.deferred"):
            deferred[e.data.get("step")].add(e.contact_id)
    for step, people in deferred.items():
        steps[step]["deferred"] += len(people)
    metric = {"email.unsubscribed": "unsubscribed", "sms.unsubscribed": "unsubscribed", "email.bounced": "bounced",
              "sms.undelivered": "bounced"}
    linked = defaultdict(set)
    for e in world.events:
        if e.type in metric and e.delivery_id in by_id:
            d = by_id[e.delivery_id]
            linked[(d.step_id, d.channel, e.type)].add(e.contact_id)
    for (step, _channel, kind), people in linked.items():
        steps[step][metric[kind]] += len(people)
    sent = [d for d in cohort if d.status in ("sent", "bounced")]
    clicked, goals = defaultdict(set), defaultdict(set)
    for e in world.events:
        if e.data.get("sequence") != sequence:
            continue
        for d in sent:
            if d.contact_id != e.contact_id:
                continue
            if e.type == "email.clicked" and not e.data.get("bot") and d.step_id == e.data.get("step"):
                clicked[d.step_id].add(e.contact_id)
            if e.type == "sequence.goal" and d.sent_at <= e.occurred_at:
                goals[d.step_id].add(e.contact_id)
    for step, people in clicked.items():
        steps[step]["clicked"] += len(people)
    for step, people in goals.items():
        steps[step]["goal"] += len(people)
    decided = {(d.enrollment_id, d.step_id) for d in world.deliveries}
    waiting = defaultdict(set)
    for en in world.enrollments:
        if (en.sequence_id == sequence and en.status == "active" and en.step_id and en.step_entered_at >= since
                and (en.id, en.step_id) not in decided and (version is None or en.sequence_version == version)):
            waiting[en.step_id].add(en.contact_id)
    for step, people in waiting.items():
        steps[step]["waiting"] += len(people)
        steps[step]["reached"] += len(people)
    total = {"entered": len({e.contact_id for e in ours if e.type == "sequence.enrolled"}),
             "goal": len({e.contact_id for e in world.events if e.type == "sequence.goal" and e.occurred_at >= since
                          and e.data.get("sequence") == sequence})}
    return {"steps": {s: dict(m) for s, m in steps.items()}, "reasons": {s: r for s, r in reasons.items() if r},
            "total": total}


def as_dict(counts) -> dict:  # noqa: ANN001
    return {"steps": {s: dict(m) for s, m in counts.steps.items()},
            "reasons": {s: dict(r) for s, r in counts.skip_reasons.items() if r}, "total": dict(counts.total)}


def measured(world: World, sequence: str, since: datetime, version: str | None) -> dict:
    with Session(world.rt.db) as session:
        return as_dict(count_funnel(session, sequence, since, version))


def periods(now: datetime) -> list[datetime]:
    """Mid-day starts, two on a midnight (the partial first day is then a whole day), one a second after."""
    today = start_of_day(day_of(now))
    return [*(now - timedelta(days=days) for days in (1, 7, 30, 91)), today - timedelta(days=7), today,
            today - timedelta(days=3) + timedelta(seconds=1)]


def assert_same(world: World, count=measured) -> None:  # noqa: ANN001
    for since in periods(world.now):
        for sequence in SEQUENCES:
            for version in (None, *VERSIONS):
                assert count(world, sequence, since, version) == expected(world, sequence, since, version), \
                    (since, sequence, version)


def from_rollup(world: World, sequence: str, since: datetime, version: str | None) -> dict:
    return as_dict(rolled(world.rt, sequence, since, version))


def from_rows(world: World, sequence: str, since: datetime, version: str | None) -> dict:
    return as_dict(raw(world.rt, sequence, since, version))


@pytest.mark.parametrize("seed", [1, 2])
def test_the_indexed_funnel_counts_what_the_definition_says_before_and_after_new_rows(make_runtime, database_url,
                                                                                      clock, seed: int) -> None:
    world = World(make_runtime(database_url), seed)
    world.grow(60)
    assert sum(len(measured(world, s, world.now - timedelta(days=91), None)["steps"]) for s in SEQUENCES) > 0
    assert_same(world, from_rows)
    assert_same(world)
    clock.advance(days=2)
    world.now = clock()
    world.grow(25)  # new deliveries and events, some of them today
    world.change_statuses()  # and old rows that changed
    assert_same(world, from_rows)


@pytest.mark.parametrize("seed", [3, 4])
def test_the_rollup_counts_what_the_definition_says_however_far_the_fold_has_got(make_runtime, database_url,
                                                                                 clock, seed: int) -> None:
    world = World(make_runtime(database_url), seed)
    world.grow(50)
    world.on_the_boundaries(periods(world.now)[4:])
    assert backlog(world.rt) > 0
    assert_same(world, from_rollup)  # nothing folded yet: every contact is read from its own rows
    fold_some(world.rt, backlog(world.rt) // 2)
    assert_same(world, from_rollup)  # half of them
    fold_all(world.rt)
    assert backlog(world.rt) == 0
    assert_same(world, from_rollup)  # all of them: days, the first partial day, nothing dirty
    clock.advance(days=2, hours=5)
    world.now = clock()
    world.grow(20)  # re-entries and new contacts, some rows today
    world.change_statuses()  # sent -> bounced, carrier receipts
    world.click_later()  # clicks (and a bot's) and goals for messages of days ago
    assert_same(world, from_rollup)
    fold_some(world.rt, backlog(world.rt) // 3)
    world.grow(5)  # written while the fold catches up
    world.scrub_errors()
    assert_same(world, from_rollup)
    fold_all(world.rt)
    assert_same(world, from_rollup)
    assert_same(world)  # and count_funnel itself


def test_a_rebuild_and_a_second_fold_change_nothing(make_runtime, database_url) -> None:
    world = World(make_runtime(database_url), 5)
    world.grow(30)
    fold_all(world.rt)
    with Session(world.rt.db) as session:
        marked = funnel_rollup.mark_everything(session, world.now)
    assert marked == backlog(world.rt) > 0
    assert_same(world, from_rollup)
    fold_all(world.rt)
    assert_same(world, from_rollup)
    with Session(world.rt.db) as session:  # the same contacts folded again: nothing moves
        session.execute(Event.__table__.update().where(Event.id == world.events[0].id)  # type: ignore[attr-defined]
                        .values(data=world.events[0].data))
        session.commit()
    assert backlog(world.rt) > 0
    fold_all(world.rt)
    assert_same(world, from_rollup)


def test_the_migration_marks_the_rows_it_finds_and_the_funnel_stays_exact(project, database_url, clock) -> None:
    rt = build_runtime(load_settings(worker_env(project, database_url)), clock=clock)
    try:
        migrate_to(rt, "0008_contacts")
        # The world is written with today's models: the contact columns that migrations after the rollup's
        # add (0011_experiments, 0012_locale) are added here first, and the rollup's migration is the one
        # run over the rows.
        with rt.db.begin() as connection:
            connection.execute(text("ALTER TABLE delivery ADD COLUMN variant VARCHAR(64)"))
            connection.execute(text("ALTER TABLE contact ADD COLUMN locale VARCHAR(35)"))
        world = World(rt, 6)
        world.grow(30)
        migrate_to(rt, "0009_funnel_rollup")
        assert backlog(rt) > 0
        assert_same(world, from_rollup)
        fold_all(rt)
        assert_same(world, from_rollup)
    finally:
        rt.db.dispose()


def test_the_funnel_reads_the_raw_rows_while_the_backlog_is_large(make_runtime, sqlite_url, monkeypatch) -> None:
    world = World(make_runtime(sqlite_url), 7)
    world.grow(20)
    monkeypatch.setattr(funnel_rollup, "DIRTY_LIMIT", 3)
    since = world.now - timedelta(days=30)
    with Session(world.rt.db) as session:
        assert funnel_rollup.rolled_counts(session, "customer", since, None) is None
    assert_same(world)  # count_funnel took the raw rows
    fold_all(world.rt)
    with Session(world.rt.db) as session:
        assert funnel_rollup.rolled_counts(session, "customer", since, None) is not None
