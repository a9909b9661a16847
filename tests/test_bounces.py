"""Bounces and complaints coming back, end to end: nurture sends through a real SMTP server, the returned
message (real bytes, as Postfix, Gmail, qmail and Yahoo write them) arrives in a maildir or over SMTP at
`nurture bounces serve`'s endpoint, and the contact, the suppression list and the delivery row change — or,
for a forged one, do not."""

from __future__ import annotations

import mailbox
import re
import smtplib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from redis import Redis
from rq import Queue, SimpleWorker
from sqlmodel import Session, select

from nurture import jobs
from nurture.delivery import bounce_mail
from nurture.delivery.bounce_server import start_server
from nurture.insight import why
from nurture.insight.map_sheet import current_map
from nurture.runtime import Runtime, use_runtime
from nurture.store.models import Consent, Contact, Event, Suppression
from tests.bounce_samples import arf_complaint, gmail_dsn_whole_message, postfix_dsn, qmail_bounce
from tests.conftest import FakeClock, Received, SmtpServer, free_port, worker_env
from tests.console_support import logged_in
from tests.helpers import add_contact, deliveries, send_due
from tests.imap_fake import FakeMailbox, imap_server


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    return tmp_path / "bounces"


@pytest.fixture
def rt(make_runtime, database_url, smtp_server: SmtpServer, maildir: Path) -> Runtime:  # noqa: ANN001
    return make_runtime(database_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url, BOUNCE_MAILDIR=str(maildir),
                        BOUNCE_ADDRESS="bounces@juniper.test", BOUNCE_SOFT_LIMIT="2")


@pytest.fixture
def endpoint(rt: Runtime) -> Iterator[tuple[str, int]]:
    """`nurture bounces serve`'s SMTP endpoint, on a free port."""
    port = free_port()
    controller = start_server(rt, "127.0.0.1", port)
    yield "127.0.0.1", port
    controller.stop()


def send_one(rt: Runtime, smtp_server: SmtpServer, email: str = "ann@example.com") -> tuple[str, bytes]:
    """Send the next due step; (its envelope sender, its bytes) as the SMTP server received them."""
    before = len(smtp_server.received)
    assert send_due(rt) == {"sent": 1}
    [received] = smtp_server.received[before:]
    assert received.rcpt_tos == [email]
    return received.mail_from, received.data


def drop(maildir: Path, data: bytes) -> None:
    """Deliver into the maildir as the local MTA would."""
    mailbox.Maildir(maildir, create=True).add(data)


def relay(endpoint: tuple[str, int], rcpt: str, data: bytes) -> tuple[int, bytes]:
    """Forward a returned message to the endpoint as a relay does: MAIL FROM:<>, RCPT TO the return path."""
    with smtplib.SMTP(*endpoint) as client:
        client.ehlo()
        client.mail("")
        client.rcpt(rcpt)
        return client.data(data)


def suppressed(rt: Runtime) -> dict[str, str]:
    with Session(rt.db) as session:
        return {s.address: s.reason for s in session.exec(select(Suppression))}


def events(rt: Runtime, type_: str) -> list[Event]:
    with Session(rt.db) as session:
        return list(session.exec(select(Event).where(Event.type == type_).order_by(Event.id)))


def story(rt: Runtime, email: str = "ann@example.com") -> list[str]:
    with Session(rt.db) as session:
        return why.format_story(why.explain(session, email, rt.sequences, rt.clock()))


def test_every_message_carries_a_return_path_naming_its_delivery(rt, smtp_server) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    add_contact(rt, "bob@example.com", "lead-nurture")
    send_due(rt)
    by_recipient = {r.rcpt_tos[0]: r.mail_from for r in smtp_server.received}
    for delivery in deliveries(rt):
        verp = by_recipient[delivery.recipient]
        assert verp.startswith("bounces+") and verp.endswith("@juniper.test")
        assert rt.signer.returned_delivery(verp) == delivery.id
    assert len(set(by_recipient.values())) == 2


def test_a_hard_bounce_in_the_maildir_suppresses_the_address_and_nothing_more_is_sent(
        rt, smtp_server, maildir, clock: FakeClock) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    verp, sent = send_one(rt, smtp_server)
    drop(maildir, postfix_dsn(verp, "ann@example.com", sent))

    assert bounce_mail.read_mailbox(rt) == {"suppressed": 1}
    assert suppressed(rt) == {"ann@example.com": "hard bounce: 5.1.1 550 5.1.1 <ann@example.com>: Recipient "
                                                 "address rejected: User unknown in virtual mailbox table"}
    [delivery] = deliveries(rt)
    assert delivery.status == "bounced"
    [event] = events(rt, "email.bounced")
    assert (event.delivery_id, event.data["step"], event.data["status"]) == (delivery.id, "edu-1", "5.1.1")
    assert mailbox.Maildir(maildir).keys() == []  # moved out of the way, kept in .processed
    assert len(mailbox.Maildir(maildir).get_folder("processed")) == 1
    assert bounce_mail.read_mailbox(rt) == {}

    clock.now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # edu-2 is due: skipped, never sent
    assert send_due(rt) == {"skipped": 1}
    assert len(smtp_server.received) == 1
    text = "\n".join(story(rt))
    assert "edu-1" in text and "bounced     hard bounce: 5.1.1 550 5.1.1" in text
    assert "suppressed: ann@example.com since" in text


