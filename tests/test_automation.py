"""Lifecycle automation end to end: events through the API, goals, triggers, scoring and alerts, branches,
click tracking, send windows and the frequency cap — through the real send path and a real SMTP server."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import Session, select

from nurture.delivery import dispatch
from nurture.runtime import Runtime
from nurture.store.models import Alert, Contact, Enrollment, Event
from nurture.web import create_app
from tests.conftest import SmtpServer, write_sequence
from tests.helpers import add_contact, deliveries, enrollment, send_due

AUTH = {"Authorization": "Bearer test-api-key-0123456789"}


@pytest.fixture
def rt(make_runtime, database_url, smtp_server: SmtpServer) -> Runtime:  # noqa: ANN001
    return make_runtime(database_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url)


@pytest.fixture
def client(rt: Runtime):  # noqa: ANN201
    return create_app(rt).test_client()


def post_event(client, email: str, type_: str, **extra):  # noqa: ANN001, ANN201
    return client.post("/api/events", headers=AUTH, json={"email": email, "type": type_, **extra})


def sequences_received(smtp_server: SmtpServer, address: str) -> list[str]:
    return [r.message["List-Id"].split("<")[1].split(".")[0] for r in smtp_server.handler.to(address)]


def events(rt: Runtime, type_: str) -> list[Event]:
    with Session(rt.db) as session:
        return list(session.exec(select(Event).where(Event.type == type_).order_by(Event.id)))


def contact(rt: Runtime, email: str) -> Contact:
    with Session(rt.db) as session:
        return session.exec(select(Contact).where(Contact.email == email)).one()


def test_a_purchase_mid_nurture_stops_it_even_when_queued_and_starts_the_customer_sequence_once(
        rt, client, smtp_server, clock) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    send_due(rt)  # edu-1
    clock.advance(days=3)
    queued: list[str] = []
    dispatch.claim_batches(rt, queued.append, max_batches=5)  # edu-2 is claimed and queued...
    assert queued

    response = post_event(client, "ann@example.com", "purchase", properties={"product": "wheel-6-week"},
                          idempotency_key="order-1001")  # ...when she buys
    assert response.status_code == 201 and response.json["created"] is True
    for token in queued:
        dispatch.run_batch(rt, token)
    for _ in range(6):
        send_due(rt)
        clock.advance(days=10)

    received = sequences_received(smtp_server, "ann@example.com")
    assert received.count("lead-nurture") == 1  # edu-2 and later never went out
    # The customer sequence, once: no rating was given, so no referral ask; the upsell fits the course.
    customer = [d.step_id for d in deliveries(rt, "ann@example.com") if d.sequence_id == "customer"]
    assert customer == ["thank-you", "feedback", "upsell"]
    assert received.count("customer") == 3
    lead = enrollment(rt, "ann@example.com", "lead-nurture")
    assert lead.status == "completed" and lead.stop_reason == "goal reached: event purchase"
    assert contact(rt, "ann@example.com").stage == "customer"
    assert [e.data["to"] for e in events(rt, "stage.changed")] == ["customer"]


def test_a_repeated_idempotency_key_changes_nothing(rt, client, smtp_server) -> None:
    add_contact(rt, "ann@example.com")
    first = post_event(client, "ann@example.com", "purchase", idempotency_key="order-7")
    again = post_event(client, "ann@example.com", "purchase", idempotency_key="order-7")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["id"] == first.json["id"] and again.json["created"] is False
    assert len(events(rt, "purchase")) == 1
    with Session(rt.db) as session:
        assert len(session.exec(select(Enrollment)).all()) == 1  # the customer sequence, entered once
    assert contact(rt, "ann@example.com").stage == "customer"  # not repeat-customer


@pytest.mark.parametrize(("body", "field"), [
    ({"email": "ann@example.com", "type": "Purchase!"}, "type"),
    ({"email": "ann@example.com", "type": "purchase", "occurred_at": "yesterday"}, "occurred_at"),
    ({"email": "ann@example.com", "type": "purchase", "occurred_at": "2026-11-23T10:00:00"}, "occurred_at"),
    ({"email": "ann@example.com", "type": "purchase", "properties": [1]}, "properties"),
    ({"email": "ann@example.com", "type": "purchase", "colour": "red"}, "colour"),
    ({"email": "nobody@example.com", "type": "purchase"}, "email"),
])
def test_a_bad_event_gets_a_clear_error_and_records_nothing(rt, client, body, field) -> None:
    add_contact(rt, "ann@example.com")
    response = client.post("/api/events", headers=AUTH, json=body)
    assert response.status_code in (400, 404) and response.json["field"] == field
    assert events(rt, "purchase") == []
    assert client.post("/api/events", json={"email": "ann@example.com", "type": "x"}).status_code == 401


def test_a_score_past_the_threshold_starts_the_offer_and_alerts_the_seller(rt, client, smtp_server,
                                                                          clock) -> None:
    clock.now = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # a Tuesday afternoon, inside office hours
    add_contact(rt, "ben@example.com", first_name="Ben")
    for n in range(3):  # 2 points each: not yet hot
        post_event(client, "ben@example.com", "class-page-viewed", idempotency_key=f"view-{n}")
    assert contact(rt, "ben@example.com").score == 6 and events(rt, "score.hot") == []
    post_event(client, "ben@example.com", "webinar-attended")  # +5 -> 11, past 10
    assert contact(rt, "ben@example.com").score == 11

    send_due(rt)
    assert sequences_received(smtp_server, "ben@example.com") == ["hot-lead"]
    [alert] = smtp_server.handler.to("sales@juniper.example")
    assert "Hot lead: Ben" in alert.message["Subject"]
    assert "ben@example.com" in alert.message.get_body(("plain",)).get_content()
    assert contact(rt, "ben@example.com").stage == "prospect"  # set by the hot-offer step
    send_due(rt)
    assert len(smtp_server.handler.to("sales@juniper.example")) == 1  # alerted once
    with Session(rt.db) as session:
        assert session.exec(select(Alert.status)).all() == ["sent"]


def test_a_booking_ends_the_hot_lead_offer_and_silence_gets_the_last_call(rt, client, smtp_server, clock) -> None:
    clock.now = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    hot = rt.sequences.get("hot-lead")
    from nurture.people.contacts import enroll

    for email in ("buys@example.com", "silent@example.com"):
        add_contact(rt, email)
    with Session(rt.db) as session:
        for ann in session.exec(select(Contact)).all():
            enroll(session, ann, hot, clock())
        session.commit()
    send_due(rt)  # both get hot-offer, then wait up to 3 days for a purchase
    clock.advance(days=1)
    post_event(client, "buys@example.com", "purchase")
    send_due(rt)
    clock.advance(days=3)  # Saturday: the timeout has passed, and last-call waits for office hours
    send_due(rt)
    clock.now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # Monday 09:00 (the contact has no timezone: UTC)
    send_due(rt)

    def steps(email: str) -> list[str]:
        return [d.step_id for d in deliveries(rt, email) if d.sequence_id == "hot-lead"]

    assert steps("buys@example.com") == ["hot-offer"]  # the purchase reached the goal while it waited...
    assert enrollment(rt, "buys@example.com", "hot-lead").stop_reason == "goal reached: event purchase"
    assert "customer" in sequences_received(smtp_server, "buys@example.com")  # ...and the customer one began
    assert steps("silent@example.com") == ["hot-offer", "last-call"]  # the wait timed out: else-branch
    [branch] = events(rt, "step.branched")
    assert (branch.data["step"], branch.data["target"]) == ("wait-booking", "last-call")


def test_a_step_whose_condition_is_false_is_skipped_on_the_record(rt, project, smtp_server) -> None:
    write_sequence(project, "vip", """
