"""How long the console's home page takes to measure the lifecycle map, with N contacts in flight.

    .venv/bin/python bench/console_map.py [--n 100000] [--database sqlite|postgresql] [--repeat 5]

Bulk-inserts N contacts (a tenth of them moved to `customer` by a `stage.changed` event in the last 30
days), each with an active enrollment spread over the starter sequences' steps, a tenth of them due two
days ago (parked), plus N `email.sent` events as timeline noise. Then it times `current_map` (all the
map's queries and the pure build) and `render_svg`, `--repeat` times each, and prints the median.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from nurture.config import load_settings  # noqa: E402
from nurture.insight.map_sheet import current_map  # noqa: E402
from nurture.insight.map_svg import render_svg  # noqa: E402
from nurture.runtime import Runtime, build_runtime  # noqa: E402
from nurture.store.db import upgrade  # noqa: E402
from nurture.store.models import Contact, Enrollment, Event  # noqa: E402

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def seed(rt: Runtime, n: int) -> None:
    steps = [(s.id, step.id) for s in rt.sequences.all() for step in s.steps]
    contacts, enrollments, events = [], [], []
    for i in range(1, n + 1):
        moved = i % 10 == 0
        contacts.append(dict(id=i, email=f"c{i}@example.com", first_name="", last_name="", fields={}, tags=[],
                             stage="customer" if moved else "lead", score=0.0, email_status="subscribed",
                             sms_status="none", attribution={}, created_at=NOW, updated_at=NOW))
        sequence_id, step_id = steps[i % len(steps)]
        due = NOW - timedelta(days=2) if i % 10 == 1 else NOW + timedelta(days=1)
        enrollments.append(dict(id=i, contact_id=i, sequence_id=sequence_id, step_id=step_id, due_at=due,
                                status="active", entry=1, sequence_version="", attempts=0, step_entered_at=NOW,
                                created_at=NOW, updated_at=NOW))
        events.append(dict(contact_id=i, type="email.sent", data={"step": step_id}, occurred_at=NOW, created_at=NOW))
        if moved:
            events.append(dict(contact_id=i, type="stage.changed", data={"from": "lead", "to": "customer"},
                               occurred_at=NOW - timedelta(days=3), created_at=NOW))
    with rt.db.begin() as connection:
        for table, rows in ((Contact, contacts), (Enrollment, enrollments), (Event, events)):
            for start in range(0, len(rows), 5000):
                connection.execute(insert(table), rows[start:start + 5000])


def timed(call, repeat: int) -> float:  # noqa: ANN001
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nurture-map-bench-"))
    database, drop = database_url(args.database, work)
    try:
        env = {"NURTURE_ROOT": str(ROOT), "VAR_DIR": str(work / "var"), "DATABASE_URL": database,
               "SECRET_KEY": "bench-secret-key-0123456789", "API_KEY": "bench-api-key-0123456789"}
        rt = build_runtime(load_settings(env), clock=lambda: NOW)
        upgrade(rt.db)
        start = time.perf_counter()
        seed(rt, args.n)
        print(f"seeded {args.n} contacts, enrollments and {args.n + args.n // 10} events "
              f"in {time.perf_counter() - start:.1f} s ({args.database})")
        measure = timed(lambda: current_map(rt), args.repeat)
        lifecycle_map = current_map(rt)
        draw = timed(lambda: render_svg(lifecycle_map, "Bench"), args.repeat)
        parked = sum(1 for g in lifecycle_map.gaps if g.kind == "parked")
        print(f"current_map: {measure * 1000:.0f} ms median of {args.repeat}; render_svg: {draw * 1000:.1f} ms; "
              f"{lifecycle_map.contacts} contacts, {len(lifecycle_map.gaps)} gaps ({parked} parked steps)")
        rt.db.dispose()
    finally:
        drop()
        shutil.rmtree(work, ignore_errors=True)


def database_url(kind: str, work: Path):  # noqa: ANN201
    if kind == "sqlite":
        return f"sqlite:///{work / 'bench.db'}", lambda: None
    import psycopg

    name = f"nurture_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return PG_URL.rsplit("/", 1)[0] + f"/{name}", drop


if __name__ == "__main__":
    main()
