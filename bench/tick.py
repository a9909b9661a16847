"""P3 tick: finding and claiming 1,000 due enrollments among 1,000,000 against among 10,000.

    python bench/tick.py [--database sqlite|postgresql|both] [--small 10000] [--large 1000000] [--repeat 7]
                         [--layout cohorts|spread]

For each database it builds two fresh ones (SQLite files in a temporary directory; PostgreSQL databases
created for the run and dropped at the end), with `--small` and `--large` enrollments of as many contacts,
written by one INSERT ... SELECT over a counter each. Exactly `--due` (1,000) of them are due; of the rest,
half are active and due in 30 days and half completed (what a table that has lived a while holds: mostly
finished or waiting). Where the due ones lie (`--layout`):

  cohorts  ten runs of 100 neighbouring rows, spread over the table: what is due at one time was enrolled
           at one time (a day's sign-ups reaching their third email), and rows are stored in the order
           they were written. The default.
  spread   every `total / due`-th row: the worst case, one due row per table page among 1,000,000 but
           several per page among 10,000. Claiming writes the claim into each row, so this measures
           pages touched as much as the query (see bench/README.md). PostgreSQL is ANALYZEd, as autovacuum
           would have done; SQLite is not, as nurture never does.

The timed part is what the tick does: `nurture.delivery.dispatch.claim_batches` with BATCH_SIZE 200 (five
claims of 200, then one that finds nothing), enqueueing nothing. After each claim the 1,000 are released
again, untimed. The two sizes take turns; the median of `--repeat` claims of each is compared:
target large / small <= 1.5 (the cost follows what is due, not what exists).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import SetupError, log, machine, postgres_database, project_env, project_runtime, summary
from sqlalchemy import JSON, Integer, String, case, cast, func, insert, literal, select, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from nurture.delivery import dispatch
from nurture.runtime import Runtime
from nurture.store.db import upgrade
from nurture.store.models import Contact, Enrollment

TARGET = 1.5


def _counter(n: int) -> Any:
    """A one-column (x) table of 1..n, as a recursive CTE: the same SQL on SQLite and PostgreSQL."""
    start = select(literal(1, Integer).label("x")).cte("counter", recursive=True)
    return start.union_all(select((start.c.x + 1).label("x")).where(start.c.x < n))


def _constants(model: type, **values: object) -> dict[str, Any]:
    """Every column of `model`'s table as a SQL literal of the model's own default (a column added later
    gets its default, not a broken benchmark)."""
    row = model(**values).model_dump(exclude={"id"})
    table = model.__table__  # type: ignore[attr-defined]
    return {name: literal(value, type_=table.c[name].type) if not isinstance(value, dict | list)
            else cast(literal(value, JSON), table.c[name].type) for name, value in row.items()}


def _is_due(x: Any, total: int, due: int, layout: str) -> Any:
    """Which of rows 1..total are due: `due` of them, laid out as `layout` says (see above)."""
    if layout == "spread":
        return (x % (total // due)) == 0
    cohorts = 10
    return (x % (total // cohorts)) < (due // cohorts)  # rows 0..99 of every tenth of the table (x from 1)


def populate(db: Engine, total: int, due: int, now: datetime, layout: str = "cohorts") -> None:
    """`total` contacts and as many enrollments, `due` of them due now, laid out as `layout` says."""
    counter = _counter(total)
    x = counter.c.x
    contact = _constants(Contact, email="", created_at=now, updated_at=now)
    contact.update(id=x, email=literal("tick", String) + cast(x, String) + "@example.com")
    enrollment = _constants(Enrollment, contact_id=0, sequence_id="customer", step_id="thank-you",
                            created_at=now, updated_at=now)
    is_due = _is_due(x, total, due, layout)
    enrollment.update(
        id=x, contact_id=x,
        due_at=case((is_due, literal(now - timedelta(hours=1), Enrollment.__table__.c.due_at.type)),
                    ((x % 2) == 0, literal(now + timedelta(days=30), Enrollment.__table__.c.due_at.type)),
                    else_=None),
        status=case((is_due, "active"), ((x % 2) == 0, "active"), else_="completed"),
    )
    with db.begin() as connection:
        for model, columns in ((Contact, contact), (Enrollment, enrollment)):
            table = model.__table__  # type: ignore[attr-defined]
            names = list(columns)
            connection.execute(insert(table).from_select(names, select(*columns.values()).select_from(counter)))
        if db.dialect.name == "postgresql":  # the sequences behind SERIAL ids, past what was written
            for name in ("contact", "enrollment"):
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), {total})"))
    if db.dialect.name == "postgresql":
        with db.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))


def check_due(rt: Runtime, due: int) -> None:
    with Session(rt.db) as session:
        found = session.execute(select(func.count()).select_from(Enrollment).where(
            Enrollment.status == "active", Enrollment.due_at <= rt.clock())).scalar_one()
    if found != due:
        raise SetupError(f"expected {due} due enrollments, found {found}")


def claim_once(rt: Runtime, due: int) -> float:
    """The tick's claim of everything due (timed), then every claim released again (not timed)."""
    tokens: list[str] = []
    start = time.perf_counter()
    claimed = dispatch.claim_batches(rt, tokens.append, max_batches=10**6)
    elapsed = time.perf_counter() - start
    if claimed != due:
        raise SetupError(f"claimed {claimed}, expected {due}")
    table = Enrollment.__table__  # type: ignore[attr-defined]
    with rt.db.begin() as connection:
        connection.execute(update(table).where(table.c.claim_token.is_not(None))
                           .values(claim_token=None, claimed_until=None))
    return elapsed


