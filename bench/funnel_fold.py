"""How many (contact, sequence) pairs a second the funnel's fold gets through, on a database already seeded
by bench/funnel.py (which calls `fold_rate` itself; run alone to measure another tree's code against the
same rows in one sitting):

    .venv/bin/python bench/funnel_fold.py --database-url URL [--pairs 20000] [--rounds 3] [--code /work/main]
                                          [--everything]

Each round marks `pairs` pairs dirty (contacts spread over the seeded ones, their own sequence) and folds
them as the worker's job does (`fold` of FOLD_LIMIT rows a transaction) until none is left. The rows do not
change between rounds, so each pair's groups are worked out and compared and nothing moves: the fold's cost
bar the writes. `--everything` marks as `nurture funnel rebuild` does instead: the rollup forgotten, every
pair dirty, every member row new (the most writes). The workers send ~430-600 messages/s on the development
machine: a fold under that rate falls behind.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

TARGET_PAIRS = 1500.0
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _code_first(argv: list[str]) -> None:
    """`--code DIR`: import nurture from DIR (another worktree) instead of this one."""
    if "--code" in argv:
        sys.path.insert(0, argv[argv.index("--code") + 1])
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def mark_pairs(engine, pairs: int) -> int:  # noqa: ANN001
    """Mark `pairs` pairs dirty, spread over every contact that has deliveries (every k-th)."""
    from sqlalchemy import text
    with engine.begin() as connection:
        total = connection.execute(text("SELECT count(DISTINCT contact_id) FROM delivery")).scalar_one()
        step = max(1, total // pairs)
        return connection.execute(text(
            "INSERT INTO funnel_dirty (contact_id, sequence_id) SELECT contact_id, sequence_id FROM "
            "(SELECT DISTINCT contact_id, sequence_id FROM delivery) AS p WHERE contact_id % :step = 0 "
            "ORDER BY contact_id LIMIT :pairs"), {"step": step, "pairs": pairs}).rowcount


def mark_everything(engine) -> int:  # noqa: ANN001
    """`nurture funnel rebuild`'s start: the rollup forgotten, every pair dirty (every member row new)."""
    from sqlmodel import Session

    from nurture.store import funnel_rollup
    with Session(engine) as session:
        return funnel_rollup.mark_everything(session, NOW)


def fold_rate(engine, pairs: int, rounds: int, limit: int = 1000,  # noqa: ANN001
              everything: bool = False) -> list[float]:
    """Pairs/s of each round."""
    from sqlmodel import Session

    from nurture.store import funnel_rollup
    rates = []
    for _ in range(rounds):
        marked = mark_everything(engine) if everything else mark_pairs(engine, pairs)
        began = time.perf_counter()
        folded = 0
        while True:
            with Session(engine) as session:
                n = funnel_rollup.fold(session, NOW, limit=limit)
            if not n:
                break
            folded += n
        rates.append(folded / (time.perf_counter() - began))
        assert folded >= marked, (folded, marked)
    return rates


def main() -> None:
    _code_first(sys.argv)
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--pairs", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--code", help="a nurture tree to import instead of this one")
    parser.add_argument("--everything", action="store_true", help="rebuild: every pair, every member row new")
    args = parser.parse_args()
    import nurture
    from nurture.store.db import make_engine
    engine = make_engine(args.database_url)
    rates = fold_rate(engine, args.pairs, args.rounds, everything=args.everything)
    print(f"fold ({Path(list(nurture.__path__)[0]).parent}, {engine.dialect.name}): "
          f"{' '.join(f'{r:.0f}' for r in rates)} pairs/s, median {statistics.median(rates):.0f} "
          f"({'everything' if args.everything else args.pairs} pairs a round; load {os.getloadavg()[0]:.1f})",
          flush=True)
    engine.dispose()


if __name__ == "__main__":
    main()