def test_soft_bounces_count_and_suppress_at_the_limit_within_the_window(rt, smtp_server, maildir, clock) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")  # Monday 23 Nov 09:00
    _, first = send_one(rt, smtp_server)
    drop(maildir, gmail_dsn_whole_message("ann@example.com", first))  # no envelope: the Message-ID tells
    assert bounce_mail.read_mailbox(rt) == {"counted": 1}
    assert suppressed(rt) == {}

    clock.now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # edu-2, two days later: still sent
    verp, second = send_one(rt, smtp_server)
    drop(maildir, qmail_bounce(verp, "ann@example.com", second, "452 4.2.2 Mailbox over quota, giving up"))
    assert bounce_mail.read_mailbox(rt) == {"suppressed": 1}  # the 2nd soft bounce in 7 days
    assert suppressed(rt)["ann@example.com"].startswith("2 soft bounces in 7 days (last: soft bounce: 4.2.2")
    assert [d.status for d in deliveries(rt)] == ["bounced", "bounced"]
    assert [e.data["step"] for e in events(rt, "email.soft_bounce")] == ["edu-1", "edu-2"]
    lines = story(rt)
    assert [line.split()[4:6] for line in lines if line.startswith("  2026") and "bounce" in line] == [
        ["edu-1", "soft_bounce"], ["edu-2", "soft_bounce"]]  # once each: the delivery's status says no more


def test_soft_bounces_further_apart_than_the_window_only_count(rt, smtp_server, maildir, clock) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    _, first = send_one(rt, smtp_server)
    drop(maildir, gmail_dsn_whole_message("ann@example.com", first))
    bounce_mail.read_mailbox(rt)
    clock.now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    verp, second = send_one(rt, smtp_server)
    clock.now = datetime(2026, 12, 1, 9, 1, tzinfo=UTC)  # the first one is now more than 7 days old
    drop(maildir, postfix_dsn(verp, "ann@example.com", second, status="4.2.2", diagnostic="452 4.2.2 full"))
    assert bounce_mail.read_mailbox(rt) == {"counted": 1}
    assert suppressed(rt) == {}


def test_a_complaint_over_smtp_unsubscribes_with_a_consent_record_and_suppresses(rt, smtp_server, endpoint) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    verp, sent = send_one(rt, smtp_server)
    # The feedback loop mails its registered address; the report's Original-Mail-From is the return path.
    code, reply = relay(endpoint, "fbl@juniper.test", arf_complaint(verp, "ann@example.com", sent))
    assert (code, reply) == (250, b"2.0.0 Report unsubscribed")

    with Session(rt.db) as session:
        contact = session.exec(select(Contact)).one()
        [consent] = session.exec(select(Consent).where(Consent.action == "opt-out")).all()
    assert contact.email_status == "unsubscribed"
    assert (consent.method, consent.scope, consent.delivery_id) == ("complaint", "all", deliveries(rt)[0].id)
    assert consent.consent_text == "marked as spam: feedback report from Yahoo!-Mail-Feedback/2.0"
    assert suppressed(rt) == {"ann@example.com": "spam complaint (Yahoo!-Mail-Feedback/2.0)"}
    assert [e.data["step"] for e in events(rt, "email.complained")] == ["edu-1"]
    assert deliveries(rt)[0].status == "sent"  # it was delivered: the recipient read it and complained
    text = "\n".join(story(rt))
    assert "complained  spam complaint: feedback type abuse" in text
    assert "email unsubscribed" in text and "via complaint" in text


def test_a_bounce_over_smtp_is_traced_by_its_envelope_recipient(rt, smtp_server, endpoint) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    verp, sent = send_one(rt, smtp_server)
    # A relay that rewrote the bounce's headers: only the RCPT TO still carries the return path.
    data = postfix_dsn("postmaster@juniper.test", "ann@example.com", b"Subject: (headers dropped)\r\n\r\n")
    assert relay(endpoint, verp, data) == (250, b"2.0.0 Report suppressed")
    assert "ann@example.com" in suppressed(rt)


