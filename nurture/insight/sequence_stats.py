"""A sequence's funnel as `nurture stats` and the console show it: counted in the store
(nurture.store.funnel), built by the pure nurture.insight.funnel."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session

from nurture.insight import experiments
from nurture.insight.funnel import Funnel, build_funnel, parse_since
from nurture.insight.revenue import sequence_revenue
from nurture.store.funnel import count_funnel, versions_of

if TYPE_CHECKING:
    from nurture.runtime import Runtime

DEFAULT_PERIOD = "30d"


class UnknownSequence(LookupError):
    pass


def sequence_funnel(rt: Runtime, sequence_id: str, period: str = DEFAULT_PERIOD, version: str | None = None,
                    now: datetime | None = None) -> Funnel:
    """Raises UnknownSequence, or nurture.insight.funnel.BadPeriod for a period like '30x'."""
    sequence = rt.sequences.get(sequence_id)
    if sequence is None:
        known = ", ".join(s.id for s in rt.sequences.all()) or "none loaded"
        raise UnknownSequence(f"unknown sequence {sequence_id!r} (known: {known})")
    since = parse_since(period, now or rt.clock())
    with Session(rt.db) as session:
        counts = count_funnel(session, sequence_id, since, version or None)
        credited = sequence_revenue(session, sequence_id, since, rt.integrations.attribution)
    funnel = build_funnel(sequence, counts.steps, counts.skip_reasons, counts.total, since, version or None)
    return replace(funnel, revenue=credited)


def sequence_experiments(rt: Runtime, sequence_id: str, period: str = DEFAULT_PERIOD,
                         now: datetime | None = None) -> tuple[experiments.Experiment, ...]:
    """The sequence's experiments (variants, holdout), judged over the period. Raises as sequence_funnel."""
    sequence = rt.sequences.get(sequence_id)
    if sequence is None:
        raise UnknownSequence(f"unknown sequence {sequence_id!r}")
    since = parse_since(period, now or rt.clock())
    with Session(rt.db) as session:
        return experiments.results(session, sequence, since)


def sequence_versions(rt: Runtime, sequence_id: str) -> list[tuple[str, datetime]]:
    with Session(rt.db) as session:
        return versions_of(session, sequence_id)
