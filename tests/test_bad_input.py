"""Bad input over HTTP is a 4xx naming what was wrong, never a 500: ids outside the database's integer range,
text no database stores (NUL, lone surrogates, too long), JSON beyond the standard, garbled credentials.
Each case here was a 500 once (on PostgreSQL, SQLite or both); tests/test_fuzz_endpoints.py looks for more."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session, func, select
from twilio.request_validator import RequestValidator

from nurture.runtime import Runtime
from nurture.store.models import Contact, Event
from nurture.web import create_app
from tests.conftest import CONTENT
from tests.helpers import deliveries, send_due
from tests.twilio_fake import AUTH_TOKEN

AUTH = {"Authorization": "Bearer test-api-key-0123456789"}
FORM = "/forms/beginners-guide"


def open_runtime(make_runtime, url: str, project: Path) -> Runtime:  # noqa: ANN001
    shutil.copytree(CONTENT / "forms", project / "forms")
    return make_runtime(url, FORM_MIN_FILL_SECONDS="0", FORM_RATE_LIMIT="1000 per minute",
                        SMS_BACKEND="twilio", TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                        TWILIO_FROM="+15005550006")


@pytest.fixture
def rt(make_runtime, database_url: str, project: Path) -> Runtime:  # noqa: ANN001
    """On SQLite and PostgreSQL: what a database refuses differs (INTEGER is 32 bits on PostgreSQL only)."""
    return open_runtime(make_runtime, database_url, project)


@pytest.fixture
def web_rt(make_runtime, sqlite_url: str, project: Path) -> Runtime:  # noqa: ANN001
    """For what is refused before any query: one database is enough."""
    return open_runtime(make_runtime, sqlite_url, project)


def client_for(rt: Runtime) -> FlaskClient:
    client = create_app(rt).test_client()
    assert client.post("/api/contacts", headers=AUTH, json={"email": "ann@example.com"}).status_code == 201
    return client


@pytest.fixture
def client(rt: Runtime) -> FlaskClient:
    return client_for(rt)


@pytest.fixture
def web_client(web_rt: Runtime) -> FlaskClient:
    return client_for(web_rt)


def count(rt: Runtime, model: type) -> int:
    with Session(rt.db) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def test_an_event_for_an_id_no_contact_can_have_is_a_400_naming_contact_id(rt, client) -> None:
    events = count(rt, Event)
    for contact_id in (2**63, 2**63 - 1, 2**31, 10**30, 0, -1, True, 1.5, "1"):
        response = client.post("/api/events", headers=AUTH, json={"contact_id": contact_id, "type": "active"})
        assert response.status_code == 400, (contact_id, response.get_data(as_text=True))
        assert response.json["field"] == "contact_id" and "2147483647" in response.json["error"]
    assert count(rt, Event) == events
    response = client.post("/api/events", headers=AUTH, json={"contact_id": 2**31 - 1, "type": "active"})
    assert response.status_code == 404 and response.json["field"] == "contact_id"  # in range, names nobody


def nested(depth: int) -> object:
    return "deep" if depth == 0 else [nested(depth - 1)]


CONTACTS = [
    ({"first_name": "Ann\x00"}, "first_name"),
    ({"last_name": "\ud800"}, "last_name"),
    ({"first_name": "Ann\x1b[31m"}, "first_name"),
    ({"source": "x" * 201}, "source"),
    ({"source": "web\x00"}, "source"),
    ({"tags": ["vip\x00"]}, "tags"),
    ({"tags": ["\udc00"]}, "tags"),
    ({"tags": ["x" * 101]}, "tags"),
    ({"fields": {"plan\x00": "wheel"}}, "fields"),
    ({"fields": {"notes": ["fine", {"deep": "\ud83d"}]}}, "fields"),
    ({"fields": {"a": nested(20)}}, "fields"),
    ({"sequence": 5}, "sequence"),
]
EVENTS = [
    ({"idempotency_key": "order\x00"}, "idempotency_key"),
    ({"idempotency_key": "\ud800"}, "idempotency_key"),
    ({"properties": {"product": "\x00"}}, "properties"),
    ({"properties": {"\udfff": 1}}, "properties"),
    ({"occurred_at": "0001-01-01T00:00:00+14:00"}, "occurred_at"),  # before the year 1, in UTC
    ({"occurred_at": "9999-12-31T23:59:59-14:00"}, "occurred_at"),  # after 9999, in UTC
]


def test_text_no_database_stores_is_a_400_naming_the_field(rt, client) -> None:
    for path, cases, base in (("/api/contacts", CONTACTS, {"email": "ben@example.com"}),
                              ("/api/events", EVENTS, {"email": "ann@example.com", "type": "x"})):
        for body, field in cases:
            response = client.post(path, headers=AUTH, json={**base, **body})
            assert response.status_code == 400, (body, response.get_data(as_text=True))
            assert response.json["field"] == field, body
    assert count(rt, Contact) == 1 and count(rt, Event) == 1  # ann, and her contact.created


@pytest.mark.parametrize("raw", [
    '{"email": "ben@example.com", "fields": {"score": NaN}}',
    '{"email": "ben@example.com", "fields": {"score": -Infinity}}',
    '{"email": "ben@example.com", "fields": {"score": 1e999}}',
    '{"email": "ben@example.com", "fields": ' + "[" * 5000 + "]" * 5000 + "}",
])
def test_json_beyond_the_standard_is_a_400(web_rt, web_client, raw) -> None:
    for path in ("/api/contacts", "/api/events", FORM):
        response = web_client.post(path, headers={**AUTH, "Accept": "application/json"}, data=raw,
                                   content_type="application/json")
        assert response.status_code == 400, (path, response.get_data(as_text=True))
        assert "JSON" in (response.json.get("error") or response.json.get("message"))
    assert count(web_rt, Contact) == 1


def test_a_form_posted_as_json_with_a_lone_surrogate_is_a_400(rt, client) -> None:
    response = client.post(FORM, json={"email": "ben@example.com", "first_name": "\ud800"})
    assert response.status_code == 400 and "first_name" in response.json["errors"]
    response = client.post(FORM, json={"email": "ben@example.com", "_started": "\ud800"})
    assert response.status_code == 400 and "expired" in response.json["message"]
    assert count(rt, Contact) == 1


def test_a_garbled_basic_login_on_the_console_is_no_way_in_and_not_a_500(web_client) -> None:
    """The fuzz run's "UnicodeEncodeError: 'ascii' codec can't encode character '\\xfc'": a raw ü (0xFC, as
    WSGI hands header bytes over) in `Authorization: Basic`, which werkzeug's parser let escape. The console
    (once the Basic-auth overview) reads no such header: it sends the request to its login."""
    for header in ("Basic \xfc", "Basic \xfcber"):
        response = web_client.get("/", headers={"Authorization": header})
        assert response.status_code == 302 and response.headers["Location"] == "/login?next=/"
        assert web_client.get("/login", headers={"Authorization": header}).status_code == 200


def test_a_referral_code_with_a_non_ascii_letter_still_leads_to_the_landing_page(web_client) -> None:
    response = web_client.get("/r/abcdef\u00fc")
    assert response.status_code == 302
    assert response.headers["Location"] == "https://nurture.test/forms/beginners-guide"


def test_a_rating_that_is_no_number_from_0_to_10_is_a_400(web_rt, web_client) -> None:
    for score in ("\u00b2", "\u0663", "0" * 5000, "11", "-1"):
        response = web_client.get(f"/feedback/{web_rt.signer.feedback_token(1)}", query_string={"score": score})
        assert response.status_code == 400, score


def twilio_post(client: FlaskClient, path: str, params: dict[str, str]) -> int:
    signature = RequestValidator(AUTH_TOKEN).compute_signature("https://nurture.test" + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature}).status_code


def test_a_signed_webhook_with_a_value_no_column_holds_is_a_400(client) -> None:
    for code in ("\u00b2", "99999999999", "2147483648"):  # "²" is a digit to isdigit(), no number to int()
        params = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "failed", "ErrorCode": code}
        assert twilio_post(client, "/twilio/status", params) == 400, code
    for path, params in (("/twilio/status", {"MessageSid": "SM1\x00", "MessageStatus": "failed"}),
                         ("/twilio/inbound", {"From": "+14155552671\x00", "Body": "hi"}),
                         ("/twilio/inbound", {"From": "+14155552671", "Body": "STOP\x00"})):
        assert twilio_post(client, path, params) == 400, params


def test_an_address_the_mail_path_cannot_carry_is_refused_and_an_idn_domain_is_sent_to(web_rt, web_client,
                                                                                       clock) -> None:
    """The other "'ascii' codec can't encode character '\\xfc'": jürgen@example.com was taken, and then every
    tick's batch failed on it (formataddr and SMTP want ASCII addresses), forever. An internationalised
    local part needs SMTPUTF8, which nurture does not speak: refused at the edge. A domain has an ASCII form
    (IDNA), and that is what is stored and sent to."""
    response = web_client.post("/api/contacts", headers=AUTH, json={"email": "jürgen@example.com"})
    assert response.status_code == 400 and response.json["field"] == "email"
    response = web_client.post("/api/contacts", headers=AUTH,
                               json={"email": "Ann@München.DE", "sequence": "lead-nurture"})
    assert response.status_code == 201 and response.json["email"] == "ann@xn--mnchen-3ya.de"
    assert web_client.get("/api/contacts/ann@münchen.de", headers=AUTH).json["id"] == response.json["id"]
    clock.advance(days=3)
    assert send_due(web_rt) == {"sent": 1}
    assert [d.recipient for d in deliveries(web_rt)] == ["ann@xn--mnchen-3ya.de"]
