"""Webhooks out: events become signed POSTs, retried by the clock's schedule until accepted exactly once,
an endpoint switched off after failing for a day (the owner told by email), the worker doing it via RQ,
nothing sent to a private address unless allowed. A real HTTP receiver, SQLite and PostgreSQL, real Redis
and SMTP; time moves only when the test says."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from sqlmodel import Session, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from nurture import jobs
from nurture.delivery import webhook_outbox, webhooks
from nurture.delivery.transports import TransportError
from nurture.delivery.transports.webhook import resolve
from nurture.people import erasure
from nurture.people.owner_actions import Actor
from nurture.runtime import use_runtime
from nurture.store import webhooks as store
from nurture.store.models import Contact, Event, WebhookAttempt, WebhookEndpoint, WebhookMessage
from tests.helpers import add_contact, send_due
from tests.webhooks_support import SECRET, SECRET_ENV, receiver, write_webhooks  # noqa: F401

pytestmark = pytest.mark.usefixtures("receiver")


class ClockedWebhook(Webhook):
    """The reference implementation (standardwebhooks on PyPI), with its 5-minute tolerance measured
    against the test's clock instead of the wall clock: the signature check itself is untouched."""

    def __init__(self, secret: str, clock: Callable[[], datetime]) -> None:
        super().__init__(secret)
        self.clock = clock

    def _Webhook__verify_timestamp(self, timestamp_header: str) -> datetime:  # noqa: N802 (the name Webhook's own method mangles to)
        stamp = datetime.fromtimestamp(float(timestamp_header), tz=UTC)
        if abs(self.clock() - stamp) > timedelta(minutes=5):
            raise WebhookVerificationError("timestamp outside tolerance")
        return stamp


def test_it_delivers_exactly_once_to_a_receiver_that_fails_three_times(make_runtime, database_url, project,
                                                                       clock, receiver) -> None:  # noqa: F811
    write_webhooks(project, receiver.url)
    rt = make_runtime(database_url, **SECRET_ENV)
    webhooks.deliver_due(rt)  # the endpoint's first sight: it starts from now
    receiver.fail_first = 3
    contact_id = add_contact(rt, "ann@example.com", first_name="Ann")

    for wait in (timedelta(0), timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30)):
        clock.advance(seconds=wait.total_seconds())
        webhooks.deliver_due(rt)
        webhooks.deliver_due(rt)  # a second run at the same moment finds nothing due
    for _ in range(6):  # hours later: nothing more goes out
        clock.advance(hours=6)
        webhooks.deliver_due(rt)

    assert [r.status for r in receiver.requests] == [503, 503, 503, 204]
    assert len(receiver.accepted) == 1
    accepted = receiver.accepted[0]
    payload = ClockedWebhook(SECRET, lambda: accepted.at).verify(
        accepted.body, accepted.headers)
    assert payload["type"] == "contact.created"
    assert payload["data"]["contact"] == {"id": contact_id, "email": "ann@example.com", "first_name": "Ann",
                                          "last_name": "", "phone": None, "stage": "lead", "tags": []}
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1  # the same id on every retry
    assert len({r.body for r in receiver.requests}) == 1  # and the same bytes
    assert [r.headers["webhook-timestamp"] for r in receiver.requests] == sorted(
        {r.headers["webhook-timestamp"] for r in receiver.requests})  # signed anew at each attempt
    with Session(rt.db) as session:
        message = session.exec(select(WebhookMessage)).one()
        assert (message.status, message.attempts) == ("delivered", 4)
        assert [a.ok for a in session.exec(select(WebhookAttempt).order_by(WebhookAttempt.id))] == [
            False, False, False, True]
        assert session.exec(select(WebhookEndpoint)).one().failing_since is None  # healthy again


def test_it_refuses_a_forged_signature_with_the_reference_check(make_runtime, sqlite_url, project, clock,
                                                                receiver) -> None:  # noqa: F811
    write_webhooks(project, receiver.url)
    rt = make_runtime(sqlite_url, **SECRET_ENV)
    webhooks.deliver_due(rt)
    add_contact(rt, "ann@example.com")
    webhooks.deliver_due(rt)
    sent = receiver.accepted[0]
    check = ClockedWebhook(SECRET, clock)
    assert check.verify(sent.body, sent.headers)["type"] == "contact.created"
    with pytest.raises(WebhookVerificationError):
        check.verify(sent.body.replace(b"ann@", b"eve@"), sent.headers)
    with pytest.raises(WebhookVerificationError):
        ClockedWebhook("whsec_" + "A" * 40, clock).verify(sent.body, sent.headers)


