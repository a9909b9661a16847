"""What the experiment tests share: a sequence with a holdout and a step with two weighted variants."""

from __future__ import annotations

import textwrap
from collections import Counter

from sqlalchemy import insert
from sqlmodel import Session

from nurture.content.loader import parse_sequence
from nurture.rules import experiments
from nurture.rules.sequence import Sequence
from nurture.runtime import Runtime
from nurture.store.models import Contact, Delivery, Enrollment, Event

# 10% held out; the first step split 70/30 between two subjects and templates, judged on clicks; the second
# split evenly on the subject alone, judged on the goal (a purchase).
TRIAL = textwrap.dedent("""
    id: trial
    name: Trial
    stage: nurture-prospects
    holdout: 10%
    goals:
      - {event: purchase}
    steps:
      - id: hello
        kind: educate
        wait: 0s
        variants:
          - {id: A, weight: 70%, template: lead/edu-1, subject: "Hello from A"}
          - {id: B, weight: 30%, template: lead/edu-2, subject: "Hello from B"}
      - id: offer
        kind: offer
        wait: 2d
        template: lead/offer
        subject: "15% off"
        judge: goal
        variants:
          - {id: plain, subject: "15% off the wheel course"}
          - {id: urgent, subject: "Last days: 15% off the wheel course"}
""").lstrip()

SUBJECTS = {"Hello from A": "A", "Hello from B": "B"}


def trial() -> Sequence:
    sequence, problems = parse_sequence(TRIAL, "sequences/trial.yaml")
    assert problems == [] and sequence is not None
    return sequence


def seed_results(rt: Runtime, contacts: int, click_every: dict[str, int], goal_every: dict[bool, int]) -> None:
    """A sequence `trial` that ran for a while, written in bulk (thousands of contacts through the send path
    would take minutes; test_experiments_sending.py covers that path): each contact's enrollment, the
    `hello` delivery of its variant (none for the held out), a person's click on every `click_every[variant]`-th
    delivery of each variant, and the goal reached by every `goal_every[held_out]`-th entry of each group."""
    sequence, now = trial(), rt.clock()
    rows: dict[str, list[dict]] = {"contact": [], "enrollment": [], "delivery": [], "event": []}
    seen: Counter[object] = Counter()
    for n in range(1, contacts + 1):
        held = experiments.held_out(sequence, n)
        seen[held] += 1
        goal = seen[held] % goal_every[held] == 0
        rows["contact"].append(dict(id=n, email=f"s{n}@example.com", fields={}, tags=[], attribution={},
                                    created_at=now, updated_at=now))
        rows["event"].append(dict(contact_id=n, type="sequence.enrolled", occurred_at=now, created_at=now,
                                  data={"sequence": "trial", "version": sequence.version, "first_step": "hello"}))
        if goal:
            rows["event"].append(dict(contact_id=n, type="sequence.goal", occurred_at=now, created_at=now,
                                      data={"sequence": "trial", "reason": "goal reached: event purchase"}))
        rows["enrollment"].append(dict(id=n, contact_id=n, sequence_id="trial", sequence_version=sequence.version,
                                       entry=1, status="completed", created_at=now, updated_at=now,
                                       stop_reason="goal reached: event purchase" if goal else "sequence complete"))
        if held:
            continue
        variant = experiments.variant_for("trial", sequence.steps[0], n)
        assert variant is not None
        seen[variant.id] += 1
        rows["delivery"].append(dict(id=n, contact_id=n, enrollment_id=n, sequence_id="trial", step_id="hello",
                                     channel="email", kind="educate", status="sent", variant=variant.id,
                                     created_at=now, updated_at=now, sent_at=now, attempts=0,
                                     sequence_version=sequence.version, recipient=f"s{n}@example.com"))
        if seen[variant.id] % click_every[variant.id] == 0:
            rows["event"].append(dict(contact_id=n, type="email.clicked", occurred_at=now, created_at=now,
                                      data={"sequence": "trial", "step": "hello", "bot": False}))
    with Session(rt.db) as session:
        for table in (Contact, Enrollment, Delivery, Event):
            name = table.__tablename__  # type: ignore[attr-defined]
            if rows[name]:
                session.execute(insert(table.__table__), rows[name])  # type: ignore[attr-defined]
        session.commit()
