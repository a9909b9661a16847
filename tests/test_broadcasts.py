"""Broadcasts (docs/broadcasts.md): a one-off message to a segment, sent through the one send path — exactly
once per contact even when started twice and sent by two workers; held back by suppression, consent and
the frequency cap; a test send to the owner first; `plan` counting what the worker will do.

Real Redis, real RQ worker processes, a real SMTP server (aiosmtpd), SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session

from nurture import jobs
from nurture.cli import main
from nurture.delivery import broadcasts
from nurture.insight.broadcast_plan import make_plan
from nurture.rules.broadcasts import BroadcastError
from nurture.runtime import use_runtime
from tests.broadcasts_support import (
    add_broadcast_files,
    broadcast_deliveries,
    broadcast_enrollments,
    broadcast_file,
    crowd,
)
from tests.conftest import ROOT, FakeClock, worker_env
from tests.helpers import send_due

OWNER = "owner@juniper.example"


@pytest.fixture
def real_now(clock: FakeClock) -> FakeClock:
    """Worker processes read the real clock, so the injected one starts at real time."""
    clock.now = datetime.now(UTC)
    return clock


def _runtime(make_runtime, url: str, smtp_server, redis_url: str, **extra: str):  # noqa: ANN001, ANN202
    rt = make_runtime(url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url, REDIS_URL=redis_url, **extra)
    use_runtime(rt)
    return rt


@pytest.fixture
def bc_runtime(make_runtime, project, sqlite_url, smtp_server, redis_url, real_now):  # noqa: ANN001, ANN201
    add_broadcast_files(project)
    yield _runtime(make_runtime, sqlite_url, smtp_server, redis_url, BATCH_SIZE="250")
    use_runtime(None)


def _in_session(rt, action):  # noqa: ANN001, ANN202
    with Session(rt.db, expire_on_commit=False) as session:
        problems = broadcasts.read_files(rt, session, rt.clock())
        assert problems == []
        result = action(session)
        session.commit()
        return result


def send_test(rt, key: str = "spring", to: str = OWNER) -> str:  # noqa: ANN001
    return _in_session(rt, lambda s: broadcasts.test_send(rt, s, key, to, rt.clock()))


def start(rt, key: str = "spring", skip_test: bool = False):  # noqa: ANN001, ANN201
    return _in_session(rt, lambda s: broadcasts.start(rt, s, key, "test", rt.clock(), skip_test=skip_test))


def plan(rt, key: str = "spring"):  # noqa: ANN001, ANN201
    return _in_session(rt, lambda s: make_plan(rt, s, key))


def _spawn_workers(rt, project: Path, url: str, smtp_server, count: int) -> list[subprocess.Popen]:  # noqa: ANN001
    env = worker_env(project, url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url,
                     REDIS_URL=rt.settings.redis_url, BATCH_SIZE=str(rt.settings.batch_size))
    return [subprocess.Popen([sys.executable, str(ROOT / "worker.py"), "--no-tick", "--burst"], env=env, cwd=ROOT,
                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _ in range(count)]


def _received(smtp_server) -> Counter[str]:  # noqa: ANN001
    return Counter(r.rcpt_tos[0] for r in smtp_server.received if r.rcpt_tos[0] != OWNER)


# --- the case -----------------------------------------------------------------------------------------

def test_a_broadcast_to_5000_sends_exactly_to_the_rest_once_though_started_twice_with_two_workers(
        bc_runtime, smtp_server, project, sqlite_url) -> None:
    rt = bc_runtime
    who = crowd(rt, 5000, suppressed=200, unconsented=300, capped=100, outsiders=50)
    figures = plan(rt).tally
    assert (figures.members, figures.will_get) == (5000, 4400)
    assert {k: v for k, v in figures.held.items() if v} == {"suppressed": 200, "no consent": 300, "cap reached": 100}

    send_test(rt)
    assert start(rt).already is False
    assert start(rt).already is True  # started twice: the second changes nothing
    # Two ticks write the members (as two workers' ticks would): the second adds nothing.
    assert broadcasts.materialise_due(rt) == 5000
    assert broadcasts.materialise_due(rt) == 0
    assert broadcast_enrollments(rt) == {"active": 5000}

    rounds = 0
    while jobs.tick():  # 250 a batch, at most 20 batches queued a tick: two real worker processes drain them
        for process in _spawn_workers(rt, project, sqlite_url, smtp_server, 2):
            # communicate, not wait: a worker that logs more than a pipe holds would block on it forever.
            _, errors = process.communicate(timeout=600)
            assert process.returncode == 0, errors.decode()[-2000:]
        rounds += 1
        assert rounds < 10
    received = _received(smtp_server)
    assert set(received) == who.should_get and len(who.should_get) == 4400
    assert set(received.values()) == {1}  # once each
    assert broadcast_deliveries(rt) == {"sent": 4400, "skipped": 500}
    # The capped hundred wait for the cap to open: deferred, not dropped.
    assert broadcast_enrollments(rt) == {"completed": 4400, "stopped": 500, "active": 100}

    assert start(rt).already is True
    assert broadcasts.materialise_due(rt) == 0
    assert jobs.tick() == 0
    after = plan(rt).tally
    assert after.held["already sent"] == 4400 and after.held["cap reached"] == 100


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_two_racing_senders_send_each_member_once(make_runtime, project, smtp_server, redis_url,
                                                                real_now, database_url) -> None:
    add_broadcast_files(project)
    rt = _runtime(make_runtime, database_url, smtp_server, redis_url, BATCH_SIZE="40")
    try:
        who = crowd(rt, 300, suppressed=12, unconsented=18, capped=6)
        start(rt, skip_test=True)
        start(rt, skip_test=True)
        _race(lambda: broadcasts.materialise_due(rt))  # two ticks writing the same members at once
        assert broadcast_enrollments(rt) == {"active": 300}
        _race(lambda: send_due(rt))  # two senders claiming and sending at once
        received = _received(smtp_server)
        assert set(received) == who.should_get and set(received.values()) == {1}
        assert broadcast_deliveries(rt) == {"sent": 264, "skipped": 30}
    finally:
        use_runtime(None)


def _race(action) -> None:  # noqa: ANN001
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        action()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# --- the test send ---------------------------------------------------------------------------------------------

def test_start_is_refused_until_a_test_send_of_this_version_reached_the_owner(bc_runtime, smtp_server,
                                                                               project) -> None:
    rt = bc_runtime
    crowd(rt, 3, suppressed=0, unconsented=0, capped=0)
    with pytest.raises(BroadcastError, match="no test send was made"):
        start(rt)
    send_test(rt)
    [test] = smtp_server.received
    assert test.rcpt_tos == [OWNER]
    assert test.message["Subject"] == "[TEST] Open studio, Test"
    assert "List-Unsubscribe" in test.message
    assert broadcast_deliveries(rt) == {}  # a test is nobody's delivery
    # An edit of the template makes a new version: its test is needed again.
    template = project / "email_templates" / "broadcasts" / "open-studio.html"
    template.write_text(template.read_text().replace("Open studio this Saturday", "Open studio on Sunday"))
    with pytest.raises(BroadcastError, match="changed since its test send"):
        start(rt)
    send_test(rt)
    assert start(rt).already is False
    assert start(rt, skip_test=True).already is True


def test_start_with_skip_test_needs_no_test_and_cancel_stops_what_waits(bc_runtime, smtp_server) -> None:
    rt = bc_runtime
    who = crowd(rt, 10, suppressed=0, unconsented=0, capped=0)
    start(rt, skip_test=True)
    broadcasts.materialise_due(rt)
    stopped = _in_session(rt, lambda s: broadcasts.cancel(rt, s, "spring", rt.clock()))
    assert stopped == 10
    send_due(rt)
    assert smtp_server.received == []
    assert broadcast_enrollments(rt) == {"stopped": len(who.everyone)}
    with pytest.raises(BroadcastError, match="cancelled"):
        start(rt, skip_test=True)


# --- plan ------------------------------------------------------------------------------------------------------

def test_plan_counts_with_the_workers_own_decisions_and_defers_those_outside_their_window(
        make_runtime, project, sqlite_url, clock) -> None:
    # Monday 09:00 UTC; the window 09:00-17:00 in each contact's zone: New York is at 04:00, deferred.
    add_broadcast_files(project, broadcast_file(timing="own-window", extra='window: {hours: "09:00-17:00"}\n'))
    rt = make_runtime(sqlite_url)
    crowd(rt, 20, suppressed=2, unconsented=3, capped=1, outsiders=5)
    with Session(rt.db) as session:
        from sqlalchemy import update

        from nurture.store.models import Contact
        session.execute(update(Contact).where(Contact.email.in_(["p00010@example.com", "p00011@example.com"]))
                        .values(timezone="America/New_York"))
        session.commit()
    figures = plan(rt)
    assert (figures.tally.members, figures.tally.will_get) == (20, 12)
    held = {k: v for k, v in figures.tally.held.items() if v}
    assert held == {"suppressed": 2, "no consent": 3, "cap reached": 1, "window or quiet hours": 2}
    text = "\n".join(figures.lines())
    assert "segment members:        20" in text and "(deferred, not dropped)" in text

    # What the worker then does matches: 12 now, the 2 in New York when their window opens.
    start(rt, skip_test=True)
    broadcasts.materialise_due(rt)
    send_due(rt)
    assert broadcast_deliveries(rt) == {"sent": 12, "skipped": 5}
    clock.advance(hours=5)  # 14:00 UTC: 09:00 in New York
    send_due(rt)
    assert broadcast_deliveries(rt) == {"sent": 14, "skipped": 5}


def test_the_cli_lists_plans_starts_and_reports(make_runtime, project, sqlite_url, monkeypatch) -> None:
    add_broadcast_files(project)
    rt = make_runtime(sqlite_url)
    crowd(rt, 4, suppressed=1, unconsented=0, capped=0)
    for name, value in worker_env(project, sqlite_url).items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    listed = runner.invoke(main, ["broadcasts", "list"])
    assert listed.exit_code == 0, listed.output
    assert "spring  draft  file  email to leads  now  not tested" in listed.output
    planned = runner.invoke(main, ["broadcasts", "plan", "spring"])
    assert "will get it:            3" in planned.output and "suppressed:             1" in planned.output
    refused = runner.invoke(main, ["broadcasts", "start", "spring"])
    assert refused.exit_code == 1 and "send a test to the owner first" in refused.output
    started = runner.invoke(main, ["broadcasts", "start", "spring", "--skip-test"])
    assert started.exit_code == 0 and "spring started" in started.output
    again = runner.invoke(main, ["broadcasts", "start", "spring", "--skip-test"])
    assert again.exit_code == 0 and "nothing changed" in again.output
    status = runner.invoke(main, ["broadcasts", "status", "spring"])
    assert "spring: started; 0 sent" in status.output
    sent = runner.invoke(main, ["send-due"])  # without Redis: the members written, then sent, here
    assert sent.exit_code == 0 and "3 sent" in sent.output and "1 skipped" in sent.output, sent.output
    status = runner.invoke(main, ["broadcasts", "status", "spring"])
    assert "spring: started; 3 sent, 1 skipped, 0 failed, 0 waiting, 4 written" in status.output
    unknown = runner.invoke(main, ["broadcasts", "plan", "nope"])
    assert unknown.exit_code == 1 and "unknown broadcast 'nope' (known: spring)" in unknown.output


# --- files -----------------------------------------------------------------------------------------------------

def test_check_reports_a_broadcast_files_problems_at_their_lines(project) -> None:
    add_broadcast_files(project, broadcast_file().replace("segment: leads", "segment: nobody")
                        .replace("broadcasts/open-studio", "broadcasts/missing"))
    (project / "broadcasts" / "late.yaml").write_text(broadcast_file("late", send_at="2027-01-01T10:00:00"))
    result = CliRunner().invoke(main, ["check", "--root", str(project)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert "broadcasts/late.yaml:7: send_at needs its zone (like +01:00 or Z): whose 10:00 would it be " \
           "otherwise?" in lines
    assert any(line.startswith("broadcasts/spring.yaml:5: unknown template 'broadcasts/missing'") for line in lines)
    assert "broadcasts/spring.yaml:3: unknown segment 'nobody' (segments: leads)" in lines


# --- texts, quiet hours, the reputation guard ------------------------------------------------------------------

def _people(rt, rows: list[dict]) -> None:  # noqa: ANN001
    from sqlalchemy import insert

    from nurture.store.models import Contact
    now = rt.clock()
    with Session(rt.db) as session:
        session.execute(insert(Contact.__table__), [dict(first_name="", last_name="", fields={}, tags=[],
                        attribution={}, stage="lead", score=0.0, email_status="subscribed", sms_status="subscribed",
                        created_at=now, updated_at=now) | row for row in rows])
        session.commit()


def test_a_text_broadcast_waits_for_each_numbers_quiet_hours_and_skips_those_without_sms_consent(
        make_runtime, project, sqlite_url, clock) -> None:
    (project / "sms_templates" / "broadcasts").mkdir(parents=True)
    (project / "sms_templates" / "broadcasts" / "open-studio.txt").write_text(
        "{{ brand.name }}: open studio Saturday 10-16, come and throw a pot.")
    add_broadcast_files(project, broadcast_file().replace("channel: email", "channel: sms")
                        .replace("template: broadcasts/open-studio", "template: broadcasts/open-studio")
                        .replace("subject: \"Open studio, {{ contact.first_name or 'friend' }}\"\n", ""))
    rt = make_runtime(sqlite_url)
    _people(rt, [  # Monday 09:00 UTC: 09:00 in London, 04:00 in New York (texts 08:00-21:00 local)
        dict(email="london@example.com", phone="+447700900123", timezone="Europe/London"),
        dict(email="newyork@example.com", phone="+12125550123", timezone="America/New_York"),
        dict(email="nosms@example.com", phone="+447700900456", timezone="Europe/London", sms_status="none"),
        dict(email="nophone@example.com", phone=None, timezone=None)])
    held = {k: v for k, v in plan(rt).tally.held.items() if v}
    assert plan(rt).tally.will_get == 1
    assert held == {"window or quiet hours": 1, "no consent": 1, "no address": 1}
    texts = rt.settings.outbox_dir / "sms"
    send_test(rt, to="+447700900999")
    [test] = texts.glob("*.txt")
    assert "[TEST] Juniper Pottery Studio: open studio Saturday" in test.read_text()
    test.unlink()
    start(rt)
    broadcasts.materialise_due(rt)
    send_due(rt)
    assert sorted(p.name.split("--")[0] for p in texts.glob("*.txt")) == ["+447700900123"]
    clock.advance(hours=4)  # 13:00 UTC: 08:00 in New York
    send_due(rt)
    assert sorted(p.name.split("--")[0] for p in texts.glob("*.txt")) == ["+12125550123", "+447700900123"]
    assert broadcast_deliveries(rt) == {"sent": 2, "skipped": 2}


def test_the_reputation_guard_holds_a_broadcast_until_sending_is_resumed(bc_runtime, smtp_server) -> None:
    from nurture.store import deliverability as guard

    rt = bc_runtime
    who = crowd(rt, 6, suppressed=0, unconsented=0, capped=0)
    with Session(rt.db) as session:
        guard.pause(session, dict(reason="complaint rate 0.4% over 0.3%", paused_at=rt.clock()))
        session.commit()
    assert "paused by the reputation guard (complaint rate 0.4% over 0.3%)" in "\n".join(plan(rt).lines())
    start(rt, skip_test=True)
    broadcasts.materialise_due(rt)
    send_due(rt)
    # (The guard's own alert to the owner goes; no broadcast email does.)
    assert not set(_received(smtp_server)) & set(who.everyone) and broadcast_enrollments(rt) == {"active": 6}
    with Session(rt.db) as session:
        guard.resume(session, rt.clock(), "owner")
        session.commit()
    rt.clock.advance(hours=1)
    send_due(rt)
    assert Counter(r for r in _received(smtp_server).elements() if r in who.everyone) == Counter(who.everyone)


def test_a_member_outside_their_window_is_written_due_at_its_opening() -> None:
    from nurture.rules.broadcasts import BroadcastSpec, due_for
    from nurture.rules.sequence import Window, parse_hours

    spec = BroadcastSpec("b", "B", "leads", "email", "t", "s", window=Window(*parse_hours("09:00-17:00")))
    going = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday
    assert due_for(spec, going, "Europe/London") == going
    assert due_for(spec, going, "America/New_York") == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    assert due_for(spec, going, "Asia/Tokyo") == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # 09:00 Tuesday there
    assert due_for(spec, going, None) == going  # unknown: UTC
    at_once = BroadcastSpec("b", "B", "leads", "email", "t", "s", timing="at-once")
    assert due_for(at_once, going, "America/New_York") == going


def test_a_draft_whose_file_broke_or_went_is_not_started_from_its_last_good_text(bc_runtime, project) -> None:
    rt = bc_runtime
    crowd(rt, 2, suppressed=0, unconsented=0, capped=0)
    send_test(rt)
    path = project / "broadcasts" / "spring.yaml"
    path.write_text(path.read_text().replace("timing: at-once", "timing: whenever"))
    with Session(rt.db) as session:
        assert [p.line for p in broadcasts.read_files(rt, session, rt.clock())] == [8]
        with pytest.raises(BroadcastError, match="has problems now"):
            broadcasts.start(rt, session, "spring", "test", rt.clock())
    path.unlink()
    with Session(rt.db) as session:
        assert broadcasts.read_files(rt, session, rt.clock()) == []
        session.commit()
        with pytest.raises(BroadcastError, match="unknown broadcast 'spring'"):
            broadcasts.start(rt, session, "spring", "test", rt.clock())


def test_a_broadcast_for_a_later_time_writes_and_sends_nothing_before_it(make_runtime, project, sqlite_url,
                                                                         clock) -> None:
    # 2026-11-23 09:00 UTC now; it goes at 10:00 in Chicago (16:00 UTC), at once.
    add_broadcast_files(project, broadcast_file(send_at="2026-11-23T10:00:00-06:00"))
    rt = make_runtime(sqlite_url)
    crowd(rt, 3, suppressed=0, unconsented=0, capped=0)
    assert plan(rt).at == datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
    started = start(rt, skip_test=True).broadcast
    assert started.send_at == datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
    assert broadcasts.materialise_due(rt) == 0
    send_due(rt)
    assert broadcast_enrollments(rt) == {} and broadcast_deliveries(rt) == {}
    clock.advance(hours=7)
    assert broadcasts.materialise_due(rt) == 3
    send_due(rt)
    assert broadcast_deliveries(rt) == {"sent": 3}


def test_one_broadcast_failing_to_write_its_members_stops_neither_the_others_nor_the_tick(
        make_runtime, project, sqlite_url, monkeypatch, caplog) -> None:
    from nurture.store import segments as segment_store

    add_broadcast_files(project)
    (project / "broadcasts" / "other.yaml").write_text(broadcast_file("other"))
    rt = make_runtime(sqlite_url)
    crowd(rt, 4, suppressed=0, unconsented=0, capped=0)
    start(rt, "spring", skip_test=True)
    start(rt, "other", skip_test=True)
    real = segment_store.member_ids
    calls = {"n": 0}

    def first_call_fails(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(segment_store, "member_ids", first_call_fails)
    assert broadcasts.materialise_due(rt) == 4  # one failed, the other wrote its four
    assert "writing its members failed" in caplog.text
    assert broadcasts.materialise_due(rt) == 4  # the next tick writes the one that failed
    assert broadcast_enrollments(rt, "spring") == broadcast_enrollments(rt, "other") == {"active": 4}