def database_urls(kind: str, tmp: Path, stack: contextlib.ExitStack) -> tuple[str, str]:
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'small.db'}", f"sqlite:///{tmp / 'large.db'}"
    return stack.enter_context(postgres_database()), stack.enter_context(postgres_database())


def run(kind: str, small: int, large: int, due: int, repeat: int, layout: str) -> float:
    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix=f"nurture-bench-tick-{kind}-"))
        stack.callback(shutil.rmtree, tmp, True)
        runtimes = {}
        now = datetime.now(UTC)
        urls = database_urls(kind, tmp, stack)
        for (size, url), name in zip(zip((small, large), urls, strict=True), ("small", "large"), strict=True):
            rt = project_runtime(project_env(tmp / name, url))
            stack.callback(rt.db.dispose)
            upgrade(rt.db)
            started = time.perf_counter()
            populate(rt.db, size, due, now, layout)
            check_due(rt, due)
            log(f"tick {kind}: {size:,} enrollments ({due:,} due) written in {time.perf_counter() - started:.1f} s")
            runtimes[size] = rt
        times: dict[int, list[float]] = {small: [], large: []}
        for _ in range(repeat):
            for size, rt in runtimes.items():
                times[size].append(claim_once(rt, due))
        medians = {size: statistics.median(values) for size, values in times.items()}
        for size, values in times.items():
            log(f"tick {kind}: {size:,}: " + " ".join(f"{1000 * v:.1f}" for v in values) + " ms")
    ratio = medians[large] / medians[small]
    print(f"tick {kind} ({layout}): claiming {due:,} due among {large:,}: {1000 * medians[large]:.1f} ms; "
          f"among {small:,}: {1000 * medians[small]:.1f} ms; ratio {ratio:.2f} (target <= {TARGET})", flush=True)
    summary(f"P3 tick ({kind}, {layout})", f"ratio {ratio:.2f} ({1000 * medians[large]:.1f} ms among {large:,} / "
            f"{1000 * medians[small]:.1f} ms among {small:,})", f"<= {TARGET}", ratio <= TARGET)
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--layout", choices=("cohorts", "spread"), default="cohorts")
    args = parser.parse_args(argv)
    log(f"setup: {machine()}")
    kinds = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    try:
        for kind in kinds:
            run(kind, args.small, args.large, args.due, args.repeat, args.layout)
    except SetupError as exc:
        log(f"bench: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