def test_it_sends_only_the_events_an_endpoint_asked_for(make_runtime, sqlite_url, project, receiver) -> None:  # noqa: F811
    write_webhooks(project, receiver.url, events="[stage.changed]")
    rt = make_runtime(sqlite_url, **SECRET_ENV)
    webhooks.deliver_due(rt)
    add_contact(rt, "ann@example.com")
    assert webhooks.deliver_due(rt) == {"queued": 0, "delivered": 0, "failed": 0}
    assert receiver.requests == []


def test_it_disables_an_endpoint_after_a_day_of_failures_and_tells_the_owner(
        make_runtime, sqlite_url, project, clock, receiver, smtp_server) -> None:  # noqa: F811
    write_webhooks(project, receiver.url)
    rt = make_runtime(sqlite_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url, **SECRET_ENV)
    webhooks.deliver_due(rt)
    receiver.fail_first = 10_000
    add_contact(rt, "ann@example.com")
    for _ in range(32):  # every hour for 32 hours: retries follow the schedule, then it is switched off
        webhooks.deliver_due(rt)
        clock.advance(hours=1)

    with Session(rt.db) as session:
        state = session.exec(select(WebhookEndpoint)).one()
        assert state.disabled_at is not None and state.owner_told_at is not None
        assert state.disabled_at - state.failing_since >= timedelta(hours=24)
    tried = len(receiver.requests)
    assert 5 <= tried <= 8  # the schedule, not every tick: 0s, 5s, 5m, 30m, 2h, 5h, 10h, 10h
    told = [m.message for m in smtp_server.received]
    assert len(told) == 1 and "crm" in told[0]["Subject"]
    assert told[0]["To"] == webhooks.owner_address(rt) == "owner@juniper.example"  # the lifecycle file's owner

    add_contact(rt, "bob@example.com")  # while it is off: nothing is sent, nothing lost
    clock.advance(hours=1)
    webhooks.deliver_due(rt)
    assert len(receiver.requests) == tried

    receiver.fail_first = 0
    assert webhooks.enable(rt, "crm")
    clock.advance(minutes=2)
    webhooks.deliver_due(rt)
    emails = [json.loads(r.body)["data"]["contact"]["email"] for r in receiver.accepted]
    assert sorted(emails) == ["ann@example.com", "bob@example.com"]


def test_the_worker_delivers_them_from_the_tick(make_runtime, sqlite_url, project, clock, receiver,  # noqa: F811
                                                redis_url) -> None:
    write_webhooks(project, receiver.url)
    rt = make_runtime(sqlite_url, REDIS_URL=redis_url, **SECRET_ENV)
    webhooks.deliver_due(rt)
    add_contact(rt, "ann@example.com")
    use_runtime(rt)
    try:
        jobs.tick()
        jobs.tick()  # one run waiting is not queued twice
        redis = Redis.from_url(redis_url)
        queue = Queue(rt.settings.queue_name, connection=redis)
        assert queue.job_ids.count("deliver-webhooks") == 1
        SimpleWorker([queue], connection=redis).work(burst=True)
    finally:
        use_runtime(None)
    assert len(receiver.accepted) == 1


def test_a_test_ping_is_signed_and_logged(make_runtime, sqlite_url, project, clock, receiver) -> None:  # noqa: F811
    write_webhooks(project, receiver.url)
    rt = make_runtime(sqlite_url, **SECRET_ENV)
    outcome = webhooks.send_ping(rt, "crm")
    assert outcome.ok and outcome.status_code == 204
    assert ClockedWebhook(SECRET, clock).verify(receiver.requests[0].body, receiver.requests[0].headers)["type"] \
        == "webhook.ping"
    with pytest.raises(webhooks.UnknownEndpoint):
        webhooks.send_ping(rt, "nope")


def test_it_refuses_private_addresses_unless_allowed(make_runtime, sqlite_url, project, receiver) -> None:  # noqa: F811
    with pytest.raises(TransportError, match="private"):
        resolve("127.0.0.1", 80, allow_private=False)
    with pytest.raises(TransportError, match="private"):
        resolve("169.254.169.254", 80, allow_private=False)  # the cloud metadata service
    assert resolve("127.0.0.1", 80, allow_private=True) == "127.0.0.1"
    write_webhooks(project, receiver.url)
    rt = make_runtime(sqlite_url, WEBHOOK_SECRET_CRM=SECRET)
    outcome = webhooks.send_ping(rt, "crm")
    assert not outcome.ok and "private" in (outcome.error or "")
    assert receiver.requests == []


