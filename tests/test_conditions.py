"""The pure parts of automation: conditions, decisions with goals/branches, send windows, frequency caps,
lifecycle rules. No fixtures, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from nurture.content.lifecycle_file import parse_lifecycle
from nurture.content.loader import parse_sequence
from nurture.rules import engine
from nurture.rules.conditions import EventFact, Facts, parse_condition
from nurture.rules.lifecycle import Lifecycle, Scoring, decayed_score, stage_after_event
from nurture.rules.sequence import Window

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BUY = EventFact("purchase", NOW - timedelta(days=2), {"product": "glaze-kit", "amount": 45})


@pytest.mark.parametrize(("condition", "facts", "expected"), [
    ({"tag": "vip"}, Facts(tags=frozenset({"vip"})), True),
    ({"tag": "vip"}, Facts(), False),
    ({"field": {"plan": "pro"}}, Facts(fields={"plan": "pro"}), True),
    ({"field": {"plan": "pro"}}, Facts(fields={"plan": "free"}), False),
    ({"stage": ["customer", "advocate"]}, Facts(stage="advocate"), True),
    ({"stage": "customer"}, Facts(stage="lead"), False),
    ({"score": ">= 10"}, Facts(score=10), True),
    ({"score": "> 10"}, Facts(score=10), False),
    ({"event": "purchase"}, Facts(events=(BUY,)), True),
    ({"event": "purchase", "within": "1d"}, Facts(events=(BUY,)), False),
    ({"event": "purchase", "where": {"product": "glaze-kit"}}, Facts(events=(BUY,)), True),
    ({"event": "purchase", "where": {"amount": ">= 50"}}, Facts(events=(BUY,)), False),
    ({"opened": "edu-1"}, Facts(opened=frozenset({"edu-1"})), True),
    ({"clicked": "edu-1"}, Facts(opened=frozenset({"edu-1"})), False),
    ({"not": {"event": "purchase"}}, Facts(events=(BUY,)), False),
    ({"all": [{"tag": "vip"}, {"score": ">= 5"}]}, Facts(tags=frozenset({"vip"}), score=4), False),
    ({"any": [{"tag": "vip"}, {"score": ">= 5"}]}, Facts(tags=frozenset({"vip"}), score=4), True),
])
def test_a_condition_holds_when_its_facts_say_so(condition, facts, expected) -> None:
    assert parse_condition(condition).holds(facts, NOW) is expected


@pytest.mark.parametrize(("condition", "words"), [
    ("vip", "mapping"),
    ({"tag": "vip", "stage": "lead"}, "exactly one"),
    ({"colour": "red"}, "exactly one"),
    ({"score": "lots"}, "comparison"),
    ({"tag": "vip", "within": "1d"}, "only event conditions"),
    ({"all": []}, "non-empty list"),
    ({"event": "purchase", "within": "soon"}, "bad duration"),
])
def test_a_malformed_condition_is_refused_with_a_reason(condition, words) -> None:
    with pytest.raises(ValueError, match=words):
        parse_condition(condition)


FLOW = """
id: flow
name: Flow
stage: convert-sales
goals:
  - {event: purchase}
steps:
  - {id: a, kind: educate, template: t, subject: s}
  - {id: vip-only, kind: offer, template: t, subject: s, if: {tag: vip}, goto: wait}
  - {id: regular, kind: offer, template: t, subject: s}
  - id: wait
    wait_for: {event: webinar-attended, timeout: 3d, then: thanks, else: end}
  - {id: thanks, kind: thank-you, template: t, subject: s}