id: vip
name: VIP
stage: upsell-customers
steps:
  - {id: vip-offer, kind: upsell, template: customer/upsell, subject: "For our VIPs", if: {tag: vip}}
  - {id: everyone, kind: educate, template: lead/edu-3, subject: "Caring for pottery"}
""")
    rt.sequences.refresh()
    add_contact(rt, "vip@example.com", "vip", tags=("vip",))
    add_contact(rt, "plain@example.com", "vip")
    send_due(rt)
    assert [r.message["Subject"] for r in smtp_server.handler.to("vip@example.com")] == ["For our VIPs",
                                                                                       "Caring for pottery"]
    assert [r.message["Subject"] for r in smtp_server.handler.to("plain@example.com")] == ["Caring for pottery"]
    [skipped] = events(rt, "step.skipped")
    assert skipped.data["step"] == "vip-offer" and skipped.data["reason"] == "condition false: tag vip"


def test_a_click_redirects_to_the_messages_url_and_a_tampered_one_is_refused(rt, client, smtp_server,
                                                                           clock) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    send_due(rt)
    html = smtp_server.received[0].message.get_body(("html",)).get_content()
    tracked = re.findall(r'href="(https://nurture\.test/c/[^"]+)"', html)
    assert tracked and "https://nurture.test/u/" in html  # our own links stay as they are

    clock.advance(minutes=5)
    path = urlsplit(tracked[0]).path
    response = client.get(path, headers={"User-Agent": "Mozilla/5.0 (Macintosh)"})
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    assert target.netloc == "juniperpottery.example"
    assert parse_qs(target.query)["utm_campaign"] == ["lead-nurture"]
    assert parse_qs(target.query)["utm_content"] == ["edu-1"]
    [click] = events(rt, "email.clicked")
    assert click.data["step"] == "edu-1" and click.data["bot"] is False
    assert contact(rt, "ann@example.com").score == 3

    token = path.rsplit("/", 1)[1]
    forged = client.get(f"/c/{token[:-2]}xx")
    assert forged.status_code == 400 and "Location" not in forged.headers
    assert len(events(rt, "email.clicked")) == 1


def test_a_link_scanner_clicking_at_once_is_marked_and_scores_nothing(rt, client, smtp_server) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    send_due(rt)
    html = smtp_server.received[0].message.get_body(("html",)).get_content()
    path = urlsplit(re.findall(r'href="(https://nurture\.test/c/[^"]+)"', html)[0]).path
    assert client.get(path, headers={"User-Agent": "Mozilla/5.0"}).status_code == 302  # within seconds
    [click] = events(rt, "email.clicked")
    assert click.data["bot"] is True and contact(rt, "ann@example.com").score == 0


def test_a_step_due_outside_the_send_window_waits_for_the_right_local_minute(rt, smtp_server, clock) -> None:
    clock.now = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)  # Friday 18:30 in New York: office is closed
    hot = rt.sequences.get("hot-lead")
    add_contact(rt, "ny@example.com", timezone="America/New_York")
    with Session(rt.db) as session:
        from nurture.people.contacts import enroll

        enroll(session, session.exec(select(Contact)).one(), hot, clock())
        session.commit()
    assert send_due(rt) == {"deferred": 1}
    assert smtp_server.received == []
    monday_nine = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # 09:00 EST
    assert enrollment(rt, "ny@example.com", "hot-lead").due_at == monday_nine
    [deferred] = events(rt, "email.deferred")
    assert deferred.data["reason"] == "outside the send window"
    clock.now = monday_nine
    assert send_due(rt) == {"sent": 1}


def test_messages_beyond_the_frequency_cap_are_deferred_not_dropped(rt, project, smtp_server, clock) -> None:
    for name in ("one", "two", "three"):
        write_sequence(project, name, f"""
