"""How long a sequence's funnel takes with 1,000,000 deliveries in the database.

    .venv/bin/python bench/funnel.py [--deliveries 1000000] [--database sqlite|postgresql] [--repeat 3]
                                     [--database-url URL] [--dirty 2000] [--fold-pairs 20000]

Bulk-inserts contacts, each with one enrollment in one of the starter sequences and a delivery for every
step of it (all `sent`, spread over the last 120 days), an `email.sent` event per delivery, a click for a
tenth of them (a fifth of those marked as a bot's), a bounce for one in a hundred, and a goal for one
contact in twenty. It then builds the funnel's rollup (`nurture funnel rebuild`'s code, timed), brings the
planner's statistics up to date (PostgreSQL: VACUUM ANALYZE, which also marks the pages all-visible as
autovacuum would on a live database; SQLite: ANALYZE), and times, alternately in one sitting, for Lead
nurture over 30 and over 365 days: `sequence_funnel` (what the page and `nurture stats` call: the rollup),
the same with `--dirty` contacts of the sequence not yet folded (what a tick's worth of sends leaves), and
the raw count (`count_funnel_raw`, the indexes of 0006_console_pages); and before those the fold's rate
(bench/funnel_fold.py: `--fold-pairs` pairs marked dirty and folded, `--repeat` rounds). It prints the
medians and three TARGET lines: the slowest of the page's medians against 200 ms, the same with `--dirty`
contacts unfolded, and the fold's pairs/s against 1,500. `--database-url` uses (and keeps) a database, and
seeds it only when it holds no deliveries: seed once, measure many times.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from console_map import database_url  # noqa: E402
from funnel_fold import TARGET_PAIRS, fold_rate  # noqa: E402
from harness import summary  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from sqlmodel import Session  # noqa: E402

from nurture.config import load_settings  # noqa: E402
from nurture.insight.funnel import parse_since  # noqa: E402
from nurture.insight.sequence_stats import rebuild, rollup_backlog, sequence_funnel  # noqa: E402
from nurture.runtime import Runtime, build_runtime  # noqa: E402
from nurture.store.db import upgrade  # noqa: E402
from nurture.store.funnel import count_funnel_raw  # noqa: E402
from nurture.store.models import Contact, Delivery, Enrollment, Event, FunnelDirty  # noqa: E402

TARGET_MS = 200.0

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CHUNK = 5000


def rows_for(rt: Runtime, target: int) -> dict[type, list[dict]]:
    sequences = [s for s in rt.sequences.all() if len([x for x in s.steps if x.sends]) >= 3]
    tables: dict[type, list[dict]] = {Contact: [], Enrollment: [], Delivery: [], Event: []}
    contact = delivery = 0
    while delivery < target:
        contact += 1
        sequence = sequences[contact % len(sequences)]
        at = NOW - timedelta(days=contact % 120, minutes=contact % 1440)
        tables[Contact].append(dict(id=contact, email=f"c{contact}@example.com", first_name="", last_name="",
                                    fields={}, tags=[], stage="lead", score=0.0, email_status="subscribed",
                                    sms_status="none", attribution={}, created_at=at, updated_at=at))
        tables[Enrollment].append(dict(id=contact, contact_id=contact, sequence_id=sequence.id, step_id=None,
                                       status="completed", entry=1, sequence_version=sequence.version, attempts=0,
                                       created_at=at, updated_at=at))
        for step in (s for s in sequence.steps if s.sends):
            delivery += 1
            tables[Delivery].append(dict(id=delivery, contact_id=contact, enrollment_id=contact,
                                         sequence_id=sequence.id, sequence_version=sequence.version, step_id=step.id,
                                         channel="email", kind=step.kind, recipient="", status="sent", attempts=1,
                                         created_at=at, updated_at=at, sent_at=at))
            about = {"sequence": sequence.id, "version": sequence.version, "step": step.id}
            tables[Event].append(dict(contact_id=contact, type="email.sent", data=about, delivery_id=delivery,
                                      occurred_at=at, created_at=at))
            if delivery % 10 == 0:
                tables[Event].append(dict(contact_id=contact, type="email.clicked", occurred_at=at, created_at=at,
                                          delivery_id=None,
                                          data={**about, "bot": delivery % 50 == 0, "url": "https://x.example"}))
            if delivery % 100 == 3:
                tables[Event].append(dict(contact_id=contact, type="email.bounced", data=about, delivery_id=delivery,
                                          occurred_at=at, created_at=at))
        if contact % 20 == 0:
            tables[Event].append(dict(contact_id=contact, type="sequence.goal", occurred_at=at + timedelta(days=1),
                                      delivery_id=None,
                                      created_at=at, data={"sequence": sequence.id, "reason": "goal reached"}))
    return tables


def seed(rt: Runtime, target: int) -> dict[type, int]:
    tables = rows_for(rt, target)
    with rt.db.begin() as connection:
        for table, rows in tables.items():
            for start in range(0, len(rows), CHUNK):
                connection.execute(insert(table), rows[start:start + CHUNK])
    return {table: len(rows) for table, rows in tables.items()}


def settle(rt: Runtime) -> None:
    """What a database that has run a while has: fresh statistics, and (PostgreSQL) a visibility map that
    lets an index answer without visiting the table. Without it a bulk load is timed as no live one is."""
    with rt.db.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE" if rt.db.dialect.name == "postgresql" else "ANALYZE")


PERIODS = ("30d", "365d")


def mark_dirty(rt: Runtime, contacts: int) -> None:
    """As if the newest `contacts` contacts of Lead nurture had changed since the last fold (the counts do not
    move, so every run counts the same)."""
    with Session(rt.db) as session:
        ids = session.execute(Delivery.__table__.select().with_only_columns(Delivery.contact_id).distinct()
                              .where(Delivery.sequence_id == "lead-nurture").order_by(Delivery.contact_id.desc())
                              .limit(contacts)).scalars().all()
        session.execute(FunnelDirty.__table__.insert(), [dict(contact_id=c, sequence_id="lead-nurture") for c in ids])
        session.commit()


def clean(rt: Runtime) -> None:
    with Session(rt.db) as session:
        session.execute(FunnelDirty.__table__.delete())
        session.commit()


def measure(rt: Runtime, repeat: int, dirty: int) -> dict[tuple[str, str], float]:
    """Median ms per (period, way): the page from a caught-up rollup, with `dirty` contacts unfolded, and the
    raw count; alternated, so that the machine's load falls on all three alike."""
    runs: dict[tuple[str, str], list[float]] = {}
    sent: dict[str, int] = {}

    def timed(key: tuple[str, str], call) -> None:  # noqa: ANN001
        began = time.perf_counter()
        result = call()
        runs.setdefault(key, []).append((time.perf_counter() - began) * 1000)
        return result

    for _ in range(repeat):
        for period in PERIODS:
            funnel = timed((period, "page"), lambda p=period: sequence_funnel(rt, "lead-nurture", p))
            sent[period] = funnel.total["sent"]
            since = parse_since(period, NOW)
            with Session(rt.db) as session:
                raw = timed((period, "raw"), lambda s=since: count_funnel_raw(session, "lead-nurture", s))
            assert {step: dict(m) for step, m in raw.steps.items()} == {r.step: {k: v for k, v in r.counts.items()
                    if k in raw.steps.get(r.step, {})} for r in funnel.rows if r.step in raw.steps}, "counts differ"
            mark_dirty(rt, dirty)
            timed((period, "dirty"), lambda p=period: sequence_funnel(rt, "lead-nurture", p))
            clean(rt)
    medians = {key: statistics.median(values) for key, values in runs.items()}
    for period in PERIODS:
        print(f"lead-nurture, {period}: page {medians[(period, 'page')]:.0f} ms, with {dirty} contacts unfolded "
              f"{medians[(period, 'dirty')]:.0f} ms, raw rows {medians[(period, 'raw')]:.0f} ms "
              f"(medians of {repeat}); {sent[period]} sent", flush=True)
    return medians


