"""The lifecycle map's pure rules: which steps a path reaches, what puts contacts into a sequence, and the
gaps — handed sequences and counts, no database."""

from __future__ import annotations

from datetime import UTC, datetime

from nurture.config import load_settings
from nurture.content.checker import TemplateCheck
from nurture.content.forms import FormRegistry
from nurture.content.registry import SequenceRegistry
from nurture.insight.lifecycle_map import Counts, build_map, moved_on_from, reachable_steps
from nurture.insight.map_svg import render_svg, text_width, wrap
from nurture.rules.conditions import parse_condition
from nurture.rules.durations import Delay
from nurture.rules.lifecycle import Lifecycle
from nurture.rules.sequence import LIFECYCLE_STAGES, Sequence, Step, Trigger, WaitFor
from tests.conftest import ROOT

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def sequence(seq_id: str, stage: str, *body: Step, **extra: object) -> Sequence:
    return Sequence(id=seq_id, name=seq_id.title(), stage=stage, steps=body, **extra)  # type: ignore[arg-type]


def starter() -> tuple[list[Sequence], Lifecycle, list]:
    settings = load_settings({"SECRET_KEY": "x" * 32, "API_KEY": "k" * 32}, root=ROOT)
    registry = SequenceRegistry(ROOT / "sequences", TemplateCheck.for_settings(settings))
    registry.refresh()
    return registry.all(), registry.lifecycle, FormRegistry(ROOT / "forms").all()


def test_a_step_jumped_over_by_a_goto_is_unreachable() -> None:
    seq = sequence("s", "nurture-prospects", Step("a", goto="c"), Step("b"), Step("c"))
    assert reachable_steps(seq) == {"a", "c"}


def test_a_step_after_a_conditional_goto_is_reached_when_the_condition_is_false() -> None:
    condition = parse_condition({"tag": "vip"})
    seq = sequence("s", "nurture-prospects", Step("a", goto="c", condition=condition), Step("b"), Step("c"))
    assert reachable_steps(seq) == {"a", "b", "c"}


def test_a_wait_for_reaches_its_branches_and_not_the_step_both_skip() -> None:
    wait = WaitFor("purchase", Delay(days=3), then="end", otherwise="d")
    seq = sequence("s", "convert-sales", Step("a"), Step("w", wait_for=wait), Step("c"), Step("d"))
    assert reachable_steps(seq) == {"a", "w", "d"}
    plain = WaitFor("purchase", Delay(days=3))  # no branches: the next step in order either way
    assert reachable_steps(sequence("s", "convert-sales", Step("w", wait_for=plain), Step("c"))) == {"w", "c"}


def test_the_starter_files_have_one_gap_the_stage_nothing_serves() -> None:
    sequences, lifecycle, forms = starter()
    lifecycle_map = build_map(sequences, lifecycle, forms, Counts(), NOW)
    assert [stage.stage for stage in lifecycle_map.stages] == list(LIFECYCLE_STAGES)
    assert [(gap.kind, gap.stage) for gap in lifecycle_map.gaps] == [("no-sequence", "attract-traffic")]
    ways = {s.id: s.ways_in for stage in lifecycle_map.stages for s in stage.sequences}
    assert ways["lead-nurture"] == ("form beginners-guide",)
    assert ways["confirm-email"] == ("sign-up on form beginners-guide",)
    assert ways["hot-lead"] == ("score over 10",)
    assert ways["customer"] == ("event purchase",) and ways["win-back"] == ("no activity for 90d",)


def test_a_sequence_nothing_puts_anyone_into_is_a_gap_and_so_is_a_stage_trigger_nothing_reaches() -> None:
    _, lifecycle, forms = starter()
    orphan = sequence("orphan", "upsell-customers", Step("x"))
    unreached = sequence("vip-stage", "upsell-customers", Step("y"),
                         triggers=(Trigger("stage", "vip"),))
    lifecycle_map = build_map([orphan, unreached], lifecycle, forms, Counts(), NOW)
    no_way_in = [gap.sequence for gap in lifecycle_map.gaps if gap.kind == "no-way-in"]
    assert no_way_in == ["orphan", "vip-stage"]


def test_counts_keep_a_contacts_stage_apart_from_the_sequences_it_is_in() -> None:
    """The old overview showed 2 leads in Lead nurture under capture-leads and 0 for Lead nurture."""
    sequences, lifecycle, forms = starter()
    counts = Counts(by_contact_stage={"lead": 2}, waiting={("lead-nurture", "edu-2"): 2},
                    in_sequence={"lead-nurture": 2}, in_stage_sequences={"nurture-prospects": 2})
    stages = {s.stage: s for s in build_map(sequences, lifecycle, forms, counts, NOW).stages}
    assert stages["capture-leads"].at_stage == 2 and stages["capture-leads"].in_sequences == 0
    assert stages["nurture-prospects"].at_stage == 0 and stages["nurture-prospects"].in_sequences == 2
    [lead_nurture] = stages["nurture-prospects"].sequences
    assert lead_nurture.in_sequence == 2
    assert {s.id: s.waiting for s in lead_nurture.steps} == {"edu-1": 0, "edu-2": 2, "edu-3": 0, "offer": 0}


def test_moving_on_counts_only_moves_that_leave_a_lifecycle_stage() -> None:
    lifecycle = Lifecycle(stages={"lead": "capture-leads", "warm-lead": "capture-leads", "customer": "deliver-satisfy"})
    moved = {("lead", "warm-lead"): 4, ("lead", "customer"): 2, ("warm-lead", "customer"): 1, ("ghost", "lead"): 9}
    assert moved_on_from(lifecycle, moved) == {"capture-leads": 3}


def test_parked_and_unreachable_steps_are_gaps_and_are_drawn() -> None:
    seq = sequence("s", "nurture-prospects", Step("a", goto="end"), Step("lost"))
    counts = Counts(waiting={("s", "a"): 3, ("s", "old-step"): 1}, parked={("s", "a"): 2})
    lifecycle_map = build_map([seq], Lifecycle(), [], counts, NOW)
    assert [(gap.kind, gap.step) for gap in lifecycle_map.gaps if gap.stage == "nurture-prospects"] == [
        ("no-way-in", None), ("parked", "a"), ("unreachable", "lost")]
    [view] = [s for stage in lifecycle_map.stages for s in stage.sequences]
    assert view.on_retired_steps == 1
    svg = render_svg(lifecycle_map, "Studio <&> Co")
    assert svg.startswith("<svg ") and "Studio &lt;&amp;&gt; Co" in svg
    assert "2 parked" in svg and "no path reaches it" in svg and "1 on steps of an older" in svg
    assert "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing to fetch


def test_long_words_are_wrapped_and_cut_to_fit_a_column() -> None:
    assert wrap("Nurture prospects", 80, 13, bold=True) == ["Nurture", "prospects"]
    cut = wrap("a-very-long-sequence-name-without-spaces", 80, 12)
    assert len(cut) == 1 and cut[0].endswith("…") and text_width(cut[0], 12) <= 80


def test_the_map_of_the_starter_files_draws_every_stage() -> None:
    sequences, lifecycle, forms = starter()
    svg = render_svg(build_map(sequences, lifecycle, forms, Counts(), NOW), "Juniper Pottery Studio")
    for title in ("Attract", "Capture", "Nurture", "Convert", "Deliver", "Upsell", "Get"):
        assert f">{title}" in svg
    assert svg.count(">GAP<") == 1
