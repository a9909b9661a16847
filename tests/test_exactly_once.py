"""At most once per contact and step, and nothing due skipped: batches run twice, racing workers, a worker
killed mid-batch, Redis flushed. Real Redis, real RQ workers, a real SMTP server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from sqlalchemy import func
from sqlmodel import Session, select

from nurture import jobs
from nurture.delivery import dispatch
from nurture.delivery.transports.smtp import SmtpTransport
from nurture.runtime import use_runtime
from nurture.store import claims as store
from nurture.store.models import Contact, Enrollment, Event
from tests.conftest import ROOT, FakeClock, Received, worker_env
from tests.helpers import add_contact, deliveries, send_due


@pytest.fixture
def real_now(clock: FakeClock) -> FakeClock:
    """Worker subprocesses read the real clock, so in these tests the injected clock starts at real time."""
    clock.now = datetime.now(UTC)
    return clock


@pytest.fixture
def rq_runtime(make_runtime, database_url, smtp_server, redis_url, real_now):  # noqa: ANN001, ANN201
    rt = make_runtime(database_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url, REDIS_URL=redis_url,
                      BATCH_SIZE="5")
    use_runtime(rt)
    yield rt
    use_runtime(None)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and its children (RQ's work horse runs in a session of its own, so killing the
    worker's process group would leave the horse running; a crashed machine leaves neither)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    for victim in [pid, *children]:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


def last_lease(rt) -> datetime:  # noqa: ANN001
    with Session(rt.db) as session:
        until = session.exec(select(func.max(Enrollment.claimed_until))).one()
    return until.replace(tzinfo=UTC) if until.tzinfo is None else until


def recipients(received: list[Received]) -> Counter[str]:
    return Counter(r.rcpt_tos[0] for r in received)


def enroll_many(rt, count: int, sequence: str = "customer") -> list[str]:  # noqa: ANN001
    emails = [f"c{n:03d}@example.com" for n in range(count)]
    for email in emails:
        add_contact(rt, email, sequence)
    return emails


def test_running_a_batch_twice_sends_it_once(rq_runtime, smtp_server) -> None:
    emails = enroll_many(rq_runtime, 12)
    tokens: list[str] = []
    dispatch.claim_batches(rq_runtime, tokens.append, max_batches=10)
    for token in tokens + tokens:
        dispatch.run_batch(rq_runtime, token)
    assert recipients(smtp_server.received) == Counter(emails)


def test_two_claimers_racing_never_share_a_contact(rq_runtime, smtp_server) -> None:
    emails = enroll_many(rq_runtime, 40)
    barrier = threading.Barrier(2)

    def worker() -> None:
        barrier.wait()
        send_due(rq_runtime)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert recipients(smtp_server.received) == Counter(emails)
    assert all(d.status == "sent" for d in deliveries(rq_runtime))


def test_two_rq_worker_processes_deliver_each_step_once(rq_runtime, smtp_server, project, database_url) -> None:
    emails = enroll_many(rq_runtime, 40)
    assert jobs.tick() == 40  # 8 batches of 5, queued in the real Redis
    assert Queue(rq_runtime.settings.queue_name, connection=rq_runtime.redis_connection()).count == 8
    workers = _spawn_workers(rq_runtime, project, database_url, smtp_server, 2)
    for process in workers:
        # communicate, not wait: a worker that logs more than a pipe holds would block on it forever.
        _, errors = process.communicate(timeout=120)
        assert process.returncode == 0, errors.decode()[-2000:]
    assert recipients(smtp_server.received) == Counter(emails)


def _spawn_workers(rt, project: Path, database_url: str, smtp_server, count: int) -> list[subprocess.Popen]:  # noqa: ANN001
    env = worker_env(project, database_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url,
                   REDIS_URL=rt.settings.redis_url, BATCH_SIZE="5")
    return [subprocess.Popen([sys.executable, str(ROOT / "worker.py"), "--no-tick", "--burst"], env=env,
                             cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _ in range(count)]


def test_a_worker_killed_mid_batch_resumes_without_duplicates_or_gaps(rq_runtime, smtp_server, project,
                                                                     database_url, real_now) -> None:
    emails = enroll_many(rq_runtime, 20)
    jobs.tick()
    seen = {"n": 0}
    workers: list[subprocess.Popen] = []

    def kill_on_the_seventh(_item: Received) -> str | None:
        seen["n"] += 1
        if seen["n"] == 7:
            # The worker dies while the server holds message 7 and has not accepted it (no 250 sent).
            kill_tree(workers[0].pid)
            return "421 4.3.0 connection lost"
        return None

    smtp_server.handler.on_data = kill_on_the_seventh
    workers += _spawn_workers(rq_runtime, project, database_url, smtp_server, 1)
    workers[0].wait(timeout=120)
    smtp_server.handler.on_data = None
    assert len(smtp_server.received) == 6
    statuses = Counter(d.status for d in deliveries(rq_runtime))
    assert statuses["sent"] == 6 and statuses["sending"] == 1  # the one in flight when it died

    # RQ retrying the dead worker's jobs before the claims expire sends nothing twice...
    Redis.from_url(rq_runtime.settings.redis_url).flushall()
    assert jobs.tick() == 0  # the dead worker's claims are still leased: nobody else may take them
    # ...and once the lease has run out, the next tick picks everything up again. (The worker renewed the
    # lease of message 7 on its own clock when it reached it, so that is the lease to outlive.)
    real_now.now = last_lease(rq_runtime) + timedelta(seconds=1)
    assert send_due(rq_runtime).get("sent") == 14
    assert recipients(smtp_server.received) == Counter(emails)
    with Session(rq_runtime.db) as session:  # the resend of message 7 is on record, not silent
        assert len(session.exec(select(Event).where(Event.type == "email.interrupted")).all()) == 1


def test_a_job_rerun_after_its_claim_was_retaken_does_nothing(rq_runtime, smtp_server, real_now) -> None:
    emails = enroll_many(rq_runtime, 5)
    tokens: list[str] = []
    dispatch.claim_batches(rq_runtime, tokens.append, max_batches=10)
    real_now.advance(seconds=rq_runtime.settings.claim_lease_seconds + 1)  # the worker holding it vanished
    assert send_due(rq_runtime) == {"sent": 5}  # a later tick re-claimed and sent
    for token in tokens:  # then RQ runs the stale job after all
        assert dispatch.run_batch(rq_runtime, token).counts == {}
    assert recipients(smtp_server.received) == Counter(emails)


def test_a_flushed_redis_loses_no_due_work(rq_runtime, smtp_server, real_now) -> None:
    emails = enroll_many(rq_runtime, 15)
    assert jobs.tick() == 15
    redis = Redis.from_url(rq_runtime.settings.redis_url)
    redis.flushall()  # every queued batch is gone
    queue = Queue(rq_runtime.settings.queue_name, connection=redis)
    assert queue.count == 0
    real_now.advance(seconds=rq_runtime.settings.claim_lease_seconds + 1)
    assert jobs.tick() == 15  # the database still knows what is due
    SimpleWorker([queue], connection=redis).work(burst=True)
    assert recipients(smtp_server.received) == Counter(emails)


def test_the_tick_holds_back_when_batches_pile_up(rq_runtime, smtp_server) -> None:
    enroll_many(rq_runtime, 200)
    assert jobs.tick() == rq_runtime.settings.max_pending_batches * 5
    assert jobs.tick() == 0  # the queue is full: claim nothing more until workers catch up


def test_a_batch_whose_claim_was_taken_over_sends_nothing_more(rq_runtime, smtp_server, real_now) -> None:
    emails = enroll_many(rq_runtime, 5)  # one batch of 5
    first: list[str] = []
    dispatch.claim_batches(rq_runtime, first.append, max_batches=1)
    lease = rq_runtime.settings.claim_lease_seconds
    second: list[str] = []
    stalled: list[bool] = []

    def stall_after_two() -> datetime:
        # The worker stalls after its second message for longer than the lease (a GC pause, a slow
        # disk); meanwhile a tick hands the rest of its rows to another worker.
        if len(smtp_server.received) == 2 and not stalled:
            stalled.append(True)
            real_now.advance(seconds=lease + 1)
            dispatch.claim_batches(rq_runtime, second.append, max_batches=1)
        return real_now()

    rq_runtime.clock = stall_after_two
    report = dispatch.run_batch(rq_runtime, first[0])
    assert report.counts == {"sent": 2, "claim-lost": 3}
    assert recipients(smtp_server.received) == Counter(emails[:2])  # nothing after it lost the claim
    assert dispatch.run_batch(rq_runtime, second[0]).counts == {"sent": 3}
    assert recipients(smtp_server.received) == Counter(emails)


def test_a_batch_slower_than_its_lease_keeps_its_claim(rq_runtime, smtp_server, real_now) -> None:
    emails = enroll_many(rq_runtime, 5)
    tokens: list[str] = []
    dispatch.claim_batches(rq_runtime, tokens.append, max_batches=1)
    lease = rq_runtime.settings.claim_lease_seconds
    stolen: list[str] = []

    def slow_server(_item: Received) -> None:
        # Each message takes 0.4 of a lease, so the batch takes two leases; a tick runs after each one.
        real_now.advance(seconds=lease * 0.4)
        dispatch.claim_batches(rq_runtime, stolen.append, max_batches=1)

    smtp_server.handler.on_data = slow_server
    assert dispatch.run_batch(rq_runtime, tokens[0]).counts == {"sent": 5}
    assert stolen == []  # no tick found a row of the live batch to take
    assert recipients(smtp_server.received) == Counter(emails)


def test_a_batch_that_waited_in_the_queue_for_most_of_its_lease_keeps_its_claim(rq_runtime, smtp_server,
                                                                                 real_now) -> None:
    emails = enroll_many(rq_runtime, 5)
    tokens: list[str] = []
    dispatch.claim_batches(rq_runtime, tokens.append, max_batches=1)
    lease = rq_runtime.settings.claim_lease_seconds
    real_now.advance(seconds=lease * 0.9)  # the queue was long: the job starts with a tenth of its lease left
    stolen: list[str] = []

    def slow_server(_item: Received) -> None:
        real_now.advance(seconds=lease * 0.2)
        dispatch.claim_batches(rq_runtime, stolen.append, max_batches=1)

    smtp_server.handler.on_data = slow_server
    assert dispatch.run_batch(rq_runtime, tokens[0]).counts == {"sent": 5}
    assert stolen == []
    assert recipients(smtp_server.received) == Counter(emails)


def test_a_send_that_outlives_its_lease_is_on_the_record_twice_not_silently(rq_runtime, smtp_server,
                                                                            real_now) -> None:
    emails = enroll_many(rq_runtime, 5)
    first: list[str] = []
    dispatch.claim_batches(rq_runtime, first.append, max_batches=1)
    second: list[str] = []

    def frozen_mid_send(item: Received) -> None:
        # The server holds the first message for longer than a lease; another worker takes the batch over
        # and has already opened that step's delivery when the 250 finally comes back.
        if second:
            return
        real_now.advance(seconds=rq_runtime.settings.claim_lease_seconds + 1)
        dispatch.claim_batches(rq_runtime, second.append, max_batches=1)
        with Session(rq_runtime.db, expire_on_commit=False) as session:
            taken = session.exec(select(Enrollment).join(Contact, Contact.id == Enrollment.contact_id)
                                 .where(Contact.email == item.rcpt_tos[0])).one()
            assert store.open_delivery(session, taken, "thank-you", "email", "thank-you", item.rcpt_tos[0],
                                       second[0], real_now()).send
            session.commit()

    smtp_server.handler.on_data = frozen_mid_send
    assert dispatch.run_batch(rq_runtime, first[0]).counts == {"sent-late": 1, "claim-lost": 4}
    smtp_server.handler.on_data = None
    assert dispatch.run_batch(rq_runtime, second[0]).counts == {"sent": 5}
    late = smtp_server.received[0].rcpt_tos[0]
    assert recipients(smtp_server.received) == Counter(emails) + Counter([late])
    with Session(rq_runtime.db) as session:  # both copies are on the timeline, and the second is marked
        types = Counter(e.type for e in session.exec(select(Event).join(Contact, Contact.id == Event.contact_id)
                                                     .where(Contact.email == late)))
    assert types["email.sent"] == 2 and types["email.interrupted"] == 1


class Crash(BaseException):
    """The process dying mid-batch: not an Exception, so nothing in the send path catches it."""


def test_a_crash_mid_chunk_marks_only_the_message_in_flight(rq_runtime, smtp_server, real_now,
                                                             monkeypatch) -> None:
    # A chunk writes all its delivery rows before sending the first; the ones never handed to the server
    # must not be taken for interrupted sends when another worker picks them up.
    emails = enroll_many(rq_runtime, 5)
    first: list[str] = []
    dispatch.claim_batches(rq_runtime, first.append, max_batches=1)
    real_start = SmtpTransport.start  # every send begins there (`send` is start + finish)

    def dies_at_the_third(self: SmtpTransport, message: object, time_left: float | None = None) -> None:
        if len(smtp_server.received) == 2:
            raise Crash
        real_start(self, message, time_left)

    monkeypatch.setattr(SmtpTransport, "start", dies_at_the_third)
    with pytest.raises(Crash):
        dispatch.run_batch(rq_runtime, first[0])
    assert sorted(d.status for d in deliveries(rq_runtime)) == ["queued", "queued", "sending", "sent", "sent"]
    monkeypatch.setattr(SmtpTransport, "start", real_start)
    real_now.advance(seconds=rq_runtime.settings.claim_lease_seconds + 1)
    second: list[str] = []
    dispatch.claim_batches(rq_runtime, second.append, max_batches=1)
    assert dispatch.run_batch(rq_runtime, second[0]).counts == {"sent": 3}
    assert recipients(smtp_server.received) == Counter(emails)
    with Session(rq_runtime.db) as session:
        interrupted = session.exec(select(Event).where(Event.type == "email.interrupted")).all()
    assert len(interrupted) == 1  # the third, which was `sending` when the process died; not the queued two
    assert {d.status for d in deliveries(rq_runtime)} == {"sent"}


def test_a_row_marked_sending_with_the_last_record_goes_back_to_queued_when_the_lease_ran_out(
        rq_runtime, smtp_server, real_now) -> None:
    # A message's `sending` mark is committed with the record of the message before it, before its own
    # clock reading. A batch that stalls right there (past its lease) must put the row back: never handed
    # to the server, it must not be taken for an interrupted send by the worker that takes it over.
    emails = enroll_many(rq_runtime, 5)
    first: list[str] = []
    dispatch.claim_batches(rq_runtime, first.append, max_batches=1)
    second: list[str] = []
    stalled: list[bool] = []

    def stall_after_two() -> datetime:
        if len(smtp_server.received) == 2 and not stalled:
            stalled.append(True)
            real_now.advance(seconds=rq_runtime.settings.claim_lease_seconds + 1)
            dispatch.claim_batches(rq_runtime, second.append, max_batches=1)
            assert sorted(d.status for d in deliveries(rq_runtime)) == ["queued", "queued", "sending", "sent",
                                                                        "sent"]
        return real_now()

    rq_runtime.clock = stall_after_two
    assert dispatch.run_batch(rq_runtime, first[0]).counts == {"sent": 2, "claim-lost": 3}
    assert sorted(d.status for d in deliveries(rq_runtime)) == ["queued", "queued", "queued", "sent", "sent"]
    assert dispatch.run_batch(rq_runtime, second[0]).counts == {"sent": 3}
    assert recipients(smtp_server.received) == Counter(emails)
    with Session(rq_runtime.db) as session:
        assert session.exec(select(Event).where(Event.type == "email.interrupted")).all() == []
