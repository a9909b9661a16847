"""P6 import: 100,000 CSV rows imported into SQLite and PostgreSQL, in rows/s; target under a minute each.

    python bench/import.py [--rows 100000] [--database sqlite|postgresql|both]

A CSV file of `--rows` rows like a real export (email, first and last name, a phone number on every other
row, tags, a company as a custom field, a timezone on some; 1 % bad addresses, 1 % repeated addresses) is
imported through the code `nurture contacts import` runs (people.importing.run), on a fresh database
each (PostgreSQL: created for the run on BENCH_POSTGRES_URL and dropped at the end), three ways:

  new        every row a new contact, with --consent/--consent-basis and --sequence lead-nurture: the most
             writes a row can make (contact, three timeline events, a consent row, an enrollment)
  again      the same file once more: every row a known contact, merged (the lookups, nothing to write)
  preview    the same file as the console's preview and --dry-run check it (nothing written)

Checks: the database holds one contact, one consent row and one enrollment per good row. The target is
on `new`: 100,000 rows under 60 s of wall time, i.e. >= 1,667 rows/s. Each figure is printed with this
process's CPU time too: on a shared machine the wall clock also counts the time other processes held the
cores (PostgreSQL's own CPU, in its server process, is not in that figure).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from harness import SetupError, log, machine, postgres_database, project_env, project_runtime, summary
from sqlalchemy import func, select
from sqlmodel import Session

from nurture.people import importing
from nurture.people.import_file import parse_csv
from nurture.rules import import_mapping
from nurture.store.db import upgrade
from nurture.store.models import Consent, Contact, Enrollment

TARGET_SECONDS = 60.0
TARGET_ROWS = 100_000
ZONES = ["America/New_York", "America/Chicago", "Europe/Paris", ""]


def make_csv(rows: int) -> tuple[bytes, int]:
    """The file, and how many of its rows are good (neither a bad address nor a repeat)."""
    rng = random.Random(6)
    lines = ["Email,First Name,Last Name,Phone,Company,Tags,Time zone"]
    good = 0
    for i in range(rows):
        if i % 100 == 37:
            email = f"not-an-address-{i}"
        elif i % 100 == 71:
            email = f"person{i - 1:07d}@example.com"  # the row before's address again
        else:
            email, good = f"person{i:07d}@example.com", good + 1
        phone = f"+1 503 {rng.randint(200, 999)} {rng.randint(0, 9999):04d}" if i % 2 else ""
        lines.append(f'{email},Ann{i},Lee,{phone},Studio {i % 500},"clay, wheel",{ZONES[i % 4]}')
    return ("\n".join(lines) + "\n").encode(), good


def server_cpu(db_name: str | None) -> float:
    """CPU seconds used so far by the PostgreSQL backends serving `db_name` (Linux /proc; 0 elsewhere)."""
    if db_name is None:
        return 0.0
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and db_name.encode() in (proc / "cmdline").read_bytes():
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def count(session: Session, model: type) -> int:
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def measure(database: str, data: bytes, good: int, rows: int) -> float:
    """Seconds for the `new` import (after printing all three figures)."""
    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="nurture-bench-import-"))
        stack.callback(shutil.rmtree, tmp, True)
        url = stack.enter_context(postgres_database()) if database == "postgresql" else f"sqlite:///{tmp / 'n.db'}"
        rt = project_runtime(project_env(tmp, url))
        stack.callback(rt.db.dispose)
        upgrade(rt.db)
        csv_file = parse_csv(data, "bench.csv")
        mapping = import_mapping.build(csv_file.headers)
        opts = importing.options("bench.csv", rt.sequences.get("lead-nurture"), "Yes, send me studio news",
                                 "consent", rt.sequences.lifecycle.stages)
        times = {}
        db_name = url.rsplit("/", 1)[-1] if database == "postgresql" else None
        for name, write in (("new", True), ("again", True), ("preview", False)):
            start, cpu, server = time.perf_counter(), time.process_time(), server_cpu(db_name)
            report = importing.run(rt.db, csv_file, mapping, opts, rt.clock(), write=write)
            times[name], cpu = time.perf_counter() - start, time.process_time() - cpu
            server = f"; PostgreSQL's CPU {server_cpu(db_name) - server:.1f} s" if db_name else ""
            log(f"{database} {name}: {rows:,} rows in {times[name]:.1f} s = {rows / times[name]:,.0f} rows/s; "
                f"this process's CPU {cpu:.1f} s = {rows / cpu:,.0f} rows per CPU-second{server} "
                f"({', '.join(f'{n} {o}' for o, n in report.counts.items())}; load {os.getloadavg()[0]:.1f})")
        with Session(rt.db) as session:
            found = (count(session, Contact), count(session, Consent), count(session, Enrollment))
        if found != (good, good, good):
            raise SetupError(f"{database}: expected {good} contacts, consent rows and enrollments, found {found}")
        return times["new"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args(argv)
    data, good = make_csv(args.rows)
    log(f"setup: {machine()}; {args.rows:,} rows, {len(data) / 1e6:.1f} MB, {good:,} good")
    try:
        for database in ("sqlite", "postgresql") if args.database == "both" else (args.database,):
            seconds = measure(database, data, good, args.rows)
            rate, needed = args.rows / seconds, TARGET_ROWS / TARGET_SECONDS  # a --rows run is judged by its rate
            summary(f"P6 import ({database})", f"{args.rows:,} rows in {seconds:.1f} s = {rate:,.0f} rows/s",
                    f">= {needed:,.0f} rows/s, i.e. {TARGET_ROWS:,} rows < {TARGET_SECONDS:.0f} s", rate >= needed)
    except SetupError as exc:
        log(f"bench: setup failed: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
