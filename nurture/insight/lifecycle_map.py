"""The lifecycle map: the seven stages, how many contacts are where, the sequences serving each, and the gaps.

Pure: handed the sequences, the lifecycle rules, the forms, the counts the store measured and `now`; no
database, no clock. The store's queries are in nurture.store.console; the picture is drawn by
nurture.insight.map_svg.

Two counts are kept apart on purpose, because mixing them is how the old overview misled: a contact's
*stage* (lead, customer … mapped to a lifecycle stage by `_lifecycle.yaml`) and the *sequences* it is in
(each serving the lifecycle stage its file names). A lead in Lead nurture is counted once at
capture-leads ("at this stage") and once in Lead nurture, under nurture-prospects ("in its sequences").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from nurture.rules.durations import Delay
from nurture.rules.engine import END
from nurture.rules.lifecycle import Lifecycle
from nurture.rules.sequence import LIFECYCLE_STAGES, Sequence, Step

if TYPE_CHECKING:
    from nurture.content.forms import Form

MOVED_ON_DAYS = 30
PARKED_GRACE = timedelta(days=1)  # a contact still in a step a day after its wait ran out is parked
NEW_CONTACT_STAGE = "lead"  # nurture.store.models.Contact.stage's default: where every contact starts

StepKey = tuple[str, str]  # (sequence id, step id)


@dataclass(frozen=True)
class Counts:
    """What the store measured (nurture.store.console.measure)."""

    by_contact_stage: Mapping[str, int] = field(default_factory=dict)  # contact stage -> contacts
    moved: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (from, to) contact stage -> contacts
    waiting: Mapping[StepKey, int] = field(default_factory=dict)  # active enrollments at each step
    parked: Mapping[StepKey, int] = field(default_factory=dict)  # of those, due before parked_since(now)
    in_sequence: Mapping[str, int] = field(default_factory=dict)  # sequence -> contacts actively in it
    in_stage_sequences: Mapping[str, int] = field(default_factory=dict)  # lifecycle stage -> distinct contacts


@dataclass(frozen=True)
class StepView:
    id: str
    wait: str  # "2d at 10:00", "waits for rating, up to 7d"
    waiting: int
    parked: int
    reachable: bool


@dataclass(frozen=True)
class SequenceView:
    id: str
    name: str
    ways_in: tuple[str, ...]
    in_sequence: int
    steps: tuple[StepView, ...]
    on_retired_steps: int  # active on a step id the current file no longer has (an older version's)


@dataclass(frozen=True)
class StageView:
    stage: str
    contact_stages: tuple[str, ...]
    at_stage: int
    moved_on: int
    in_sequences: int
    sequences: tuple[SequenceView, ...]


@dataclass(frozen=True)
class Gap:
    """kind: no-sequence | no-way-in | unreachable | parked."""

    kind: str
    stage: str
    text: str
    sequence: str | None = None
    step: str | None = None


@dataclass(frozen=True)
class LifecycleMap:
    stages: tuple[StageView, ...]
    gaps: tuple[Gap, ...]
    contacts: int
    unmapped: Mapping[str, int]  # contact stages the lifecycle rules do not name -> contacts
    at: datetime


def parked_since(now: datetime) -> datetime:
    """A contact whose step fell due before this is parked: it has been in the step longer than the step's
    wait plus a day. The wait is the one the engine worked out (`due_at`: the delay, then `at:`, the send
    window, quiet hours and any deferral), not re-derived here, so a Friday step that waits for Monday's
    10:00 is not taken for stuck."""
    return now - PARKED_GRACE


def reachable_steps(sequence: Sequence) -> set[str]:
    """The step ids some path from the first step reaches: next in order, a `goto`, the skip past a
    step whose condition is false, a wait-for's `then` and `else`."""
    if not sequence.steps:
        return set()
    seen: set[str] = set()
    todo = [sequence.steps[0]]
    while todo:
        step = todo.pop()
        if step.id in seen:
            continue
        seen.add(step.id)
        todo.extend(s for s in successors(sequence, step) if s.id not in seen)
    return seen


def successors(sequence: Sequence, step: Step) -> list[Step]:
    if step.wait_for is not None:
        targets = [step.wait_for.then, step.wait_for.otherwise]
        found = [sequence.step_after(step.id) if t is None else None if t == END else sequence.step(t)
                 for t in targets]
        return [s for s in found if s is not None]
    found = [sequence.following(step)]
    if step.condition is not None:
        found.append(sequence.step_after(step.id))  # the condition false: skipped, on to the next in order
    return [s for s in found if s is not None]