"""


def flow():  # noqa: ANN201
    sequence, problems = parse_sequence(FLOW, "flow.yaml")
    assert problems == []
    return sequence


def test_a_false_condition_skips_the_step_and_goes_on_in_order() -> None:
    decision = engine.decide(flow(), "vip-only", NOW, NOW, Facts())
    assert isinstance(decision, engine.Skip) and "tag vip" in decision.reason
    assert engine.next_due(flow(), "vip-only", NOW, UTC, skipped=True).step_id == "regular"


def test_a_sent_step_with_goto_jumps() -> None:
    assert isinstance(engine.decide(flow(), "vip-only", NOW, NOW, Facts(tags=frozenset({"vip"}))), engine.Send)
    assert engine.next_due(flow(), "vip-only", NOW, UTC).step_id == "wait"


def test_a_reached_goal_finishes_the_sequence_before_anything_else() -> None:
    decision = engine.decide(flow(), "regular", NOW, NOW, Facts(events=(BUY,)))
    assert isinstance(decision, engine.Finished) and decision.reason == "goal reached: event purchase"


def test_a_wait_for_step_branches_on_whether_the_event_came() -> None:
    entered = NOW - timedelta(days=1)
    came = EventFact("webinar-attended", NOW - timedelta(hours=1))
    early = engine.decide(flow(), "wait", entered + timedelta(days=3), NOW, Facts(events=(came,)), entered)
    assert isinstance(early, engine.Branch) and early.target == "thanks"
    before = EventFact("webinar-attended", entered - timedelta(hours=1))  # before it started waiting: no
    waiting = engine.decide(flow(), "wait", entered + timedelta(days=3), NOW, Facts(events=(before,)), entered)
    assert waiting == engine.NotYet(entered + timedelta(days=3))
    timeout = engine.decide(flow(), "wait", entered + timedelta(days=3), entered + timedelta(days=3), Facts(),
                            entered)
    assert isinstance(timeout, engine.Branch) and timeout.target == "end"
    assert engine.next_due(flow(), "wait", NOW, UTC, target="end") is None


def test_entering_a_wait_for_step_makes_it_due_at_its_timeout() -> None:
    assert engine.next_due(flow(), "regular", NOW, UTC).at == NOW + timedelta(days=3)


def test_goto_then_and_else_must_name_steps() -> None:
    _, problems = parse_sequence(FLOW.replace("then: thanks", "then: thanx"), "flow.yaml")
    assert [str(p) for p in problems] == ["flow.yaml:12: step 'wait': wait_for names unknown step 'thanx'"]


def test_a_wait_for_step_cannot_also_send() -> None:
    _, problems = parse_sequence(FLOW.replace("wait_for:", "template: t\n    wait_for:"), "flow.yaml")
    assert [str(p) for p in problems] == [
        "flow.yaml:12: a wait_for step sends nothing: 'template' does not belong here"]


def test_a_bad_condition_in_a_file_is_reported_at_its_line() -> None:
    _, problems = parse_sequence(FLOW.replace("if: {tag: vip}", "if: {tga: vip}"), "flow.yaml")
    assert len(problems) == 1 and problems[0].line == 9 and "exactly one of" in problems[0].message


NY = ZoneInfo("America/New_York")
OFFICE = Window(time(9), time(17), frozenset(range(5)))


@pytest.mark.parametrize(("now_local", "expected_local"), [
    (datetime(2026, 11, 24, 10, 0), datetime(2026, 11, 24, 10, 0)),   # Tuesday morning: now
    (datetime(2026, 11, 24, 3, 0), datetime(2026, 11, 24, 9, 0)),     # at night: 09:00
    (datetime(2026, 11, 24, 17, 0), datetime(2026, 11, 25, 9, 0)),    # at closing time: next morning
    (datetime(2026, 11, 27, 18, 0), datetime(2026, 11, 30, 9, 0)),    # Friday evening: Monday
    (datetime(2026, 3, 7, 12, 0), datetime(2026, 3, 9, 9, 0)),        # a Saturday before spring-forward
])
def test_a_message_due_outside_the_send_window_waits_for_its_next_opening(now_local, expected_local) -> None:
    now = now_local.replace(tzinfo=NY).astimezone(UTC)
    assert engine.next_in_window(now, OFFICE, NY) == expected_local.replace(tzinfo=NY).astimezone(UTC)


def test_the_frequency_cap_defers_to_when_a_rolling_window_has_room() -> None:
    sends = [NOW - timedelta(hours=20), NOW - timedelta(hours=2)]
    assert engine.cap_opening(sends, NOW, per_day=2, per_week=0) == NOW + timedelta(hours=4)
    assert engine.cap_opening(sends, NOW, per_day=3, per_week=0) is None
    week = [NOW - timedelta(days=d) for d in (6, 5, 4)]
    assert engine.cap_opening(week, NOW, per_day=2, per_week=3) == NOW + timedelta(days=1)
    assert engine.cap_opening(sends, NOW, per_day=0, per_week=0) is None


RULES = Lifecycle()


@pytest.mark.parametrize(("current", "occurrences", "expected"), [
    ("lead", 0, "customer"),
    ("prospect", 0, "customer"),
    ("customer", 1, "repeat-customer"),
    ("advocate", 3, None),  # never backwards
])
def test_a_purchase_moves_a_contact_forward_only(current, occurrences, expected) -> None:
    assert stage_after_event(RULES, current, "purchase", occurrences) == expected


def test_a_score_decays_by_whole_periods_and_never_below_zero() -> None:
    scoring = Scoring(decay_points=1, decay_every=timedelta(days=7))
    assert decayed_score(10, NOW - timedelta(days=20), NOW, scoring) == 8
    assert decayed_score(1, NOW - timedelta(days=70), NOW, scoring) == 0


def test_the_lifecycle_file_reports_mistakes_at_their_lines() -> None:
    source = "stages:\n  lead: capture-leads\nevents:\n  purchase: customer\ncaps:\n  per_day: many\n"
    rules, problems = parse_lifecycle(source, "_lifecycle.yaml")
    assert [str(p) for p in problems] == [
        "_lifecycle.yaml:4: unknown contact stage 'customer' (stages: lead)",
        "_lifecycle.yaml:6: per_day is a whole number (0 for no cap)",
    ]
    assert rules == Lifecycle()  # a broken file changes nothing


def test_nurture_check_reports_lifecycle_mistakes_and_unknown_stages(tmp_path) -> None:
    import shutil
    from pathlib import Path

    from nurture.content.checker import check_tree

    repo = Path(__file__).resolve().parent / "content"  # the tests' frozen copy of the starter content
    shutil.copytree(repo / "email_templates", tmp_path / "email_templates")
    shutil.copytree(repo / "sequences", tmp_path / "sequences")
    (tmp_path / "sequences" / "_lifecycle.yaml").write_text("scoring:\n  threshold: 10\n  sequence: nope\n")
    hot = tmp_path / "sequences" / "hot-lead.yaml"
    hot.write_text(hot.read_text().replace("set_stage: prospect", "set_stage: hot"))
    problems = [str(p) for p in check_tree(tmp_path / "sequences", tmp_path / "email_templates", tmp_path).problems]
    assert "sequences/_lifecycle.yaml:1: scoring.sequence names unknown sequence 'nope'" in problems
    line = hot.read_text().splitlines().index("    set_stage: hot") + 1
    assert any(p.startswith(f"sequences/hot-lead.yaml:{line}: step 'hot-offer': unknown stage 'hot'")
               for p in problems)
