"""P7: the console's contact search over 1,000,000 contacts on PostgreSQL (target: under 200 ms).

    .venv/bin/python bench/contact_search.py [--n 1000000] [--repeat 7]

Fills a fresh database (migrated to head, so with migration 0008_contacts's indexes, and pg_trgm when this role may
create it) with N contacts in one INSERT ... SELECT from generate_series: names drawn from 40 first and 40
last names, addresses unique; a tenth tagged vip, half enrolled (a third of those in `customer`), a
hundredth unsubscribed, stages spread, each drawn by its own hash of the id (independent of the names). Then
it runs the searches an owner types — through people.directory.listing, the function the console page and
GET /api/contacts call, first page and a deep page — `--repeat` times each on a warm cache, and prints the
median of each and the slowest median as the TARGET line.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from harness import postgres_database, summary
from sqlalchemy import text
from sqlmodel import Session

from nurture.config import load_settings
from nurture.people import directory
from nurture.runtime import build_runtime
from nurture.store import contact_list
from nurture.store.db import upgrade

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 200.0
FIRST = ["mia", "theo", "priya", "jonas", "ann", "bob", "carla", "dan", "eva", "femi", "gus", "hana", "ivan", "jin",
         "kofi", "lena", "marco", "nora", "omar", "paula", "quinn", "rosa", "sami", "tara", "umar", "vera", "wes",
         "xena", "yusuf", "zoe", "alba", "bram", "cleo", "dev", "elif", "finn", "gaia", "hugo", "iris", "jude"]
LAST = ["okafor", "brandt", "raman", "eklund", "lee", "smith", "diaz", "nguyen", "kowalski", "haddad", "silva",
        "tanaka", "moreau", "rossi", "novak", "jensen", "murphy", "garcia", "kim", "ahmed", "costa", "fischer",
        "ivanova", "lopez", "martin", "nakamura", "olsen", "perez", "quinlan", "reyes", "sato", "torres", "ueda",
        "vargas", "weber", "xu", "yilmaz", "zhang", "abara", "berg"]

SEED = """
INSERT INTO contact (id, email, first_name, last_name, fields, tags, stage, score, email_status, sms_status,
                     attribution, created_at, updated_at)
SELECT i, f.name || '.' || l.name || i || '@' || (ARRAY['gmail.com','example.com','studio.org','mail.net'])[1 + i % 4],
       initcap(f.name), initcap(l.name), '{}',
       CAST(CASE WHEN abs(hashtext('tag' || i)) % 10 = 0 THEN '["vip"]' ELSE '["guide"]' END AS json),
       (ARRAY['lead','lead','lead','prospect','customer'])[1 + abs(hashtext('stage' || i)) % 5], 0,
       CASE WHEN abs(hashtext('status' || i)) % 100 = 0 THEN 'unsubscribed' ELSE 'subscribed' END, 'none', '{}',
       now() - make_interval(secs => i), now()
FROM generate_series(1, :n) AS i
JOIN unnest(CAST(:first AS text[])) WITH ORDINALITY AS f(name, k) ON f.k = 1 + i % 40
JOIN unnest(CAST(:last AS text[])) WITH ORDINALITY AS l(name, k) ON l.k = 1 + (i / 40) % 40
"""
ENROLL = """
INSERT INTO enrollment (contact_id, sequence_id, sequence_version, entry, step_id, due_at, status, attempts,
                        step_entered_at, created_at, updated_at)
SELECT i, CASE WHEN abs(hashtext('sequence' || i)) % 3 = 0 THEN 'customer' ELSE 'lead-nurture' END, '', 1,
       'edu-1', now() + interval '1 day', 'active', 0, now(), now(), now()
