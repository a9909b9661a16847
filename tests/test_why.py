"""`nurture why`: every message a contact was sent, skipped or deferred, when and why — read back from what
the real send path recorded (a real SMTP server, SQLite and PostgreSQL); and `nurture simulate` agreeing with
what the worker actually did."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from nurture.cli import main
from nurture.insight.simulate import parse_contact, parse_event, simulate
from nurture.insight.why import Run, Story, explain, format_story
from nurture.people import automation, suppression
from nurture.people.contacts import ContactInput, upsert_contact
from nurture.people.preferences import Origin, set_sms, unsubscribe_all
from nurture.rules.conditions import EventFact
from nurture.runtime import Runtime
from nurture.store.models import Contact
from tests.conftest import CONTENT, FakeClock, SmtpServer, worker_env, write_sequence
from tests.helpers import add_contact, deliveries, enrollment, send_due

TOUR = """
id: tour
name: Tour
stage: nurture-prospects
window: {days: weekdays, hours: "09:00-17:00"}
goals: [{event: refund}]
steps:
  - {id: hello, kind: educate, template: lead/edu-3, subject: Hello}
  - {id: tips, kind: educate, template: lead/edu-3, subject: Tips, wait: 1h}
  - {id: more, kind: educate, template: lead/edu-3, subject: More, wait: 1h}
  - {id: vip, kind: offer, template: lead/edu-3, subject: VIP, if: {tag: vip}}
  - id: wait-call
    wait_for: {event: booked-call, timeout: 3d, then: thanks, else: nudge}
  - {id: nudge, kind: offer, template: lead/edu-3, subject: Nudge, goto: end}
  - {id: thanks, kind: thank-you, template: lead/edu-3, subject: Thanks}
"""
TWO_STEPS = """
id: two-steps
name: Two steps
stage: nurture-prospects
steps:
  - {id: first, kind: educate, template: lead/edu-3, subject: First}
  - {id: second, kind: educate, template: lead/edu-3, subject: Second, wait: 1d}
"""
AHEAD = """
id: ahead
name: Ahead
stage: nurture-prospects
goals: [{tag: bought-elsewhere}]
steps:
  - {id: first, kind: educate, template: lead/edu-3, subject: First}
  - {id: text, kind: educate, channel: sms, template: class-reminders/booked, wait: 1d}
  - {id: second, kind: educate, template: lead/edu-3, subject: Second, wait: 1d}
