"""Experiments in steps, without fixtures: the file syntax and its problems, the assignment by hash (stable
in any process, split as weighted), the statistics against published values, and `simulate` naming the
variant."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from nurture.cli import main
from nurture.content.loader import parse_sequence
from nurture.insight.experiments import Experiment, summary
from nurture.insight.simulate import SimContact, format_timeline, simulate, timeline_json
from nurture.rules import engine, experiments
from nurture.rules.conditions import EventFact
from nurture.rules.experiment_stats import Arm, about, contacts_needed, difference, judge, more_needed, wilson
from nurture.rules.sequence import Variant
from tests.conftest import CONTENT, ROOT
from tests.experiments_support import TRIAL, trial

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


# --- the file --------------------------------------------------------------------------------------------------

def test_a_step_with_variants_and_a_holdout_is_read_into_the_model() -> None:
    sequence = trial()
    hello, offer = sequence.steps
    assert sequence.holdout == pytest.approx(0.1)
    assert hello.variants == (Variant("A", 70, "lead/edu-1", "Hello from A"), Variant("B", 30, "lead/edu-2",
                                                                                       "Hello from B"))
    assert hello.judge == "clicks" and hello.template == "" and hello.subject == ""
    assert offer.judge == "goal" and [v.weight for v in offer.variants] == [1, 1]
    assert [v.template for v in offer.variants] == ["", ""] and offer.template == "lead/offer"


def problems(text: str) -> list[str]:
    _, found = parse_sequence(textwrap.dedent(text).lstrip(), "sequences/t.yaml")
    return [str(p) for p in found]


HEAD = """
    id: t
    name: T
    stage: nurture-prospects
    {extra}
    steps:
      - id: s
        kind: educate
        template: lead/edu-1
        subject: Hi
        {step}
