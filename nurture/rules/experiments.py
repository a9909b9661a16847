"""Experiments: which variant of a step a contact gets, and whether it is in a sequence's holdout.

Pure: no I/O, no clock, no Python `hash()` (salted per process): the answer is the SHA-256 of the sequence
id, the step id (or "holdout") and the contact id, read as a number in [0, 1). The same contact gets the
same answer in every run, in every worker, on every machine, for as long as those ids stay. The statistics
that judge the results are in `nurture.rules.experiment_stats`.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from nurture.rules.sequence import Sequence, Step, Variant

HOLDOUT = "holdout"
_SEPARATOR = "\x1f"  # a character no id may hold: ("a-b", "c") and ("a", "b-c") never hash alike


def unit(*parts: object) -> float:
    """A uniform number in [0, 1) from `parts`: the first 8 bytes of their SHA-256, over 2**64."""
    digest = hashlib.sha256(_SEPARATOR.join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick(variants: tuple[Variant, ...], u: float) -> Variant:
    """The variant whose share of [0, 1) holds `u`: the weights laid end to end, in the file's order."""
    total = sum(v.weight for v in variants)
    edge = 0.0
    for variant in variants:
        edge += variant.weight / total
        if u < edge:
            return variant
    return variants[-1]  # u just under 1 against edges that summed to 0.9999999999999999


def variant_for(sequence_id: str, step: Step, contact_id: int) -> Variant | None:
    """The variant of `step` that contact `contact_id` gets; None when the step has no experiment."""
    if not step.variants:
        return None
    return pick(step.variants, unit(sequence_id, step.id, contact_id))


def held_out(sequence: Sequence, contact_id: int) -> bool:
    """Whether the contact is in the sequence's holdout: it gets nothing from the sequence, and its goals
    still count. Raising the share only adds contacts to the holdout; lowering it only releases some."""
    return sequence.holdout > 0 and unit(sequence.id, HOLDOUT, contact_id) < sequence.holdout


def with_variant(step: Step, variant: Variant) -> Step:
    """The step as sent to a contact that got `variant`: its template and subject where it sets them."""
    return replace(step, template=variant.template or step.template, subject=variant.subject or step.subject,
                   variant=variant.id, variants=())


def goal_events(sequence: Sequence) -> tuple[str, ...]:
    """The event types among the sequence's goals (`- {event: purchase}`): a goal of that kind reached after
    the run ended — after the last step, or by a held-out contact whose path is over — still counts for an
    experiment. Goals of other kinds (a tag, a stage) count while the run lasts, as the engine sees them."""
    return tuple(dict.fromkeys(str(goal.arg) for goal in sequence.goals if goal.kind == "event"))


def share_text(share: float) -> str:
    """0.1 -> '10%', 0.125 -> '12.5%'."""
    return f"{round(share * 100, 4):g}%"


def held_out_reason(sequence: Sequence) -> str:
    return f"held out (the sequence's {share_text(sequence.holdout)} holdout gets nothing; its goals still count)"
