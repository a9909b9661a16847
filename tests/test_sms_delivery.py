"""Sending SMS steps: through the real twilio SDK to a local Twilio-compatible server, or to the outbox;
consent, the first-text notice, Twilio's error codes, quiet hours and the sender's pace."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from nurture.config.sms import TwilioSettings
from nurture.delivery import chunks
from nurture.delivery.channels.sms import MemorySendRate, RedisSendRate
from nurture.delivery.transports import TransportError
from nurture.delivery.transports import twilio as twilio_transport
from nurture.delivery.transports.sms_outbox import SmsOutboxTransport
from nurture.delivery.transports.twilio import TwilioTransport
from nurture.people.preferences import Origin, set_sms
from nurture.rules.sms import OutgoingSms
from nurture.runtime import Runtime
from nurture.store.models import Consent, Contact, Event, Suppression
from tests.conftest import CONTENT, FakeClock, write_sequence
from tests.helpers import add_contact, deliveries, enrollment, send_due
from tests.twilio_fake import FROM_NUMBER, FakeTwilio, serve_fake_twilio

ANN = "+15035550123"  # Portland, Oregon: America/Los_Angeles
BEN = "+15035550124"
SMS_CONSENT = "Text me class reminders from Juniper Pottery Studio. Msg&data rates may apply. Reply STOP to stop."
TEXTS = """
id: class-reminders
name: Class reminders
stage: deliver-satisfy
steps:
  - {id: booked, kind: thank-you, channel: sms, template: class-reminders/booked}
  - {id: how-was-it, kind: feedback, channel: sms, wait: 3d, at: "18:00", template: class-reminders/how-was-it}
