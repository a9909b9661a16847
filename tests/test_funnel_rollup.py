"""The funnel's rollup kept up by the worker: the tick folds a little and queues one job for the rest, which
the worker runs; `nurture funnel status | catch-up | rebuild` (docs/console.md). Exactness itself is
tests/test_funnel_exact.py's."""

from __future__ import annotations

import re
import sqlite3

from click.testing import CliRunner
from redis import Redis
from rq import Queue, SimpleWorker
from sqlmodel import Session

from nurture import jobs
from nurture.cli import main
from nurture.insight.sequence_stats import FOLD_IN_TICK
from nurture.runtime import use_runtime
from nurture.store import funnel_rollup
from tests.conftest import worker_env
from tests.funnel_support import backlog, fold_all, fold_some
from tests.helpers import add_contact, send_due
from tests.test_funnel_exact import World, assert_same, from_rollup


def test_the_tick_folds_some_and_queues_one_job_that_folds_the_rest(make_runtime, database_url, redis_url) -> None:
    rt = make_runtime(database_url, REDIS_URL=redis_url)
    world = World(rt, 11)
    world.grow(120)
    waiting = backlog(rt)
    assert waiting > FOLD_IN_TICK
    use_runtime(rt)
    try:
        jobs.tick()
        assert backlog(rt) == waiting - FOLD_IN_TICK
        jobs.tick()  # a job already waiting is not queued twice
        queue = Queue(rt.settings.queue_name, connection=Redis.from_url(redis_url))
        assert queue.job_ids == ["fold-funnel"]
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
    finally:
        use_runtime(None)
    assert backlog(rt) == 0
    assert_same(world, from_rollup)


def test_a_tick_with_little_to_fold_folds_it_all_and_queues_nothing(make_runtime, sqlite_url, redis_url) -> None:
    rt = make_runtime(sqlite_url, REDIS_URL=redis_url)
    add_contact(rt, "ann@example.com", "lead-nurture")
    send_due(rt)
    assert backlog(rt) > 0
    use_runtime(rt)
    try:
        jobs.tick()
    finally:
        use_runtime(None)
    assert backlog(rt) == 0
    assert "fold-funnel" not in Queue(rt.settings.queue_name, connection=Redis.from_url(redis_url)).job_ids


def test_nurture_funnel_status_catch_up_and_rebuild(sqlite_url, project, monkeypatch) -> None:
    for key, value in worker_env(project, sqlite_url).items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    for name in ("ann", "bob"):
        added = runner.invoke(main, ["contacts", "add", f"{name}@example.com", "--sequence", "lead-nurture"])
        assert added.exit_code == 0
    assert runner.invoke(main, ["send-due"]).exit_code == 0
    status = runner.invoke(main, ["funnel", "status"])
    assert status.exit_code == 0 and int(re.match(r"(\d+) changes waiting", status.output)[1]) > 0
    assert runner.invoke(main, ["funnel", "catch-up"]).output.startswith("folded ")
    assert runner.invoke(main, ["funnel", "status"]).output == "0 changes waiting to be folded\n"
    rebuilt = runner.invoke(main, ["funnel", "rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "rebuilt: 2 contacts' places in their sequences' funnels; 0 dirty left" in rebuilt.output
    stats = runner.invoke(main, ["stats", "lead-nurture", "--since", "7d"])
    assert "whole sequence: 2 entered, 2 sent" in stats.output


# --- SQLite: the fold works its groups out in a read, and writes under the lock only what it must -------------

def grown(rt, seed: int, contacts: int) -> tuple:  # noqa: ANN001
    world = World(rt, seed)
    world.grow(contacts)
    return rt, world


def test_senders_can_write_while_a_fold_works_its_groups_out_and_their_changes_are_folded_later(
        make_runtime, sqlite_url, monkeypatch) -> None:  # noqa: ANN001
    """The read half takes no write lock (store.db.READ_SNAPSHOT): another process's BEGIN IMMEDIATE gets the
    lock at once, without waiting, and what it writes then is left dirty and folded by the next fold."""
    rt, world = grown(make_runtime(sqlite_url), seed=5, contacts=40)
    fresh, writes = funnel_rollup._fresh, []

    def a_sender_writes_meanwhile(session, dialect: str) -> None:  # noqa: ANN001
        fresh(session, dialect)
        other = sqlite3.connect(sqlite_url.split("///", 1)[1], timeout=0, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # raises "database is locked" if the fold held the write lock
        other.execute("ROLLBACK")
        other.close()
        if not writes:
            writes.append(True)
            world.grow(3)  # new contacts, their deliveries and events, and their dirty rows

    monkeypatch.setattr(funnel_rollup, "_fresh", a_sender_writes_meanwhile)
    fold_all(rt)
    assert writes and backlog(rt) == 0
    assert_same(world, from_rollup)


def test_a_fold_that_commits_between_another_folds_read_and_write_makes_it_start_again(
        make_runtime, sqlite_url, monkeypatch) -> None:  # noqa: ANN001
    """Two folds of the same pairs: the one that read first must not write its older groups over the newer
    ones of the one that wrote first."""
    rt, world = grown(make_runtime(sqlite_url), seed=6, contacts=30)
    fresh, reads = funnel_rollup._fresh, []

    def another_fold_commits_meanwhile(session, dialect: str) -> None:  # noqa: ANN001
        fresh(session, dialect)
        reads.append(True)
        if len(reads) == 1:
            world.grow(2)
            with monkeypatch.context() as inner:
                inner.setattr(funnel_rollup, "_fresh", fresh)
                fold_some(rt, 10_000)  # it reads after the growth, and commits first

    monkeypatch.setattr(funnel_rollup, "_fresh", another_fold_commits_meanwhile)
    with Session(rt.db) as session:
        # Its read is thrown away, not written (it would say how many it folded): read again, nothing is left.
        assert funnel_rollup.fold(session, rt.clock(), limit=10_000) == 0
    assert len(reads) == 1 and backlog(rt) == 0
    assert_same(world, from_rollup)
