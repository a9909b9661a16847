"""The worker's decisions as pure functions (nurture.rules.decisions): the one copy that the send path,
recording an event, `nurture simulate` and `nurture why` all call. Fast, no fixtures, `now` handed in."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from nurture.content.loader import parse_sequence
from nurture.rules import decisions
from nurture.rules.conditions import EventFact
from nurture.rules.lifecycle import Lifecycle, Scoring
from nurture.rules.sequence import Sequence, Window, parse_hours

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday
RULES = Lifecycle()
TEXT_HOURS = Window(time(8), time(21))


def sequence(text: str) -> Sequence:
    parsed, problems = parse_sequence(text, "test.yaml")
    assert parsed is not None and not problems, problems
    return parsed


MIXED = sequence("""
id: mixed
name: Mixed
stage: nurture-prospects
goals: [{tag: bought-elsewhere}]
steps:
  - {id: hello, kind: educate, template: lead/edu-1, subject: Hello}
  - {id: vip, kind: offer, template: lead/offer, subject: VIP, if: {tag: vip}, wait: 1d}
  - {id: text, kind: educate, channel: sms, template: class-reminders/booked, wait: 1d}
  - {id: last, kind: educate, template: lead/edu-3, subject: Last, wait: 1d}
  - id: wait-call
    wait_for: {event: booked-call, timeout: 3d, then: last, else: end}
""")


@pytest.mark.parametrize(("current", "target", "expected"), [
    ("lead", "prospect", "prospect"),
    ("lead", "customer", "customer"),
    ("customer", "lead", None),  # a step's `set_stage: lead` never demotes a customer
    ("customer", "prospect", None),
    ("customer", "customer", None),
    ("advocate", "repeat-customer", None),
])
def test_a_stage_only_ever_moves_forward(current: str, target: str, expected: str | None) -> None:
    assert decisions.stage_change(RULES, current, target) == expected


def test_an_event_scores_its_points_after_decay_and_says_when_it_crosses_the_threshold() -> None:
    scoring = Scoring(points={"email.clicked": 3}, decay_points=1, decay_every=timedelta(days=7), threshold=10)
    change = decisions.score_change(scoring, 9, NOW - timedelta(days=14), "email.clicked", NOW)
    assert change == decisions.ScoreChange(before=7, after=10, crossed=True)
    assert decisions.score_change(scoring, 12, NOW, "email.clicked", NOW) == decisions.ScoreChange(12, 15, False)
    assert decisions.score_change(scoring, 12, NOW, "purchase", NOW) is None


def test_a_link_scanners_click_counts_for_nothing() -> None:
    assert not decisions.counts(EventFact("email.clicked", NOW, {"bot": True}))
    assert decisions.counts(EventFact("email.clicked", NOW, {"step": "hello"}))


def test_conditions_see_this_sequences_opens_and_no_bots() -> None:
    events = [EventFact("email.opened", NOW, {"sequence": "mixed", "step": "hello"}),
              EventFact("email.clicked", NOW, {"sequence": "other", "step": "offer"}),
              EventFact("email.clicked", NOW, {"sequence": "mixed", "step": "vip", "bot": True})]
    who = decisions.ContactFacts(frozenset({"vip"}), {"plan": "pro"}, "prospect", 4.0, NOW)
    facts = decisions.facts_for("mixed", who, events, frozenset({"kiln"}), Scoring(), NOW)
    assert (facts.opened, facts.clicked, len(facts.events)) == (frozenset({"hello"}), frozenset(), 2)
    assert (facts.tags, facts.stage, facts.score, facts.purchased) == (frozenset({"vip"}), "prospect", 4.0,
                                                                       frozenset({"kiln"}))


def test_products_bought_come_from_purchase_properties() -> None:
    assert decisions.products_bought([{"product": "kiln"}, {}, {"product": 7}, "junk"]) == frozenset({"kiln", "7"})


@pytest.mark.parametrize(("args", "expected"), [
    (("email", "a@example.com", "subscribed", None, False), None),
    (("email", "a@example.com", "unsubscribed", None, False), "contact is unsubscribed for email"),
    (("sms", "+15035550123", "none", None, False), "no sms consent"),
    (("sms", None, "subscribed", None, False), "no address for this channel (sms)"),
    (("email", "a@example.com", "pending", None, True), None),  # the opt-in confirmation goes to pending
    (("email", "a@example.com", "subscribed", "rejected: 550", True), "address suppressed: rejected: 550"),
    (("email", "a@example.com", "subscribed", None, False, "stopped", "left via one-click"), "left via one-click"),
    (("email", "a@example.com", "subscribed", None, False, "completed"), "enrollment completed"),
])
def test_who_may_not_get_a_message_and_why(args: tuple, expected: str | None) -> None:
    assert decisions.consent_block(*args) == expected


def test_a_blocked_message_stops_the_sequence_unless_another_channel_comes_later() -> None:
    hello, _, text, last, _ = MIXED.steps
    assert not decisions.stops_after_block(MIXED, hello)  # a text comes later
    assert not decisions.stops_after_block(MIXED, text)  # emails come later
    assert decisions.stops_after_block(MIXED, last)


def test_texts_wait_for_the_end_of_quiet_hours_in_the_recipients_time() -> None:
    portland_5am = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    assert decisions.quiet_hours(portland_5am, "+15035550123", "America/Los_Angeles", TEXT_HOURS, {}) == (
        datetime(2026, 11, 23, 16, 0, tzinfo=UTC), "quiet hours (texts 08:00-21:00 local time)")
    # No timezone on record: the number's area code says Portland.
    assert decisions.quiet_hours(portland_5am, "+15035550123", None, TEXT_HOURS, {})[0] == datetime(
        2026, 11, 23, 16, 0, tzinfo=UTC)
    assert decisions.quiet_hours(portland_5am, None, "America/Los_Angeles", TEXT_HOURS, {}) is None
    assert decisions.quiet_hours(portland_5am + timedelta(hours=4), "+15035550123", None, TEXT_HOURS, {}) is None


def test_the_channels_hold_comes_first_and_transactional_messages_ignore_window_and_cap() -> None:
    window = Window(*parse_hours("09:00-17:00"), days=frozenset(range(5)))
    saturday = datetime(2026, 11, 28, 12, tzinfo=UTC)
    quiet = (saturday + timedelta(hours=1), "quiet hours (texts 08:00-21:00 local time)")
    full = [saturday - timedelta(hours=2), saturday - timedelta(hours=1)]
    assert decisions.send_hold(saturday, quiet, False, window, UTC, full, 2, 6) == quiet
    assert decisions.send_hold(saturday, None, False, window, UTC, full, 2, 6) == (
        datetime(2026, 11, 30, 9, tzinfo=UTC), "outside the send window")
    assert decisions.send_hold(saturday, None, False, None, UTC, full, 2, 6) == (
        saturday + timedelta(hours=22), "frequency cap (2/day, 6/week)")
    assert decisions.send_hold(saturday, None, True, window, UTC, full, 2, 6) is None


def test_only_the_event_a_wait_for_step_waits_for_wakes_it() -> None:
    waiting = MIXED.step("wait-call")
    assert decisions.wakes(waiting, "booked-call")
    assert not decisions.wakes(waiting, "purchase")
    assert not decisions.wakes(MIXED.step("hello"), "booked-call") and not decisions.wakes(None, "booked-call")


def test_a_trigger_starts_the_sequences_that_name_it() -> None:
    customer = sequence("""