"""


@pytest.mark.parametrize(("extra", "step", "expected"), [
    ("holdout: 60%", "", "sequences/t.yaml:4: holdout '60%' must be a share from 0% to 50%, like 10%"),
    ("holdout: -5%", "", "sequences/t.yaml:4: holdout '-5%' must be a share from 0% to 50%, like 10%"),
    ("holdout: lots", "", "sequences/t.yaml:4: holdout 'lots' must be a share from 0% to 50%, like 10%"),
    ("holdout: 10%\n    transactional: true", "",
     "sequences/t.yaml:1: a transactional sequence cannot have a holdout: the contact asked for its message"),
    ("", "variants: [{id: a, subject: A}]",
     "sequences/t.yaml:10: variants take a list of two or more, like - {id: a, weight: 50%, subject: ...}; "
     "one variant is no experiment"),
    ("", "variants: [{id: a, weight: 60%, subject: A}, {id: b, weight: 30%, subject: B}]",
     "sequences/t.yaml:10: variant weights in % must all be percentages adding up to 100%, got 60%, 30%"),
    ("", "variants: [{id: a, weight: 0, subject: A}, {id: b, subject: B}]",
     "sequences/t.yaml:10: weight '0' must be a number above 0, like 50% or 1"),
    ("", "variants: [{id: a, weight: x, subject: A}, {id: b, subject: B}]",
     "sequences/t.yaml:10: weight 'x' must be a number above 0, like 50% or 1"),
    ("", "variants: [{id: a, subject: A}, {id: a, subject: B}]", "sequences/t.yaml:10: duplicate variant id 'a'"),
    ("", "variants: [{id: a, subject: A}, {id: b}]",
     "sequences/t.yaml:10: variant 'b' changes nothing: give it a template, a subject, or both"),
    ("", "variants: [{id: a, subject: A}, {id: b, colour: red}]",
     "sequences/t.yaml:10: unknown key 'colour' in variant (allowed: id, subject, template, weight)"),
    ("", "judge: opens", "sequences/t.yaml:10: unknown judge 'opens' (expected one of: clicks, goal)"),
    ("", "judge: clicks", "sequences/t.yaml:10: step 's': judge is for a step with variants"),
    ("", "judge: goal\n        variants: [{id: a, subject: A}, {id: b, subject: B}]",
     "sequences/t.yaml:10: step 's': judge: goal, but the sequence has no goals"),
])
def test_a_bad_experiment_is_reported_at_its_line(extra: str, step: str, expected: str) -> None:
    assert expected in problems(HEAD.format(extra=extra, step=step))


def test_a_text_steps_variants_change_its_template_and_have_no_subject() -> None:
    text = HEAD.format(extra="", step="variants: [{id: a, template: class-reminders/booked}, "
                                      "{id: b, subject: B}]").replace("subject: Hi\n", "channel: sms\n", 1)
    assert problems(text) == ["sequences/t.yaml:10: a text has no subject: 'subject' does not belong on an sms "
                              "variant"]


def test_variants_do_not_go_with_offers_or_on_a_wait_for_step() -> None:
    offers = HEAD.format(extra="", step="variants: [{id: a, subject: A}, {id: b, subject: B}]").replace(
        "template: lead/edu-1\n        subject: Hi\n",
        "offers: [{after: x, offer: y, template: lead/offer, subject: Y}]\n", 1)
    assert problems(offers) == ["sequences/t.yaml:9: a step with offers cannot have variants too: each offer is "
                                "its own message already"]
    wait = HEAD.format(extra="", step="").replace(
        "kind: educate\n        template: lead/edu-1\n        subject: Hi\n",
        "wait_for: {event: x, timeout: 1d}\n        variants: [{id: a, subject: A}, {id: b, subject: B}]\n", 1)
    assert problems(wait) == ["sequences/t.yaml:8: a wait_for step sends nothing: 'variants' does not belong here"]


def test_a_step_without_a_template_needs_every_variant_to_bring_one() -> None:
    text = HEAD.format(extra="", step="variants: [{id: a, template: lead/edu-1}, {id: b, subject: B}]")
    text = text.replace("template: lead/edu-1\n        subject: Hi\n", "subject: Hi\n", 1)
    assert "sequences/t.yaml:6: step is missing required key 'template'" in problems(text)


def test_check_reports_a_variants_unknown_template_at_the_variants_line(tmp_path: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(CONTENT / "email_templates", root / "email_templates")
    (root / "sequences").mkdir()
    (root / "sequences" / "trial.yaml").write_text(TRIAL.replace("lead/edu-2", "lead/edu-9"))
    env = {"VAR_DIR": str(tmp_path / "var"), "SECRET_KEY": "x" * 32, "API_KEY": "k" * 32}
    result = CliRunner(env=env).invoke(main, ["check", "--root", str(root)])
    assert result.exit_code == 1
    assert "sequences/trial.yaml:13: step 'hello': unknown template 'lead/edu-9' " \
           "(no email_templates/lead/edu-9.html)" in result.stdout
    (root / "sequences" / "trial.yaml").write_text(TRIAL)
    assert CliRunner(env=env).invoke(main, ["check", "--root", str(root)]).exit_code == 0


# --- assignment ------------------------------------------------------------------------------------------------

def test_twenty_thousand_contacts_split_within_two_points_of_the_weights() -> None:
    sequence = trial()
    hello = sequence.steps[0]
    split = Counter(experiments.variant_for("trial", hello, contact_id).id for contact_id in range(1, 20_001))
    assert abs(split["A"] / 20_000 - 0.7) < 0.02 and abs(split["B"] / 20_000 - 0.3) < 0.02
    held = sum(experiments.held_out(sequence, contact_id) for contact_id in range(1, 20_001))
    assert abs(held / 20_000 - 0.1) < 0.02


def test_three_variants_with_relative_weights_split_as_weighted() -> None:
    step = replace(trial().steps[0], variants=(Variant("x", 1, subject="x"), Variant("y", 2, subject="y"),
                                               Variant("z", 1, subject="z")))
    split = Counter(experiments.variant_for("s", step, n).id for n in range(20_000))
    assert [round(split[v] / 20_000, 2) for v in "xyz"] == pytest.approx([0.25, 0.5, 0.25], abs=0.02)


ASSIGN = """
import json, sys
from nurture.rules import experiments
from tests.experiments_support import trial
s = trial()
print(json.dumps([[experiments.variant_for(s.id, step, n).id for step in s.steps] + [experiments.held_out(s, n)]
                  for n in range(1, 1001)]))
