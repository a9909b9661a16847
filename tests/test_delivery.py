"""Sending sequence steps through a real SMTP server: timing, message format, failures."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlmodel import Session, select

from nurture.content.mail import Envelope, build_email
from nurture.content.rendering import RenderedEmail
from nurture.delivery.channels.email import EmailChannel
from nurture.delivery.transports.smtp import SmtpTransport
from nurture.store import sending
from nurture.store.models import Contact, Event, Suppression
from tests.conftest import FakeClock, SmtpServer, write_sequence
from tests.helpers import add_contact, deliveries, enrollment, send_due


def smtp_runtime(make_runtime, database_url: str, smtp_server: SmtpServer, **overrides: str):  # noqa: ANN001, ANN201
    return make_runtime(database_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url, **overrides)


def test_it_sends_each_step_once_at_its_time(make_runtime, database_url, smtp_server, clock: FakeClock) -> None:
    rt = smtp_runtime(make_runtime, database_url, smtp_server)
    add_contact(rt, "ann@example.com", "lead-nurture", first_name="Ann")  # Monday 09:00 UTC

    assert send_due(rt) == {"sent": 1}
    assert [r.message["Subject"] for r in smtp_server.received] == ["Welcome to Juniper Pottery Studio, Ann"]

    # edu-2 waits 2d, then the next weekday 10:00: Wednesday 10:00, not a minute before.
    clock.now = datetime(2026, 11, 25, 9, 59, 59, tzinfo=UTC)
    assert send_due(rt) == {}
    clock.now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert send_due(rt) == {"sent": 1}
    assert send_due(rt) == {}  # nothing twice

    clock.now = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)  # edu-3: 3d later, Saturday
    assert send_due(rt) == {"sent": 1}
    clock.now = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)  # offer: 2d later, then 10:00
    assert send_due(rt) == {"sent": 1}
    clock.advance(days=30)
    assert send_due(rt) == {}

    assert [d.step_id for d in deliveries(rt)] == ["edu-1", "edu-2", "edu-3", "offer"]
    assert all(d.status == "sent" for d in deliveries(rt))
    assert len(smtp_server.received) == 4
    assert enrollment(rt, "ann@example.com", "lead-nurture").status == "completed"


def test_it_times_steps_in_the_contacts_own_timezone(make_runtime, sqlite_url, smtp_server, clock) -> None:
    rt = smtp_runtime(make_runtime, sqlite_url, smtp_server)
    add_contact(rt, "kenji@example.com", "lead-nurture", timezone="Asia/Tokyo")
    send_due(rt)
    # Enrolled Monday 18:00 Tokyo; +2d = Wednesday 18:00, so the next weekday 10:00 Tokyo is Thursday 01:00 UTC.
    assert enrollment(rt, "kenji@example.com", "lead-nurture").due_at == datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def test_a_delivered_email_is_multipart_alternative_with_list_headers(make_runtime, database_url, smtp_server,
                                                                       clock) -> None:
    rt = smtp_runtime(make_runtime, database_url, smtp_server)
    add_contact(rt, "ann@example.com", "lead-nurture", first_name="Ann", last_name="Lee")
    send_due(rt)

    [received] = smtp_server.received
    message = received.message
    # The envelope sender is MAIL_FROM's address in its VERP form, naming this delivery (docs/deliverability.md).
    assert received.mail_from == rt.signer.return_path(deliveries(rt)[0].id, "hello@juniper.test")
    assert re.fullmatch(r"hello\+[0-9a-z]+\.[0-9a-z]{8}@juniper\.test", received.mail_from)
    assert received.rcpt_tos == ["ann@example.com"]
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["From"] == "Juniper Pottery Studio <hello@juniper.test>"
    assert message["To"] == "Ann Lee <ann@example.com>"
    assert message["Date"] and re.fullmatch(r"<nurture\.\d+\.[0-9a-f]+@juniper\.test>", message["Message-ID"])
    assert message["List-Id"] == "Lead nurture <lead-nurture.juniper.test>"
    unsubscribe = re.match(r"<(https://nurture\.test/u/[^>]+)>, <mailto:[^>]+>", message["List-Unsubscribe"])
    assert unsubscribe, message["List-Unsubscribe"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for body in (text, html):
        assert unsubscribe[1] in body
        assert "12 Kiln Lane, Portland, OR 97201" in body
    assert 'style="' in html  # CSS was inlined
    assert "{{" not in html and "JINJA" not in html
    assert max(len(line) for line in received.data.split(b"\r\n")) <= 998


def test_a_very_long_html_line_is_wrapped_within_smtp_limits() -> None:
    content = RenderedEmail(subject="Hello", html="<p>" + "x" * 5000 + "</p>", text="y" * 3000)
    built = build_email(_envelope(), content)
    assert max(len(line) for line in built.data.split(b"\r\n")) <= 998
    from email import message_from_bytes, policy

    parsed = message_from_bytes(built.data, policy=policy.default)
    assert parsed.get_body(("html",)).get_content().strip() == "<p>" + "x" * 5000 + "</p>"


def _envelope(**overrides: str) -> Envelope:
    values = dict(mail_from="Shop <shop@example.com>", to_address="ann@example.com", to_name="Ann",
                  message_id="<1@example.com>", date=datetime(2026, 1, 1, tzinfo=UTC), list_id="<l.example.com>")
    values.update(overrides)
    return Envelope(**values)  # type: ignore[arg-type]


def test_cr_and_lf_in_a_name_or_subject_can_never_inject_a_header() -> None:
    content = RenderedEmail(subject="Hi\r\nBcc: victim@example.net", html="<p>x</p>", text="x")
    built = build_email(_envelope(to_name="Ann\r\nBcc: evil@example.net"), content)
    from email import message_from_bytes, policy

    parsed = message_from_bytes(built.data, policy=policy.default)
    assert parsed["Bcc"] is None
    assert "\n" not in parsed["Subject"] and "Bcc" in parsed["Subject"]


def test_a_non_ascii_subject_and_name_are_encoded() -> None:
    content = RenderedEmail(subject="Glasur für dich — 15 % 🏺", html="<p>é</p>", text="é")
    built = build_email(_envelope(to_name="Zoë Müller"), content)
    from email import message_from_bytes, policy

    parsed = message_from_bytes(built.data, policy=policy.default)
    assert parsed["Subject"] == "Glasur für dich — 15 % 🏺"
    assert parsed["To"].addresses[0].display_name == "Zoë Müller"
    assert built.data.isascii()


def test_a_template_error_fails_that_delivery_and_the_batch_goes_on(make_runtime, database_url, smtp_server,
                                                                     project, clock) -> None:
    (project / "email_templates" / "company.html").write_text(
        '{% extends "_layout.html" %}{% block content %}<p>For {{ contact.fields.company }}</p>{% endblock %}')
    (project / "email_templates" / "company.txt").write_text(
        '{% extends "_layout.txt" %}{% block content %}For {{ contact.fields.company }}{% endblock %}')
    write_sequence(project, "b2b", """