id: customer
name: Customer
stage: deliver-satisfy
trigger: [{event: purchase}, {stage: customer}]
steps:
  - {id: thanks, kind: thank-you, template: customer/thank-you, subject: Thanks}
""")
    assert decisions.started_by([MIXED, customer], "event", "purchase") == [customer]
    assert decisions.started_by([MIXED, customer], "stage", "customer") == [customer]
    assert decisions.started_by([MIXED, customer], "tag", "purchase") == []


def _outlook(step_id: str, tags: frozenset[str] = frozenset(), email: str | None = None,
             sms: str | None = None, holds: dict | None = None) -> decisions.Outlook:
    facts = decisions.facts_for("mixed", decisions.ContactFacts(tags), [], frozenset(), Scoring(), NOW)
    return decisions.outlook(MIXED, step_id, NOW, facts, NOW, {"email": email, "sms": sms}, holds)


def test_the_outlook_says_what_the_worker_will_do_with_the_next_step() -> None:
    assert _outlook("hello") == decisions.Outlook("send")
    assert _outlook("hello", email="contact is unsubscribed for email") == decisions.Outlook(
        "skip", "contact is unsubscribed for email", stops=False)  # the text after it still goes
    assert _outlook("last", email="address suppressed: rejected") == decisions.Outlook(
        "skip", "address suppressed: rejected", stops=True)
    assert _outlook("vip") == decisions.Outlook("skip", "condition false: tag vip")
    assert _outlook("vip", tags=frozenset({"vip"})) == decisions.Outlook("send")
    assert _outlook("hello", tags=frozenset({"bought-elsewhere"})) == decisions.Outlook(
        "end", "goal reached: tag bought-elsewhere")
    assert _outlook("wait-call") == decisions.Outlook("wait")
    window = (NOW + timedelta(days=2), "outside the send window")
    assert _outlook("hello", holds={"email": window, "sms": None}) == decisions.Outlook(
        "defer", "outside the send window", until=NOW + timedelta(days=2))
    assert _outlook("text", holds={"email": window, "sms": None}) == decisions.Outlook("send")
    # A message that may not go at all is skipped, not deferred first: as the send path decides.
    assert _outlook("hello", email="no email consent", holds={"email": window}).what == "skip"