"""


def test_the_assignment_is_the_same_in_other_processes_whatever_their_hash_seed() -> None:
    """Python's own hash() of a string changes with PYTHONHASHSEED; the assignment must not."""
    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", ASSIGN], env=env, cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
        runs.append(json.loads(out))
    sequence = trial()
    here = [[experiments.variant_for("trial", step, n).id for step in sequence.steps]
            + [experiments.held_out(sequence, n)] for n in range(1, 1001)]
    assert runs[0] == runs[1] == here
    assert {row[0] for row in here} == {"A", "B"} and {row[1] for row in here} == {"plain", "urgent"}


def test_the_hash_is_sha256_of_the_ids_so_it_can_be_checked_by_hand() -> None:
    import hashlib

    digest = hashlib.sha256(b"trial\x1fhello\x1f42").digest()
    assert experiments.unit("trial", "hello", 42) == int.from_bytes(digest[:8], "big") / 2**64
    variants = trial().steps[0].variants
    assert experiments.pick(variants, 0.0).id == "A" and experiments.pick(variants, 0.6999).id == "A"
    assert experiments.pick(variants, 0.7).id == "B" and experiments.pick(variants, 0.99999).id == "B"


def test_the_engine_sends_the_contacts_variant_and_holds_out_the_holdout() -> None:
    sequence = trial()
    held = next(n for n in range(1, 1000) if experiments.held_out(sequence, n))
    sent = next(n for n in range(1, 1000) if not experiments.held_out(sequence, n)
                and experiments.variant_for("trial", sequence.steps[0], n).id == "B")
    decision = engine.decide(sequence, "hello", START, START, contact_id=sent)
    assert isinstance(decision, engine.Send)
    assert (decision.step.variant, decision.step.template, decision.step.subject) == ("B", "lead/edu-2",
                                                                                       "Hello from B")
    skip = engine.decide(sequence, "hello", START, START, contact_id=held)
    assert isinstance(skip, engine.Skip) and skip.held_out
    assert skip.reason == "held out (the sequence's 10% holdout gets nothing; its goals still count)"


# --- statistics ------------------------------------------------------------------------------------------------

def test_wilson_intervals_match_newcombes_published_values() -> None:
    """Newcombe (1998), Statistics in Medicine 17:857, table II, method 3 (Wilson score)."""
    for (k, n), (low, high) in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605),
                                (0, 20): (0.0, 0.1611), (1, 29): (0.0061, 0.1718)}.items():
        interval = wilson(k, n)
        assert (round(interval.low, 4), round(interval.high, 4)) == (low, high)


def test_the_difference_interval_matches_newcombes_method_ten() -> None:
    """Newcombe (1998), Statistics in Medicine 17:873, table II: 56/70 - 48/80 -> 0.0524 to 0.3339."""
    interval = difference(56, 70, 48, 80)
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.0524, 0.3339)
    assert (round(difference(9, 10, 3, 10).low, 4), round(difference(9, 10, 3, 10).high, 4)) == (0.1705, 0.8090)


def test_the_sample_size_is_the_normal_approximation_for_two_proportions() -> None:
    """10% against 12% in two equal arms, alpha 5% two-sided, power 80%: by hand,
    (1.959964 + 0.841621)^2 * (0.1*0.9 + 0.12*0.88) / 0.02^2 = 3,838.1 per arm."""
    assert contacts_needed(0.1, 0.5, 0.5) / 2 == pytest.approx(3838.1, abs=0.1)
    # Unequal arms (a 10% holdout) need more in all: 1/0.1 + 1/0.9 instead of 1/0.5 + 1/0.5.
    assert contacts_needed(0.1, 0.1, 0.9) > contacts_needed(0.1, 0.5, 0.5) * 2.5


def test_too_few_contacts_say_not_enough_data_and_how_many_more() -> None:
    arms = [Arm("A", 50, 100, 10), Arm("B", 50, 100, 15)]
    verdict = judge(arms)
    baseline = 26 / 202  # (25 clicks + 1) / (200 contacts + 2)
    expected = round(contacts_needed(baseline, 0.5, 0.5) + 0.5) - 200
    assert verdict.more_needed == pytest.approx(expected, abs=1) and not verdict.comparisons
    text = summary(Experiment("hello", "clicks", tuple(arms), verdict))
    assert text == f"not enough data yet — about {about(verdict.more_needed):,} more contacts needed"
    assert about(5_551) == 5_600 and about(87) == 87 and about(123_456) == 130_000


