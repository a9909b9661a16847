"""Generated contacts for the segment tests, and the brute-force count: every contact and all its events
loaded into Python and judged by the pure definition (nurture.rules.segments.holds)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from nurture.rules import decisions
from nurture.rules.conditions import EventFact, parse_condition
from nurture.rules.lifecycle import Scoring
from nurture.rules.segments import Segment, holds, resolve
from nurture.store import db
from nurture.store.models import Contact, Event

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SCORING = Scoring(decay_points=1.5, decay_every=timedelta(days=7))
TAGS = ("vip", "newsletter", "wheel", "glaze", "kids", "5")
STAGES = ("lead", "prospect", "customer", "repeat-customer", "advocate")
STATUSES = ("subscribed", "subscribed", "unsubscribed", "none", "pending")
EVENT_TYPES = ("email.opened", "email.clicked", "purchase", "rating", "class-booked", "page-viewed")
PLANS = ("pro", "basic", "free")
# Values a field or property may hold: texts, numbers written as digits or not, numbers, true/false, null.
# An erased person keeps a row (stage, dates) and events, and is in no segment.
ERASED = {"email_status": "erased", "sms_status": "erased", "tags": [], "fields": {}}
ODD_VALUES = ("3", "3.0", "-2.5", " 3", "1e3", "abc", "", 3, 3.0, 0, 1, True, False, None, 9.5, -1, 12)


def _fields(rng: random.Random) -> dict:
    fields: dict = {}
    if rng.random() < 0.7:
        fields["plan"] = rng.choice(PLANS)
    if rng.random() < 0.6:
        fields["visits"] = rng.choice(ODD_VALUES)
    if rng.random() < 0.3:
        fields["city"] = rng.choice(("Portland", "Salem", "portland"))
    return fields


def _event_data(rng: random.Random, type_: str) -> dict:
    data: dict = {}
    bot = rng.random()
    if bot < 0.1:
        data["bot"] = True
    elif bot < 0.2:
        data["bot"] = rng.choice((False, 0, 1, "", "yes", "false", "0", 0.0, [], {"by": "scanner"}))
    if type_ == "rating":
        data["score"] = rng.choice((*range(11), "9", "10", "x", 9.5, True, None))
    if type_ == "purchase":
        data["product"] = rng.choice(("wheel-course", "glaze-kit", "gift-card"))
        data["amount"] = rng.choice((25, 49.5, 120, "80", "80.50"))
    if type_ in decisions.ENGAGEMENT:
        data["sequence"] = "welcome"
        data["step"] = rng.choice(("edu-1", "edu-2"))
    return data


def _moment(rng: random.Random, days: int) -> datetime:
    return NOW - timedelta(seconds=rng.randrange(days * 86400), microseconds=rng.randrange(1_000_000))


def generate(engine: Engine, contacts: int, seed: int = 13) -> None:
    """`contacts` contacts with tags, fields, stages, scores (some decaying), consent and 0-8 events each."""
    rng = random.Random(seed)
    contact_rows, event_rows = [], []
    for n in range(1, contacts + 1):
        created = _moment(rng, 400)
        score_at = None if rng.random() < 0.3 else _moment(rng, 120)
        contact_rows.append({
            "id": n, "email": f"c{n}@example.test", "tags": rng.sample(TAGS, rng.randrange(4)),
            "fields": _fields(rng), "stage": rng.choice(STAGES),
            "score": rng.choice((0.0, 1.0, 3.0, 4.5, 10.0, 12.0, 25.0, rng.uniform(0, 30))), "score_at": score_at,
            "email_status": rng.choice(STATUSES), "sms_status": rng.choice(STATUSES), "attribution": {},
            **(ERASED if rng.random() < 0.03 else {}),
            "created_at": created, "updated_at": created,
        })
        for _ in range(rng.randrange(9)):
            type_ = rng.choice(EVENT_TYPES)
            at = _moment(rng, 200)
            event_rows.append({"contact_id": n, "type": type_, "data": _event_data(rng, type_), "occurred_at": at,
                               "created_at": at})
    with Session(engine) as session:
        for start in range(0, len(contact_rows), 2000):
            session.execute(insert(Contact), contact_rows[start:start + 2000])
        for start in range(0, len(event_rows), 5000):
            session.execute(insert(Event), event_rows[start:start + 5000])
        session.commit()


def database(url: str, contacts: int, seed: int = 13) -> Engine:
    engine = db.make_engine(url)
    db.upgrade(engine)
    generate(engine, contacts, seed)
    return engine


class BruteForce:
    """Every contact's facts, loaded once: a segment's count by the definition, one contact at a time."""

    def __init__(self, engine: Engine) -> None:
        with Session(engine) as session:
            events: dict[int, list[EventFact]] = defaultdict(list)
            for e in session.exec(select(Event)):
                events[e.contact_id].append(EventFact(e.type, e.occurred_at, e.data))
            contacts = list(session.exec(select(Contact).order_by(Contact.id)))
            self.facts = [self._facts(c, events[c.id or 0]) for c in contacts]
            self.erased = {c.id for c in contacts if c.email_status == "erased"}

    @staticmethod
    def _facts(contact: Contact, events: list[EventFact]) -> tuple[int, object]:
        who = decisions.ContactFacts(
            frozenset(contact.tags), contact.fields, contact.stage, contact.score, contact.score_at,
            decisions.ContactFacts.channels(contact.email_status, contact.sms_status), contact.created_at)
        return contact.id or 0, decisions.segment_facts(who, events, SCORING, NOW)

    def member_ids(self, segment: Segment) -> list[int]:
        return [cid for cid, facts in self.facts if holds(segment, facts, NOW, cid in self.erased)]  # type: ignore[arg-type]


def segment(segment_id: str, condition: object, others: dict[str, Segment] | None = None) -> Segment:
    """A segment from a YAML-like condition; `others` are the segments it may name (resolved with it)."""
    made = Segment(segment_id, segment_id, parse_condition(condition))
    return resolve({**(others or {}), segment_id: made})[segment_id]


def starter_people(url: str, segments: dict[str, Segment]) -> dict[str, list[str]]:
    """Four contacts — an engaged lead, a recent buyer, a lapsed subscriber, a link scanner's victim (its
    only open is a bot's) — and which of them each segment finds, by email."""
    engine = db.make_engine(url)
    db.upgrade(engine)
    long_ago, recent = NOW - timedelta(days=200), NOW - timedelta(days=5)
    people = {"lead@example.test": ("lead", [("email.opened", {})]),
              "buyer@example.test": ("customer", [("purchase", {"product": "wheel-course"})]),
              "quiet@example.test": ("prospect", []),
              "scanned@example.test": ("lead", [("email.clicked", {"bot": True})])}
    with Session(engine) as session:
        for n, (email, (stage, events)) in enumerate(people.items(), 1):
            created = recent if email == "scanned@example.test" else long_ago
            session.execute(insert(Contact), [{"id": n, "email": email, "stage": stage, "tags": [], "fields": {},
                                               "attribution": {}, "email_status": "subscribed", "sms_status": "none",
                                               "created_at": created, "updated_at": created}])
            for type_, data in events:
                session.execute(insert(Event), [{"contact_id": n, "type": type_, "data": data, "occurred_at": recent,
                                                 "created_at": recent}])
        session.commit()
        from nurture.store import segments as store

        found = {sid: [session.get(Contact, i).email for i in store.member_ids(session, s, NOW)]  # type: ignore[union-attr]
                 for sid, s in segments.items()}
    engine.dispose()
    return found
