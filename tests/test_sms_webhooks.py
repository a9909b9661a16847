"""Twilio's webhooks: replies (STOP/START/HELP and the rest) and status callbacks, signed with twilio's own
RequestValidator the way Twilio signs them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

from nurture.delivery import dispatch
from nurture.runtime import Runtime
from nurture.store.models import Consent, Contact, Delivery, Event
from nurture.web import create_app
from tests.conftest import CONTENT, FakeClock, write_sequence
from tests.helpers import add_contact, deliveries, send_due
from tests.test_sms_delivery import ANN, BEN, TEXTS, add_texter, twilio_runtime
from tests.twilio_fake import AUTH_TOKEN, FakeTwilio, serve_fake_twilio

PUBLIC = "https://nurture.test"  # BASE_URL: what Twilio calls, and signs


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with serve_fake_twilio() as fake:
        yield fake


@pytest.fixture
def rt(make_runtime, database_url, project, fake_twilio: FakeTwilio, clock: FakeClock) -> Runtime:  # noqa: ANN001
    shutil.copytree(CONTENT / "sms_templates", project / "sms_templates")
    write_sequence(project, "class-reminders", TEXTS)
    clock.now = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)  # 10:00 in Portland
    return twilio_runtime(make_runtime, database_url, fake_twilio)


@pytest.fixture
def client(rt: Runtime) -> FlaskClient:
    return create_app(rt).test_client()


def signed(client: FlaskClient, path: str, params: dict[str, str], token: str = AUTH_TOKEN,
           url: str | None = None) -> tuple[int, str]:
    """POST `params` to `path` as Twilio does: form-encoded, signed over the public URL."""
    signature = RequestValidator(token).compute_signature(url or PUBLIC + path, params)
    response = client.post(path, data=params, headers={"X-Twilio-Signature": signature})
    return response.status_code, response.get_data(as_text=True)


def text_in(client: FlaskClient, body: str, phone: str = ANN) -> tuple[int, str]:
    return signed(client, "/twilio/inbound", {"MessageSid": "SM" + "1" * 32, "AccountSid": "AC" + "0" * 32,
                                              "From": phone, "To": "+15005550006", "Body": body, "NumMedia": "0"})


def callback(client: FlaskClient, sid: str, state: str, error_code: str | None = None) -> tuple[int, str]:
    params = {"MessageSid": sid, "MessageStatus": state, "AccountSid": "AC" + "0" * 32, "To": ANN}
    if error_code:
        params["ErrorCode"] = error_code
    return signed(client, "/twilio/status", params)


def contact(rt: Runtime, email: str) -> Contact:
    with Session(rt.db) as session:
        return session.exec(select(Contact).where(Contact.email == email)).one()


def timeline(rt: Runtime, email: str) -> list[tuple[str, dict]]:
    with Session(rt.db) as session:
        rows = session.exec(select(Event).join(Contact, Contact.id == Event.contact_id)
                            .where(Contact.email == email).order_by(Event.id))
        return [(e.type, e.data) for e in rows]


# --- replies -------------------------------------------------------------------------------------------------

def test_a_signed_stop_stops_all_later_texts_including_one_already_queued(rt, client, fake_twilio, clock) -> None:
    add_texter(rt, "ann@example.com", ANN)
    send_due(rt)
    clock.now = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)  # the second text is due...
    queued: list[str] = []
    dispatch.claim_batches(rt, queued.append, max_batches=5)  # ...claimed and queued...
    assert queued

    status, reply = text_in(client, " stop ")  # ...and then Ann replies STOP
    assert status == 200 and "<Message>" not in reply  # Twilio confirms STOP itself
    for token in queued:
        dispatch.run_batch(rt, token)
    send_due(rt)

    assert len(fake_twilio.texts) == 1
    assert [d.status for d in deliveries(rt)] == ["sent", "skipped"]
    assert contact(rt, "ann@example.com").sms_status == "unsubscribed"
    with Session(rt.db) as session:
        record = session.exec(select(Consent).where(Consent.action == "opt-out")).one()
    assert (record.channel, record.method, record.consent_text) == ("sms", "sms-keyword", "stop")
    assert ("sms.unsubscribed", {"via": "sms-keyword"}) in timeline(rt, "ann@example.com")


def test_stop_opts_out_every_contact_holding_the_number(rt, client) -> None:
    add_texter(rt, "ann@example.com", ANN)
    add_texter(rt, "ann.work@example.com", ANN)
    add_texter(rt, "ben@example.com", BEN)
    text_in(client, "UNSUBSCRIBE")
    assert [contact(rt, e).sms_status for e in ("ann@example.com", "ann.work@example.com", "ben@example.com")] == \
        ["unsubscribed", "unsubscribed", "subscribed"]


def test_start_opts_back_in_after_a_stop_but_is_not_a_first_opt_in(rt, client) -> None:
    add_texter(rt, "ann@example.com", ANN)
    add_texter(rt, "ann.work@example.com", ANN, consent=False)  # same number, never agreed to texts
    text_in(client, "STOP")
    status, reply = text_in(client, "Start")
    assert status == 200 and "<Message>" not in reply
    assert contact(rt, "ann@example.com").sms_status == "subscribed"
    assert contact(rt, "ann.work@example.com").sms_status == "unsubscribed"  # its STOP stands; START is no opt-in
    with Session(rt.db) as session:
        actions = [(c.action, c.method) for c in session.exec(select(Consent).order_by(Consent.id))]
    assert actions[-1] == ("opt-in", "sms-keyword")


@pytest.mark.parametrize("word", ["HELP", "info", " Help "])
def test_help_gets_a_reply_with_the_brand_and_support_contact(rt, client, word) -> None:
    add_texter(rt, "ann@example.com", ANN)
    status, reply = text_in(client, word)
    assert status == 200
    assert "<Message>Juniper Pottery Studio: for help, email hello@juniper.test." in reply
    assert "Reply STOP to opt out." in reply
    assert contact(rt, "ann@example.com").sms_status == "subscribed"


def test_help_is_answered_even_for_a_number_nurture_does_not_know(client) -> None:
    status, reply = text_in(client, "HELP", phone="+14155550199")
    assert status == 200 and "Juniper Pottery Studio" in reply


def test_any_other_reply_lands_on_the_timeline_as_an_event(rt, client) -> None:
    add_texter(rt, "ann@example.com", ANN)
    status, reply = text_in(client, "9, loved it! Stop by again soon")
    assert status == 200 and "<Message>" not in reply
    [(kind, data)] = [(k, d) for k, d in timeline(rt, "ann@example.com") if k == "sms.received"]
    assert data["body"] == "9, loved it! Stop by again soon" and data["from"] == ANN
    assert contact(rt, "ann@example.com").sms_status == "subscribed"


# --- signatures ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/twilio/inbound", "/twilio/status"])
@pytest.mark.parametrize("forge", ["none", "other-token", "internal-url", "tampered", "garbage"])
def test_an_unsigned_or_wrongly_signed_webhook_gets_403_and_changes_nothing(rt, client, path, forge) -> None:
    add_texter(rt, "ann@example.com", ANN)
    params = {"MessageSid": "SM" + "2" * 32, "From": ANN, "Body": "STOP", "MessageStatus": "delivered"}
    validator = RequestValidator(AUTH_TOKEN)
    signature = {
        "none": None,
        "other-token": RequestValidator("someone-elses-token-000").compute_signature(PUBLIC + path, params),
        "internal-url": validator.compute_signature("http://localhost" + path, params),  # not what Twilio signs
        "tampered": validator.compute_signature(PUBLIC + path, {**params, "Body": "hello"}),
        "garbage": "not a signature",
    }[forge]
    headers = {"X-Twilio-Signature": signature} if signature else {}
    response = client.post(path, data=params, headers=headers)
    assert response.status_code == 403
    assert contact(rt, "ann@example.com").sms_status == "subscribed"


def test_behind_a_proxy_the_public_url_with_its_query_is_what_counts(rt, client) -> None:
    # The app is reached at http://localhost/...; Twilio called (and signed) https://nurture.test/...?src=1.
    add_texter(rt, "ann@example.com", ANN)
    params = {"From": ANN, "Body": "STOP", "MessageSid": "SM" + "3" * 32}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + "/twilio/inbound?src=1", params)
    response = client.post("/twilio/inbound?src=1", data=params, headers={"X-Twilio-Signature": signature},
                           base_url="http://localhost:8000")
    assert response.status_code == 200
    assert contact(rt, "ann@example.com").sms_status == "unsubscribed"


def test_without_a_twilio_auth_token_every_webhook_is_refused(make_runtime, sqlite_url) -> None:
    rt = make_runtime(sqlite_url)  # the outbox backend, no Twilio settings: nothing can be verified
    response = create_app(rt).test_client().post("/twilio/inbound", data={"From": ANN, "Body": "STOP"},
                                                  headers={"X-Twilio-Signature": "x"})
    assert response.status_code == 403


# --- status callbacks -------------------------------------------------------------------------------------

def sent_text(rt: Runtime, fake_twilio: FakeTwilio) -> Delivery:
    add_texter(rt, "ann@example.com", ANN)
    send_due(rt)
    [delivery] = deliveries(rt)
    assert delivery.provider_id == fake_twilio.texts[0].sid
    return delivery


def test_status_callbacks_out_of_order_keep_the_latest_state(rt, client, fake_twilio) -> None:
    sid = sent_text(rt, fake_twilio).provider_id
    for state in ("sent", "delivered", "queued", "sent", "failed"):  # late, stale and contradicting news
        assert callback(client, sid, state)[0] == 200
    [delivery] = deliveries(rt)
    assert (delivery.status, delivery.provider_status) == ("sent", "delivered")
    assert [kind for kind, _ in timeline(rt, "ann@example.com") if kind.startswith("sms.") and kind != "sms.sent"
            and kind != "sms.subscribed"] == ["sms.delivered"]


def test_each_state_in_order_is_recorded_with_the_error_code(rt, client, fake_twilio) -> None:
    sid = sent_text(rt, fake_twilio).provider_id
    callback(client, sid, "queued")
    assert deliveries(rt)[0].provider_status == "queued"
    callback(client, sid, "sent")
    assert deliveries(rt)[0].provider_status == "sent"
    callback(client, sid, "undelivered", "30003")
    [delivery] = deliveries(rt)
    assert (delivery.provider_status, delivery.provider_error_code) == ("undelivered", 30003)
    [(_, data)] = [(k, d) for k, d in timeline(rt, "ann@example.com") if k == "sms.undelivered"]
    assert data["error_code"] == 30003 and data["step"] == "booked"


def test_a_21610_in_a_status_callback_opts_the_contact_out(rt, client, fake_twilio) -> None:
    sid = sent_text(rt, fake_twilio).provider_id
    callback(client, sid, "failed", "21610")
    assert contact(rt, "ann@example.com").sms_status == "unsubscribed"
    with Session(rt.db) as session:
        assert session.exec(select(Consent.method).where(Consent.action == "opt-out")).all() == ["carrier-opt-out"]


@pytest.mark.parametrize("params", [
    {"MessageStatus": "delivered"},                                   # no MessageSid
    {"MessageSid": "SMx", "MessageStatus": "teleported"},             # unknown state
    {"MessageSid": "SMx", "MessageStatus": "failed", "ErrorCode": "x"},
])
def test_a_malformed_callback_is_a_400_never_a_500(client, params) -> None:
    assert signed(client, "/twilio/status", params)[0] == 400


def test_a_callback_for_a_message_nurture_did_not_send_is_accepted_and_ignored(client) -> None:
    assert callback(client, "SM" + "9" * 32, "delivered")[0] == 200


def test_the_queued_text_is_skipped_when_a_callback_opted_the_contact_out_meanwhile(rt, client, fake_twilio,
                                                                                    clock) -> None:
    sid = sent_text(rt, fake_twilio).provider_id
    callback(client, sid, "undelivered", "21610")
    clock.now = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    send_due(rt)
    assert len(fake_twilio.texts) == 1 and deliveries(rt)[1].status == "skipped"


def test_an_email_contact_is_unaffected_by_the_sms_webhooks(rt, client) -> None:
    add_contact(rt, "mail@example.com", "lead-nurture", phone=ANN)
    text_in(client, "STOP")
    assert contact(rt, "mail@example.com").email_status == "subscribed"
