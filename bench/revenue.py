"""What revenue per step adds to a sequence's funnel, with 1,000,000 deliveries in the database.

    .venv/bin/python bench/revenue.py [--deliveries 1000000] [--database sqlite|postgresql] [--repeat 3]

Seeds the data of bench/funnel.py (contacts, one enrollment each, a sent delivery per step, email.sent
events, clicks, bounces, goals) plus a purchase for one contact in twenty, a day after its messages.
Then times, alternately in one sitting, the funnel's counts alone (`count_funnel`) and the revenue
attribution alone (`sequence_revenue`) for Lead nurture over 30 and 365 days, and prints the medians and
the ratio revenue / counts.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from console_map import database_url  # noqa: E402
from funnel import CHUNK, NOW, rows_for  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402
from sqlmodel import Session  # noqa: E402

from nurture.config import load_settings  # noqa: E402
from nurture.insight.funnel import parse_since  # noqa: E402
from nurture.insight.revenue import sequence_revenue  # noqa: E402
from nurture.rules.inbound import Attribution  # noqa: E402
from nurture.runtime import Runtime, build_runtime  # noqa: E402
from nurture.store.db import upgrade  # noqa: E402
from nurture.store.funnel import count_funnel  # noqa: E402
from nurture.store.models import Contact, Event  # noqa: E402


def seed(rt: Runtime, target: int) -> dict[str, int]:
    tables = rows_for(rt, target)
    purchases = [dict(contact_id=c["id"], type="purchase", delivery_id=None,
                      occurred_at=c["created_at"] + timedelta(days=1), created_at=c["created_at"],
                      data={"product": "wheel-6-week", "amount": 240.0, "currency": "USD", "source": "stripe"})
                 for c in tables[Contact] if c["id"] % 20 == 7]
    tables[Event] += purchases
    with rt.db.begin() as connection:
        for table, rows in tables.items():
            for start in range(0, len(rows), CHUNK):
                connection.execute(insert(table), rows[start:start + CHUNK])
    if rt.db.dialect.name == "postgresql":
        # Autovacuum analyzes a table after a bulk load like this one, a minute or so later; measured before
        # it had, the revenue took 4.6 and 7.4 times as long (bench/README.md).
        with rt.db.begin() as connection:
            connection.execute(text("ANALYZE"))
    return {table.__name__.lower(): len(rows) for table, rows in tables.items()} | {"purchase": len(purchases)}


def timed(call) -> float:  # noqa: ANN001
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nurture-revenue-bench-"))
    database, drop = database_url(args.database, work)
    try:
        env = {"NURTURE_ROOT": str(ROOT), "VAR_DIR": str(work / "var"), "DATABASE_URL": database,
               "SECRET_KEY": "bench-secret-key-0123456789", "API_KEY": "bench-api-key-0123456789"}
        rt = build_runtime(load_settings(env), clock=lambda: NOW)
        upgrade(rt.db)
        start = time.perf_counter()
        sizes = seed(rt, args.deliveries)
        print(f"seeded {', '.join(f'{n} {name}' for name, n in sizes.items())} in {time.perf_counter() - start:.0f} s "
              f"({args.database})")
        for period in ("30d", "365d"):
            since = parse_since(period, NOW)
            counts, revenue, credited = [], [], {}
            with Session(rt.db) as session:
                for _ in range(args.repeat):  # alternated, so both meet the same machine
                    counts.append(timed(lambda at=since: count_funnel(session, "lead-nurture", at)))
                    revenue.append(timed(lambda at=since, out=credited: out.update(
                        sequence_revenue(session, "lead-nurture", at, Attribution()))))
            conversions = sum(step.conversions for step in credited.values())
            c, r = statistics.median(counts), statistics.median(revenue)
            print(f"lead-nurture {period}: counts {c * 1000:.0f} ms, revenue {r * 1000:.0f} ms (median of "
                  f"{args.repeat}); revenue / counts = {r / c:.2f}; {conversions} conversions credited")
        rt.db.dispose()
    finally:
        drop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
