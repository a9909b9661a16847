"""The email providers' webhooks, end to end: nurture sends through a real SMTP server, then each
provider's documented sample payload, about that message and signed the provider's way with keys made
here, is posted to the app behind a real HTTP server (SQLite and PostgreSQL). A forged one gets 403 and
changes nothing; a bounce or a complaint does what the same news by email does."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlmodel import Session, select

from nurture.config import ConfigError, load_settings
from nurture.insight import why
from nurture.runtime import Runtime
from nurture.store.models import Consent, Contact, Delivery, Event, ProviderReceipt, Suppression
from tests.conftest import FakeClock, SmtpServer, worker_env
from tests.helpers import add_contact, deliveries, send_due
from tests.provider_hooks_support import (
    MAILGUN_KEY,
    POSTMARK_PASSWORD,
    POSTMARK_USER,
    SES_BOUNCE,
    SES_COMPLAINT,
    TOPIC,
    SnsHost,
    basic_auth,
    mailgun_event,
    mailgun_signed,
    postmark_bounce,
    postmark_delivery,
    postmark_open,
    rsa_certificate,
    sendgrid_events,
    sendgrid_headers,
    sendgrid_keys,
    serve_app,
    ses_about,
    sns_notification,
    sns_signed,
    sns_subscription,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def sns_key() -> tuple[rsa.RSAPrivateKey, bytes]:
    return rsa_certificate(NOW)


@pytest.fixture(scope="module")
def sendgrid_pair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    return sendgrid_keys()


@pytest.fixture
def sns_host(sns_key) -> Iterator[SnsHost]:  # noqa: ANN001
    host = SnsHost()
    host.files["/SimpleNotificationService-test.pem"] = sns_key[1]
    yield host
    host.close()


def hook_settings(sendgrid_public: str) -> dict[str, str]:
    return {"SES_SNS_TOPIC_ARNS": TOPIC, "SNS_CERT_HOSTS": "127.0.0.1", "POSTMARK_WEBHOOK_USER": POSTMARK_USER,
            "POSTMARK_WEBHOOK_PASSWORD": POSTMARK_PASSWORD, "SENDGRID_WEBHOOK_PUBLIC_KEY": sendgrid_public,
            "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY}


@pytest.fixture
def rt(make_runtime, database_url, smtp_server: SmtpServer, sendgrid_pair) -> Runtime:  # noqa: ANN001
    return make_runtime(database_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url,
                        BOUNCE_ADDRESS="bounces@juniper.test", BOUNCE_SOFT_LIMIT="2", **hook_settings(sendgrid_pair[1]))


@pytest.fixture
def app(rt: Runtime) -> Iterator[str]:
    with serve_app(rt) as url:
        yield url


@dataclass
class Sent:
    delivery_id: int
    return_path: str  # the VERP envelope sender
    message_id: str  # <nurture.ID.TAG@juniper.test>
    data: bytes


def send_ann(rt: Runtime, smtp_server: SmtpServer) -> Sent:
    add_contact(rt, "ann@example.com", "lead-nurture")
    assert send_due(rt) == {"sent": 1}
    [received] = smtp_server.received
    message_id = re.search(rb"^Message-ID: (<[^>]+>)", received.data, re.MULTILINE)[1].decode()
    [delivery] = deliveries(rt)
    assert delivery.provider_id == message_id  # what the SMTP transport records
    return Sent(delivery.id, received.mail_from, message_id, received.data)


def snapshot(rt: Runtime) -> list:
    """Everything a webhook could change."""
    with Session(rt.db) as session:
        return [[row.model_dump() for row in session.exec(select(model).order_by(model.id))]
                for model in (Contact, Delivery, Event, Consent, Suppression, ProviderReceipt)]


def suppressed(rt: Runtime) -> dict[str, str]:
    with Session(rt.db) as session:
        return {s.address: s.reason for s in session.exec(select(Suppression))}


def event_types(rt: Runtime) -> list[str]:
    with Session(rt.db) as session:
        return [e.type for e in session.exec(select(Event).order_by(Event.id))]


def ann(rt: Runtime) -> Contact:
    with Session(rt.db) as session:
        return session.exec(select(Contact).where(Contact.email == "ann@example.com")).one()


def story(rt: Runtime) -> str:
    with Session(rt.db) as session:
        return "\n".join(why.format_story(why.explain(session, "ann@example.com", rt.sequences, rt.clock())))


def post(url: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, str]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = requests.post(url, data=data, headers=headers or {"Content-Type": "text/plain"}, timeout=10)
    return response.status_code, response.text


# --- Amazon SES through SNS ----------------------------------------------------------------------------------

def cert_url(sns_host: SnsHost) -> str:
    return sns_host.url + "/SimpleNotificationService-test.pem"


def test_it_confirms_a_signed_subscription_to_our_topic_and_not_a_forged_one(
        rt, app, sns_host, sns_key) -> None:  # noqa: ANN001
    key, _ = sns_key
    confirm = sns_host.url + "/?Action=ConfirmSubscription&TopicArn=ses-events&Token=2336412f37f"
    forged = sns_signed(sns_subscription(confirm), rsa_certificate(NOW)[0], cert_url(sns_host))
    assert post(app + "/hooks/ses", forged)[0] == 403
    assert sns_host.requests == ["/SimpleNotificationService-test.pem"]  # the certificate only: nothing confirmed

    assert post(app + "/hooks/ses", sns_signed(sns_subscription(confirm), key, cert_url(sns_host))) == (
        200, "subscription confirmed\n")
    assert sns_host.requests[-1] == "/?Action=ConfirmSubscription&TopicArn=ses-events&Token=2336412f37f"
    # The certificate was fetched once, and kept.
    assert sns_host.requests.count("/SimpleNotificationService-test.pem") == 1


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_ses_bounce_suppresses_the_address_like_a_bounce_by_email(
        rt, app, smtp_server, sns_host, sns_key, clock: FakeClock, version: str) -> None:  # noqa: ANN001
    sent = send_ann(rt, smtp_server)
    bounce = sns_notification("22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324", ses_about(SES_BOUNCE, source=sent.return_path))
    assert post(app + "/hooks/ses", sns_signed(bounce, sns_key[0], cert_url(sns_host), version)) == (200, "ok\n")

    assert suppressed(rt) == {"ann@example.com": "hard bounce: 5.1.1 smtp; 550 5.1.1 user unknown"}
    [delivery] = deliveries(rt)
    assert (delivery.status, delivery.error) == ("bounced", "hard bounce: 5.1.1 smtp; 550 5.1.1 user unknown")
    assert event_types(rt)[-1] == "email.bounced"
    clock.now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # edu-2 is due: skipped, never sent
    assert send_due(rt) == {"skipped": 1}


def test_ses_retrying_the_same_notification_changes_things_once(rt, app, smtp_server, sns_host, sns_key) -> None:  # noqa: ANN001
    sent = send_ann(rt, smtp_server)
    complaint = sns_signed(sns_notification("0d1f4b5e-93cb-4f1e", ses_about(SES_COMPLAINT, message_id=sent.message_id)),
                           sns_key[0], cert_url(sns_host), "2")
    assert post(app + "/hooks/ses", complaint) == (200, "ok\n")
    after_first = snapshot(rt)
    assert post(app + "/hooks/ses", complaint) == (200, "ok\n")
    assert snapshot(rt) == after_first

    contact = ann(rt)
    assert contact.email_status == "unsubscribed"
    with Session(rt.db) as session:
        [consent] = session.exec(select(Consent).where(Consent.action == "opt-out"))
    assert (consent.method, consent.delivery_id) == ("complaint", sent.delivery_id)
    assert "ses" in consent.consent_text
    assert event_types(rt).count("email.complained") == 1
    assert deliveries(rt)[0].status == "sent"  # a complaint: the message arrived
    text = story(rt)  # nurture why shows it on the step's line, as a complaint by email
    assert re.search(r"edu-1 .*\n.*complained +spam complaint: abuse", text), text


def test_a_forged_ses_notification_is_refused_and_changes_nothing(rt, app, smtp_server, sns_host, sns_key) -> None:  # noqa: ANN001
    sent = send_ann(rt, smtp_server)
    before = snapshot(rt)
    bounce = sns_notification("22b80b92-fdea", ses_about(SES_BOUNCE, source=sent.return_path))
    other_key = rsa_certificate(NOW)[0]
    tampered = sns_signed(bounce, sns_key[0], cert_url(sns_host))
    tampered["Message"] = tampered["Message"].replace("Permanent", "Transient")
    someone_elses_topic = sns_signed(sns_notification("x", ses_about(SES_BOUNCE, source=sent.return_path),
                                                      topic="arn:aws:sns:us-west-2:999999999999:mine"),
                                     sns_key[0], cert_url(sns_host))
    not_an_sns_host = sns_signed(bounce, sns_key[0], cert_url(sns_host).replace("127.0.0.1", "localhost"))
    for forged in (sns_signed(bounce, other_key, cert_url(sns_host)), tampered, someone_elses_topic,
                   not_an_sns_host, {**sns_signed(bounce, sns_key[0], cert_url(sns_host)), "SignatureVersion": "3"},
                   sns_signed(bounce, sns_key[0], "http://["), sns_signed(bounce, sns_key[0], "file:///etc/passwd")):
        status, text = post(app + "/hooks/ses", forged)
        assert status == 403, text
    assert snapshot(rt) == before
    # Nothing was fetched from a host outside SNS_CERT_HOSTS (localhost is not 127.0.0.1 there).
    assert all(path == "/SimpleNotificationService-test.pem" for path in sns_host.requests)


# --- Postmark ------------------------------------------------------------------------------------------------

def test_postmark_hears_its_metadata_and_a_bounce_with_the_right_credentials_suppresses(
        rt, app, smtp_server) -> None:  # noqa: ANN001
    sent = send_ann(rt, smtp_server)
    # Postmark echoes X-PM-Metadata-* headers as Metadata: the message carries our Message-ID in one.
    assert f"X-PM-Metadata-nurture-message-id: {sent.message_id}".encode() in sent.data
    url = app + "/hooks/postmark"
    before = snapshot(rt)
    for wrong in (basic_auth(POSTMARK_USER, "not-the-password-000"), basic_auth("someone", POSTMARK_PASSWORD),
                  "Bearer " + POSTMARK_PASSWORD, "Basic !!!"):
        assert post(url, postmark_bounce(sent.message_id), {"Authorization": wrong})[0] == 403
    assert post(url, postmark_bounce(sent.message_id))[0] == 403  # no credentials at all
    assert snapshot(rt) == before

    auth = {"Authorization": basic_auth(POSTMARK_USER, POSTMARK_PASSWORD)}
    assert post(url, postmark_bounce(sent.message_id), auth) == (200, "ok\n")
    assert suppressed(rt) == {"ann@example.com": "hard bounce: 5.1.1 HardBounce: smtp;550 5.1.1 The email account "
                                                 "that you tried to reach does not exist."}
    assert deliveries(rt)[0].status == "bounced"


def test_delivered_and_opened_never_move_the_status_backwards(rt, app, smtp_server) -> None:  # noqa: ANN001
    sent = send_ann(rt, smtp_server)
    url, auth = app + "/hooks/postmark", {"Authorization": basic_auth(POSTMARK_USER, POSTMARK_PASSWORD)}
    assert post(url, postmark_open(sent.message_id), auth) == (200, "ok\n")
    assert post(url, postmark_delivery(sent.message_id), auth) == (200, "ok\n")  # late: changes no status
    [delivery] = deliveries(rt)
    assert (delivery.status, delivery.provider_status) == ("sent", "opened")
    assert event_types(rt).count("email.opened") == 1
    assert "email.delivered" not in event_types(rt)
    assert ann(rt).score > 0  # an open counts toward the lead score, as the pixel's does


# --- SendGrid ------------------------------------------------------------------------------------------------

def test_sendgrid_events_signed_with_its_key_are_applied_in_order(
        rt, app, smtp_server, sendgrid_pair, clock: FakeClock) -> None:  # noqa: ANN001
    sent = send_ann(rt, smtp_server)
    key, _ = sendgrid_pair
    payload = json.dumps(sendgrid_events(sent.message_id, "deferred", "delivered", "open")).encode()
    stamp = int(clock().timestamp())
    assert post(app + "/hooks/sendgrid", payload, sendgrid_headers(key, payload, stamp)) == (200, "ok\n")
    assert deliveries(rt)[0].provider_status == "opened"
    assert [t for t in event_types(rt) if t.startswith("email.")][-2:] == ["email.delivered", "email.opened"]
    assert re.search(r"\bdelivered\b", story(rt))

    payload = json.dumps(sendgrid_events(sent.message_id, "bounce")).encode()
    assert post(app + "/hooks/sendgrid", payload, sendgrid_headers(key, payload, stamp)) == (200, "ok\n")
    assert suppressed(rt) == {"ann@example.com": "hard bounce: 5.0.0 500 unknown recipient"}


def test_a_forged_or_stale_sendgrid_request_is_refused_and_changes_nothing(
        rt, app, smtp_server, sendgrid_pair, clock: FakeClock) -> None:  # noqa: ANN001
    sent = send_ann(rt, smtp_server)
    key, _ = sendgrid_pair
    payload = json.dumps(sendgrid_events(sent.message_id, "bounce")).encode()
    stamp = int(clock().timestamp())
    before = snapshot(rt)
    other = sendgrid_keys()[0]
    headers = sendgrid_headers(key, payload, stamp)
    cases = [
        (payload, sendgrid_headers(other, payload, stamp)),  # someone else's key
        (payload.replace(b"bounce", b"spamreport"), headers),  # the body changed after signing
        (payload, {**headers, "X-Twilio-Email-Event-Webhook-Timestamp": str(stamp + 1)}),  # the timestamp changed
        (payload, sendgrid_headers(key, payload, stamp - 3600)),  # signed an hour ago: a replay
        (payload, {"Content-Type": "application/json"}),  # not signed at all
    ]
    for body, hdrs in cases:
        assert post(app + "/hooks/sendgrid", body, hdrs)[0] == 403
    assert snapshot(rt) == before


# --- Mailgun -------------------------------------------------------------------------------------------------

def test_a_signed_mailgun_failure_suppresses_and_its_replay_is_refused(rt, app, smtp_server, clock) -> None:  # noqa: ANN001
    sent = send_ann(rt, smtp_server)
    stamp = int(clock().timestamp())
    body = mailgun_signed(mailgun_event(sent.message_id), stamp, "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0")
    assert post(app + "/hooks/mailgun", body, {"Content-Type": "application/json"}) == (200, "ok\n")
    assert suppressed(rt) == {"ann@example.com": "hard bounce: 605 Not delivering to previously bounced address"}
    after = snapshot(rt)

    status, text = post(app + "/hooks/mailgun", body, {"Content-Type": "application/json"})
    assert (status, "replay" in text) == (403, True)
    assert snapshot(rt) == after


def test_a_forged_or_old_mailgun_request_is_refused_and_changes_nothing(rt, app, smtp_server, clock) -> None:  # noqa: ANN001
    sent = send_ann(rt, smtp_server)
    stamp = int(clock().timestamp())
    event = mailgun_event(sent.message_id, "complained")
    before = snapshot(rt)
    tampered = mailgun_signed(event, stamp, "token-1")
    tampered["signature"]["timestamp"] = str(stamp + 1)
    for forged in (mailgun_signed(event, stamp, "token-2", key="key-someone-else-0123456789"), tampered,
                   mailgun_signed(event, stamp - 3600, "token-3"), {"event-data": event},
                   {"signature": "x", "event-data": event}, [event]):
        assert post(app + "/hooks/mailgun", forged, {"Content-Type": "application/json"})[0] == 403
    assert snapshot(rt) == before

    good = mailgun_signed(event, stamp, "token-4")
    assert post(app + "/hooks/mailgun", good, {"Content-Type": "application/json"}) == (200, "ok\n")
    assert ann(rt).email_status == "unsubscribed"


def test_mailgun_giving_up_on_a_temporary_failure_is_a_soft_bounce(rt, app, smtp_server, clock) -> None:  # noqa: ANN001
    sent = send_ann(rt, smtp_server)
    stamp = int(clock().timestamp())
    temporary = mailgun_event(sent.message_id, severity="temporary", id="t1")
    gave_up = mailgun_event(sent.message_id, reason="old", id="t2",
                            **{"delivery-status": {"code": 452, "message": "4.2.2 Mailbox full", "description": ""}})
    for n, data in enumerate((temporary, gave_up)):
        assert post(app + "/hooks/mailgun", mailgun_signed(data, stamp, f"tok-{n}"),
                    {"Content-Type": "application/json"}) == (200, "ok\n")
    assert "email.soft_bounce" in event_types(rt)
    assert event_types(rt).count("email.soft_bounce") == 1  # the temporary one: Mailgun is still trying
    assert suppressed(rt) == {}  # one soft bounce of BOUNCE_SOFT_LIMIT=2


# --- off unless configured; bad bodies -----------------------------------------------------------------------

def test_every_endpoint_is_off_until_its_secret_is_set(make_runtime, sqlite_url) -> None:  # noqa: ANN001
    with serve_app(make_runtime(sqlite_url)) as url:
        for path in ("/hooks/ses", "/hooks/postmark", "/hooks/sendgrid", "/hooks/mailgun"):
            assert post(url + path, {"a": 1})[0] == 404


def test_a_nul_or_a_lone_surrogate_in_a_signed_payload_is_stored_without_it(rt, app, smtp_server) -> None:  # noqa: ANN001
    sent = send_ann(rt, smtp_server)
    bounce = postmark_bounce(sent.message_id)
    bounce["Details"] = "smtp;550 5.1.1 no\u0000 such\ud800 user"
    raw = json.dumps(bounce).encode()
    assert b"\\u0000" in raw and b"\\ud800" in raw  # as JSON spells them; PostgreSQL refuses both in text
    auth = {"Authorization": basic_auth(POSTMARK_USER, POSTMARK_PASSWORD)}
    assert post(app + "/hooks/postmark", raw, auth) == (200, "ok\n")
    assert suppressed(rt) == {"ann@example.com": "hard bounce: 5.1.1 HardBounce: smtp;550 5.1.1 no such? user"}


def test_a_signed_ses_notification_with_fields_of_the_wrong_type_is_read_as_far_as_it_goes(
        rt, app, smtp_server, sns_host, sns_key) -> None:  # noqa: ANN001
    # Found by the fuzz run: "headers": true was iterated, a 500.
    sent = send_ann(rt, smtp_server)
    ses = ses_about(SES_BOUNCE, message_id=sent.message_id)
    ses["mail"]["headers"], ses["bounce"]["bouncedRecipients"] = True, 5
    notification = sns_signed(sns_notification("odd-1", ses), sns_key[0], cert_url(sns_host))
    assert post(app + "/hooks/ses", notification) == (200, "ok\n")
    assert suppressed(rt) == {"ann@example.com": "hard bounce: General"}  # no recipient block: the subtype


def test_a_proved_body_that_is_not_the_payload_is_a_400(rt, app, clock) -> None:  # noqa: ANN001
    auth = {"Authorization": basic_auth(POSTMARK_USER, POSTMARK_PASSWORD)}
    assert post(app + "/hooks/postmark", b"{not json", auth)[0] == 400
    assert post(app + "/hooks/postmark", [1, 2], auth)[0] == 400
    assert post(app + "/hooks/ses", b"NaN")[0] == 400


def test_a_bad_provider_secret_stops_start_up_with_its_name(project, sqlite_url) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="SENDGRID_WEBHOOK_PUBLIC_KEY"):
        load_settings(worker_env(project, sqlite_url, SENDGRID_WEBHOOK_PUBLIC_KEY="bm90IGEga2V5"))
    with pytest.raises(ConfigError, match="SES_SNS_TOPIC_ARNS"):
        load_settings(worker_env(project, sqlite_url, SES_SNS_TOPIC_ARNS="ses-events"))


def test_only_https_sns_hosts_and_an_explicitly_listed_loopback_may_serve_certificates(project, sqlite_url) -> None:  # noqa: ANN001
    strict = load_settings(worker_env(project, sqlite_url)).providers
    assert strict.sns_url_allowed("https", "sns.us-east-1.amazonaws.com")
    assert strict.sns_url_allowed("https", "sns.cn-north-1.amazonaws.com.cn")
    for scheme, host in (("http", "sns.us-east-1.amazonaws.com"), ("https", "sns.s3.amazonaws.com"),
                         ("https", "sns.evil.s3.amazonaws.com"), ("https", "sns.us-east-1.amazonaws.com.evil.example"),
                         ("http", "127.0.0.1"), ("https", "evil.example")):
        assert not strict.sns_url_allowed(scheme, host), (scheme, host)
    local = load_settings(worker_env(project, sqlite_url, SNS_CERT_HOSTS="127.0.0.1 sns.*.amazonaws.com")).providers
    assert local.sns_url_allowed("http", "127.0.0.1")
    assert not local.sns_url_allowed("http", "127.0.0.2")
    assert not local.sns_url_allowed("http", "sns.us-east-1.amazonaws.com")  # http only on the loopback