"""
FRIDAY_MORNING_NY = datetime(2026, 10, 30, 14, 0, tzinfo=UTC)  # 10:00 EDT; the clocks go back on Sunday


@pytest.fixture
def rt(make_runtime, database_url, project: Path, smtp_server: SmtpServer) -> Runtime:  # noqa: ANN001
    """A project of its own: lifecycle rules with the starter cap (2 a day) and only the sequences a test
    writes, so nothing else (win-back, triggers) sends to the contact meanwhile."""
    for starter in (project / "sequences").glob("*.yaml"):
        starter.unlink()
    (project / "sequences" / "_lifecycle.yaml").write_text("caps: {per_day: 2, per_week: 6}\n")
    write_sequence(project, "tour", TOUR)
    write_sequence(project, "two-steps", TWO_STEPS)
    write_sequence(project, "ahead", AHEAD)
    shutil.copytree(CONTENT / "sms_templates", project / "sms_templates")
    return make_runtime(database_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url)


def story(rt: Runtime, email: str) -> Story:
    with Session(rt.db) as session:
        return explain(session, email, rt.sequences, rt.clock(), rt.settings.sms)


def run_of(rt: Runtime, email: str, sequence_id: str) -> Run:
    return next(run for run in story(rt, email).runs if run.sequence_id == sequence_id)


def outcomes(run: Run) -> list[tuple[str, str | None, str | None]]:
    return [(line.what, line.step, line.reason) for line in run.lines]


def record(rt: Runtime, email: str, type_: str, data: dict | None = None) -> None:
    """An event as POST /api/events records it, happening now."""
    with Session(rt.db) as session:
        contact = session.exec(select(Contact).where(Contact.email == email)).one()
        automation.record(session, rt, contact, type_, data or {}, rt.clock())
        session.commit()


def test_it_lists_sends_with_message_ids_a_false_condition_and_a_window_deferral(rt, smtp_server,
                                                                               clock: FakeClock) -> None:
    clock.now = datetime(2026, 10, 30, 19, 30, tzinfo=UTC)  # Friday 15:30 in New York
    add_contact(rt, "ann@example.com", "tour", first_name="Ann", timezone="America/New_York")
    for _ in range(3):  # hello at 15:30, tips at 16:30; more falls due at 17:30, after hours
        send_due(rt)
        clock.advance(hours=1)
    message_ids = [r.message["Message-ID"] for r in smtp_server.handler.to("ann@example.com")]
    assert format_story(story(rt, "ann@example.com")) == [
        "ann@example.com (Ann): timezone America/New_York, stage lead, email subscribed, texts none",
        "tour (entry 1, entered 2026-10-30 15:30 Fri EDT)",
        f"  2026-10-30 15:30 Fri EDT  hello  sent        educate by email, message {message_ids[0]}",
        f"  2026-10-30 16:30 Fri EDT  tips   sent        educate by email, message {message_ids[1]}",
        "  2026-10-30 17:30 Fri EDT  more   deferred    outside the send window; due again 2026-11-02 09:00 Mon EST",
        "  next: more not yet due, due 2026-11-02 09:00 Mon EST",
    ]
    clock.now = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)
    send_due(rt)
    run = run_of(rt, "ann@example.com", "tour")
    assert outcomes(run)[-2:] == [("sent", "more", None), ("skipped", "vip", "condition false: tag vip")]
    assert (run.next_step, run.waiting_for, run.due_at) == ("wait-call", "booked-call", clock.now + timedelta(days=3))
    assert format_story(story(rt, "ann@example.com"))[-1] == (
        "  next: wait-call waits for booked-call until 2026-11-05 09:00 Thu EST")


def test_it_explains_a_retry_with_the_servers_reply_then_the_failure(rt, smtp_server, clock) -> None:
    replies = iter(["451 4.3.0 Mailbox busy, try later", "554 5.6.0 Message refused"])
    smtp_server.handler.on_data = lambda received: next(replies)
    add_contact(rt, "ben@example.com", "two-steps")
    send_due(rt)
    first = run_of(rt, "ben@example.com", "two-steps").lines[0]
    assert (first.what, first.step, first.until) == ("retry", "first", clock.now + timedelta(seconds=60))
    assert first.reason == "SMTPDataError: 451 4.3.0 Mailbox busy, try later"
    assert format_story(story(rt, "ben@example.com"))[2].endswith(
        "retry       SMTPDataError: 451 4.3.0 Mailbox busy, try later; next attempt 2026-11-23 09:01 Mon UTC")
    clock.advance(seconds=60)
    send_due(rt)
    run = run_of(rt, "ben@example.com", "two-steps")
    assert outcomes(run)[1] == ("failed", "first", "SMTPDataError: 554 5.6.0 Message refused")
    assert run.next_step == "second"  # one failed message; the contact moves on


def test_a_refused_address_is_failed_then_suppressed_and_the_next_step_skipped(rt, smtp_server, clock) -> None:
    smtp_server.handler.replies["gone@example.com"] = "550 5.1.1 No such user"
    add_contact(rt, "gone@example.com", "two-steps")
    send_due(rt)
    clock.advance(days=1)
    send_due(rt)
    run = run_of(rt, "gone@example.com", "two-steps")
    refused = "recipient refused: 550 5.1.1 No such user"
    assert outcomes(run) == [("bounced", "first", refused), ("failed", "first", refused),
                             ("skipped", "second", f"address suppressed: rejected: {refused}")]
    assert (run.status, run.stop_reason) == ("stopped", f"address suppressed: rejected: {refused}")
    lines = format_story(story(rt, "gone@example.com"))
    assert lines[-1] == f"suppressed: gone@example.com since 2026-11-23 09:00 Mon UTC: rejected: {refused}"
    assert f"  stopped: address suppressed: rejected: {refused}" in lines


def test_it_explains_an_unsubscribe_and_the_message_it_stopped(rt, smtp_server, clock) -> None:
    add_contact(rt, "cat@example.com", "two-steps")
    send_due(rt)
    clock.advance(hours=5)
    [first] = deliveries(rt)
    with Session(rt.db) as session:
        cat = session.exec(select(Contact).where(Contact.email == "cat@example.com")).one()
        unsubscribe_all(session, cat, Origin(method="one-click", delivery_id=first.id), clock())
        session.commit()
    clock.advance(days=1)
    send_due(rt)
    whole = story(rt, "cat@example.com")
    assert outcomes(whole.runs[0])[1] == ("skipped", "second", "contact is unsubscribed for email")
    assert [(line.what, line.reason) for line in whole.consent] == [("unsubscribed", "via one-click")]
    assert "email unsubscribed 2026-11-23 14:00 Mon UTC via one-click" in format_story(whole)


def _unsubscribe(rt: Runtime, contact: Contact, now: datetime) -> None:
    [first] = deliveries(rt)
    with Session(rt.db) as session:
        unsubscribe_all(session, session.get(Contact, contact.id), Origin(method="one-click", delivery_id=first.id),
                        now)
        session.commit()


def _suppress(rt: Runtime, contact: Contact, now: datetime) -> None:
    with Session(rt.db) as session:
        suppression.add(session, contact.email, "complaint", now)
        session.commit()


def _tag(rt: Runtime, contact: Contact, now: datetime) -> None:
    with Session(rt.db) as session:
        upsert_contact(session, ContactInput(email=contact.email, tags=("bought-elsewhere",)), now)
        session.commit()


def _nothing(rt: Runtime, contact: Contact, now: datetime) -> None:
    pass


@pytest.mark.parametrize(("sequence_id", "meanwhile", "next_line", "worker_did", "status"), [
    ("two-steps", _unsubscribe,
     "next: second due 2026-11-24 09:00 Tue UTC will be skipped: contact is unsubscribed for email; "
     "the sequence stops there",
     ("skipped", "second", "contact is unsubscribed for email"), "stopped"),
    ("two-steps", _suppress,
     "next: second due 2026-11-24 09:00 Tue UTC will be skipped: address suppressed: complaint; "
     "the sequence stops there",
     ("skipped", "second", "address suppressed: complaint"), "stopped"),
    ("ahead", _tag,
     "next: nothing; text is not sent, the sequence ends (goal reached: tag bought-elsewhere)",
     ("goal", None, "goal reached: tag bought-elsewhere"), "completed"),
    ("ahead", _nothing,
     "next: text due 2026-11-24 09:00 Tue UTC will be skipped: no sms consent; then the contact moves on",
     ("skipped", "text", "no sms consent"), "active"),
], ids=["unsubscribed", "suppressed", "goal reached", "no sms consent"])
def test_why_says_what_will_really_happen_next_and_the_worker_then_does_it(rt, smtp_server, clock, sequence_id,
                                                                         meanwhile, next_line, worker_did,
                                                                         status) -> None:
    """Not "not yet due" for a message that will never go: the worker's own decision, said in advance."""
    contact_id = add_contact(rt, "cat@example.com", sequence_id, phone="+15035550123")
    send_due(rt)
    clock.advance(hours=5)
    with Session(rt.db) as session:
        contact = session.get(Contact, contact_id)
    meanwhile(rt, contact, clock())
    assert f"  {next_line}" in format_story(story(rt, "cat@example.com"))
    clock.advance(days=1)
    send_due(rt)
    run = run_of(rt, "cat@example.com", sequence_id)
    assert outcomes(run)[1] == worker_did
    assert run.status == status


