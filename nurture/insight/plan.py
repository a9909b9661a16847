"""`nurture plan`: before an edit takes effect, what it will do to contacts already on their way.

Compares each sequence file on disk with the version running (as recorded in the database by the ticking
process) and applies the same rule the worker will apply (engine.relocate) to every contact in flight. A
file the worker would refuse (`nurture check` finds a problem in it or in the templates it uses) is shown
with its problems and the version that stays.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session

from nurture.content.checker import TemplateCheck, check_sequence_file, shown_path
from nurture.content.lifecycle_file import LIFECYCLE_FILE, parse_lifecycle
from nurture.content.loader import Problem, parse_sequence, sequence_files
from nurture.delivery import versions
from nurture.rules import engine
from nurture.rules.lifecycle import Lifecycle
from nurture.rules.sequence import Sequence, Step
from nurture.store import versions as stored


@dataclass
class SequencePlan:
    sequence_id: str
    path: str
    running: str | None  # version hash
    on_disk: str | None
    lines: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def render(self) -> str:
        head = f"{self.sequence_id} ({self.path}): "
        if self.problems:
            head += f"has errors; the running version {self.running or '(none)'} stays"
        elif self.running is None:
            head += f"new, version {self.on_disk} (nobody in it yet)"
        elif self.running == self.on_disk:
            head += f"unchanged (version {self.running})"
        else:
            head += f"version {self.running} -> {self.on_disk}"
        body = [f"  {p}" for p in self.problems] + [f"  {line}" for line in self.lines]
        return "\n".join([head, *body])


def _shape(step: Step) -> tuple:
    """What a contact would notice about a step (not its position or line in the file)."""
    return (step.kind, step.channel, step.template, step.subject, step.subjects, step.wait, step.condition, step.goto,
            step.wait_for, step.set_stage)


def _contacts(n: int) -> str:
    return f"{n} contact{'s' if n != 1 else ''}"


def plan_sequence(session: Session, new: Sequence, running: Sequence | None) -> list[str]:
    """The lines of one sequence's plan, in step order."""
    rows = stored.in_flight(session, new.id)
    new_order = [s.id for s in new.steps]
    staying: Counter[str] = Counter()
    moving: Counter[tuple[str, str | None]] = Counter()
    for row in rows:
        if row.step_id in new_order:
            staying[row.step_id] += 1
            continue
        old_order = versions.order_of(session, new.id, row.sequence_version) or []
        target = engine.relocate(old_order, new_order, row.step_id or "", versions.done_steps(session, row.id))
        moving[(row.step_id or "", target)] += 1
    lines = []
    for step in new.steps:
        old = running.step(step.id) if running else None
        waiting = staying.get(step.id, 0)
        if old is None:
            ahead = sum(n for s, n in staying.items() if new_order.index(s) < new_order.index(step.id))
            ahead += sum(n for (_, t), n in moving.items() if t and new_order.index(t) <= new_order.index(step.id))
            lines.append(f"new step {step.id}: {_contacts(ahead)} before it will get it")
        elif waiting and _shape(old) != _shape(step):
            lines.append(f"{_contacts(waiting)} waiting at {step.id} will get the new {step.id}")
        elif waiting:
            lines.append(f"{_contacts(waiting)} waiting at {step.id}: unchanged")
    for (removed, target), n in sorted(moving.items(), key=lambda item: item[0][0]):
        where = f"move to {target}" if target else "finish (no later step is left)"
        lines.append(f"{_contacts(n)} at the removed step {removed} {where}")
    return lines


def make_plan(session: Session, directory: Path, check: TemplateCheck) -> list[SequencePlan]:
    """One plan per sequence file in `directory`, judged by the same checks the worker applies."""
    stages = _lifecycle_on_disk(directory).stages
    plans = []
    for file in sequence_files(directory):
        checked = check_sequence_file(file, check, stages)
        new = checked.sequence
        row = versions.running(session, checked.sequence_id)
        running = parse_sequence(row.source, row.path)[0] if row else None
        plan = SequencePlan(checked.sequence_id, shown_path(file, check.root), row.version if row else None,
                            new.version if new else None, problems=checked.problems)
        if new is not None:
            plan.lines = plan_sequence(session, new, running)
        plans.append(plan)
    return plans


def _lifecycle_on_disk(directory: Path) -> Lifecycle:
    path = directory / LIFECYCLE_FILE
    return parse_lifecycle(path.read_text(encoding="utf-8"), str(path))[0] if path.is_file() else Lifecycle()
