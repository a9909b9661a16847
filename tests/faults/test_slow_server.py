"""A batch that takes longer than its lease, against an SMTP server that answers slowly: the batch keeps
its claim (it renews the lease as it goes), so no other worker sends what it holds."""

from __future__ import annotations

import pytest

from tests.faults.conftest import assert_exactly_once, drain, enroll, judge

pytestmark = pytest.mark.faults


def test_a_lease_expiring_under_a_slow_smtp_server_sends_each_step_once(make_runtime, postgres_url, faulty_smtp,
                                                                        restartable_redis, workers, clock) -> None:
    smtp, smtp_url = faulty_smtp
    smtp.delay = 1.0  # 15 messages a batch: a batch takes 15 s, half again its 10 s lease
    rt = make_runtime(postgres_url)
    enroll(rt, clock, 40)
    group = workers(postgres_url, SMTP_URL=smtp_url, REDIS_URL=restartable_redis.url, BATCH_SIZE="15",
                    CLAIM_LEASE_SECONDS="10")
    group.start(1, tick=True)
    group.start(2)
    outcome = judge(rt, smtp, "lease expiring under a slow SMTP server (pg)", drain(rt, 240))
    assert_exactly_once(rt, smtp, outcome)
    assert outcome.duplicates == {} and outcome.interrupted == set()  # no crash here: not even the window
    assert outcome.sent == 40
