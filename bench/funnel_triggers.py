"""What the funnel rollup's triggers (migration 0009_funnel_rollup) cost the writes of the send path.

    .venv/bin/python bench/funnel_triggers.py [--n 20000] [--database sqlite|postgresql] [--rounds 3]

Writes N deliveries as the worker does in a batch (one multi-row INSERT of `sending` rows per 50, then one
UPDATE to `sent` per 50), with the triggers and without them (dropped and created again between rounds,
alternately, in one sitting), and prints the median time per delivery of each and the difference. The email
`sent` event is written too; the triggers skip that kind (it moves no count).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from console_map import database_url  # noqa: E402
from sqlalchemy import insert, text, update  # noqa: E402

from nurture.config import load_settings  # noqa: E402
from nurture.runtime import build_runtime  # noqa: E402
from nurture.store.db import upgrade  # noqa: E402
from nurture.store.models import Contact, Delivery, Enrollment, Event  # noqa: E402

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
BATCH = 50
PG_TRIGGERS = ("funnel_delivery_insert", "funnel_delivery_update", "funnel_delivery_delete", "funnel_event_insert",
               "funnel_event_change")
SQLITE_TRIGGERS = ("funnel_delivery_insert", "funnel_delivery_delete", "funnel_delivery_update",
                   "funnel_event_insert", "funnel_event_update", "funnel_event_delete")


def triggers(connection, on: bool, saved: dict[str, str]) -> None:  # noqa: ANN001
    """Drop the triggers (keeping their definitions) or create them again."""
    postgresql = connection.dialect.name == "postgresql"
    for name in PG_TRIGGERS if postgresql else SQLITE_TRIGGERS:
        if not on:
            saved[name] = connection.execute(text(
                "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = :n" if postgresql
                else "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = :n"), {"n": name}).scalar_one()
            connection.execute(text(f"DROP TRIGGER {name}" + (" ON " + ("event" if "event" in name else "delivery")
                                                              if postgresql else "")))
        else:
            connection.execute(text(saved[name]))


def write(rt, first: int, n: int) -> float:  # noqa: ANN001
    """N deliveries for contacts first.. (their enrollments exist), in batches; seconds."""
    began = time.perf_counter()
    for start in range(first, first + n, BATCH):
        ids = range(start, min(start + BATCH, first + n))
        with rt.db.begin() as connection:
            connection.execute(insert(Delivery), [dict(
                id=i, contact_id=i, enrollment_id=i, sequence_id="lead-nurture", sequence_version="v", step_id="edu-1",
                channel="email", kind="educate", recipient="", status="sending", attempts=1, created_at=NOW,
                updated_at=NOW) for i in ids])
        with rt.db.begin() as connection:
            connection.execute(update(Delivery).where(Delivery.id.in_(list(ids))).values(status="sent", sent_at=NOW))
            connection.execute(insert(Event), [dict(contact_id=i, type="email.sent", delivery_id=i, occurred_at=NOW,
                                                    created_at=NOW, data={"sequence": "lead-nurture", "step": "edu-1"})
                                               for i in ids])
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nurture-funnel-triggers-"))
    database, drop = database_url(args.database, work)
    try:
        env = {"NURTURE_ROOT": str(ROOT), "VAR_DIR": str(work / "var"), "DATABASE_URL": database,
               "SECRET_KEY": "bench-secret-key-0123456789", "API_KEY": "bench-api-key-0123456789"}
        rt = build_runtime(load_settings(env), clock=lambda: NOW)
        upgrade(rt.db)
        total = args.n * 2 * args.rounds
        with rt.db.begin() as connection:
            connection.execute(insert(Contact), [dict(id=i, email=f"c{i}@example.com", created_at=NOW, updated_at=NOW,
                                                      first_name="", last_name="", fields={}, tags=[], attribution={})
                                                 for i in range(1, total + 1)])
            connection.execute(insert(Enrollment), [dict(
                id=i, contact_id=i, sequence_id="lead-nurture", status="active", entry=1, sequence_version="v",
                attempts=0, created_at=NOW, updated_at=NOW) for i in range(1, total + 1)])
        saved: dict[str, str] = {}
        times: dict[bool, list[float]] = {True: [], False: []}
        first = 1
        for _ in range(args.rounds):
            for on in (True, False):
                if not on:
                    with rt.db.begin() as connection:
                        triggers(connection, False, saved)
                times[on].append(write(rt, first, args.n) / args.n * 1e6)
                first += args.n
                if not on:
                    with rt.db.begin() as connection:
                        triggers(connection, True, saved)
        with_, without = statistics.median(times[True]), statistics.median(times[False])
        print(f"{args.database}: {with_:.0f} µs per delivery with the triggers, {without:.0f} µs without: "
              f"+{with_ - without:.0f} µs ({(with_ / without - 1) * 100:+.0f}%), medians of {args.rounds} rounds of "
              f"{args.n} (insert sending, update sent, email.sent event; batches of {BATCH})")
        rt.db.dispose()
    finally:
        drop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
