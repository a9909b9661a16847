"""`nurture simulate`: the exact timeline a made-up contact would get, as snapshots of its output.

Pure (no database, no clock): the sequences are parsed from text here, so a change to the starter files
never changes these snapshots. That the simulation matches what the worker really does is checked against
the real send path in tests/test_one_decision_path.py (and tests/test_why.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from nurture.cli import main
from nurture.content.loader import parse_sequence
from nurture.insight.simulate import (
    SimContact,
    SimulationInputError,
    format_timeline,
    parse_contact,
    parse_event,
    parse_instant,
    simulate,
    timeline_json,
)
from nurture.rules import engine
from nurture.rules.lifecycle import Lifecycle
from nurture.rules.sequence import Sequence, Window, parse_hours
from tests.conftest import worker_env, write_sequence

NO_CAP = Lifecycle()
STARTER_CAP = Lifecycle(per_day=2, per_week=6)
FRIDAY_AFTERNOON_NY = datetime(2026, 10, 30, 19, 30, tzinfo=UTC)  # 15:30 EDT; clocks go back on Sunday
MONDAY_PARIS = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 10:00 CET


def sequence(text: str) -> Sequence:
    parsed, problems = parse_sequence(text, "test.yaml")
    assert parsed is not None and not problems, problems
    return parsed


def contact(spec: str = "", lifecycle: Lifecycle = NO_CAP) -> SimContact:
    return parse_contact(spec, lifecycle)


def timeline(seq: Sequence, who: SimContact, start: datetime, *events: str, lifecycle: Lifecycle = NO_CAP,
             others: tuple[Sequence, ...] = ()) -> list[str]:
    facts = [parse_event(spec, start, who.zone) for spec in events]
    return format_timeline(simulate(seq, who, start, facts, lifecycle, others=others))


OFFICE_HOURS = sequence("""
id: office-hours
name: Office hours
stage: nurture-prospects
window: {days: weekdays, hours: "09:00-17:00"}
steps:
  - {id: hello, kind: educate, template: lead/edu-1, subject: Hello}
  - {id: tips, kind: educate, template: lead/edu-2, subject: Tips, wait: 2h}
  - {id: offer, kind: offer, template: lead/offer, subject: Offer, wait: 1d}
""")

THREE_QUICK = sequence("""
id: three-quick
name: Three quick ones
stage: nurture-prospects
steps:
  - {id: one, kind: educate, template: lead/edu-1, subject: One}
  - {id: two, kind: educate, template: lead/edu-2, subject: Two, wait: 1h}
  - {id: three, kind: educate, template: lead/edu-3, subject: Three, wait: 1h}
""")

NURTURE = sequence("""
id: nurture
name: Nurture
stage: nurture-prospects
goals: [{event: purchase}]
steps:
  - {id: edu-1, kind: educate, template: lead/edu-1, subject: Welcome}
  - {id: edu-2, kind: educate, template: lead/edu-2, subject: Classes, wait: 2d, at: "10:00", on: weekdays}
  - {id: edu-3, kind: educate, template: lead/edu-3, subject: Care, wait: 3d}
""")

CUSTOMER = sequence("""
id: customer
name: Customer
stage: deliver-satisfy
trigger: [{event: purchase}]
steps:
  - {id: thank-you, kind: thank-you, template: customer/thank-you, subject: Thanks}
""")

HOT_LEAD = sequence("""
id: hot-lead
name: Hot lead
stage: convert-sales
steps:
  - {id: hot-offer, kind: offer, template: lead/hot-offer, subject: Offer, set_stage: prospect}
  - id: wait-booking
    wait_for: {event: purchase, timeout: 3d, then: booked, else: last-call}
  - {id: booked, kind: thank-you, template: customer/thank-you, subject: Booked, goto: end}
  - {id: last-call, kind: offer, template: lead/last-call, subject: Last call}
""")

VIP = sequence("""
id: vip
name: VIP
stage: upsell-customers
steps:
  - {id: vip-offer, kind: upsell, template: customer/upsell, subject: For VIPs, if: {tag: vip}}
  - {id: everyone, kind: educate, template: lead/edu-3, subject: Care, wait: 1d}
""")

TEXTS = sequence("""
id: texts
name: Texts
stage: deliver-satisfy
steps:
  - {id: booked, kind: thank-you, channel: sms, template: class-reminders/booked}
  - {id: reminder, kind: educate, channel: sms, template: class-reminders/how-was-it, wait: 1d}
