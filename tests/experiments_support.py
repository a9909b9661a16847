"""What the experiment tests share: a sequence with a holdout and a step with two weighted variants."""

from __future__ import annotations

import textwrap

from nurture.content.loader import parse_sequence
from nurture.rules.sequence import Sequence

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