TEXTS = """
id: texts
name: Texts
stage: deliver-satisfy
steps:
  - {id: booked, kind: thank-you, channel: sms, template: class-reminders/booked}
"""


@pytest.mark.parametrize(("start", "sequence_id", "sends", "next_line", "deferred"), [
    (datetime(2026, 10, 30, 19, 30, tzinfo=UTC), "tour", 2,  # Friday 15:30 in New York
     "next: more due 2026-10-30 17:30 Fri EDT, outside the send window: it goes 2026-11-02 09:00 Mon EST",
     ("outside the send window", datetime(2026, 11, 2, 14, 0, tzinfo=UTC))),
    (datetime(2026, 11, 23, 14, 0, tzinfo=UTC), "tour", 2,  # Monday 09:00 in New York; the cap is 2 a day
     "next: more due 2026-11-23 11:00 Mon EST, frequency cap (2/day, 6/week): it goes 2026-11-24 09:00 Tue EST",
     ("frequency cap (2/day, 6/week)", datetime(2026, 11, 24, 14, 0, tzinfo=UTC))),
    (datetime(2026, 11, 23, 13, 0, tzinfo=UTC), "texts", 0,  # 05:00 in Portland
     "next: booked due 2026-11-23 05:00 Mon PST, quiet hours (texts 08:00-21:00 local time): "
     "it goes 2026-11-23 08:00 Mon PST",
     ("quiet hours (texts 08:00-21:00 local time)", datetime(2026, 11, 23, 16, 0, tzinfo=UTC))),
], ids=["send window", "frequency cap", "quiet hours"])
def test_why_foretells_a_deferral_and_the_worker_defers_to_that_minute(rt, project, smtp_server, clock, start,
                                                                       sequence_id, sends, next_line,
                                                                       deferred) -> None:
    write_sequence(project, "texts", TEXTS)
    rt.sequences.refresh()
    clock.now = start
    zone = "America/Los_Angeles" if sequence_id == "texts" else "America/New_York"
    contact_id = add_contact(rt, "ann@example.com", sequence_id, timezone=zone, phone="+15035550123")
    with Session(rt.db) as session:
        set_sms(session, session.get(Contact, contact_id), True, Origin(method="form"), clock())
        session.commit()
    for _ in range(sends):
        send_due(rt)
        clock.advance(hours=1)
    assert f"  {next_line}" in format_story(story(rt, "ann@example.com"))
    clock.now = run_of(rt, "ann@example.com", sequence_id).due_at
    send_due(rt)
    last = run_of(rt, "ann@example.com", sequence_id).lines[-1]
    assert (last.what, last.reason, last.until) == ("deferred", *deferred)