""")


def test_a_step_due_after_hours_waits_for_monday_across_the_dst_change() -> None:
    assert timeline(OFFICE_HOURS, contact("timezone=America/New_York"), FRIDAY_AFTERNOON_NY) == [
        "office-hours: a contact in America/New_York (stage lead), entering 2026-10-30 15:30 Fri EDT",
        "2026-10-30 15:30 Fri EDT  2026-10-30 19:30Z  hello  sent      educate lead/edu-1",
        "2026-10-30 17:30 Fri EDT  2026-10-30 21:30Z  tips   deferred  "
        "outside the send window -> 2026-11-02 09:00 Mon EST",
        "2026-11-02 09:00 Mon EST  2026-11-02 14:00Z  tips   sent      educate lead/edu-2",
        "2026-11-03 09:00 Tue EST  2026-11-03 14:00Z  offer  sent      offer lead/offer",
        "2026-11-03 09:00 Tue EST  2026-11-03 14:00Z  -      completed",
    ]


def test_a_contact_without_a_timezone_is_timed_in_utc() -> None:
    """Said once, plainly: not "UTC (no timezone)" in parentheses, nor the same time in two columns."""
    lines = timeline(OFFICE_HOURS, contact(), FRIDAY_AFTERNOON_NY)
    assert lines[0] == ("office-hours: a contact with no timezone (stage lead), times in UTC, "
                        "entering 2026-10-30 19:30 Fri UTC")
    assert lines[1] == ("2026-10-30 19:30 Fri UTC  hello  deferred  "
                        "outside the send window -> 2026-11-02 09:00 Mon UTC")
    assert lines[2] == "2026-11-02 09:00 Mon UTC  hello  sent      educate lead/edu-1"
    in_utc = timeline(OFFICE_HOURS, contact("timezone=UTC"), FRIDAY_AFTERNOON_NY)
    assert in_utc[0].startswith("office-hours: a contact in UTC (stage lead), entering")
    assert in_utc[1:] == lines[1:]


def test_the_frequency_cap_defers_the_third_message_of_the_day_to_when_there_is_room() -> None:
    assert timeline(THREE_QUICK, contact("timezone=Europe/Paris"), MONDAY_PARIS, lifecycle=STARTER_CAP)[1:] == [
        "2026-11-23 10:00 Mon CET  2026-11-23 09:00Z  one    sent      educate lead/edu-1",
        "2026-11-23 11:00 Mon CET  2026-11-23 10:00Z  two    sent      educate lead/edu-2",
        "2026-11-23 12:00 Mon CET  2026-11-23 11:00Z  three  deferred  "
        "frequency cap (2/day, 6/week) -> 2026-11-24 10:00 Tue CET",
        "2026-11-24 10:00 Tue CET  2026-11-24 09:00Z  three  sent      educate lead/edu-3",
        "2026-11-24 10:00 Tue CET  2026-11-24 09:00Z  -      completed",
    ]


def test_a_purchase_reaches_the_goal_and_ends_the_sequence_where_it_stands() -> None:
    lines = timeline(NURTURE, contact("timezone=Europe/Paris"), MONDAY_PARIS, "purchase@3d",
                     lifecycle=Lifecycle(), others=(CUSTOMER,))
    assert lines[1:] == [
        "2026-11-23 10:00 Mon CET  2026-11-23 09:00Z  edu-1  sent      educate lead/edu-1",
        "2026-11-25 10:00 Wed CET  2026-11-25 09:00Z  edu-2  sent      educate lead/edu-2",
        "2026-11-26 10:00 Thu CET  2026-11-26 09:00Z  -      event     "
        "purchase (stage lead -> customer; starts customer)",
        "2026-11-26 10:00 Thu CET  2026-11-26 09:00Z  edu-3  goal      event purchase reached; the sequence ends",
    ]


def test_a_goal_already_reached_when_the_first_step_falls_due_sends_nothing() -> None:
    assert timeline(NURTURE, contact(), MONDAY_PARIS, "purchase@0s")[1:] == [
        "2026-11-23 09:00 Mon UTC  -      event     purchase (stage lead -> customer)",
        "2026-11-23 09:00 Mon UTC  edu-1  goal      event purchase reached; the sequence ends",
    ]


def test_a_wait_for_step_branches_to_then_when_the_event_comes_in_time() -> None:
    lines = timeline(HOT_LEAD, contact("timezone=Europe/Paris"), MONDAY_PARIS, "purchase@1d")
    assert lines[1:] == [
        "2026-11-23 10:00 Mon CET  2026-11-23 09:00Z  hot-offer     sent      "
        "offer lead/hot-offer (stage lead -> prospect)",
        "2026-11-24 10:00 Tue CET  2026-11-24 09:00Z  -             event     purchase (stage prospect -> customer)",
        "2026-11-24 10:00 Tue CET  2026-11-24 09:00Z  wait-booking  branched  -> booked: purchase came",
        "2026-11-24 10:00 Tue CET  2026-11-24 09:00Z  booked        sent      thank-you customer/thank-you",
        "2026-11-24 10:00 Tue CET  2026-11-24 09:00Z  -             completed",
    ]


def test_a_wait_for_step_branches_to_else_at_its_timeout() -> None:
    lines = timeline(HOT_LEAD, contact("timezone=Europe/Paris"), MONDAY_PARIS, "purchase@4d")
    assert lines[1:] == [
        "2026-11-23 10:00 Mon CET  2026-11-23 09:00Z  hot-offer     sent      "
        "offer lead/hot-offer (stage lead -> prospect)",
        "2026-11-26 10:00 Thu CET  2026-11-26 09:00Z  wait-booking  branched  -> last-call: no purchase within 3d",
        "2026-11-26 10:00 Thu CET  2026-11-26 09:00Z  last-call     sent      offer lead/last-call",
        "2026-11-26 10:00 Thu CET  2026-11-26 09:00Z  -             completed",
        "2026-11-27 10:00 Fri CET  2026-11-27 09:00Z  -             event     purchase (after the sequence ended)",
    ]


def test_a_set_stage_step_never_moves_a_customer_back_to_lead_as_the_worker_refuses_to() -> None:
    relead = sequence("""
