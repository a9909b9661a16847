"""Pacing per receiving domain: a relay answering "slow down" (421/451/454) for one domain holds back that
domain group only, without using up any message's retries, while the others flow; a group's rate and the
relay's quota are shared by every worker through Redis and driven by the injected clock; a warming-up
domain's daily cap holds, even after Redis is flushed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis

from nurture.config import parse_smtp_url
from nurture.content.mail import Envelope, OutgoingEmail, build_email
from nurture.content.rendering import RenderedEmail
from nurture.delivery.pacing import MemoryPacer, RedisPacer, Ticket
from nurture.delivery.transports import TransportError
from nurture.delivery.transports.smtp import SmtpTransport
from nurture.rules import pacing
from nurture.store.models import DeliveryStatus
from tests.conftest import FakeClock, SmtpServer
from tests.helpers import add_contact, send_due
from tests.pacing_support import deliveries_to, domain_relay, enrollments_of, events_of

SLOW_DOWN = "421 4.7.28 Our system has detected an unusual rate of unsolicited mail: slow down"


def contacts(rt, domain: str, n: int, sequence: str = "lead-nurture") -> None:  # noqa: ANN001
    for i in range(n):
        add_contact(rt, f"p{i}@{domain}", sequence)


@pytest.fixture
def relay() -> Iterator[SmtpServer]:
    """A relay that can answer "slow down" for a chosen domain."""
    yield from domain_relay()


@pytest.fixture(params=["redis", "memory"])
def pacer_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def rt(make_runtime, database_url, relay: SmtpServer, redis_url: str, pacer_kind: str):  # noqa: ANN001, ANN201
    """Sending through the relay; the pacer in Redis (every worker's) or in this process (no Redis)."""
    extra = {"REDIS_URL": redis_url} if pacer_kind == "redis" else {}
    return make_runtime(database_url, EMAIL_BACKEND="smtp", SMTP_URL=relay.url, **extra)


def test_it_groups_receiving_domains() -> None:
    assert [pacing.domain_group(a) for a in ("a@gmail.com", "b@GoogleMail.com", "c@hotmail.co.uk", "d@live.com",
                                            "e@outlook.fr", "f@yahoo.co.jp", "g@aol.com", "h@juniper.test",
                                            "i@mail.gmail.example")] == [
        "gmail", "gmail", "outlook", "outlook", "outlook", "yahoo", "yahoo", "other", "other"]


def test_a_slow_down_is_told_from_other_temporary_failures() -> None:
    slow = [(421, "4.7.28 Our system has detected an unusual rate of unsolicited mail"),
            (451, "4.7.500 Server busy. Please try again later."),
            (421, "4.7.0 [TSS04] Messages temporarily deferred due to unexpected volume"),
            (454, "4.7.0 Too many messages, slow down")]
    other = [(451, "4.3.0 Try again later"), (421, "4.7.0 Too busy"), (421, "4.3.2 shutting down"),
             (450, "4.2.1 rate limited"), (550, "5.7.1 rate of spam")]
    assert [pacing.is_throttle(code, text) for code, text in slow + other] == [True] * 4 + [False] * 5


def test_a_421_for_one_domain_holds_that_group_while_the_others_flow(rt, relay, clock: FakeClock) -> None:
    relay.handler.domain_replies["gmail.com"] = SLOW_DOWN
    contacts(rt, "gmail.com", 6)
    contacts(rt, "example.org", 6)
    contacts(rt, "hotmail.com", 6)
    start = clock()

    outcomes = send_due(rt)

    assert outcomes == {"sent": 12, "throttled": 6}
    assert relay.handler.received_for("example.org") == 6 and relay.handler.received_for("hotmail.com") == 6
    # The first 421 backs gmail off: the rest of its group in the batch never reached the relay.
    assert relay.handler.asked_for("gmail.com") == 1
    for delivery in deliveries_to(rt, "gmail.com"):
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.RETRY, 0)
    for enrollment in enrollments_of(rt, "gmail.com"):
        assert (enrollment.step_id, enrollment.attempts) == ("edu-1", 0)
        assert enrollment.due_at == start + timedelta(seconds=60)
    deferred = events_of(rt, "email.deferred")
    assert len(deferred) == 6
    assert all("slow down for gmail" in e.data["reason"] for e in deferred)
    assert events_of(rt, "email.retry") == [] and events_of(rt, "email.failed") == []

    # Still throttled a minute later: the backoff grows (60 s, then 300 s), and still no retry is used.
    clock.advance(seconds=61)
    assert send_due(rt) == {"throttled": 6}
    assert relay.handler.asked_for("gmail.com") == 2
    assert {e.due_at for e in enrollments_of(rt, "gmail.com")} == {clock() + timedelta(seconds=300)}

    # The provider takes mail again: every held message goes, each once.
    relay.handler.domain_replies.clear()
    clock.advance(seconds=301)
    assert send_due(rt) == {"sent": 6}
    assert relay.handler.received_for("gmail.com") == 6
    assert {d.status for d in deliveries_to(rt, "gmail.com")} == {DeliveryStatus.SENT}