"""


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with serve_fake_twilio() as fake:
        yield fake


@pytest.fixture
def sms_project(project, clock: FakeClock):  # noqa: ANN001, ANN201
    """The starter project plus the text templates and a sequence of two texts; 10:00 in Portland."""
    shutil.copytree(CONTENT / "sms_templates", project / "sms_templates")
    write_sequence(project, "class-reminders", TEXTS)
    clock.now = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
    return project


def twilio_runtime(make_runtime, database_url: str, fake: FakeTwilio, **overrides: str) -> Runtime:  # noqa: ANN001
    return make_runtime(database_url, SMS_BACKEND="twilio", TWILIO_ACCOUNT_SID=fake.account_sid,
                        TWILIO_AUTH_TOKEN=fake.auth_token, TWILIO_FROM=FROM_NUMBER, TWILIO_API_BASE=fake.base_url,
                        **overrides)


def add_texter(rt: Runtime, email: str, phone: str, sequence: str | None = "class-reminders", consent: bool = True,
               **fields: object) -> int:
    """A contact with a phone, in `sequence`, who ticked the SMS box on the booking form (unless not)."""
    contact_id = add_contact(rt, email, sequence, phone=phone, **fields)
    if consent:
        with Session(rt.db) as session:
            contact = session.get(Contact, contact_id)
            set_sms(session, contact, True, Origin(method="form", form_id="booking", consent_text=SMS_CONSENT),
                    rt.clock())
            session.commit()
    return contact_id


def contact(rt: Runtime, email: str) -> Contact:
    with Session(rt.db) as session:
        return session.exec(select(Contact).where(Contact.email == email)).one()


def events(rt: Runtime, type_: str) -> list[Event]:
    with Session(rt.db) as session:
        return list(session.exec(select(Event).where(Event.type == type_).order_by(Event.id)))


def test_a_sequence_of_texts_goes_through_the_twilio_sdk_to_the_api(make_runtime, database_url, sms_project,
                                                                     fake_twilio, clock) -> None:
    rt = twilio_runtime(make_runtime, database_url, fake_twilio)
    add_texter(rt, "ann@example.com", ANN, first_name="Ann", timezone="America/Los_Angeles")

    assert send_due(rt) == {"sent": 1}
    [first] = fake_twilio.texts
    assert (first.to, first.from_) == (ANN, FROM_NUMBER)
    assert first.body.startswith("Hi Ann, you're booked at Juniper Pottery Studio!")
    assert first.body.endswith("\n\nReply STOP to opt out.")  # the first text to a number says how to stop
    assert first.status_callback == "https://nurture.test/twilio/status"
    [delivery] = deliveries(rt)
    assert (delivery.channel, delivery.recipient, delivery.status, delivery.provider_id) == \
        ("sms", ANN, "sent", first.sid)

    clock.now = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)  # 3 days later, 18:00 in Portland
    assert send_due(rt) == {"sent": 1}
    second = fake_twilio.texts[1]
    assert second.body.startswith("Hi Ann, how was your first class") and "STOP" not in second.body
    assert enrollment(rt, "ann@example.com", "class-reminders").status == "completed"


def test_a_contact_without_sms_consent_gets_no_text_and_the_reason_is_recorded(make_runtime, sqlite_url,
                                                                               sms_project, fake_twilio) -> None:
    rt = twilio_runtime(make_runtime, sqlite_url, fake_twilio)
    add_texter(rt, "ann@example.com", ANN, consent=False)
    add_contact(rt, "nophone@example.com", "class-reminders")

    assert send_due(rt) == {"skipped": 2}
    assert fake_twilio.requests == 0
    assert sorted(d.error for d in deliveries(rt)) == ["no address for this channel (sms)", "no sms consent"]


def test_twilio_21610_opts_the_contact_out_and_is_never_retried(make_runtime, database_url, sms_project,
                                                                 fake_twilio, clock) -> None:
    fake_twilio.fail(ANN, 400, 21610, "Attempt to send to unsubscribed recipient")
    rt = twilio_runtime(make_runtime, database_url, fake_twilio)
    add_texter(rt, "ann@example.com", ANN)

    assert send_due(rt) == {"failed": 1}
    assert contact(rt, "ann@example.com").sms_status == "unsubscribed"
    [failed] = deliveries(rt)
    with Session(rt.db) as session:
        record = session.exec(select(Consent).where(Consent.action == "opt-out")).one()
        assert (record.channel, record.method, record.delivery_id) == ("sms", "carrier-opt-out", failed.id)
        assert session.exec(select(Suppression)).all() == []  # they may opt back in with START
    for _ in range(3):
        clock.advance(days=3)
        send_due(rt)
    assert fake_twilio.requests == 1
    assert [(d.status, "21610" in d.error) for d in deliveries(rt)] == [("failed", True), ("skipped", False)]


def test_twilio_21211_is_permanent_and_suppresses_the_number(make_runtime, sqlite_url, sms_project, fake_twilio,
                                                              clock) -> None:
    fake_twilio.fail(ANN, 400, 21211, "The 'To' number +15035550123 is not a valid phone number.")
    rt = twilio_runtime(make_runtime, sqlite_url, fake_twilio)
    add_texter(rt, "ann@example.com", ANN)

    assert send_due(rt) == {"failed": 1}
    with Session(rt.db) as session:
        assert session.exec(select(Suppression.address)).all() == [ANN]
    clock.advance(days=4)
    send_due(rt)
    assert fake_twilio.requests == 1
    assert "suppressed" in deliveries(rt)[1].error


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (500, 20500), (503, 20503)])
def test_a_rate_limit_or_server_error_is_retried_after_the_backoff(make_runtime, sqlite_url, sms_project,
                                                                   fake_twilio, clock, status, code) -> None:
    fake_twilio.fail(ANN, status, code, "Too Many Requests" if status == 429 else "Service unavailable", times=1)
    rt = twilio_runtime(make_runtime, sqlite_url, fake_twilio, RETRY_BACKOFF="60,300")
    add_texter(rt, "ann@example.com", ANN)

    assert send_due(rt) == {"retry": 1}
    clock.advance(seconds=59)
    assert send_due(rt) == {}
    clock.advance(seconds=1)
    assert send_due(rt) == {"sent": 1}
    [delivery] = deliveries(rt)
    assert (delivery.status, delivery.attempts, len(fake_twilio.texts)) == ("sent", 2, 1)


def test_a_text_twilio_took_without_answering_in_time_is_found_there_and_not_sent_again(
        make_runtime, database_url, sms_project, fake_twilio, clock, monkeypatch) -> None:
    # Twilio queues the text and answers after the client stopped waiting: it may have it, and its API
    # takes no idempotency key. The first attempt's `sms.interrupted` says so on the record; after the
    # backoff, Twilio is asked for the newest texts to the number, finds this one, and it is recorded as
    # sent with Twilio's sid: the person gets one text.
    monkeypatch.setattr(twilio_transport, "TIMEOUT_SECONDS", 0.2)
    fake_twilio.clock = clock
    fake_twilio.stall(ANN, 2.0)
    rt = twilio_runtime(make_runtime, database_url, fake_twilio, RETRY_BACKOFF="60,300")
    add_texter(rt, "ann@example.com", ANN)

    assert send_due(rt) == {"retry": 1}
    [interrupted] = events(rt, "sms.interrupted")
    assert "no answer from the Twilio API after the request was sent" in interrupted.data["reason"]
    clock.advance(seconds=60)
    assert send_due(rt) == {"sent": 1}
    [text] = fake_twilio.to(ANN)
    assert (fake_twilio.requests, fake_twilio.lists) == (1, 1)
    [delivery] = deliveries(rt)
    assert (delivery.status, delivery.attempts, delivery.provider_id) == ("sent", 2, text.sid)
    [sent] = events(rt, "sms.sent")
    assert sent.delivery_id == delivery.id and "not sent again" in sent.data["found"]

    clock.advance(days=4)  # the next step: a first attempt, Twilio is asked nothing
    assert send_due(rt) == {"sent": 1}
    assert (len(fake_twilio.to(ANN)), fake_twilio.lists) == (2, 1)


def test_a_text_lost_before_twilio_kept_it_is_sent_again_after_asking(make_runtime, sqlite_url, sms_project,
                                                                      fake_twilio, clock) -> None:
    fake_twilio.clock = clock
    fake_twilio.drop(ANN)  # the request read whole, the connection closed, nothing kept
    rt = twilio_runtime(make_runtime, sqlite_url, fake_twilio, RETRY_BACKOFF="60,300")
    add_texter(rt, "ann@example.com", ANN)

    assert send_due(rt) == {"retry": 1}
    assert len(events(rt, "sms.interrupted")) == 1 and fake_twilio.texts == []
    clock.advance(seconds=60)
    assert send_due(rt) == {"sent": 1}
    [text] = fake_twilio.to(ANN)
    assert (fake_twilio.requests, fake_twilio.lists) == (2, 1)
    [delivery] = deliveries(rt)
    assert (delivery.status, delivery.attempts, delivery.provider_id) == ("sent", 2, text.sid)
    assert "found" not in events(rt, "sms.sent")[0].data


def test_when_twilio_cannot_say_whether_it_has_the_text_it_is_sent_again_and_on_the_record(
        make_runtime, sqlite_url, sms_project, fake_twilio, clock, monkeypatch) -> None:
    # Nothing due is dropped for a question Twilio did not answer: the person may get two texts, and the
    # first attempt's `sms.interrupted` says so.
    monkeypatch.setattr(twilio_transport, "TIMEOUT_SECONDS", 0.2)
    fake_twilio.clock = clock
    fake_twilio.stall(ANN, 2.0)
    fake_twilio.fail_lists(500, 20500, "Internal Server Error")
    rt = twilio_runtime(make_runtime, sqlite_url, fake_twilio, RETRY_BACKOFF="60,300")
    add_texter(rt, "ann@example.com", ANN)

    assert send_due(rt) == {"retry": 1}
    clock.advance(seconds=60)
    assert send_due(rt) == {"sent": 1}
    first, second = fake_twilio.to(ANN)
    assert first.body == second.body and fake_twilio.lists == 1
    [delivery] = deliveries(rt)
    assert (delivery.status, delivery.attempts, delivery.provider_id) == ("sent", 2, second.sid)
    assert [e.delivery_id for e in events(rt, "sms.interrupted")] == [delivery.id]


def test_a_text_sent_by_a_worker_that_died_before_recording_it_is_found_at_twilio(
        make_runtime, database_url, sms_project, fake_twilio, clock, monkeypatch) -> None:
    # Twilio took the text and the worker died before its record (here: an error right after the send, so
    # the row stays `sending`, as after a kill). Once the claim's lease is over, the next worker finds the
    # row `sending`, asks Twilio, and records the text Twilio has instead of sending it again.
    fake_twilio.clock = clock
    rt = twilio_runtime(make_runtime, database_url, fake_twilio)
    add_texter(rt, "ann@example.com", ANN)
    real = chunks._sent_record

    def dies(*args: object, **kwargs: object) -> object:
        raise RuntimeError("the worker died here")

    monkeypatch.setattr(chunks, "_sent_record", dies)
    assert send_due(rt) == {"error": 1}
    [text] = fake_twilio.to(ANN)
    assert [d.status for d in deliveries(rt)] == ["sending"]

    monkeypatch.setattr(chunks, "_sent_record", real)
    clock.advance(seconds=rt.settings.claim_lease_seconds + 1)
    assert send_due(rt) == {"sent": 1}
    assert (len(fake_twilio.to(ANN)), fake_twilio.lists) == (1, 1)
    [delivery] = deliveries(rt)
    assert (delivery.status, delivery.provider_id) == ("sent", text.sid)
    assert len(events(rt, "sms.interrupted")) == 1


def test_looking_for_an_earlier_text_matches_number_words_sender_and_time(fake_twilio, clock) -> None:
    fake_twilio.clock = clock
    settings = TwilioSettings(fake_twilio.account_sid, fake_twilio.auth_token, FROM_NUMBER,
                              api_base=fake_twilio.base_url)
    transport = TwilioTransport(settings)
    text = OutgoingSms(ANN, "Class is at 6", "m-1")
    since = clock()
    assert transport.find_sent(text, since) is None  # nothing sent yet
    sid = transport.send(text)
    transport.send(OutgoingSms(BEN, "Class is at 6", "m-2"))
    transport.send(OutgoingSms(ANN, "Class is at 7", "m-3"))
    assert transport.find_sent(text, since) == sid
    assert transport.find_sent(OutgoingSms(ANN, "Class is at 8", "m-4"), since) is None  # other words
    assert transport.find_sent(text, since + timedelta(hours=1)) is None  # taken before the attempt began
    other_sender = TwilioTransport(TwilioSettings(fake_twilio.account_sid, fake_twilio.auth_token, "+15005550009",
                                                  api_base=fake_twilio.base_url))
    assert other_sender.find_sent(text, since) is None
    with pytest.raises(TransportError, match="could not ask Twilio"):
        fake_twilio.fail_lists(503, 20503, "Service unavailable", times=1)
        transport.find_sent(text, since)
    transport.close()


def test_the_twilio_request_is_cut_off_at_the_batchs_deadline(fake_twilio) -> None:
    transport = TwilioTransport(TwilioSettings(fake_twilio.account_sid, fake_twilio.auth_token, FROM_NUMBER,
                                               api_base=fake_twilio.base_url))
    text = OutgoingSms(ANN, "Hi", "m-1")
    with pytest.raises(TransportError) as spent:  # no time left: not even asked
        transport.send(text, time_left=0)
    assert fake_twilio.requests == 0 and not spent.value.handed_over and not spent.value.permanent
    fake_twilio.stall(ANN, 2.0)
    with pytest.raises(TransportError) as cut:  # 0.2 s left of the lease, Twilio answers after 2 s
        transport.send(text, time_left=0.2)
    assert cut.value.handed_over and not cut.value.permanent and "ReadTimeout" in str(cut.value)
    assert transport.send(text, time_left=5).startswith("SM")  # the same client goes on
    transport.close()


def test_a_twilio_api_that_cannot_be_reached_is_a_plain_retry() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # a port nobody listens on
    transport = TwilioTransport(TwilioSettings("AC0", "token", FROM_NUMBER,
                                               api_base=f"http://127.0.0.1:{closed.getsockname()[1]}"))
    with pytest.raises(TransportError) as refused:
        transport.send(OutgoingSms(ANN, "Hi", "m-1"), time_left=5)
    closed.close()
    assert not refused.value.handed_over and not refused.value.permanent
    assert "Twilio API unreachable" in str(refused.value)


def test_a_text_due_at_23_local_goes_out_at_08_the_next_morning(make_runtime, database_url, sms_project,
                                                                 fake_twilio, clock) -> None:
    clock.now = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)  # Monday 23:00 in Portland
    rt = twilio_runtime(make_runtime, database_url, fake_twilio)
    add_texter(rt, "ann@example.com", ANN)  # no timezone of its own: the 503 area code says Pacific

    assert send_due(rt) == {"deferred": 1}
    morning = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)  # Tuesday 08:00 PST
    assert enrollment(rt, "ann@example.com", "class-reminders").due_at == morning
    [deferred] = events(rt, "sms.deferred")
    assert deferred.data["reason"].startswith("quiet hours") and deferred.data["until"] == morning.isoformat()

    clock.now = morning - timedelta(seconds=1)
    assert send_due(rt) == {}
    clock.now = morning
    assert send_due(rt) == {"sent": 1}
    assert len(fake_twilio.texts) == 1


def test_the_outbox_backend_writes_each_text_to_var_outbox_sms(make_runtime, sqlite_url, sms_project) -> None:
    rt = make_runtime(sqlite_url)  # SMS_BACKEND defaults to the outbox: nothing leaves the machine
    add_texter(rt, "ann@example.com", ANN, first_name="Ann")

    assert send_due(rt) == {"sent": 1}
    [path] = (sms_project / "var" / "outbox" / "sms").iterdir()
    text = path.read_text()
    headers, _, body = text.partition("\n\n")
    assert path.name == f"{ANN}--nurture-sms-{deliveries(rt)[0].id}.txt"
    assert f"To: {ANN}" in headers and "Segments: 1 segment (GSM-7, " in headers
    assert "Status-Callback: https://nurture.test/twilio/status" in headers
    assert body.startswith("Hi Ann, you're booked") and body.endswith("Reply STOP to opt out.\n")


def test_the_outbox_finds_a_text_an_earlier_attempt_wrote(tmp_path) -> None:
    outbox = SmsOutboxTransport(tmp_path / "sms")
    text = OutgoingSms(ANN, "Class is at 6", "nurture-sms-7")
    since = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert outbox.find_sent(text, since) is None
    assert outbox.send(text) == "nurture-sms-7"
    assert outbox.find_sent(text, since) == "nurture-sms-7"
    assert outbox.find_sent(OutgoingSms(ANN, "Class is at 7", "nurture-sms-7"), since) is None  # other words


# --- the sender's pace ---------------------------------------------------------------------------------------

EMAILS = """
id: welcome
name: Welcome
stage: capture-leads
steps:
  - {id: hello, kind: educate, template: lead/edu-1, subject: "Hello"}