def test_enough_contacts_say_which_variant_is_ahead_or_that_there_is_no_clear_difference() -> None:
    ahead = [Arm("A", 50, 5000, 500), Arm("B", 50, 5000, 600)]
    assert more_needed(ahead) == 0
    text = summary(Experiment("hello", "clicks", tuple(ahead), judge(ahead)))
    assert text.startswith("B is ahead: 12.0% vs 10.0%, B − A = +2.0 points (95% CI +0.8 to +3.2)")
    level = [Arm("A", 50, 5000, 500), Arm("B", 50, 5000, 510)]
    text = summary(Experiment("hello", "clicks", tuple(level), judge(level)))
    assert text.startswith("no clear difference between A and B: B − A = +0.2 points (95% CI −1.0 to +1.4)")


def test_the_holdout_lift_is_the_goal_rate_sent_minus_held_out() -> None:
    arms = [Arm("holdout", 0.1, 4000, 200), Arm("sent", 0.9, 36000, 2880)]
    found = Experiment(None, "goal", tuple(arms), judge(arms))
    assert found.title == "holdout 10%: goal reached, sent vs held out"
    assert summary(found).startswith("the sequence lifts the goal rate by +3.0 points (95% CI +2.2 to +3.7): "
                                     "8.0% vs 5.0%")


# --- simulate ----------------------------------------------------------------------------------------------------

def test_simulate_names_the_variant_a_contact_gets_and_says_held_out() -> None:
    sequence = trial()
    b = next(n for n in range(1, 1000) if not experiments.held_out(sequence, n)
             and experiments.variant_for("trial", sequence.steps[0], n).id == "B")
    held = next(n for n in range(1, 1000) if experiments.held_out(sequence, n))
    lines = format_timeline(simulate(sequence, SimContact(id=b), START))
    assert lines[0].endswith(f"; as contact id {b}")
    assert lines[1].endswith("hello  sent      educate lead/edu-2, variant B")
    offer = experiments.variant_for("trial", sequence.steps[1], b).id
    assert lines[2].endswith(f"offer  sent      offer lead/offer, variant {offer}")
    out = format_timeline(simulate(sequence, SimContact(id=held), START, [EventFact("purchase",
                                                                                    START.replace(day=24))]))
    assert out[0].endswith(f"; as contact id {held}, held out")
    assert "skipped   held out (the sequence's 10% holdout gets nothing; its goals still count)" in out[1]
    assert "purchase reached; the sequence ends" in out[-1]
    entries = timeline_json(simulate(sequence, SimContact(id=b), START))["entries"]
    assert entries[0]["variant"] == "B"


def test_simulate_without_an_id_says_variants_go_by_contact_id() -> None:
    lines = format_timeline(simulate(trial(), SimContact(), START))
    assert lines[0].endswith("; variants and holdout go by contact id: none given (id=N), so the first variant, "
                             "not held out")
    assert lines[1].endswith("educate lead/edu-1, variant A")


def test_a_held_out_contact_walks_the_path_the_others_take_so_its_goals_are_measured_alike() -> None:
    """A skipped step goes on in order, but a held-out one goes on as if sent: by its goto."""
    text = TRIAL.replace("  - id: offer\n", "    goto: offer\n  - id: side\n    kind: educate\n"
                         "    template: lead/edu-3\n    subject: Side\n  - id: offer\n")
    sequence, found = parse_sequence(text, "sequences/trial.yaml")
    assert found == [] and sequence is not None and sequence.steps[0].goto == "offer"
    held = next(n for n in range(1, 1000) if experiments.held_out(sequence, n))
    sent = next(n for n in range(1, 1000) if not experiments.held_out(sequence, n))
    steps = [[e.step for e in simulate(sequence, SimContact(id=n), START).entries if e.step] for n in (held, sent)]
    assert steps[0] == steps[1] == ["hello", "offer"]