def sample_email(to: str) -> OutgoingEmail:
    envelope = Envelope(mail_from="Juniper <hello@juniper.test>", to_address=to, to_name="",
                        message_id="<t.1@juniper.test>", date=datetime(2026, 12, 6, tzinfo=UTC), list_id="<l.test>")
    return build_email(envelope, RenderedEmail(subject="Hello", text="Hello", html="<p>Hello</p>"))


def test_a_451_after_data_backs_off_too_and_a_550_does_not(relay: SmtpServer) -> None:
    transport = SmtpTransport(parse_smtp_url(relay.url))
    relay.handler.on_data = lambda _: "451 4.7.500 Server busy. Please try again later."
    with pytest.raises(TransportError) as busy:
        transport.send(sample_email("ann@outlook.com"))
    assert busy.value.throttle and not busy.value.permanent
    relay.handler.on_data = lambda _: "451 4.3.0 Try again later"  # a temporary failure: retried, not paced
    with pytest.raises(TransportError) as later:
        transport.send(sample_email("cy@outlook.com"))
    assert not later.value.throttle and not later.value.permanent
    relay.handler.on_data = None
    relay.handler.domain_replies["example.com"] = "550 5.1.1 no such user"
    with pytest.raises(TransportError) as refused:
        transport.send(sample_email("bob@example.com"))
    assert refused.value.recipient_rejected and not refused.value.throttle
    transport.close()


def test_a_group_goes_at_its_pace_and_the_others_at_full_speed(make_runtime, database_url, relay, redis_url,
                                                               pacer_kind, clock: FakeClock) -> None:
    extra = {"REDIS_URL": redis_url} if pacer_kind == "redis" else {}
    rt = make_runtime(database_url, EMAIL_BACKEND="smtp", SMTP_URL=relay.url, PACING_RATES="gmail=2/s", **extra)
    contacts(rt, "gmail.com", 8)
    contacts(rt, "example.org", 8)
    start = clock()

    assert send_due(rt) == {"sent": 10, "deferred": 6}
    assert relay.handler.received_for("example.org") == 8
    assert relay.handler.received_for("gmail.com") == 2  # a second's worth at once
    # The rest reserved their turns, half a second apart, and wait for them without using a retry.
    turns = sorted(e.due_at for e in enrollments_of(rt, "gmail.com") if e.step_id == "edu-1")
    assert turns == [start + timedelta(seconds=0.5 * n) for n in range(1, 7)]
    assert all(e.attempts == 0 for e in enrollments_of(rt, "gmail.com"))
    assert "pacing: next turn at gmail 2/s" in events_of(rt, "email.deferred")[0].data["reason"]

    clock.now = start + timedelta(seconds=1)
    assert send_due(rt) == {"sent": 2}
    clock.now = start + timedelta(seconds=3)
    assert send_due(rt) == {"sent": 4}
    assert relay.handler.received_for("gmail.com") == 8