def test_an_event_committed_late_with_a_lower_id_is_still_sent(make_runtime, database_url, project, clock,
                                                              receiver) -> None:  # noqa: F811
    write_webhooks(project, receiver.url)
    rt = make_runtime(database_url, **SECRET_ENV)
    contact_id = add_contact(rt, "ann@example.com")
    webhooks.deliver_due(rt)  # first sight: from the newest event on
    with Session(rt.db) as session:
        newest = session.exec(select(Event.id).order_by(Event.id.desc())).first()
        # Event 1000 is read first; 900 commits afterwards (on PostgreSQL, ids are handed out before commit).
        session.add(Event(id=newest + 1000, contact_id=contact_id, type="contact.created", data={},
                          occurred_at=clock.now, created_at=clock.now))
        session.commit()
    webhooks.deliver_due(rt)
    clock.advance(seconds=30)
    with Session(rt.db) as session:
        session.add(Event(id=newest + 900, contact_id=contact_id, type="contact.created", data={},
                          occurred_at=clock.now - timedelta(seconds=40), created_at=clock.now - timedelta(seconds=40)))
        session.commit()
    webhooks.deliver_due(rt)
    ids = [json.loads(r.body)["data"]["event"]["id"] for r in receiver.accepted]
    assert ids == [newest + 1000, newest + 900]
    clock.advance(minutes=10)
    webhooks.deliver_due(rt)
    with Session(rt.db) as session:
        assert session.exec(select(WebhookEndpoint)).one().cursor == newest + 1000  # settled: moved past both
    assert len(receiver.requests) == 2


def test_the_send_path_only_records_events(make_runtime, sqlite_url, project, clock, receiver) -> None:  # noqa: F811
    write_webhooks(project, receiver.url, events="[delivery.sent]")
    rt = make_runtime(sqlite_url, **SECRET_ENV)
    webhooks.deliver_due(rt)
    receiver.fail_first = 1
    add_contact(rt, "ann@example.com", "lead-nurture")
    assert send_due(rt).get("sent") == 1  # the receiver is failing: the email goes anyway
    with Session(rt.db) as session:
        assert session.exec(select(WebhookMessage)).all() == []  # nothing on the send path but the event
    assert receiver.requests == []
    webhooks.deliver_due(rt)
    clock.advance(seconds=5)
    webhooks.deliver_due(rt)
    assert [json.loads(r.body)["type"] for r in receiver.accepted] == ["delivery.sent"]


def test_a_message_claimed_by_a_worker_that_died_is_sent_after_its_lease(make_runtime, sqlite_url, project,
                                                                         clock, receiver) -> None:  # noqa: F811
    write_webhooks(project, receiver.url)
    rt = make_runtime(sqlite_url, **SECRET_ENV)
    webhooks.deliver_due(rt)
    add_contact(rt, "ann@example.com")
    receiver.fail_first = 10  # the fan-out happens; the first attempt is made by "the dead worker" below
    with Session(rt.db) as session:
        webhook_outbox.fan_out(session, webhook_outbox.endpoints(rt)[0], clock.now)
        message = session.exec(select(WebhookMessage)).one()
        assert store.take_message(session, message.id, "dead-worker", clock.now, timedelta(seconds=45))
        assert not store.take_message(session, message.id, "another", clock.now, timedelta(seconds=45))
        session.commit()
    receiver.fail_first = 0
    webhooks.deliver_due(rt)
    assert receiver.requests == []  # its lease still holds
    clock.advance(seconds=46)
    webhooks.deliver_due(rt)
    assert len(receiver.accepted) == 1


def test_an_erasure_reaches_the_receivers_as_the_address_digest_alone(make_runtime, sqlite_url, project, clock,
                                                                      receiver) -> None:  # noqa: F811
    # Receivers hold the person's data too (a CRM): they are told, with nothing that names them — only the
    # digest nurture keeps, which they can compute from the address they hold.
    write_webhooks(project, receiver.url, events="[contact.erased]")
    rt = make_runtime(sqlite_url, **SECRET_ENV)
    webhooks.deliver_due(rt)
    contact_id = add_contact(rt, "Ann.Lee@example.com", first_name="Ann", last_name="Lee", phone="+15035550123")
    with Session(rt.db) as session:
        erasure.erase(session, session.get(Contact, contact_id), Actor("owner@example.com", "console"), clock())
        session.commit()
    assert webhooks.deliver_due(rt)["delivered"] == 1
    [sent] = receiver.accepted
    message = ClockedWebhook(SECRET, clock).verify(sent.body, sent.headers)
    digest = hashlib.sha256(b"nurture-erased-address:ann.lee@example.com").hexdigest()
    assert message["type"] == "contact.erased"
    assert message["data"] == {"contact": {"id": contact_id}, "address_digest": digest}
    for personal in (b"ann", b"Ann", b"Lee", b"5550123", b"owner@example.com", b"erased.invalid"):
        assert personal not in sent.body.lower().replace(digest.encode(), b"")