id: b2b
name: B2B
stage: nurture-prospects
steps:
  - {id: one, kind: educate, template: company, subject: "Hello"}
  - {id: two, kind: offer, wait: 1d, template: lead/offer, subject: "An offer"}
""")
    rt = smtp_runtime(make_runtime, database_url, smtp_server)
    add_contact(rt, "a@example.com", "b2b", fields={"company": "Acme"})
    add_contact(rt, "b@example.com", "b2b")  # no company: StrictUndefined refuses to guess
    add_contact(rt, "c@example.com", "b2b", fields={"company": "Initech"})

    assert send_due(rt) == {"sent": 2, "failed": 1}
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == ["a@example.com", "c@example.com"]
    [failed] = deliveries(rt, "b@example.com")
    assert failed.status == "failed" and "company" in failed.error
    # The failure is recorded, and the contact moves on to the next step rather than stalling.
    assert enrollment(rt, "b@example.com", "b2b").step_id == "two"


def test_a_permanent_rejection_is_recorded_and_suppresses_the_address(make_runtime, database_url, smtp_server,
                                                                       clock) -> None:
    smtp_server.handler.replies["gone@example.com"] = "550 5.1.1 No such user"
    rt = smtp_runtime(make_runtime, database_url, smtp_server)
    add_contact(rt, "gone@example.com", "lead-nurture")
    add_contact(rt, "ok@example.com", "lead-nurture")

    assert send_due(rt) == {"sent": 1, "failed": 1}
    [failed] = deliveries(rt, "gone@example.com")
    assert failed.status == "failed" and "550" in failed.error
    with Session(rt.db) as session:
        assert session.exec(select(Suppression.address)).all() == ["gone@example.com"]

    # Nothing more goes to a suppressed address, at any later step.
    clock.advance(days=30)
    send_due(rt)
    clock.advance(days=30)
    send_due(rt)
    assert smtp_server.handler.to("gone@example.com") == []
    assert [d.status for d in deliveries(rt, "gone@example.com")] == ["failed", "skipped"]


def test_a_temporary_failure_is_retried_later_with_backoff(make_runtime, database_url, smtp_server, clock) -> None:
    replies = ["451 4.3.0 Try again later", "421 4.7.0 Too busy"]
    smtp_server.handler.on_data = lambda _item: replies.pop(0) if replies else None
    rt = smtp_runtime(make_runtime, database_url, smtp_server, RETRY_BACKOFF="60,300")
    add_contact(rt, "ann@example.com", "lead-nurture")

    assert send_due(rt) == {"retry": 1}
    [delivery] = deliveries(rt)
    assert delivery.status == "retry" and "451" in delivery.error
    clock.advance(seconds=59)
    assert send_due(rt) == {}  # not before the backoff
    clock.advance(seconds=1)
    assert send_due(rt) == {"retry": 1}
    clock.advance(seconds=300)
    assert send_due(rt) == {"sent": 1}
    [delivery] = deliveries(rt)
    assert delivery.status == "sent" and delivery.attempts == 3
    assert len(smtp_server.received) == 1


def test_a_temporary_failure_gives_up_when_the_backoff_is_spent(make_runtime, sqlite_url, smtp_server,
                                                                clock) -> None:
    smtp_server.handler.on_data = lambda _item: "451 4.3.0 Try again later"
    rt = smtp_runtime(make_runtime, sqlite_url, smtp_server, RETRY_BACKOFF="60")
    add_contact(rt, "ann@example.com", "lead-nurture")
    send_due(rt)
    clock.advance(seconds=60)
    assert send_due(rt) == {"failed": 1}
    [delivery] = deliveries(rt)
    assert delivery.status == "failed" and "gave up after 2 attempts" in delivery.error
    assert enrollment(rt, "ann@example.com", "lead-nurture").step_id == "edu-2"


def test_a_server_that_cannot_be_reached_is_a_temporary_failure(make_runtime, sqlite_url, clock) -> None:
    from tests.conftest import free_port

    rt = make_runtime(sqlite_url, EMAIL_BACKEND="smtp", SMTP_URL=f"smtp://127.0.0.1:{free_port()}")
    add_contact(rt, "ann@example.com", "lead-nurture")
    assert send_due(rt) == {"retry": 1}
    assert "connection" in deliveries(rt)[0].error.lower()


def test_an_unsubscribed_contact_gets_nothing_even_once_claimed(make_runtime, database_url, smtp_server,
                                                                clock) -> None:
    from nurture.delivery import dispatch

    rt = smtp_runtime(make_runtime, database_url, smtp_server)
    contact_id = add_contact(rt, "ann@example.com", "lead-nurture")
    tokens: list[str] = []
    dispatch.claim_batches(rt, tokens.append, max_batches=10)  # claimed and queued...
    with Session(rt.db) as session:  # ...then the contact unsubscribes before the batch runs
        contact = session.get(Contact, contact_id)
        contact.email_status = "unsubscribed"
        session.commit()
    for token in tokens:
        dispatch.run_batch(rt, token)

    assert smtp_server.received == []
    [delivery] = deliveries(rt)
    assert delivery.status == "skipped" and "unsubscribed" in delivery.error
    assert enrollment(rt, "ann@example.com", "lead-nurture").status == "stopped"


def test_the_outbox_backend_writes_eml_files(make_runtime, sqlite_url, project, clock) -> None:
    rt = make_runtime(sqlite_url)
    add_contact(rt, "ann@example.com", "customer", first_name="Ann")
    assert send_due(rt) == {"sent": 1}
    [eml] = list((project / "var" / "outbox").glob("*.eml"))
    assert eml.name.startswith("ann@example.com--")
    from email import message_from_bytes, policy

    subject = message_from_bytes(eml.read_bytes(), policy=policy.default)["Subject"]
    assert subject == "You're booked! Here's what to bring"


def test_every_send_lands_on_the_contacts_timeline(make_runtime, sqlite_url, smtp_server, clock) -> None:
    rt = smtp_runtime(make_runtime, sqlite_url, smtp_server)
    contact_id = add_contact(rt, "ann@example.com", "customer")
    send_due(rt)
    with Session(rt.db) as session:
        types = session.exec(select(Event.type).where(Event.contact_id == contact_id).order_by(Event.id)).all()
    assert types == ["contact.created", "sequence.enrolled", "email.sent"]


def test_the_next_email_is_composed_while_the_server_takes_this_one_in_and_marked_before_it_goes(
        make_runtime, sqlite_url, smtp_server, clock, monkeypatch) -> None:
    # The send path hands a message over (SmtpTransport.start), composes the chunk's next one while the
    # server takes it in, then reads the answer (finish): the worker works instead of waiting. The next
    # message still goes out only after its `sending` mark, and each message is composed once.
    rt = smtp_runtime(make_runtime, sqlite_url, smtp_server)
    emails = [f"p{n}@example.com" for n in range(4)]
    for email in emails:
        add_contact(rt, email, "lead-nurture")
    composed: list[str] = []
    seen: list[tuple] = []
    real_compose, real_start, real_finish = EmailChannel.compose, SmtpTransport.start, SmtpTransport.finish

    def compose(self, rt_, contact, sequence, step, delivery_id, now):  # noqa: ANN001, ANN202
        composed.append(contact.email)
        return real_compose(self, rt_, contact, sequence, step, delivery_id, now)

    def start(self, message, time_left=None):  # noqa: ANN001, ANN202
        statuses = {d.recipient: d.status for d in deliveries(rt)}
        seen.append(("start", message.recipient, statuses[message.recipient],
                     sorted(r for r, s in statuses.items() if s == "sent")))
        real_start(self, message, time_left)

    def finish(self):  # noqa: ANN001, ANN202
        seen.append(("finish", len(composed)))
        return real_finish(self)

    monkeypatch.setattr(EmailChannel, "compose", compose)
    monkeypatch.setattr(SmtpTransport, "start", start)
    monkeypatch.setattr(SmtpTransport, "finish", finish)
    assert send_due(rt) == {"sent": 4}

    assert sorted(composed) == emails  # each composed once: the one composed ahead is the one sent
    starts = [s for s in seen if s[0] == "start"]
    assert [s[2] for s in starts] == ["sending"] * 4  # marked before it is handed over
    assert [len(s[3]) for s in starts] == [0, 1, 2, 3]  # the one before it is recorded `sent` by then
    finishes = [s[1] for s in seen if s[0] == "finish"]
    assert finishes == [2, 3, 4, 4]  # the next message was composed before this one's answer was read
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == emails


def test_the_next_envelope_is_announced_before_its_mark_and_a_message_whose_mark_fails_never_goes(
        make_runtime, sqlite_url, smtp_server, monkeypatch) -> None:
    # SmtpTransport.announce writes the next message's MAIL/RCPT/DATA while its `sending` mark is written;
    # its data goes only in its own start, after the mark. Here the mark of the second message fails (as
    # when the claim was taken over): it is never delivered, and the batch goes on without it.
    rt = smtp_runtime(make_runtime, sqlite_url, smtp_server)
    emails = [f"p{n}@example.com" for n in range(3)]
    for email in emails:
        add_contact(rt, email, "lead-nurture")
    announced: list[tuple[str, str]] = []
    real_announce, real_record = SmtpTransport.announce, sending.Writes.record

    def announce(self, message, time_left=None):  # noqa: ANN001, ANN202
        announced.append((message.recipient, {d.recipient: d.status for d in deliveries(rt)}[message.recipient]))
        real_announce(self, message, time_left)

    def record(self, record, start=None):  # noqa: ANN001, ANN202
        if start is not None and not announced[1:]:  # the second message's mark: as if the claim were gone
            written = real_record(self, record)
            return sending.Written(written.recorded, written.moved, started=False)
        return real_record(self, record, start)

    monkeypatch.setattr(SmtpTransport, "announce", announce)
    monkeypatch.setattr(sending.Writes, "record", record)
    outcome = send_due(rt)

    assert outcome == {"sent": 2, "claim-lost": 1}
    assert announced[0] == ("p1@example.com", "queued")  # announced before its mark
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == ["p0@example.com", "p2@example.com"]
    assert {d.recipient: d.status for d in deliveries(rt)}["p1@example.com"] == "queued"  # never handed over