@pytest.mark.parametrize("forge", ["mac", "delivery", "nothing"])
def test_a_forged_bounce_changes_nothing(rt, smtp_server, endpoint, maildir, forge: str) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    verp, _ = send_one(rt, smtp_server)
    delivery_id = deliveries(rt)[0].id
    local, _, domain = verp.partition("@")
    body, _, mac = local.partition("+")[2].partition(".")
    forged = {"mac": f"bounces+{body}.{'0' * 8}@{domain}",
              "delivery": f"bounces+{int(body, 36) + 1:x}.{mac}@{domain}",
              "nothing": "bounces@juniper.test"}[forge]
    fake_original = b"Message-ID: <nurture.%d.0123456789@juniper.test>\r\n\r\n" % delivery_id
    for data in (postfix_dsn(forged, "ann@example.com", fake_original),
                 arf_complaint(forged, "ann@example.com", fake_original)):
        assert relay(endpoint, forged, data) == (250, b"2.0.0 Report unverified")
        drop(maildir, data)
    assert bounce_mail.read_mailbox(rt) == {"unverified": 2}

    assert suppressed(rt) == {}
    assert [d.status for d in deliveries(rt)] == ["sent"]
    with Session(rt.db) as session:
        assert session.exec(select(Contact)).one().email_status == "subscribed"
        assert session.exec(select(Event.type).where(Event.type.in_(  # type: ignore[attr-defined]
            ("email.bounced", "email.soft_bounce", "email.complained", "email.unsubscribed")))).all() == []


def test_the_same_report_twice_counts_once(rt, smtp_server, endpoint, maildir) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    verp, sent = send_one(rt, smtp_server)
    data = postfix_dsn(verp, "ann@example.com", sent, status="4.2.2", diagnostic="452 4.2.2 full")
    assert relay(endpoint, verp, data) == (250, b"2.0.0 Report counted")
    assert relay(endpoint, verp, data) == (250, b"2.0.0 Report duplicate")  # the relay sent it again
    drop(maildir, data)  # and it reached the mailbox too
    assert bounce_mail.read_mailbox(rt) == {"duplicate": 1}
    assert len(events(rt, "email.soft_bounce")) == 1
    assert suppressed(rt) == {}  # one soft bounce, not the limit of two


def test_a_delay_warning_and_a_reply_change_nothing(rt, smtp_server, maildir) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    verp, sent = send_one(rt, smtp_server)
    drop(maildir, postfix_dsn(verp, "ann@example.com", sent, status="4.4.1", action="delayed",
                              diagnostic="connect to mail.example.com timed out"))
    drop(maildir, b"From: ann@example.com\r\nTo: " + verp.encode() + b"\r\nSubject: Re: hi\r\n\r\nThanks!\r\n")
    assert bounce_mail.read_mailbox(rt) == {"ignored": 2}
    assert suppressed(rt) == {} and [d.status for d in deliveries(rt)] == ["sent"]


def test_a_bounce_never_moves_a_delivery_backwards(rt, smtp_server, maildir) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    verp, sent = send_one(rt, smtp_server)
    with Session(rt.db) as session:  # the send path recorded something final after "sent" meanwhile
        delivery = deliveries(rt)[0]
        delivery.status = "failed"
        session.add(delivery)
        session.commit()
    drop(maildir, postfix_dsn(verp, "ann@example.com", sent))
    assert bounce_mail.read_mailbox(rt) == {"suppressed": 1}
    assert deliveries(rt)[0].status == "failed"


def test_a_bounce_that_arrives_before_the_sent_outcome_is_recorded_stands(rt, smtp_server, maildir) -> None:
    # A fast relay: its DSN is read while the send path still waits for the 250 (the row says `sending`).
    # Recording `sent` afterwards must keep `bounced` and its reason.
    add_contact(rt, "ann@example.com", "lead-nurture")
    applied: list[dict] = []

    def bounce_mid_send(item: Received) -> None:
        assert [d.status for d in deliveries(rt)] == ["sending"]
        drop(maildir, postfix_dsn(item.mail_from, "ann@example.com", item.data))
        applied.append(bounce_mail.read_mailbox(rt))

    smtp_server.handler.on_data = bounce_mid_send
    assert send_due(rt) == {"sent": 1}
    assert applied == [{"suppressed": 1}]
    [delivery] = deliveries(rt)
    assert delivery.status == "bounced" and delivery.error and delivery.error.startswith("hard bounce: 5.1.1")
    assert delivery.sent_at is not None  # it was sent, then bounced
    assert "ann@example.com" in suppressed(rt)
    assert [e.type for e in events(rt, "email.sent")] == ["email.sent"]