"""


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis"])
def test_texts_keep_the_senders_pace_without_holding_up_email(make_runtime, sqlite_url, sms_project, fake_twilio,
                                                               clock, redis_url, shared) -> None:
    write_sequence(sms_project, "welcome", EMAILS)
    extra = {"REDIS_URL": redis_url} if shared else {}
    rt = twilio_runtime(make_runtime, sqlite_url, fake_twilio, SMS_RATE_PER_SECOND="1", **extra)
    for n in range(3):
        add_texter(rt, f"t{n}@example.com", f"+1503555012{n}")
    for n in range(2):
        add_contact(rt, f"e{n}@example.com", "welcome")
    start = clock.now

    # One text now; the other two wait for their turn, one second apart. Both emails go at once.
    assert send_due(rt) == {"sent": 3, "deferred": 2}
    assert len(fake_twilio.texts) == 1
    turns = sorted(enrollment(rt, f"t{n}@example.com", "class-reminders").due_at for n in range(3))
    assert turns[:2] == [start + timedelta(seconds=1), start + timedelta(seconds=2)]  # (the third: step two)

    clock.advance(seconds=1)
    assert send_due(rt) == {"sent": 1}
    clock.advance(seconds=1)
    assert send_due(rt) == {"sent": 1}
    assert len(fake_twilio.texts) == 3


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis"])
def test_a_reserved_turn_is_used_when_the_text_comes_back_and_a_backlog_drains_at_the_rate(redis_url,
                                                                                          shared) -> None:
    from redis import Redis

    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    paces = [RedisSendRate(Redis.from_url(redis_url), 0.5) for _ in range(2)] if shared else [MemorySendRate(0.5)] * 2
    # Two workers taking turns from the same sender (2 texts a second) see one schedule.
    assert paces[0].reserve("+15005550006", 1, now) == now
    assert paces[1].reserve("+15005550006", 2, now) == now + timedelta(seconds=0.5)
    assert paces[0].reserve("+15005550006", 3, now) == now + timedelta(seconds=1)
    assert paces[1].reserve("+15005550006", 2, now) == now + timedelta(seconds=0.5)  # asking again: same turn
    assert paces[0].reserve("+15005550099", 4, now) == now  # another sender is not held up
    later = now + timedelta(seconds=3)  # contact 2 comes back late: its turn is used, not queued again
    assert paces[1].reserve("+15005550006", 2, later) == later
    assert paces[0].reserve("+15005550006", 5, later) == later
    assert paces[0].reserve("+15005550006", 6, later) == later + timedelta(seconds=0.5)