id: {name}
name: {name.title()}
stage: nurture-prospects
steps:
  - {{id: hello, kind: educate, template: lead/edu-3, subject: "{name}"}}
""")
    rt.sequences.refresh()
    for name in ("one", "two", "three"):
        add_contact(rt, "ann@example.com", name)
    assert Counter(send_due(rt)) == Counter({"sent": 2, "deferred": 1})  # the starter cap: 2 a day
    assert len(smtp_server.received) == 2
    [deferred] = events(rt, "email.deferred")
    assert deferred.data["reason"] == "frequency cap (2/day, 6/week)"
    assert enrollment(rt, "ann@example.com", "three").due_at == clock.now + timedelta(days=1)
    clock.advance(hours=23, minutes=59)
    assert send_due(rt) == {}
    clock.advance(minutes=1)
    assert send_due(rt) == {"sent": 1}
    assert len(smtp_server.received) == 3


def test_a_tag_can_trigger_a_sequence_and_reentry_follows_its_policy(rt, project, smtp_server, clock) -> None:
    write_sequence(project, "tagged", """
id: tagged
name: Tagged
stage: nurture-prospects
trigger: {tag: interested}
reentry: after 30d
steps:
  - {id: hello, kind: educate, template: lead/edu-3, subject: "Hello"}
""")
    rt.sequences.refresh()
    from nurture.people import automation

    with Session(rt.db) as session:
        add_contact(rt, "ann@example.com")
        ann = session.exec(select(Contact)).one()
        for days in (0, 10, 31):
            clock.now = datetime(2026, 11, 23, 9, tzinfo=UTC) + timedelta(days=days)
            automation.tags_added(session, rt, ann, ["interested"], clock())
            session.commit()
            send_due(rt)
    assert len(smtp_server.received) == 2  # day 0 and day 31; not again on day 10
    assert [e.entry for e in _enrollments(rt)] == [1, 2]


def _enrollments(rt: Runtime) -> list[Enrollment]:
    with Session(rt.db) as session:
        return list(session.exec(select(Enrollment).order_by(Enrollment.id)))


def test_an_imported_customer_can_start_mid_sequence(rt, smtp_server) -> None:
    from nurture.people.contacts import enroll

    add_contact(rt, "old@example.com")
    with Session(rt.db) as session:
        enroll(session, session.exec(select(Contact)).one(), rt.sequences.get("customer"), rt.clock(),
               start_at="feedback")
        session.commit()
    assert enrollment(rt, "old@example.com", "customer").step_id == "feedback"


def test_a_contact_without_sms_consent_skips_the_text_and_still_gets_the_later_emails(rt, project,
                                                                                     smtp_server) -> None:
    (project / "sms_templates").mkdir(exist_ok=True)
    (project / "sms_templates" / "reminder.txt").write_text("See you at the wheel on Thursday!\n")
    write_sequence(project, "mixed", """
id: mixed
name: Mixed
stage: deliver-satisfy
steps:
  - {id: welcome, kind: thank-you, template: customer/thank-you, subject: "Welcome"}
  - {id: text, kind: thank-you, channel: sms, template: reminder}
  - {id: after, kind: educate, template: lead/edu-3, subject: "After"}
""")
    rt.sequences.refresh()
    add_contact(rt, "nosms@example.com", "mixed", phone="+14155552671")
    for _ in range(3):
        send_due(rt)
    assert [r.message["Subject"] for r in smtp_server.handler.to("nosms@example.com")] == ["Welcome", "After"]
    assert [(d.step_id, d.status) for d in deliveries(rt)] == [
        ("welcome", "sent"), ("text", "skipped"), ("after", "sent")]
    assert "no sms consent" in deliveries(rt)[1].error
    assert enrollment(rt, "nosms@example.com", "mixed").status == "completed"