def test_the_tick_queues_one_mailbox_read_that_the_worker_runs(rt, smtp_server, maildir, make_runtime,
                                                               database_url, redis_url) -> None:
    worker_rt = make_runtime(database_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url, REDIS_URL=redis_url,
                             BOUNCE_MAILDIR=str(maildir), BOUNCE_ADDRESS="bounces@juniper.test")
    add_contact(worker_rt, "ann@example.com", "lead-nurture")
    verp, sent = send_one(worker_rt, smtp_server)
    drop(maildir, postfix_dsn(verp, "ann@example.com", sent))
    use_runtime(worker_rt)
    try:
        jobs.tick()
        jobs.tick()  # a read already waiting is not queued twice
        redis = Redis.from_url(redis_url)
        queue = Queue(worker_rt.settings.queue_name, connection=redis)
        assert queue.job_ids == ["read-bounces"]
        SimpleWorker([queue], connection=redis).work(burst=True)
    finally:
        use_runtime(None)
    assert "ann@example.com" in suppressed(worker_rt)


def test_the_imap_reader_applies_and_deletes_what_it_read(make_runtime, sqlite_url, smtp_server) -> None:
    box = FakeMailbox("bounces@juniper.test", "p@ss word")
    with imap_server(box) as port:
        url = f"imap://bounces%40juniper.test:p%40ss%20word@127.0.0.1:{port}/INBOX"
        rt = make_runtime(sqlite_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url, BOUNCE_IMAP_URL=url)
        add_contact(rt, "ann@example.com", "lead-nurture")
        verp, sent = send_one(rt, smtp_server)
        box.add(postfix_dsn(verp, "ann@example.com", sent))
        box.add(b"From: someone@example.com\r\nSubject: hello\r\n\r\nnot a bounce\r\n")
        assert bounce_mail.read_mailbox(rt) == {"suppressed": 1, "ignored": 1}
        assert bounce_mail.read_mailbox(rt) == {}
    assert box.logins == ["bounces@juniper.test", "bounces@juniper.test"]
    assert box.messages == {}
    assert "ann@example.com" in suppressed(rt)


def test_the_bounces_read_command(rt, smtp_server, maildir, project, database_url, monkeypatch) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    verp, sent = send_one(rt, smtp_server)
    drop(maildir, postfix_dsn(verp, "ann@example.com", sent))
    drop(maildir, postfix_dsn("bounces+1.00000000@juniper.test", "ann@example.com", b"\r\n"))
    for name, value in worker_env(project, database_url, BOUNCE_MAILDIR=str(maildir),
                                  BOUNCE_ADDRESS="bounces@juniper.test").items():
        monkeypatch.setenv(name, value)
    from nurture.cli import main

    result = CliRunner().invoke(main, ["bounces", "read"])
    assert (result.exit_code, result.output) == (0, "suppressed 1, unverified 1\n")
    monkeypatch.delenv("BOUNCE_MAILDIR")
    result = CliRunner().invoke(main, ["bounces", "read"])
    assert result.exit_code == 1
    assert "nurture: no bounce mailbox: set BOUNCE_MAILDIR or BOUNCE_IMAP_URL" in result.output


def test_a_relay_refusing_the_return_path_holds_the_message_and_says_what_to_set(
        make_runtime, sqlite_url, smtp_server) -> None:
    async def refuse_verp(server, session, envelope, address, mail_options):  # noqa: ANN001, ANN202
        if "+" in address:  # a submission server that lets this account send only as itself
            return f"553 5.7.1 <{address}>: Sender address rejected: not owned by user"
        envelope.mail_from = address
        return "250 OK"

    smtp_server.handler.handle_MAIL = refuse_verp  # type: ignore[attr-defined]
    rt = make_runtime(sqlite_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url)
    add_contact(rt, "ann@example.com", "lead-nurture")
    assert send_due(rt) == {"retry": 1}
    [delivery] = deliveries(rt)
    assert delivery.error and delivery.error.startswith("relay refused the envelope sender hello+")
    assert "set BOUNCE_ADDRESS" in delivery.error and "553" in delivery.error
    assert suppressed(rt) == {}


def test_the_console_still_counts_a_bounced_message_as_sent(rt, smtp_server, maildir) -> None:
    """(Once the Basic-auth overview's "sent" column; now the console's funnel and map.)"""
    add_contact(rt, "ann@example.com", "lead-nurture")
    verp, sent = send_one(rt, smtp_server)
    drop(maildir, postfix_dsn(verp, "ann@example.com", sent))
    bounce_mail.read_mailbox(rt)
    client = logged_in(rt, "viewer")
    page = client.get("/sequences/lead-nurture").get_data(as_text=True)
    row = re.search(r'<tr data-step="edu-1">.*?<td data-metric="sent">(\d+)<.*?<td data-metric="delivered">(\d+)<'
                    r'.*?<td data-metric="bounced">(\d+)<', page, re.DOTALL)
    assert row is not None and row.groups() == ("1", "0", "1")  # sent, not delivered, bounced
    lead_nurture = next(s for stage in current_map(rt).stages for s in stage.sequences if s.id == "lead-nurture")
    assert [step.waiting for step in lead_nurture.steps][:2] == [0, 1]  # waiting at edu-1: none
