"""One decision path: the same scenarios run through the real worker (real store on SQLite and PostgreSQL,
a real SMTP server, real Redis for the SMS sender's pace, the injected clock) and through `nurture simulate`
give identical timelines — step, outcome, time, reason and the contact's stage — as `nurture why` reads
the worker's back."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select

from nurture.insight.simulate import Entry, parse_contact, parse_event, simulate
from nurture.insight.why import Line, explain
from nurture.people import automation
from nurture.people.contacts import ContactInput, enroll, upsert_contact
from nurture.people.preferences import Origin, set_sms
from nurture.rules.conditions import EventFact
from nurture.runtime import Runtime
from nurture.store.models import Contact, Event
from tests.conftest import CONTENT, FakeClock, SmtpServer, write_sequence
from tests.helpers import enrollment, send_due

EMAIL = "ann@example.com"
MONDAY_PARIS = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 10:00 CET
FRIDAY_AFTERNOON_NY = datetime(2026, 10, 30, 19, 30, tzinfo=UTC)  # 15:30 EDT; clocks go back on Sunday
PORTLAND_5AM = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Scenario:
    sequence: str  # the file's text; its id is "s"
    contact: str  # as `nurture simulate --contact` takes it
    start: datetime
    events: tuple[str, ...] = ()  # as `--event` takes them
    covers: str = ""  # the outcome (what, reason fragment) the scenario exists for


def steps(*lines: str, head: str = "", stage: str = "nurture-prospects") -> str:
    return f"id: s\nname: S\nstage: {stage}\n" + head + "steps:\n" + "".join(f"  - {x}\n" for x in lines)


SCENARIOS = {
    "plain waits": Scenario(steps(
        "{id: one, kind: educate, template: lead/edu-1, subject: One}",
        "{id: two, kind: educate, template: lead/edu-2, subject: Two, wait: 2d, at: '10:00', on: weekdays}",
        "{id: three, kind: educate, template: lead/edu-3, subject: Three, wait: 3h}"),
        "timezone=Europe/Paris", MONDAY_PARIS, covers="completed"),
    "send window": Scenario(steps(
        "{id: one, kind: educate, template: lead/edu-1, subject: One}",
        "{id: two, kind: educate, template: lead/edu-2, subject: Two, wait: 2h}",
        "{id: three, kind: offer, template: lead/offer, subject: Three, wait: 1d}",
        head="window: {days: weekdays, hours: '09:00-17:00'}\n"),
        "timezone=America/New_York", FRIDAY_AFTERNOON_NY, covers="deferred outside the send window"),
    "frequency cap": Scenario(steps(
        "{id: one, kind: educate, template: lead/edu-1, subject: One}",
        "{id: two, kind: educate, template: lead/edu-2, subject: Two, wait: 1h}",
        "{id: three, kind: educate, template: lead/edu-3, subject: Three, wait: 1h}"),
        "timezone=Europe/Paris", MONDAY_PARIS, covers="deferred frequency cap"),
    "sms quiet hours": Scenario(steps(
        "{id: booked, kind: thank-you, channel: sms, template: class-reminders/booked}",
        "{id: reminder, kind: educate, channel: sms, template: class-reminders/how-was-it, wait: 1d}",
        stage="deliver-satisfy"),
        "timezone=America/Los_Angeles,phone=+15035550123", PORTLAND_5AM, covers="deferred quiet hours"),
    "goal mid-sequence": Scenario(steps(
        "{id: one, kind: educate, template: lead/edu-1, subject: One}",
        "{id: two, kind: educate, template: lead/edu-2, subject: Two, wait: 2d}",
        "{id: three, kind: educate, template: lead/edu-3, subject: Three, wait: 3d}",
        head="goals: [{event: purchase}]\n"),
        "timezone=Europe/Paris", MONDAY_PARIS, ("purchase@3d",), covers="goal event purchase"),
    "if and branch": Scenario(steps(
        "{id: hello, kind: educate, template: lead/edu-1, subject: Hello}",
        "{id: vip, kind: offer, template: lead/offer, subject: VIP, if: {tag: vip}, wait: 1d}",
        "{id: wait-call, wait_for: {event: booked-call, timeout: 3d, then: thanks, else: nudge}}",
        "{id: nudge, kind: offer, template: lead/offer, subject: Nudge, goto: end}",
        "{id: thanks, kind: thank-you, template: customer/thank-you, subject: Thanks}"),
        "timezone=Europe/Paris", MONDAY_PARIS, ("booked-call@2d",), covers="branched booked-call came"),
    "set_stage lead for a customer": Scenario(steps(
        "{id: relead, kind: educate, template: lead/edu-1, subject: Back to school, set_stage: lead}",
        "{id: promote, kind: educate, template: lead/edu-2, subject: Thanks, wait: 1d, set_stage: advocate}"),
        "timezone=Europe/Paris,stage=customer", MONDAY_PARIS, covers="sent"),
    "no sms consent": Scenario(steps(
        "{id: hello, kind: educate, template: lead/edu-1, subject: Hello}",
        "{id: text, kind: educate, channel: sms, template: class-reminders/booked, wait: 1d}",
        "{id: bye, kind: educate, template: lead/edu-3, subject: Bye, wait: 1d}"),
        "timezone=Europe/Paris,phone=+15035550123,sms_status=none", MONDAY_PARIS, covers="skipped no sms consent"),
    # The contact is the database's first (id 1): its variants are b, then a; and it is in a 10% holdout.
    "variants": Scenario(steps(
        "{id: one, kind: educate, template: lead/edu-1, subject: One, variants: [{id: a, subject: One A}, "
        "{id: b, template: lead/edu-2}]}",
        "{id: two, kind: educate, template: lead/edu-3, subject: Two, wait: 1d, variants: [{id: a, subject: Two A}, "
        "{id: b, subject: Two B}]}"),
        "timezone=Europe/Paris,id=1", MONDAY_PARIS, covers="sent"),
    "holdout": Scenario(steps(
        "{id: one, kind: educate, template: lead/edu-1, subject: One}",
        "{id: two, kind: educate, template: lead/edu-2, subject: Two, wait: 2d}",
        "{id: three, kind: educate, template: lead/edu-3, subject: Three, wait: 3d}",
        head="holdout: 10%\ngoals: [{event: purchase}]\n"),
        "timezone=Europe/Paris,id=1", MONDAY_PARIS, ("purchase@3d",), covers="skipped held out"),
}


@pytest.fixture
def rt(make_runtime, database_url, project: Path, smtp_server: SmtpServer, redis_url: str) -> Runtime:  # noqa: ANN001
    """Only the scenario's sequence (written by the test), the starter cap (2 a day), texts to the outbox."""
    for starter in (project / "sequences").glob("*.yaml"):
        starter.unlink()
    (project / "sequences" / "_lifecycle.yaml").write_text("caps: {per_day: 2, per_week: 6}\n")
    shutil.copytree(CONTENT / "sms_templates", project / "sms_templates")
    return make_runtime(database_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url, REDIS_URL=redis_url)


