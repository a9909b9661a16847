"""The funnel read from its indexes (nurture/store/funnel.py: generated event columns, deliveries in two
halves by error) counts exactly what the funnel's definition says, on SQLite and PostgreSQL: every count
of `count_funnel` is checked against the same counts worked out in Python from all the rows, over mixed
data (re-enrolled contacts, several channels, statuses, errors, versions, bots, goals before and after a
send, links to deliveries), for several periods and versions, and again after new deliveries, events and
status changes."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from sqlmodel import Session

from nurture.store.funnel import count_funnel
from nurture.store.models import Contact, Delivery, Enrollment, Event

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

    def _event(self, session: Session, contact_id: int, kind: str, data: dict, delivery_id: int | None = None) -> None:
        at = self.when()
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


def measured(world: World, sequence: str, since: datetime, version: str | None) -> dict:
    with Session(world.rt.db) as session:
        counts = count_funnel(session, sequence, since, version)
    return {"steps": {s: dict(m) for s, m in counts.steps.items()},
            "reasons": {s: dict(r) for s, r in counts.skip_reasons.items() if r}, "total": dict(counts.total)}


def assert_same(world: World) -> None:
    for days in (1, 7, 30, 91):
        since = world.now - timedelta(days=days)
        for sequence in SEQUENCES:
            for version in (None, *VERSIONS):
                assert measured(world, sequence, since, version) == expected(world, sequence, since, version), \
                    (days, sequence, version)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_indexed_funnel_counts_what_the_definition_says_before_and_after_new_rows(make_runtime, database_url,
                                                                                      clock, seed: int) -> None:
    world = World(make_runtime(database_url), seed)
    world.grow(60)
    assert sum(len(measured(world, s, world.now - timedelta(days=91), None)["steps"]) for s in SEQUENCES) > 0
    assert_same(world)
    clock.advance(days=2)
    world.now = clock()
    world.grow(25)  # new deliveries and events, some of them today
    world.change_statuses()  # and old rows that changed
    assert_same(world)