def seeded(rt: Runtime) -> bool:
    with Session(rt.db) as session:
        return session.execute(Delivery.__table__.select().with_only_columns(Delivery.id).limit(1)).first() is not None


def build(rt: Runtime, deliveries: int, kind: str, again: bool) -> float | None:
    """Seed, analyze and build the rollup, unless the database holds rows already (`--database-url`: seeding
    1,000,000 deliveries took ~17 min under load; `again`: rebuild the rollup all the same). The rebuild's
    pairs/s, or None when there was none."""
    if seeded(rt):
        print(f"reusing the seeded database ({rollup_backlog(rt)} dirty)", flush=True)
        if not again:
            return None
    else:
        start = time.perf_counter()
        sizes = seed(rt, deliveries)
        print(f"seeded {', '.join(f'{n} {t.__name__.lower()}' for t, n in sizes.items())} "
              f"in {time.perf_counter() - start:.0f} s ({kind})")
        settle(rt)  # the fold reads by contact: without statistics PostgreSQL scanned whole tables for it
    start = time.perf_counter()
    pairs = rebuild(rt)
    took = time.perf_counter() - start
    print(f"rollup built from {pairs} (contact, sequence) pairs in {took:.0f} s ({pairs / took:.0f} pairs/s, every "
          f"member row new); {rollup_backlog(rt)} dirty left", flush=True)
    settle(rt)
    return pairs / took


