"""Helpers for the funnel rollup's tests: fold the dirty rows (all, or some, as a worker that has not
caught up would have), and count through the rollup only (never the raw fallback)."""

from __future__ import annotations

from datetime import datetime

from alembic import command
from sqlmodel import Session

from nurture.store import funnel_rollup
from nurture.store.db import alembic_config
from nurture.store.funnel import FunnelCounts, count_funnel, count_funnel_raw


def fold_all(rt) -> int:  # noqa: ANN001
    folded = 0
    while True:
        with Session(rt.db) as session:
            n = funnel_rollup.fold(session, rt.clock(), limit=37)  # small: many folds, some pairs twice
        if not n:
            return folded
        folded += n


def fold_some(rt, rows: int) -> None:  # noqa: ANN001
    with Session(rt.db) as session:
        funnel_rollup.fold(session, rt.clock(), limit=rows)


def backlog(rt) -> int:  # noqa: ANN001
    with Session(rt.db) as session:
        return funnel_rollup.backlog(session)


def rolled(rt, sequence: str, since: datetime, version: str | None) -> FunnelCounts:  # noqa: ANN001
    """The counts as count_funnel reads them, failing if the rollup declined to answer (the raw fallback)."""
    with Session(rt.db) as session:
        assert funnel_rollup.rolled_counts(session, sequence, since, version) is not None, "fell back to raw"
        return count_funnel(session, sequence, since, version)


def raw(rt, sequence: str, since: datetime, version: str | None) -> FunnelCounts:  # noqa: ANN001
    with Session(rt.db) as session:
        return count_funnel_raw(session, sequence, since, version)


def migrate_to(rt, revision: str) -> None:  # noqa: ANN001
    config = alembic_config()
    with rt.db.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