id: relead
name: Relead
stage: nurture-prospects
steps:
  - {id: relead, kind: educate, template: lead/edu-1, subject: Back to school, set_stage: lead}
  - {id: promote, kind: educate, template: lead/edu-2, subject: Thanks, wait: 1d, set_stage: advocate}
""")
    assert timeline(relead, contact("stage=customer"), MONDAY_PARIS)[1:] == [
        "2026-11-23 09:00 Mon UTC  relead   sent      educate lead/edu-1",
        "2026-11-24 09:00 Tue UTC  promote  sent      educate lead/edu-2 (stage customer -> advocate)",
        "2026-11-24 09:00 Tue UTC  -        completed",
    ]


def test_a_link_scanners_click_does_not_wake_a_step_waiting_for_a_click() -> None:
    clicked = sequence("""
id: clicked
name: Clicked
stage: nurture-prospects
steps:
  - {id: offer, kind: offer, template: lead/offer, subject: Offer}
  - id: wait-click
    wait_for: {event: email.clicked, timeout: 3d, then: thanks, else: reminder}
  - {id: thanks, kind: thank-you, template: customer/thank-you, subject: Thanks, goto: end}
  - {id: reminder, kind: offer, template: lead/last-call, subject: Reminder}
""")
    lines = timeline(clicked, contact(), MONDAY_PARIS, "email.clicked@1h step=offer bot=yes")
    assert lines[2:4] == [
        "2026-11-23 10:00 Mon UTC  -           event     email.clicked step=offer bot=yes",
        "2026-11-26 09:00 Thu UTC  wait-click  branched  -> reminder: no email.clicked within 3d",
    ]
    person = timeline(clicked, contact(), MONDAY_PARIS, "email.clicked@1h step=offer")
    assert person[3] == "2026-11-23 10:00 Mon UTC  wait-click  branched  -> thanks: email.clicked came"


def test_a_step_whose_condition_is_false_is_skipped_and_the_next_is_timed_from_the_skip() -> None:
    assert timeline(VIP, contact("timezone=Europe/Paris"), MONDAY_PARIS)[1:] == [
        "2026-11-23 10:00 Mon CET  2026-11-23 09:00Z  vip-offer  skipped   condition false: tag vip",
        "2026-11-24 10:00 Tue CET  2026-11-24 09:00Z  everyone   sent      educate lead/edu-3",
        "2026-11-24 10:00 Tue CET  2026-11-24 09:00Z  -          completed",
    ]
    vip = timeline(VIP, contact("timezone=Europe/Paris,tags=vip;beta"), MONDAY_PARIS)
    assert vip[0] == ("vip: a contact in Europe/Paris (stage lead, tags beta, vip), "
                      "entering 2026-11-23 10:00 Mon CET")
    assert vip[1] == "2026-11-23 10:00 Mon CET  2026-11-23 09:00Z  vip-offer  sent      upsell customer/upsell"


def test_conditions_see_custom_fields_score_and_event_properties() -> None:
    picky = sequence("""