def test_a_message_being_sent_right_now_shows_as_in_flight(rt, smtp_server) -> None:
    seen: list[Story] = []

    def look_while_the_server_has_it(received) -> None:  # noqa: ANN001  (the worker waits for our reply)
        seen.append(story(rt, "fay@example.com"))

    smtp_server.handler.on_data = look_while_the_server_has_it
    add_contact(rt, "fay@example.com", "two-steps")
    send_due(rt)
    [in_flight] = seen[0].runs[0].lines
    assert (in_flight.what, in_flight.step) == ("sending", "first")
    assert "sent again with the same message id" in (in_flight.reason or "")
    assert [line.what for line in run_of(rt, "fay@example.com", "two-steps").lines] == ["sent"]


def test_it_explains_a_goal_reached_by_an_event_even_while_waiting(rt, smtp_server, clock) -> None:
    clock.now = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # Monday 09:00 in New York
    add_contact(rt, "dan@example.com", "tour", timezone="America/New_York")
    for _ in range(3):
        send_due(rt)
        clock.advance(hours=1)
    record(rt, "dan@example.com", "refund")
    run = run_of(rt, "dan@example.com", "tour")
    assert outcomes(run)[-1] == ("goal", None, "goal reached: event refund")
    assert (run.status, run.next_step) == ("completed", None)
    assert format_story(story(rt, "dan@example.com"))[-2:] == [
        "  2026-11-23 12:00 Mon EST  -      goal        event refund reached; the sequence ends",
        "  completed: goal reached: event refund",
    ]


def test_it_explains_texts_held_back_by_quiet_hours(rt, project, clock) -> None:
    write_sequence(project, "texts", """
id: texts
name: Texts
stage: deliver-satisfy
steps:
  - {id: booked, kind: thank-you, channel: sms, template: class-reminders/booked}
""")
    rt.sequences.refresh()
    clock.now = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)  # 05:00 in Portland
    contact_id = add_contact(rt, "eve@example.com", "texts", phone="+15035550123")
    with Session(rt.db) as session:
        set_sms(session, session.get(Contact, contact_id), True, Origin(method="form"), clock())
        session.commit()
    send_due(rt)
    clock.now = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
    send_due(rt)
    whole = story(rt, "eve@example.com")
    assert [(line.what, line.channel, line.reason) for line in whole.runs[0].lines] == [
        ("deferred", "sms", "quiet hours (texts 08:00-21:00 local time)"), ("sent", "sms", None),
        ("completed", None, "sequence complete")]
    assert whole.runs[0].lines[0].until == clock.now
    assert [(line.channel, line.what) for line in whole.consent] == [("sms", "subscribed")]