def enter(rt: Runtime, spec: str, clock: FakeClock) -> None:
    """The simulated contact, made real: created, given its stage and text consent, then enrolled."""
    who = parse_contact(spec, rt.sequences.lifecycle)
    with Session(rt.db) as session:
        contact, _ = upsert_contact(session, ContactInput(email=EMAIL, phone=who.phone, timezone=who.timezone,
                                                          tags=tuple(who.tags)), clock())
        contact.stage = who.stage
        if who.sms_status == "subscribed":
            set_sms(session, contact, True, Origin(method="form"), clock())
        enroll(session, contact, rt.sequences.get("s"), clock())
        session.commit()
        assert who.id in (None, contact.id)  # an id given to simulate is the real contact's


def run_the_worker(rt: Runtime, clock: FakeClock, events: list[EventFact]) -> None:
    """Jump the clock to whatever comes first — the next event, or when the database says the next step is
    due — and let the worker (or the events API's code) act then."""
    pending = sorted(events, key=lambda e: e.at)
    for _ in range(50):
        row = enrollment(rt, EMAIL, "s")
        if row.status != "active":
            return
        if pending and pending[0].at <= row.due_at:
            event = pending.pop(0)
            clock.now = event.at
            with Session(rt.db) as session:
                contact = session.exec(select(Contact).where(Contact.email == EMAIL)).one()
                automation.record(session, rt, contact, event.type, dict(event.data), clock())
                session.commit()
        else:
            clock.now = max(clock.now, row.due_at)
            send_due(rt)
    pytest.fail("the worker never finished the sequence")


Row = tuple[datetime, str | None, str, str | None, datetime | None, str, str | None]


def stage_at(changes: list[tuple[datetime, str]], at: datetime, first: str) -> str:
    """The contact's stage once everything that happened at `at` had happened."""
    return ([stage for when, stage in changes if when <= at] or [first])[-1]


def simulated(entries: tuple[Entry, ...], first: str) -> list[Row]:
    changes = [(e.at, e.stage or first) for e in entries]
    return [(e.at, None if e.what in ("goal", "completed") else e.step, e.what, e.reason, e.until,
             stage_at(changes, e.at, first), e.variant) for e in entries if e.what not in ("event", "stopped")]


def worked(rt: Runtime, lines: tuple[Line, ...], first: str) -> list[Row]:
    with Session(rt.db) as session:
        moves = session.exec(select(Event).where(Event.type == "stage.changed").order_by(Event.id)).all()
    changes = [(e.occurred_at, e.data["to"]) for e in moves]
    return [(line.at, None if line.what in ("goal", "completed") else line.step, line.what, line.reason,
             line.until, stage_at(changes, line.at, first), line.variant if line.what == "sent" else None)
            for line in lines]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_worker_does_what_simulate_predicts(rt: Runtime, project: Path, clock: FakeClock,
                                                smtp_server: SmtpServer, name: str) -> None:
    scenario = SCENARIOS[name]
    write_sequence(project, "s", scenario.sequence)
    rt.sequences.refresh()
    who = parse_contact(scenario.contact, rt.sequences.lifecycle)
    events = [parse_event(spec, scenario.start, who.zone) for spec in scenario.events]
    predicted = simulate(rt.sequences.get("s"), who, scenario.start, events, rt.sequences.lifecycle,
                         rt.settings.sms, rt.sequences.all())

    clock.now = scenario.start
    enter(rt, scenario.contact, clock)
    run_the_worker(rt, clock, events)

    with Session(rt.db) as session:
        story = explain(session, EMAIL, rt.sequences, clock())
    [run] = story.runs
    assert worked(rt, run.lines, who.stage) == simulated(predicted.entries, who.stage)
    what, _, fragment = scenario.covers.partition(" ")  # the scenario really exercises what it is named for
    assert any(e.what == what and fragment in (e.reason or "") for e in predicted.entries), predicted.entries
    sent = [line for line in run.lines if line.what == "sent" and line.channel == "email"]
    assert len(smtp_server.handler.to(EMAIL)) == len(sent)
