"""Variant assignment is stable across 1,000 contacts and two workers: the same contacts sent by two RQ
worker processes at once (database A), and again by a third, alone, with another hash seed (database B),
get the same variant each — the one the pure function gives in this process — and the split of the sent
is within 2 points of the weights. Real Redis, real RQ workers, a real SMTP server."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rq import Queue
from sqlmodel import Session, select

from nurture import jobs
from nurture.people.contacts import ContactInput, enroll, upsert_contact
from nurture.rules import experiments
from nurture.runtime import Runtime, use_runtime
from nurture.store.models import Contact, Delivery
from tests.conftest import ROOT, FakeClock, SmtpServer, worker_env, write_sequence
from tests.experiments_support import SUBJECTS, TRIAL, trial

CONTACTS = 1000
SETTINGS = {"EMAIL_BACKEND": "smtp", "BATCH_SIZE": "50", "MAX_PENDING_BATCHES": "100"}


@pytest.fixture
def real_now(clock: FakeClock) -> FakeClock:
    """The worker processes read the real clock, so the injected one starts at real time."""
    clock.now = datetime.now(UTC)
    return clock


def run_in_workers(make_runtime, project: Path, database_url: str, redis_url: str, smtp_server: SmtpServer,
                   hash_seeds: tuple[str, ...]) -> dict[str, str]:  # noqa: ANN001
    """Enroll the contacts, queue every batch in Redis, and let one worker process per hash seed send them
    (burst: they stop when the queue is empty). Returns email -> variant as the database records it."""
    rt: Runtime = make_runtime(database_url, SMTP_URL=smtp_server.url, REDIS_URL=redis_url, **SETTINGS)
    use_runtime(rt)
    try:
        _enroll(rt)
        assert jobs.tick() == CONTACTS
        queued = Queue(rt.settings.queue_name, connection=rt.redis_connection()).job_ids
        assert sum(job.startswith("batch-") for job in queued) == CONTACTS // 50
        env = worker_env(project, database_url, SMTP_URL=smtp_server.url, REDIS_URL=redis_url, **SETTINGS)
        workers = [subprocess.Popen([sys.executable, str(ROOT / "worker.py"), "--no-tick", "--burst"],
                                    env={**env, "PYTHONHASHSEED": seed}, cwd=ROOT, start_new_session=True,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for seed in hash_seeds]
        for process in workers:
            # communicate, not wait: a worker that logs more than a pipe holds would block on it forever.
            _, errors = process.communicate(timeout=600)
            assert process.returncode == 0, errors.decode()[-2000:]
        with Session(rt.db) as session:
            rows = session.exec(select(Contact.email, Delivery.variant)
                                .join(Delivery, Delivery.contact_id == Contact.id)).all()
        return dict(rows)
    finally:
        use_runtime(None)


def _enroll(rt: Runtime) -> None:
    sequence = rt.sequences.get("trial")
    assert sequence is not None
    with Session(rt.db) as session:
        for n in range(CONTACTS):
            contact, _ = upsert_contact(session, ContactInput(email=f"c{n:04d}@example.com"), rt.clock())
            enroll(session, contact, sequence, rt.clock())
        session.commit()


def contact_ids(make_runtime, database_url: str) -> dict[str, int]:  # noqa: ANN001
    with Session(make_runtime(database_url).db) as session:
        return dict(session.exec(select(Contact.email, Contact.id)).all())


def test_two_workers_and_a_rerun_give_every_contact_the_same_variant(make_runtime, project, tmp_path, redis_url,
                                                                     smtp_server, real_now) -> None:  # noqa: ANN001
    write_sequence(project, "trial", TRIAL)
    first_db, second_db = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    first = run_in_workers(make_runtime, project, first_db, redis_url, smtp_server, ("1", "2"))
    mailed_first = {r.rcpt_tos[0]: SUBJECTS[r.message["Subject"]] for r in smtp_server.received}
    assert len(smtp_server.received) == len(mailed_first)  # each contact once
    second = run_in_workers(make_runtime, project, second_db, redis_url, smtp_server, ("3",))

    assert first == second == mailed_first  # the recorded variant is the one each contact was mailed
    ids = contact_ids(make_runtime, first_db)
    assert ids == contact_ids(make_runtime, second_db)
    sequence = trial()
    held = {email for email, n in ids.items() if experiments.held_out(sequence, n)}
    assert set(first) == set(ids) - held  # the holdout got nothing
    assert first == {email: experiments.variant_for("trial", sequence.steps[0], ids[email]).id for email in first}

    split = Counter(first.values())
    sent = sum(split.values())
    assert abs(split["A"] / sent - 0.7) < 0.02 and abs(split["B"] / sent - 0.3) < 0.02
    assert abs(len(held) / CONTACTS - 0.1) < 0.02
    print(f"\n{CONTACTS} contacts: {len(held)} held out; sent {sent}: A {split['A']} ({split['A'] / sent:.1%}), "
          f"B {split['B']} ({split['B'] / sent:.1%})")