def report(kind: str, medians: dict, dirty: int, rates: list[float], rebuilt: float | None) -> None:
    """The TARGET lines: the page caught up, the page with `dirty` contacts unfolded, the fold's rate."""
    worst = max(medians[(period, "page")] for period in PERIODS)
    figures = (f"{p}: {medians[(p, 'page')]:.0f} ms (raw {medians[(p, 'raw')]:.0f} ms)" for p in PERIODS)
    summary(f"Console funnel ({kind})", " ".join(figures), f"< {TARGET_MS:.0f} ms", worst < TARGET_MS)
    worst = max(medians[(period, "dirty")] for period in PERIODS)
    figures = (f"{p}: {medians[(p, 'dirty')]:.0f} ms" for p in PERIODS)
    summary(f"Console funnel, {dirty} contacts unfolded ({kind})", " ".join(figures), f"< {TARGET_MS:.0f} ms",
            worst < TARGET_MS)
    rate = statistics.median(rates)
    also = f"; rebuild {rebuilt:.0f} pairs/s" if rebuilt else ""
    summary(f"Funnel fold ({kind})", f"{rate:.0f} pairs/s (rounds {' '.join(f'{r:.0f}' for r in rates)}{also})",
            f">= {TARGET_PAIRS:.0f} pairs/s", rate >= TARGET_PAIRS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--database-url", help="a database to use and keep (seeded only if it has no deliveries)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dirty", type=int, default=2000, help="contacts left unfolded for the 'dirty' runs")
    parser.add_argument("--rebuild", action="store_true", help="with --database-url: rebuild the rollup anyway")
    parser.add_argument("--fold-pairs", type=int, default=20000, help="pairs marked dirty per fold round")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nurture-funnel-bench-"))
    database, drop = (args.database_url, lambda: None) if args.database_url else database_url(args.database, work)
    try:
        env = {"NURTURE_ROOT": str(ROOT), "VAR_DIR": str(work / "var"), "DATABASE_URL": database,
               "SECRET_KEY": "bench-secret-key-0123456789", "API_KEY": "bench-api-key-0123456789"}
        rt = build_runtime(load_settings(env), clock=lambda: NOW)
        upgrade(rt.db)
        kind = rt.db.dialect.name
        rebuilt = build(rt, args.deliveries, kind, args.rebuild)
        rates = fold_rate(rt.db, args.fold_pairs, args.repeat)
        print(f"fold: {' '.join(f'{r:.0f}' for r in rates)} pairs/s ({args.fold_pairs} pairs a round)", flush=True)
        medians = measure(rt, args.repeat, args.dirty)
        report(kind, medians, args.dirty, rates, rebuilt)
        rt.db.dispose()
    finally:
        drop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
