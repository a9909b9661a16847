"""A sequence's experiments, judged: per step with variants, each variant's rate (people's clicks, or the
sequence's goal) with its 95% interval, and either "not enough data yet — about N more contacts needed" or
which variant is ahead; for a sequence with a holdout, the goal rate of those it was sent to against those
held out, and the lift. The records come from nurture.store.experiments, the arithmetic from
nurture.rules.experiment_stats (which says which methods, and why). `nurture stats` prints this; the
console shows it under the sequence's funnel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from nurture.rules import experiments
from nurture.rules.experiment_stats import ALPHA, Arm, Comparison, Interval, Verdict, about, judge
from nurture.rules.experiments import share_text
from nurture.rules.sequence import Sequence, Step
from nurture.store import experiments as store

TREATED = "sent"  # the holdout's other arm: the contacts the sequence was sent to


@dataclass(frozen=True)
class Experiment:
    """One step's variants (`step` is the step id) or, with `step` None, the sequence's holdout."""

    step: str | None
    judge: str  # clicks | goal
    arms: tuple[Arm, ...]
    verdict: Verdict

    @property
    def title(self) -> str:
        if self.step is None:
            return f"holdout {share_text(self.arms[0].weight)}: goal reached, sent vs held out"
        return f"step {self.step}: {len(self.arms)} variants, judged on {self.judge}"

    @property
    def summary(self) -> str:
        return summary(self)


def results(session: Session, sequence: Sequence, since: datetime) -> tuple[Experiment, ...]:
    """Every experiment of `sequence`, measured on what was sent (entered) since `since`."""
    found = [_step_experiment(session, sequence, step, since) for step in sequence.steps if step.variants]
    if sequence.holdout > 0:
        found.append(_holdout(session, sequence, since))
    return tuple(found)


def _step_experiment(session: Session, sequence: Sequence, step: Step, since: datetime) -> Experiment:
    counts = store.variant_counts(session, sequence.id, step.id, since, experiments.goal_events(sequence))
    metric = "clicked" if step.judge == "clicks" else "goal"
    arms = tuple(Arm(v.id, v.weight, counts.get(v.id, {}).get("sent", 0), counts.get(v.id, {}).get(metric, 0))
                 for v in step.variants)
    return Experiment(step.id, step.judge, arms, judge(list(arms)))


def _holdout(session: Session, sequence: Sequence, since: datetime) -> Experiment:
    """Held out (the control) against sent to, on the goal. Who is held out is the worker's own function of
    the sequence and the contact (rules.experiments.held_out), so it is worked out again here."""
    tally = {True: [0, 0], False: [0, 0]}  # held out? -> [entries, goals reached]
    for contact_id, reached in store.entries(session, sequence.id, since, experiments.goal_events(sequence)):
        counts = tally[experiments.held_out(sequence, contact_id)]
        counts[0] += 1
        counts[1] += reached
    arms = (Arm(experiments.HOLDOUT, sequence.holdout, *tally[True]),
            Arm(TREATED, 1 - sequence.holdout, *tally[False]))
    return Experiment(None, "goal", arms, judge(list(arms)))


# --- Saying it -------------------------------------------------------------------------------------------------

def pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def points(value: float) -> str:
    """A difference of rates in percentage points, with its sign: +3.9, -0.4 (a true minus sign)."""
    return f"{value * 100:+.1f}".replace("-", "−")


def span(interval: Interval) -> str:
    return f"{points(interval.low)} to {points(interval.high)}"


def confidence(verdict: Verdict) -> str:
    """95%, or the Bonferroni-corrected level when several arms are compared with the first."""
    level = 1 - ALPHA / max(1, len(verdict.comparisons))
    return f"{round(level * 100, 1):g}%"


def summary(experiment: Experiment) -> str:
    """The plain sentence: not enough data yet (and how many more contacts), or what the data says."""
    verdict = experiment.verdict
    if not any(arm.n for arm in experiment.arms):  # no rate to start from: any figure would be made up
        return "not enough data yet — nothing sent yet"
    if not verdict.ready:
        return f"not enough data yet — about {about(verdict.more_needed):,} more contacts needed"
    if experiment.step is None:
        return _lift(verdict.comparisons[0], confidence(verdict))
    return "; ".join(_compare(c, confidence(verdict)) for c in verdict.comparisons)


def _compare(c: Comparison, level: str) -> str:
    figures = f"{c.arm.id} − {c.control.id} = {points(c.difference)} points ({level} CI {span(c.interval)})"
    if not c.clear:
        return f"no clear difference between {c.control.id} and {c.arm.id}: {figures}"
    ahead, behind = (c.arm, c.control) if c.difference > 0 else (c.control, c.arm)
    return f"{ahead.id} is ahead: {pct(ahead.rate)} vs {pct(behind.rate)}, {figures}"


def _lift(c: Comparison, level: str) -> str:
    figures = f"{points(c.difference)} points ({level} CI {span(c.interval)})"
    if not c.clear:
        return f"no clear lift: the goal rate sent vs held out differs by {figures}"
    if c.difference > 0:
        return f"the sequence lifts the goal rate by {figures}: {pct(c.arm.rate)} vs {pct(c.control.rate)}"
    return f"the holdout does better: {figures}: {pct(c.arm.rate)} sent vs {pct(c.control.rate)} held out"


def arm_line(arm: Arm, judged: str) -> str:
    what = "clicked" if judged == "clicks" else "reached the goal"
    low, high = arm.interval.low, arm.interval.high
    rate = f"{pct(arm.rate):>6}  (95% CI {pct(low)}–{pct(high)})" if arm.n else "     –  (no contacts yet)"
    return f"{arm.id:<10}{share_text(arm.weight):>7}  {arm.n:>7,} contacts  {arm.k:>6,} {what}  {rate}"


def format_results(found: tuple[Experiment, ...]) -> list[str]:
    lines: list[str] = []
    for experiment in found:
        lines.append(experiment.title)
        lines += [f"  {arm_line(arm, experiment.judge)}" for arm in arm_shares(experiment)]
        lines.append(f"  {experiment.summary}")
    return lines


def arm_shares(experiment: Experiment) -> tuple[Arm, ...]:
    """The arms with their weight as a share of 1 (the file may say 50% or 1:1)."""
    total = sum(arm.weight for arm in experiment.arms)
    return tuple(Arm(a.id, a.weight / total, a.n, a.k) for a in experiment.arms)


def scale_of(arms: tuple[Arm, ...]) -> float:
    """The rate at the right end of the intervals drawn for these arms: the highest upper bound of an arm
    with contacts (at least 1%, so that a 0% rate still has a scale)."""
    return max([arm.interval.high for arm in arms if arm.n] + [0.01])


def results_json(found: tuple[Experiment, ...]) -> list[dict]:
    return [{
        "step": experiment.step, "judge": experiment.judge, "summary": experiment.summary,
        "more_needed": experiment.verdict.more_needed,
        "arms": [{"id": a.id, "share": a.weight, "contacts": a.n, "successes": a.k, "rate": a.rate,
                  "ci95": [a.interval.low, a.interval.high]} for a in arm_shares(experiment)],
        "comparisons": [{"arm": c.arm.id, "against": c.control.id, "difference": c.difference,
                         "ci": [c.interval.low, c.interval.high], "clear": c.clear}
                        for c in experiment.verdict.comparisons],
    } for experiment in found]