def test_the_why_command_prints_the_story_or_one_line_for_an_unknown_contact(rt, project, database_url,
                                                                            smtp_server, monkeypatch) -> None:
    for name, value in worker_env(project, database_url).items():
        monkeypatch.setenv(name, value)
    add_contact(rt, "ann@example.com", "two-steps", timezone="Europe/Paris")
    send_due(rt)
    runner = CliRunner()
    result = runner.invoke(main, ["why", "Ann@Example.com"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1:3] == ["two-steps (entry 1, entered 2026-11-23 10:00 Mon CET)",
                                              "  2026-11-23 10:00 Mon CET  first  sent        educate by email, "
                                              f"message {smtp_server.received[0].message['Message-ID']}"]
    data = json.loads(runner.invoke(main, ["why", "ann@example.com", "--json"]).output)
    assert data["sequences"][0]["lines"][0]["what"] == "sent"
    assert data["sequences"][0]["next"] == {"step": "second", "due_at": "2026-11-24T09:00:00Z", "waiting_for": None}
    unknown = runner.invoke(main, ["why", "nobody@example.com"])
    assert (unknown.exit_code, unknown.output) == (1, "nurture: no contact 'nobody@example.com'\n")


# --- simulate, why and the worker agree ------------------------------------------------------------------------

def run_the_worker(rt: Runtime, clock: FakeClock, email: str, events: Iterable[EventFact]) -> None:
    """Drive the real send path through the sequence: jump the clock to whatever comes first — the next
    event, or the moment the database says the next step is due — and let the worker act then."""
    pending = sorted(events, key=lambda e: e.at)
    for _ in range(50):
        row = enrollment(rt, email, "tour")
        if row.status != "active":
            return
        if pending and pending[0].at <= row.due_at:
            event = pending.pop(0)
            clock.now = event.at
            record(rt, email, event.type, dict(event.data))
        else:
            clock.now = max(clock.now, row.due_at)
            send_due(rt)
    pytest.fail("the worker never finished the sequence")


@pytest.mark.parametrize(("events", "ending"), [(["booked-call@4d"], "branched"), ([], "branched"),
                                                (["refund@3d"], "goal")],
                         ids=["the call comes", "no call: timeout", "a refund reaches the goal"])
def test_simulate_why_and_the_worker_agree_on_every_step(rt, smtp_server, clock, events: list[str],
                                                         ending: str) -> None:
    """Across a DST change, the cap, the send window, a false condition, a wait-for branch and a goal."""
    clock.now = FRIDAY_MORNING_NY
    add_contact(rt, "ann@example.com", "tour", timezone="America/New_York")
    who = parse_contact("timezone=America/New_York", rt.sequences.lifecycle)
    facts = [parse_event(spec, FRIDAY_MORNING_NY, who.zone) for spec in events]
    predicted = simulate(rt.sequences.get("tour"), who, FRIDAY_MORNING_NY, facts, rt.sequences.lifecycle,
                         rt.settings.sms, rt.sequences.all())

    run_the_worker(rt, clock, "ann@example.com", facts)

    sent = [(d.step_id, d.sent_at) for d in deliveries(rt, "ann@example.com") if d.status == "sent"]
    assert sent == [(e.step, e.at) for e in predicted.entries if e.what == "sent"]
    assert len(smtp_server.handler.to("ann@example.com")) == len(sent)
    explained = run_of(rt, "ann@example.com", "tour").lines
    assert [(line.at, line.what, line.reason) for line in explained] == [
        (e.at, e.what, e.reason) for e in predicted.entries if e.what != "event"]
    assert [line.step for line in explained if line.what not in ("goal", "completed")] == [
        e.step for e in predicted.entries if e.what not in ("event", "goal", "completed")]
    assert {"deferred", "skipped", ending} <= {e.what for e in predicted.entries}  # the scenario covers them