id: picky
name: Picky
stage: upsell-customers
steps:
  - {id: pro, kind: upsell, template: t/pro, subject: Pro, if: {field: {plan: pro}}}
  - {id: keen, kind: upsell, template: t/keen, subject: Keen, if: {score: ">= 5"}}
  - {id: fan, kind: referral-request, template: t/fan, subject: Fan, wait: 2d,
     if: {event: rating, where: {score: ">= 9"}}}
""")
    lines = timeline(picky, contact("plan=pro,score=5"), MONDAY_PARIS, "rating@1d score=9")
    assert [line.split()[4:6] for line in lines[1:]] == [["pro", "sent"], ["keen", "sent"], ["-", "event"],
                                                         ["fan", "sent"], ["-", "completed"]]
    lines = timeline(picky, contact("plan=free"), MONDAY_PARIS, "rating@1d score=6")
    assert [line.split()[4:6] for line in lines[1:]] == [["pro", "skipped"], ["keen", "skipped"], ["-", "event"],
                                                         ["fan", "skipped"], ["-", "completed"]]


def test_an_upsell_offers_what_fits_the_purchases_including_one_made_before_the_start() -> None:
    upsell = sequence("""
id: upsell
name: Upsell
stage: upsell-customers
steps:
  - id: next-thing
    kind: upsell
    offers:
      - {after: wheel-6-week, offer: glaze-kit, template: customer/upsell, subject: Glaze at home}
      - {after: taster-class, offer: wheel-6-week, template: customer/upsell-course, subject: The wheel}
""")
    before = "purchase@2026-06-01T10:00:00Z product=taster-class"
    assert timeline(upsell, contact(), MONDAY_PARIS, before)[2:] == [
        "2026-11-23 09:00 Mon UTC  next-thing  sent      upsell customer/upsell-course",
        "2026-11-23 09:00 Mon UTC  -           completed",
    ]
    owns_both = timeline(upsell, contact(), MONDAY_PARIS, before, "purchase@0s product=wheel-6-week",
                         "purchase@0s product=glaze-kit")
    assert owns_both[-2].endswith("next-thing  skipped   no offer fits (bought: glaze-kit, taster-class, "
                                  "wheel-6-week)")


def test_texts_wait_for_the_end_of_quiet_hours_in_the_contacts_timezone() -> None:
    night = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)  # 05:00 in Portland
    assert timeline(TEXTS, contact("phone=+15035550123,timezone=America/Los_Angeles"), night)[1:] == [
        "2026-11-23 05:00 Mon PST  2026-11-23 13:00Z  booked    deferred  "
        "quiet hours (texts 08:00-21:00 local time) -> 2026-11-23 08:00 Mon PST",
        "2026-11-23 08:00 Mon PST  2026-11-23 16:00Z  booked    sent      thank-you class-reminders/booked by sms",
        "2026-11-24 08:00 Tue PST  2026-11-24 16:00Z  reminder  sent      educate class-reminders/how-was-it by sms",
        "2026-11-24 08:00 Tue PST  2026-11-24 16:00Z  -         completed",
    ]


def test_a_contact_who_may_not_get_the_message_is_skipped_and_the_sequence_stops() -> None:
    assert timeline(TEXTS, contact("timezone=Europe/Paris"), MONDAY_PARIS)[1:] == [
        "2026-11-23 10:00 Mon CET  2026-11-23 09:00Z  booked    skipped   no address for this channel (sms)",
        "2026-11-23 10:00 Mon CET  2026-11-23 09:00Z  booked    stopped   no address for this channel (sms)",
    ]
    unsubscribed = timeline(NURTURE, contact("email_status=unsubscribed"), MONDAY_PARIS)
    assert unsubscribed[1].endswith("edu-1  skipped   contact is unsubscribed for email")
    no_consent = timeline(TEXTS, contact("phone=+15035550123,sms_status=none"), datetime(2026, 11, 23, 18,
                                                                                           tzinfo=UTC))
    assert no_consent[1].endswith("booked    skipped   no sms consent")


def test_a_goto_loop_is_cut_short_instead_of_running_forever() -> None:
    loop = sequence("""
