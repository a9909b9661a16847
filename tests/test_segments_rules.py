"""The pure side of segments, without fixtures: the new conditions, numbers written as text, what a
segment depends on, circles, and the condition in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nurture.rules import decisions
from nurture.rules.conditions import EventFact, Facts, in_words, parse_comparison, parse_condition
from nurture.rules.lifecycle import Scoring
from nurture.rules.segments import Segment, SegmentError, closure, cycles, holds, resolve

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def seg(segment_id: str, condition: dict) -> Segment:
    return Segment(segment_id, segment_id, parse_condition(condition))


def test_a_number_written_as_digits_compares_and_other_texts_do_not() -> None:
    at_least_nine = parse_comparison(">= 9")
    assert [at_least_nine.holds(v) for v in (9, 9.5, "9", "10.25", True, None)] == [True, True, True, True, False,
                                                                                    False]
    assert [at_least_nine.holds(v) for v in ("1e3", " 9", "9.", "nine", "", "٩")] == [False] * 6


def test_a_field_is_compared_with_a_scalar_only() -> None:
    with pytest.raises(ValueError, match="compared with a text, a number"):
        parse_condition({"field": {"plan": ["a", "b"]}})
    with pytest.raises(ValueError, match="without quotes"):
        parse_condition({"field": {'pl"an': "x"}})
    assert parse_condition({"field": {"vip": True}}).holds(Facts(fields={"vip": 1}), NOW)  # Python's ==


def test_engaged_counts_people_and_inactive_needs_the_contact_known_that_long() -> None:
    opened = EventFact("email.opened", NOW - timedelta(days=3))
    scanner = EventFact("email.clicked", NOW - timedelta(days=1), {"bot": True})
    who = decisions.ContactFacts(created_at=NOW - timedelta(days=200))
    facts = decisions.segment_facts(who, [scanner], Scoring(), NOW)
    assert not parse_condition({"engaged": "7d"}).holds(facts, NOW)  # a scanner is not a person
    assert parse_condition({"inactive": "90d"}).holds(facts, NOW)
    assert parse_condition({"engaged": "7d"}).holds(decisions.segment_facts(who, [opened], Scoring(), NOW), NOW)
    newcomer = decisions.segment_facts(decisions.ContactFacts(created_at=NOW - timedelta(days=5)), [], Scoring(), NOW)
    assert not parse_condition({"inactive": "90d"}).holds(newcomer, NOW)
    with pytest.raises(ValueError, match="longer than zero"):
        parse_condition({"engaged": "0d"})


def test_consent_means_subscribed_on_that_channel() -> None:
    facts = Facts(subscribed=decisions.ContactFacts.channels("subscribed", "unsubscribed"))
    assert parse_condition({"consent": "email"}).holds(facts, NOW)
    assert not parse_condition({"consent": "sms"}).holds(facts, NOW)
    with pytest.raises(ValueError, match="one of email, sms"):
        parse_condition({"consent": "fax"})


def test_a_segment_is_judged_after_those_it_names() -> None:
    segments = resolve({"vips": seg("vips", {"tag": "vip"}),
                        "vip-leads": seg("vip-leads", {"all": [{"segment": "vips"}, {"stage": "lead"}]}),
                        "others": seg("others", {"not": {"segment": "vip-leads"}})})
    assert closure("others", segments) == ["vips", "vip-leads", "others"]
    assert set(segments["others"].needs) == {"vips", "vip-leads"}
    vip = Facts(tags=frozenset({"vip"}))
    assert holds(segments["vip-leads"], vip, NOW) and not holds(segments["others"], vip, NOW)
    assert holds(segments["others"], Facts(), NOW)


def test_circles_and_unknown_names_are_found() -> None:
    segments = {"a": seg("a", {"segment": "b"}), "b": seg("b", {"any": [{"segment": "a"}, {"tag": "x"}]}),
                "c": seg("c", {"segment": "nope"}), "d": seg("d", {"tag": "y"})}
    assert cycles(segments) == [("a", "segments refer to each other in a circle: a -> b -> a"),
                                ("b", "segments refer to each other in a circle: b -> a -> b"),
                                ("c", "unknown segment 'nope' (named by 'c')")]
    with pytest.raises(SegmentError):
        resolve(segments)


def test_the_condition_in_words() -> None:
    condition = parse_condition({"all": [{"stage": ["prospect", "lead"]}, {"engaged": "30d"},
                                         {"any": [{"score": ">= 10"}, {"event": "purchase", "within": "90d",
                                                                       "where": {"amount": "> 50"}}]},
                                         {"not": {"field": {"plan": None}}}]})
    assert in_words(condition) == (
        "at stage lead or prospect and opened or clicked an email in the last 30 days and (lead score at least "
        "10 or had a purchase event in the last 90 days, amount more than 50) and not (field plan is empty)")
