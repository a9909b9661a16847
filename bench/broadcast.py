"""Broadcasts over a large segment: `plan` and writing the enrollments (the tick's materialise_due), a page
of 1,000 members at a time, on SQLite and PostgreSQL. Nothing is sent.

    python bench/broadcast.py [--contacts 100000] [--database sqlite|postgresql|both]

`--contacts` leads (the segment `leads`: {stage: lead}), 2 % suppressed, 3 % without email consent, a
third with a timezone (the own-window broadcast places each at its window's opening). Prints the wall and
CPU time of `plan` and of writing every enrollment, and checks one enrollment per member, and that a
second run writes none.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

from harness import log, machine, postgres_database, project_env, project_runtime
from sqlalchemy import func, insert, select
from sqlmodel import Session

from nurture.delivery import broadcasts
from nurture.insight.broadcast_plan import make_plan
from nurture.store.db import upgrade
from nurture.store.models import Contact, Enrollment, Suppression

ZONES = ["America/New_York", "Europe/Paris", None]
BROADCAST = """id: bench
name: Bench
segment: leads
template: broadcasts/open-studio
subject: Open studio
send_at: now
timing: own-window
"""


def fill(rt, count: int) -> None:  # noqa: ANN001
    now = rt.clock()
    rows = [dict(email=f"b{n:07d}@example.com", first_name="", last_name="", fields={}, tags=[], attribution={},
                 stage="lead", score=0.0, email_status="none" if n % 100 < 3 else "subscribed", sms_status="none",
                 timezone=ZONES[n % 3], created_at=now, updated_at=now) for n in range(count)]
    with Session(rt.db) as session:
        for start in range(0, count, 10_000):
            session.execute(insert(Contact.__table__), rows[start:start + 10_000])  # type: ignore[attr-defined]
        session.execute(insert(Suppression.__table__), [  # type: ignore[attr-defined]
            dict(address=r["email"], channel="email", reason="bench", created_at=now) for r in rows[3::50]])
        session.commit()


def timed(what: str, fn):  # noqa: ANN001, ANN201
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    log(f"  {what}: {time.perf_counter() - wall:.2f} s wall, {time.process_time() - cpu:.2f} s CPU")
    return result


def run(database_url: str, contacts: int, tmp: Path) -> None:
    env = project_env(tmp, database_url)
    root = Path(env["NURTURE_ROOT"])
    import shutil

    shutil.copytree(Path(__file__).resolve().parent.parent / "segments", root / "segments")
    (root / "segments" / "leads.yaml").write_text("id: leads\nname: Leads\ncondition: {stage: lead}\n")
    (root / "broadcasts").mkdir()
    (root / "broadcasts" / "bench.yaml").write_text(BROADCAST)
    rt = project_runtime(env)
    upgrade(rt.db)
    fill(rt, contacts)
    with Session(rt.db, expire_on_commit=False) as session:
        assert broadcasts.read_files(rt, session, rt.clock()) == []
        session.commit()
        plan = timed("plan", lambda: make_plan(rt, session, "bench"))
        log(f"    members {plan.tally.members}, will get it {plan.tally.will_get}, held {plan.tally.held}")
        broadcasts.start(rt, session, "bench", "bench", rt.clock(), skip_test=True)
        session.commit()
    written = timed("write the enrollments", lambda: sum(iter(lambda: broadcasts.materialise_due(rt, 1000), 0)))
    again = broadcasts.materialise_due(rt)
    with Session(rt.db) as session:
        stored = session.execute(select(func.count()).select_from(Enrollment)).scalar_one()
    assert written == stored == contacts and again == 0, (written, stored, again)
    log(f"    {written} enrollments, one per member; a second run wrote {again}")
    rt.db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    log(machine())
    for kind in ("sqlite", "postgresql") if args.database == "both" else (args.database,):
        log(f"{kind}, {args.contacts} contacts:")
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
            url = f"sqlite:///{tmp}/bench.db" if kind == "sqlite" else stack.enter_context(postgres_database())
            run(url, args.contacts, Path(tmp))


if __name__ == "__main__":
    main()