id: loop
name: Loop
stage: nurture-prospects
steps:
  - {id: again, kind: educate, template: lead/edu-1, subject: Again, wait: 1d, goto: again}
""")
    entries = simulate(loop, contact(), MONDAY_PARIS).entries
    assert entries[-1].what == "stopped" and "goto loop" in (entries[-1].reason or "")


def test_the_same_input_gives_the_same_json() -> None:
    who = contact("timezone=Europe/Paris")
    events = [parse_event("purchase@1d", MONDAY_PARIS, who.zone)]
    first = timeline_json(simulate(HOT_LEAD, who, MONDAY_PARIS, events))
    assert first == timeline_json(simulate(HOT_LEAD, who, MONDAY_PARIS, events))
    assert first["start"] == "2026-11-23T09:00:00Z"
    assert first["entries"][0] == {"at": "2026-11-23T09:00:00Z", "local": "2026-11-23T10:00:00+01:00",
                                   "what": "sent", "step": "hot-offer", "channel": "email", "kind": "offer",
                                   "template": "lead/hot-offer", "changes": ["stage lead -> prospect"],
                                   "text": "offer lead/hot-offer (stage lead -> prospect)"}
    assert first["entries"][2]["target"] == "booked" and first["entries"][2]["reason"] == "purchase came"


def test_event_times_count_calendar_days_on_the_contacts_wall_clock() -> None:
    who = contact("timezone=America/New_York")
    assert parse_event("purchase@2d", FRIDAY_AFTERNOON_NY, who.zone).at == datetime(2026, 11, 1, 20, 30,
                                                                                    tzinfo=UTC)  # 15:30 EST
    assert parse_event("webinar-attended@2d4h", FRIDAY_AFTERNOON_NY, who.zone).at == datetime(
        2026, 11, 2, 0, 30, tzinfo=UTC)
    exact = parse_event("purchase@2026-11-05T10:00:00+01:00", FRIDAY_AFTERNOON_NY, who.zone)
    assert exact.at == datetime(2026, 11, 5, 9, tzinfo=UTC) and exact.data == {}
    assert parse_event("rating@1d score=9 product=wheel", MONDAY_PARIS, UTC).data == {"score": 9,
                                                                                     "product": "wheel"}


@pytest.mark.parametrize(("spec", "message"), [
    ("timezone=Mars/Olympus", "is not an IANA timezone"),
    ("stage=wizard", "unknown stage 'wizard'"),
    ("score=lots", "score is a number"),
    ("email_status=maybe", "email_status is one of"),
    ("tags", "expected key=value"),
])
def test_a_bad_contact_is_refused_with_the_reason(spec: str, message: str) -> None:
    with pytest.raises(SimulationInputError, match=message):
        contact(spec)


@pytest.mark.parametrize(("spec", "message"), [
    ("purchase", "expected TYPE@WHEN"),
    ("Purchase!@3d", "expected TYPE@WHEN"),
    ("purchase@soon", "expected an ISO 8601 time"),
    ("purchase@2026-11-24T10:00:00", "needs a timezone"),
    ("rating@1d score", "expected key=value"),
])
def test_a_bad_event_is_refused_with_the_reason(spec: str, message: str) -> None:
    with pytest.raises(SimulationInputError, match=message):
        parse_event(spec, MONDAY_PARIS, UTC)


def test_the_start_needs_a_timezone() -> None:
    assert parse_instant("2026-11-23T10:00:00+01:00", "--start") == MONDAY_PARIS
    with pytest.raises(SimulationInputError, match="--start: '2026-11-23T10:00' needs a timezone"):
        parse_instant("2026-11-23T10:00", "--start")


def test_the_window_is_checked_before_the_cap_by_the_shared_hold_rule() -> None:
    window = Window(*parse_hours("09:00-17:00"), days=frozenset(range(5)))
    saturday = datetime(2026, 11, 28, 12, tzinfo=UTC)
    full = [saturday - timedelta(hours=2), saturday - timedelta(hours=1)]
    assert engine.hold_reason(saturday, window, UTC, full, 2, 6) == (datetime(2026, 11, 30, 9, tzinfo=UTC),
                                                                     "outside the send window")
    monday = datetime(2026, 11, 30, 10, tzinfo=UTC)
    assert engine.hold_reason(monday, window, UTC, [monday - timedelta(hours=1)] * 2, 2, 6) == (
        monday + timedelta(hours=23), "frequency cap (2/day, 6/week)")
    assert engine.hold_reason(monday, None, UTC, [], 0, 0) is None


# --- The command ---------------------------------------------------------------------------------------------

@pytest.fixture
def cli_env(project: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project of its own (not the starter files, which change): lifecycle rules, the sequence simulated,
    and one that a purchase starts."""
    for name, value in worker_env(project, sqlite_url).items():
        monkeypatch.setenv(name, value)
    for starter in (project / "sequences").glob("*.yaml"):
        starter.unlink()
    (project / "sequences" / "_lifecycle.yaml").write_text(
        "events: {purchase: customer}\ncaps: {per_day: 2, per_week: 6}\n")
    write_sequence(project, "office-hours", """
id: office-hours
name: Office hours
stage: nurture-prospects
window: {days: weekdays, hours: "09:00-17:00"}
goals: [{event: purchase}]
steps:
  - {id: hello, kind: educate, template: lead/edu-1, subject: Hello}
  - {id: tips, kind: educate, template: lead/edu-2, subject: Tips, wait: 2h}
  - {id: offer, kind: offer, template: lead/offer, subject: Offer, wait: 1d}
""")
    write_sequence(project, "customer", """
id: customer
name: Customer
stage: deliver-satisfy
trigger: [{event: purchase}]
steps:
  - {id: thank-you, kind: thank-you, template: customer/thank-you, subject: Thanks}
""")
    return project


