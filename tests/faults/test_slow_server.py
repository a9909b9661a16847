"""A batch that takes longer than its lease, against an SMTP server that answers slowly: the batch keeps
its claim (it renews the lease as it goes), so no other worker sends what it holds."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from nurture.store.models import Event
from tests.faults.conftest import assert_exactly_once, drain, enroll, judge
from tests.fixes_support import dripping_smtp  # noqa: F401 (fixture)

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


def test_a_send_drip_fed_past_its_lease_is_cut_off_and_sent_once(make_runtime, postgres_url, dripping_smtp,  # noqa: F811
                                                                 restartable_redis, workers, clock) -> None:
    # The server drip-feeds one recipient's RCPT reply for 12 s, a line a second: every wait is within the
    # 3 s SMTP timeout, the whole send is longer than the 10 s lease. Cut off at the lease's end, the send
    # fails for now and is tried again (by then the server answers at once); nobody else took it meanwhile.
    smtp, smtp_url = dripping_smtp
    rt = make_runtime(postgres_url)
    emails = enroll(rt, clock, 6)
    smtp.drip.drip[emails[0]] = 1
    group = workers(postgres_url, SMTP_URL=smtp_url, REDIS_URL=restartable_redis.url, BATCH_SIZE="3",
                    CLAIM_LEASE_SECONDS="10", RETRY_BACKOFF="1,1,1")
    group.start(1, tick=True)
    group.start(1)
    outcome = judge(rt, smtp, "a send drip-fed past its lease (pg)", drain(rt, 120))
    assert outcome.duplicates == {} and outcome.interrupted == set()
    assert outcome.sent == 6 and outcome.lost == []
    with Session(rt.db) as session:  # one attempt was cut off (the retry), none was taken over
        events = [e.type for e in session.exec(select(Event).where(Event.type.in_(
            ["email.retry", "email.interrupted", "email.sent"]))).all()]
    assert events.count("email.retry") == 1 and events.count("email.sent") == 6
