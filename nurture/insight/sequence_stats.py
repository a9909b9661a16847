"""A sequence's funnel as `nurture stats` and the console show it: counted in the store
(nurture.store.funnel), built by the pure nurture.insight.funnel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session

from nurture.insight.funnel import Funnel, build_funnel, parse_since
from nurture.insight.revenue import sequence_revenue
from nurture.store import funnel_rollup
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


def sequence_versions(rt: Runtime, sequence_id: str) -> list[tuple[str, datetime]]:
    with Session(rt.db) as session:
        return versions_of(session, sequence_id)


# The funnel's rollup (nurture.store.funnel_rollup) is kept up after the fact: the tick folds a little each
# time without waiting for a fold already running, and queues a job for the rest when there is more.
FOLD_IN_TICK = 500
FOLD_ROUNDS, FOLD_LIMIT = 20, 1000  # a job folds for a bounded time: it runs on a worker that could be sending


def fold_in_tick(rt: Runtime) -> bool:
    """Fold what a tick may; True when more is left (the caller queues `catch_up`)."""
    with Session(rt.db) as session:
        return funnel_rollup.fold(session, rt.clock(), FOLD_IN_TICK, wait=False) == FOLD_IN_TICK


def catch_up(rt: Runtime, rounds: int = FOLD_ROUNDS, progress: Callable[[int], None] | None = None) -> int:
    """Fold until nothing is dirty, or for `rounds` folds (a job then leaves the rest to the next tick)."""
    folded = 0
    for _ in range(rounds):
        with Session(rt.db) as session:
            n = funnel_rollup.fold(session, rt.clock(), FOLD_LIMIT)
        folded += n
        if progress is not None:
            progress(folded)
        if n < FOLD_LIMIT:
            break
    return folded


def rebuild(rt: Runtime, progress: Callable[[int, int], None] | None = None) -> int:
    """Forget the rollup, mark every contact of every sequence, and fold them all now; returns how many
    (contact, sequence) pairs. Exact all along: while it runs the funnel reads the raw rows."""
    with Session(rt.db) as session:
        marked = funnel_rollup.mark_everything(session, rt.clock())
    catch_up(rt, rounds=marked // FOLD_LIMIT + 2, progress=lambda done: progress and progress(done, marked))
    return marked


def rollup_backlog(rt: Runtime) -> int:
    with Session(rt.db) as session:
        return funnel_rollup.backlog(session)