def test_the_command_prints_the_timeline_and_opens_no_database(cli_env: Path) -> None:
    result = CliRunner().invoke(main, ["simulate", "office-hours", "--contact", "timezone=America/New_York",
                                       "--event", "purchase@3d", "--start", "2026-10-30T19:30:00Z"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "office-hours: a contact in America/New_York (stage lead), entering 2026-10-30 15:30 Fri EDT",
        "2026-10-30 15:30 Fri EDT  2026-10-30 19:30Z  hello  sent      educate lead/edu-1",
        "2026-10-30 17:30 Fri EDT  2026-10-30 21:30Z  tips   deferred  "
        "outside the send window -> 2026-11-02 09:00 Mon EST",
        "2026-11-02 09:00 Mon EST  2026-11-02 14:00Z  tips   sent      educate lead/edu-2",
        "2026-11-02 15:30 Mon EST  2026-11-02 20:30Z  -      event     "
        "purchase (stage lead -> customer; starts customer)",
        "2026-11-02 15:30 Mon EST  2026-11-02 20:30Z  offer  goal      event purchase reached; the sequence ends",
    ]
    assert not (cli_env / "var" / "nurture.db").exists()


def test_the_command_prints_json_on_request(cli_env: Path) -> None:
    result = CliRunner().invoke(main, ["simulate", "office-hours", "--start", "2026-10-30T19:30:00Z", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [(e["what"], e.get("step")) for e in data["entries"]][:2] == [("deferred", "hello"), ("sent", "hello")]


@pytest.mark.parametrize(("args", "code", "message"), [
    (["simulate", "nope"], 1, "nurture: unknown sequence 'nope' (known: "),
    (["simulate", "office-hours", "--event", "purchase@soon"], 2, "nurture: --event purchase: expected an ISO"),
    (["simulate", "office-hours", "--contact", "stage=wizard"], 2, "nurture: --contact: unknown stage 'wizard'"),
    (["simulate", "office-hours", "--start", "tuesday"], 2, "nurture: --start: expected an ISO 8601 time"),
])
def test_the_command_reports_a_mistake_in_one_line(cli_env: Path, args: list[str], code: int,
                                                   message: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith(message)


def test_the_command_reports_a_configuration_error_with_exit_code_2(cli_env: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMAIL_BACKEND", "fax")
    result = CliRunner().invoke(main, ["simulate", "office-hours"])
    assert result.exit_code == 2
    assert result.output.strip() == "nurture: configuration error: EMAIL_BACKEND: expected one of outbox, smtp, " \
                                    "got 'fax'"