def test_the_relays_quota_is_shared_by_every_worker(redis_url: str, make_runtime, sqlite_url) -> None:
    settings = make_runtime(sqlite_url, EMAIL_RATE="5/s").settings.deliverability
    workers = [RedisPacer(Redis.from_url(redis_url), settings, "nurture:test:pace") for _ in range(2)]
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    verdicts = [workers[n % 2].admit(Ticket(group, n, None, True, lambda: 0), now)
                for n, group in enumerate(["gmail", "other", "yahoo", "outlook"] * 5)]
    assert sum(v is None for v in verdicts) == 5  # five a second, whichever worker and group asked
    later = sorted(v[0] for v in verdicts if v is not None)
    assert later == [now + timedelta(seconds=0.2 * n) for n in range(1, 16)]


def test_a_warming_up_domain_keeps_to_its_daily_cap_even_after_a_redis_flush(
        make_runtime, database_url, relay, redis_url, clock: FakeClock) -> None:
    today = clock().date()
    rt = make_runtime(database_url, EMAIL_BACKEND="smtp", SMTP_URL=relay.url, REDIS_URL=redis_url,
                      WARMUP_START=today.isoformat(), WARMUP_DAILY="3,6")
    contacts(rt, "example.org", 5)
    add_contact(rt, "new@example.org", "confirm-email")  # transactional: counted, never held

    assert send_due(rt) == {"sent": 4, "deferred": 2}
    assert relay.handler.to("new@example.org")
    midnight = pacing.next_midnight(clock())
    held = [e for e in enrollments_of(rt, "example.org") if e.step_id == "edu-1"]
    assert len(held) == 2 and {e.due_at for e in held} == {midnight}
    assert "today's cap of 3 emails" in events_of(rt, "email.deferred")[0].data["reason"]

    Redis.from_url(redis_url).flushall()  # the count is lost: today's sends are read from the deliveries
    add_contact(rt, "late@example.org", "lead-nurture")
    assert send_due(rt) == {"deferred": 1}

    clock.now = midnight + timedelta(minutes=1)  # day 2 of the warm-up: 6 a day
    assert send_due(rt) == {"sent": 3}


def test_without_redis_the_pacer_is_kept_in_the_process(make_runtime, sqlite_url) -> None:
    rt = make_runtime(sqlite_url, PACING_RATES="yahoo=1/s")
    pacer = MemoryPacer(rt.settings.deliverability)
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert pacer.admit(Ticket("yahoo", 1, None, True, lambda: 0), now) is None
    until, reason = pacer.admit(Ticket("yahoo", 2, None, True, lambda: 0), now)
    assert until == now + timedelta(seconds=1) and "yahoo 1/s" in reason
    assert pacer.admit(Ticket("yahoo", 2, None, True, lambda: 0), until) is None  # its reserved turn


def test_bad_pacing_values_stop_start_up_with_the_variables_name(make_runtime, sqlite_url) -> None:
    from nurture.config import ConfigError

    for name, value, said in [("PACING_RATES", "hotmail=5/s", "unknown domain group 'hotmail'"),
                              ("EMAIL_RATE", "fast", "expected a rate like 14/s"),
                              ("WARMUP_DAILY", "50,0", "each at least 1"),
                              ("REPUTATION_MAX_BOUNCE_RATE", "150%", "REPUTATION_MAX_BOUNCE_RATE"),
                              ("WARMUP_START", "tomorrow", "WARMUP_START")]:
        with pytest.raises(ConfigError, match=said):
            make_runtime(sqlite_url, **{name: value})
    settings = make_runtime(sqlite_url, PACING_RATES="gmail=600/m, other=2", EMAIL_RATE="36000/h",
                            REPUTATION_MAX_COMPLAINT_RATE="0.3%").settings.deliverability
    assert (settings.group_rates, settings.email_rate) == ({"gmail": 10.0, "other": 2.0}, 10.0)
    assert settings.max_complaint_rate == pytest.approx(0.003) and settings.paced