FROM generate_series(1, :n) AS i WHERE abs(hashtext('enrolled' || i)) % 2 = 0
"""


def searches(n: int) -> list[tuple[str, dict[str, str], int | None]]:
    """(label, query string, cursor): what an owner types, common and rare, a miss, filters, a deep page."""
    middle = (n // 2) // 1600 * 1600 + 41  # theo brandt: FIRST[i % 40] and LAST[(i // 40) % 40] are both 1
    rare = f"theo.brandt{middle}@"  # one address, typed from its start
    return [
        ("address prefix, common 'mia.'", {"q": "mia."}, None),
        ("address prefix, one contact", {"q": rare}, None),
        ("full name 'Priya Raman'", {"q": "priya raman"}, None),
        ("last name 'eklund'", {"q": "eklund"}, None),
        ("inside an address 'studio.org' (trigram)", {"q": "studio.org"}, None),
        ("inside an address, one contact", {"q": f"brandt{middle}@"}, None),
        ("no match 'zzqx'", {"q": "zzqx"}, None),
        ("tag vip", {"tag": "vip"}, None),
        ("sequence customer", {"sequence": "customer"}, None),
        ("unsubscribed + stage customer", {"email_status": "unsubscribed", "stage": "customer"}, None),
        ("'ann' + tag vip", {"q": "ann", "tag": "vip"}, None),
        ("'okafor' + unsubscribed", {"q": "okafor", "email_status": "unsubscribed"}, None),
        ("'ann' + sequence customer", {"q": "ann", "sequence": "customer"}, None),
        ("stage customer + tag vip", {"stage": "customer", "tag": "vip"}, None),
        ("'eklund' + a tag nobody has", {"q": "eklund", "tag": "wheel"}, None),
        ("everyone, page at the middle", {}, n // 2),
        ("'lee' page at the middle", {"q": "lee"}, n // 2),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--database-url", help="an existing database to use (seeded first if it has no contacts); "
                        "default: a fresh one, dropped after")
    args = parser.parse_args()
    if args.database_url:
        run(args.database_url, args.n, args.repeat)
        return
    with postgres_database() as url:
        run(url, args.n, args.repeat)


def run(url: str, n: int, repeat: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="nurture-search-bench-"))
    env = {"NURTURE_ROOT": str(ROOT), "VAR_DIR": str(work / "var"), "DATABASE_URL": url,
           "SECRET_KEY": "bench-secret-key-0123456789", "API_KEY": "bench-api-key-0123456789"}
    rt = build_runtime(load_settings(env))
    upgrade(rt.db)
    seed(rt, n)
    with Session(rt.db) as session:
        mode = "prefix + trigram" if contact_list.trigrams(session) else "prefix only (no pg_trgm)"
    print(f"search: {mode}")
    worst = 0.0
    for label, query, cursor in searches(n):
        median, found = measure(rt, query, cursor, repeat)
        worst = max(worst, median)
        print(f"  {median:7.1f} ms  {found:>3} rows  {label}")
    summary("P7 contact search (postgresql)", f"slowest median {worst:.1f} ms over {n:,} contacts",
            f"< {TARGET_MS:.0f} ms", worst < TARGET_MS)
    rt.db.dispose()


def seed(rt, n: int) -> None:  # noqa: ANN001
    with rt.db.connect() as connection:
        if connection.execute(text("SELECT count(*) FROM contact")).scalar_one():
            return
    started = time.perf_counter()
    with rt.db.begin() as connection:
        connection.execute(text(SEED), {"n": n, "first": FIRST, "last": LAST})
        connection.execute(text(ENROLL), {"n": n})
    with rt.db.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE contact"))
        connection.execute(text("VACUUM ANALYZE enrollment"))
    print(f"seeded {n:,} contacts, about {n // 2:,} enrollments in {time.perf_counter() - started:.0f} s")


def measure(rt, query: dict[str, str], cursor: int | None, repeat: int) -> tuple[float, int]:  # noqa: ANN001
    filters = directory.filters_from(query)
    runs, found = [], 0
    with Session(rt.db) as session:
        directory.listing(session, filters, directory.DEFAULT_LIMIT, cursor)  # warm: plan and pages cached
        for _ in range(repeat):
            start = time.perf_counter()
            found = len(directory.listing(session, filters, directory.DEFAULT_LIMIT, cursor).rows)
            runs.append((time.perf_counter() - start) * 1000)
    return statistics.median(runs), found


if __name__ == "__main__":
    main()