def ways_in(sequence: Sequence, lifecycle: Lifecycle, forms: Iterable[Form], stages_reached: set[str]) -> list[str]:
    """What can put a contact into `sequence` without someone doing it by hand (API, CLI)."""
    found = []
    for trigger in sequence.triggers:
        if trigger.kind == "stage" and trigger.value not in stages_reached:
            continue  # a stage nothing moves contacts into starts nothing
        found.append(f"no activity for {trigger.value}" if trigger.kind == "inactive"
                     else f"{trigger.kind} {trigger.value}")
    for form in forms:
        if form.sequence == sequence.id:
            found.append(f"form {form.id}")
        if form.double_opt_in and form.confirm_sequence == sequence.id:
            found.append(f"sign-up on form {form.id}")
    scoring = lifecycle.scoring
    if scoring.sequence == sequence.id and scoring.threshold is not None:
        found.append(f"score over {scoring.threshold:g}")
    return found


def stages_reached(lifecycle: Lifecycle, sequences: Iterable[Sequence]) -> set[str]:
    """Contact stages anything moves contacts into: the starting stage, lifecycle events, `set_stage`."""
    reached = {NEW_CONTACT_STAGE}
    for targets in lifecycle.events.values():
        reached.update(targets)
    reached.update(step.set_stage for s in sequences for step in s.steps if step.set_stage)
    return reached


def wait_text(step: Step) -> str:
    if step.wait_for is not None:
        return f"waits for {step.wait_for.event}, up to {step.wait_for.timeout}"
    after = "" if step.wait.delay == Delay() else f"after {step.wait.delay}"
    at = f"at {step.wait.at:%H:%M}" if step.wait.at else ""
    return " ".join(part for part in (after, at) if part) or "right away"


def sequence_view(sequence: Sequence, counts: Counts, entries: list[str]) -> SequenceView:
    reached = reachable_steps(sequence)
    steps = tuple(StepView(step.id, wait_text(step), counts.waiting.get((sequence.id, step.id), 0),
                           counts.parked.get((sequence.id, step.id), 0), step.id in reached)
                  for step in sequence.steps)
    retired = sum(n for (seq, step), n in counts.waiting.items() if seq == sequence.id and sequence.step(step) is None)
    return SequenceView(sequence.id, sequence.name, tuple(entries), counts.in_sequence.get(sequence.id, 0), steps,
                        retired)


def moved_on_from(lifecycle: Lifecycle, moved: Mapping[tuple[str, str], int]) -> dict[str, int]:
    """Per lifecycle stage, the contacts whose stage left it (a move inside one lifecycle stage is not one)."""
    out: dict[str, int] = {}
    for (before, after), n in moved.items():
        origin = lifecycle.stages.get(before)
        if origin is not None and origin != lifecycle.stages.get(after):
            out[origin] = out.get(origin, 0) + n
    return out


def build_map(sequences: list[Sequence], lifecycle: Lifecycle, forms: list[Form], counts: Counts,
              now: datetime) -> LifecycleMap:
    reached = stages_reached(lifecycle, sequences)
    moved_on = moved_on_from(lifecycle, counts.moved)
    stages, gaps = [], []
    for stage in LIFECYCLE_STAGES:
        contact_stages = tuple(name for name, mapped in lifecycle.stages.items() if mapped == stage)
        views = tuple(sequence_view(s, counts, ways_in(s, lifecycle, forms, reached))
                      for s in sequences if s.stage == stage)
        stages.append(StageView(stage, contact_stages, sum(counts.by_contact_stage.get(n, 0) for n in contact_stages),
                                moved_on.get(stage, 0), counts.in_stage_sequences.get(stage, 0), views))
        gaps.extend(stage_gaps(stage, views))
    unmapped = {name: n for name, n in counts.by_contact_stage.items() if name not in lifecycle.stages and n}
    return LifecycleMap(tuple(stages), tuple(gaps), sum(counts.by_contact_stage.values()), unmapped, now)


def stage_gaps(stage: str, views: tuple[SequenceView, ...]) -> list[Gap]:
    if not views:
        return [Gap("no-sequence", stage, f"{stage}: no sequence serves this stage")]
    gaps = []
    for view in views:
        if not view.ways_in:
            gaps.append(Gap("no-way-in", stage, f"{view.name}: no trigger, form or event puts anyone in it",
                            view.id))
        for step in view.steps:
            if not step.reachable:
                gaps.append(Gap("unreachable", stage, f"{view.name} / {step.id}: no path reaches this step",
                                view.id, step.id))
            if step.parked:
                gaps.append(Gap("parked", stage, f"{view.name} / {step.id}: {step.parked} contact(s) parked "
                                f"longer than its wait plus a day", view.id, step.id))
    return gaps
