"""Redis shut down and started again on the same port mid-run: the workers and the tick reconnect by
themselves, nothing is lost, nothing is sent twice, and /healthz says Redis is down while it is."""

from __future__ import annotations

import pytest

from nurture.web import create_app
from tests.faults.conftest import assert_exactly_once, drain, enroll, judge, wait_until

pytestmark = pytest.mark.faults


def test_workers_and_the_tick_carry_on_after_redis_restarts(make_runtime, sqlite_url, faulty_smtp,
                                                            restartable_redis, workers, clock) -> None:
    smtp, smtp_url = faulty_smtp
    smtp.delay = 0.1
    rt = make_runtime(sqlite_url, REDIS_URL=restartable_redis.url)
    enroll(rt, clock, 40)
    health = create_app(rt).test_client()
    assert health.get("/healthz").json["redis"] == "ok"
    group = workers(sqlite_url, SMTP_URL=smtp_url, REDIS_URL=restartable_redis.url)
    group.start(1, tick=True)
    group.start(1)
    wait_until(lambda: smtp.count() >= 8, 120, "the first messages")
    restartable_redis.shutdown()  # the queued batches go with it
    down = health.get("/healthz")
    assert down.status_code == 503 and down.json["redis"].startswith("error")
    restartable_redis.start()
    assert health.get("/healthz").json == {"status": "ok", "database": "ok", "redis": "ok"}
    outcome = judge(rt, smtp, "Redis restarted mid-run (sqlite)", drain(rt, 240))
    assert_exactly_once(rt, smtp, outcome)
    assert outcome.duplicates == {} and outcome.sent == 40
    assert len(group.alive()) == 2  # nobody restarted them
