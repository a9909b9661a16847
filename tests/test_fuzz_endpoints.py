"""Every public endpoint, fuzzed (hypothesis): whatever arrives, the answer is below 500, and no response
header carries a CR, an LF or a NUL, or a value copied from the input unescaped.

On the Flask test client against SQLite, plus a smaller run against PostgreSQL for what only it refuses
(INTEGER is 32 bits there, NUL in text). Derandomized, with modest example counts: the same inputs every run,
in seconds. The cases these runs found are pinned down, one by one, in tests/test_bad_input.py.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator
from werkzeug.test import TestResponse

from nurture.runtime import Runtime
from nurture.store.models import Delivery, Enrollment
from nurture.web import create_app
from tests.conftest import CONTENT, FakeClock, _postgres_database
from tests.console_support import csrf_token, logged_in
from tests.helpers import add_contact
from tests.provider_hooks_support import HOOK_PATHS, SnsHost, hook_env, hook_request, samples
from tests.twilio_fake import AUTH_TOKEN

AUTH = {"Authorization": "Bearer test-api-key-0123456789"}
FORM = "beginners-guide"
PUBLIC = "https://nurture.test"
# A longer hunt than the suite's: FUZZ_EXAMPLES=3000 pytest tests/test_fuzz_endpoints.py
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SMALL = settings(FUZZ, max_examples=max(EXAMPLES // 3, 10))

# --- what is sent --------------------------------------------------------------------------------------------

SPECIALS = ["", " ", "\x00", "\ud800", "\udfff", "ü", "\u00b2", "\u0663", "\r\nX-Injected: 1", "\n", "%0d%0a",
            "<script>", "'\"", "../../etc/passwd", "2147483648", "-1", "9" * 40, "x" * 5000, "NaN", "null",
            "ann@example.com", "jürgen@example.com", "ann@münchen.de", "+14155552671", "Europe/Paris"]
# URL, form and header text cannot hold a lone surrogate (it has no UTF-8 form to send); JSON can spell one.
wire_text = st.text(max_size=30) | st.sampled_from([s for s in SPECIALS if not re.search("[\ud800-\udfff]", s)])
json_text = st.text(st.characters(exclude_categories=()), max_size=30) | st.sampled_from(SPECIALS)
json_scalar = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**70, max_value=2**70)
               | st.floats(allow_nan=False, allow_infinity=False) | json_text)
json_value = st.recursive(json_scalar, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(json_text, inner, max_size=3), max_leaves=8)
ids = st.integers() | st.sampled_from([0, -1, 1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 10**30]) | json_value
header_text = st.text(st.characters(max_codepoint=255, exclude_characters="\r\n\x00"), max_size=30)

CONTACT = st.fixed_dictionaries({"email": st.emails() | json_text}, optional={
    "first_name": json_value, "last_name": json_value, "phone": json_value, "timezone": json_value,
    "fields": json_value, "tags": json_value, "sequence": st.sampled_from(["lead-nurture", "nope"]) | json_value,
    "source": json_value, "extra": json_value})
EVENT = st.fixed_dictionaries({}, optional={
    "email": st.sampled_from(["ann@example.com", "nobody@example.com"]) | json_text, "contact_id": ids,
    "type": st.sampled_from(["purchase", "active", "webinar-attended"]) | json_text, "properties": json_value,
    "occurred_at": st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()) | json_value,
    "idempotency_key": json_value, "extra": json_value})
RAW_JSON = st.sampled_from(['{"email": NaN}', '{"fields": {"a": 1e999}}', "[" * 5000, '{"a": -Infinity}',
                            "9" * 5000, '"\\ud800"', "{}", "[]", "null"]) | st.binary(max_size=200)
FORM_KEYS = ["email", "first_name", "phone", "interest", "consent", "sms_consent", "timezone", "website",
             "_started", "utm_source", "ref", "referrer", "landing_page", "locale", "other"]

# --- what must come back -------------------------------------------------------------------------------------

INJECTING = re.compile("[\r\n\x00]")
# Characters a URL or header never carries raw: input holding one must come back escaped, if at all.
UNSAFE = re.compile(r"[^A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]")


def strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


def check(response: TestResponse, *sent: object) -> None:
    body = response.get_data()[:300].decode("utf-8", "replace")  # the open pixel is a GIF, not text
    assert response.status_code < 500, f"{response.status_code} for {sent!r}: {body}"
    echoed = [s for s in strings(list(sent)) if len(s) >= 4 and UNSAFE.search(s)]
    for name, value in response.headers.items():
        assert not INJECTING.search(name + value), f"{name}: {value!r} for {sent!r}"
        for given_text in echoed:
            assert given_text not in value, f"{name} carries {given_text!r} unescaped"


# --- the app under test --------------------------------------------------------------------------------------

def fuzz_runtime(make_runtime, url: str, project: Path) -> Runtime:  # noqa: ANN001
    shutil.copytree(CONTENT / "forms", project / "forms")
    return make_runtime(url, FORM_MIN_FILL_SECONDS="0", FORM_RATE_LIMIT="100000 per minute",
                        SMS_BACKEND="twilio", TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                        TWILIO_FROM="+15005550006", **hook_env())


def sent_delivery(rt: Runtime) -> int:
    """Ann, with one email sent: the delivery her links (unsubscribe, click, rating) point back to."""
    contact_id = add_contact(rt, "ann@example.com", "lead-nurture", phone="+14155552671")
    now = rt.clock()
    with Session(rt.db) as session:
        enrollment = session.exec(select(Enrollment).where(Enrollment.contact_id == contact_id)).one()
        delivery = Delivery(contact_id=contact_id, enrollment_id=enrollment.id, sequence_id="lead-nurture",
                            step_id="edu-1", channel="email", recipient="ann@example.com", status="sent",
                            created_at=now, updated_at=now, sent_at=now - timedelta(hours=1))
        session.add(delivery)
        session.commit()
        return delivery.id  # type: ignore[return-value]


class Fuzzed:
    def __init__(self, rt: Runtime, clock: FakeClock) -> None:
        self.rt, self.clock = rt, clock
        self.delivery_id = sent_delivery(rt)
        self.client: FlaskClient = create_app(rt).test_client()

    @property
    def started(self) -> str:
        return self.rt.signer.form_token(FORM, self.clock())

    def tokens(self) -> dict[str, str]:
        signer, delivery = self.rt.signer, self.delivery_id
        return {"/u/": signer.unsubscribe_token(delivery), "/feedback/": signer.feedback_token(delivery),
                "/u/<token>/unsubscribe": signer.unsubscribe_token(delivery),
                "/c/": signer.click_token(delivery, "https://juniperpottery.example/classes?a=1"),
                "/confirm/": signer.confirm_token(1), "/r/": signer.referral_code(1),
                f"/forms/{FORM}/download/": signer.lead_magnet_token(1, FORM)}

    def message_id(self) -> str:
        """The sent delivery's Message-ID, as a provider echoes it."""
        return f"<nurture.{self.delivery_id}.{self.rt.signer.message_tag(self.delivery_id)}@juniper.test>"

    def hook(self, path: str, body: object, signed: bool, sns: SnsHost, sns_type: str) -> TestResponse:
        data, headers = hook_request(path, body, signed, self.clock(), sns, sns_type)
        return self.client.post(path, data=data, headers=headers)

    def twilio(self, path: str, params: dict[str, str], signed: bool) -> TestResponse:
        signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + path, params) if signed else "x"
        return self.client.post(path, data=params, headers={"X-Twilio-Signature": signature})


@pytest.fixture
def fuzzed(make_runtime, sqlite_url: str, project: Path, clock: FakeClock) -> Fuzzed:  # noqa: ANN001
    return Fuzzed(fuzz_runtime(make_runtime, sqlite_url, project), clock)


@pytest.fixture
def fuzzed_pg(make_runtime, project: Path, clock: FakeClock) -> Iterator[Fuzzed]:  # noqa: ANN001
    for url in _postgres_database():
        yield Fuzzed(fuzz_runtime(make_runtime, url, project), clock)


# --- JSON API ------------------------------------------------------------------------------------------------

def post_contact(fuzzed: Fuzzed, body: dict, auth: dict[str, str]) -> None:
    response = fuzzed.client.post("/api/contacts", headers=auth, json=body)
    check(response, body)
    if response.status_code == 400 and auth == AUTH:
        assert isinstance(response.json.get("error"), str), response.json


@FUZZ
@given(body=CONTACT)
def test_no_contact_posted_to_the_api_gets_a_5xx(fuzzed: Fuzzed, body: dict) -> None:
    post_contact(fuzzed, body, AUTH)


@FUZZ
@given(body=EVENT)
def test_no_event_posted_to_the_api_gets_a_5xx(fuzzed: Fuzzed, body: dict) -> None:
    response = fuzzed.client.post("/api/events", headers=AUTH, json=body)
    check(response, body)
    if response.status_code == 400:
        assert isinstance(response.json["error"], str), response.json


@SMALL
@given(raw=RAW_JSON, path=st.sampled_from(["/api/contacts", "/api/events", f"/forms/{FORM}"]))
def test_no_raw_body_gets_a_5xx(fuzzed: Fuzzed, raw: str | bytes, path: str) -> None:
    check(fuzzed.client.post(path, headers={**AUTH, "Accept": "application/json"}, data=raw,
                             content_type="application/json"), raw)


@SMALL
@given(authorization=header_text, email=wire_text, path=st.sampled_from(["/api/contacts/", "/"]))
def test_no_credentials_get_a_5xx_or_past_the_key(fuzzed: Fuzzed, authorization: str, email: str, path: str) -> None:
    target = path + quote(email or "x", safe="@") if path != "/" else path
    for headers in ({"Authorization": authorization}, {"Authorization": "Basic " + authorization},
                    {"Authorization": "Bearer " + authorization}, {}):
        response = fuzzed.client.get(target, headers=headers)
        check(response, authorization, email)
        if path == "/":  # the console: no header opens it, only a login session (tests/test_console_login.py)
            assert response.status_code == 302 and response.headers["Location"] == "/login?next=/", headers
            continue
        if response.status_code == 308:  # the router merged a double slash: the answer is at that address
            response = fuzzed.client.get(response.headers["Location"], headers=headers)
            check(response, authorization, email)
        # A 404 from the router (a path <path:email> does not match, like one with a line break) is no way in;
        # the API's own 404 ("no such contact", JSON) would mean the key was passed.
        assert response.status_code == 401 or (response.status_code == 404 and not response.is_json), headers
        for post in ("/api/contacts", "/api/events"):
            response = fuzzed.client.post(post, headers=headers, json={"email": "ann@example.com", "type": "x"})
            check(response, authorization)
            assert response.status_code == 401, (post, headers)
    check(fuzzed.client.get(target, headers=AUTH), email)


# --- forms ---------------------------------------------------------------------------------------------------

@FUZZ
@given(fields=st.dictionaries(st.sampled_from(FORM_KEYS) | wire_text, wire_text, max_size=6),
       started=st.booleans(), query=st.dictionaries(st.sampled_from(["utm_source", "ref", "x"]), wire_text,
                                                     max_size=2),
       origin=st.none() | st.sampled_from(["https://juniperpottery.example", "https://evil.example"]) | header_text,
       as_json=st.booleans(), language=st.sampled_from(["fr", "fr-CA,en;q=0.5", "*", "de;q=x"]) | header_text)
def test_no_form_post_gets_a_5xx(fuzzed: Fuzzed, fields: dict, started: bool, query: dict, origin: str | None,
                                 as_json: bool, language: str) -> None:
    data = {**fields, **({"_started": fuzzed.started} if started else {})}
    headers = {"Accept-Language": language, **({"Origin": origin} if origin is not None else {})}
    path = f"/forms/{FORM}"
    if as_json:
        response = fuzzed.client.post(path, json=data, query_string=query, headers=headers)
    else:
        response = fuzzed.client.post(path, data=data, query_string=query, headers=headers)
    check(response, data, query, origin)
    if response.headers.get("Access-Control-Allow-Origin"):
        assert response.headers["Access-Control-Allow-Origin"] == "https://juniperpottery.example"


@SMALL
@given(query=st.dictionaries(st.sampled_from(["utm_source", "ref", "landing_page", "locale", "x"]) | wire_text,
                             wire_text, max_size=3),
       referrer=header_text, accept=st.sampled_from(["text/html", "application/json", "*/*"]) | header_text,
       origin=header_text, suffix=st.sampled_from(["", "/embed.js", "/thanks"]),
       method=st.sampled_from(["GET", "OPTIONS"]))
def test_no_view_of_a_form_gets_a_5xx(fuzzed: Fuzzed, query: dict, referrer: str, accept: str, origin: str,
                                      suffix: str, method: str) -> None:
    response = fuzzed.client.open(f"/forms/{FORM}{suffix}", method=method, query_string=query,
                                  headers={"Referer": referrer, "Accept": accept, "Origin": origin,
                                           "Accept-Language": referrer})
    check(response, query, referrer, accept, origin)


@SMALL
@given(fields=st.dictionaries(st.sampled_from(FORM_KEYS) | json_text, json_value, max_size=6))
def test_no_json_form_post_gets_a_5xx(fuzzed: Fuzzed, fields: dict) -> None:
    data = {"_started": fuzzed.started, **fields}
    check(fuzzed.client.post(f"/forms/{FORM}", json=data), data)


# --- links in messages ---------------------------------------------------------------------------------------

LINK_PATHS = ["/u/", "/u/<token>/unsubscribe", "/c/", "/feedback/", "/r/", "/confirm/", "/o/",
              f"/forms/{FORM}/download/", "/forms/"]


def link_path(prefix: str, token: str) -> str:
    """The link's path with `token` in it: after the prefix, or in place of <token>."""
    return prefix.replace("<token>", token) if "<token>" in prefix else prefix + token


@FUZZ
@given(prefix=st.sampled_from(LINK_PATHS), token=wire_text, method=st.sampled_from(["GET", "POST"]),
       form=st.dictionaries(st.sampled_from(["action", "List-Unsubscribe", "score", "comment"]) | wire_text,
                            wire_text, max_size=3))
def test_no_link_with_a_garbled_token_gets_a_5xx(fuzzed: Fuzzed, prefix: str, token: str, method: str,
                                                 form: dict) -> None:
    path = link_path(prefix, quote(token, safe="")) + (".gif" if prefix == "/o/" else "")
    response = fuzzed.client.open(path, method=method, data=form, query_string={"score": token})
    check(response, token, form)


@FUZZ
@given(prefix=st.sampled_from(["/u/", "/u/<token>/unsubscribe", "/c/", "/feedback/", "/r/", "/confirm/",
                               f"/forms/{FORM}/download/"]),
       method=st.sampled_from(["GET", "POST"]), user_agent=header_text,
       form=st.dictionaries(st.sampled_from(["action", "List-Unsubscribe", "score", "comment"]),
                            st.sampled_from(["sequence", "all", "resubscribe", "sms-off", "sms-on", "One-Click",
                                             "3", "10"]) | wire_text, max_size=3),
       score=st.none() | wire_text | st.sampled_from(["0", "10", "7"]))
def test_no_request_on_a_valid_link_gets_a_5xx(fuzzed: Fuzzed, prefix: str, method: str, user_agent: str,
                                               form: dict, score: str | None) -> None:
    path = link_path(prefix, fuzzed.tokens()[prefix])
    query = {"score": score} if score is not None else {}
    response = fuzzed.client.open(path, method=method, data=form, query_string=query,
                                  headers={"User-Agent": user_agent})
    check(response, form, score, user_agent)


# --- Twilio's webhooks ---------------------------------------------------------------------------------------

TWILIO_FIELDS = st.fixed_dictionaries({}, optional={
    "MessageSid": wire_text | st.just("SM" + "1" * 32), "From": wire_text | st.just("+14155552671"),
    "Body": wire_text | st.sampled_from(["STOP", "START", "HELP", "stop please"]),
    "MessageStatus": wire_text | st.sampled_from(["queued", "sent", "delivered", "undelivered", "failed"]),
    "ErrorCode": wire_text | st.sampled_from(["21610", "30003", "99999999999", "\u00b2"]), "To": wire_text})


@FUZZ
@given(path=st.sampled_from(["/twilio/inbound", "/twilio/status"]), params=TWILIO_FIELDS, signed=st.booleans())
def test_no_twilio_webhook_gets_a_5xx(fuzzed: Fuzzed, path: str, params: dict, signed: bool) -> None:
    response = fuzzed.twilio(path, params, signed)
    check(response, params)
    if not signed:
        assert response.status_code == 403


# --- PostgreSQL: the integer range and what its text refuses -------------------------------------------------

@SMALL
@given(body=EVENT, contact=CONTACT)
def test_on_postgresql_no_event_or_contact_gets_a_5xx(fuzzed_pg: Fuzzed, body: dict, contact: dict) -> None:
    check(fuzzed_pg.client.post("/api/events", headers=AUTH, json=body), body)
    check(fuzzed_pg.client.post("/api/contacts", headers=AUTH, json=contact), contact)


@SMALL
@given(params=TWILIO_FIELDS, path=st.sampled_from(["/twilio/inbound", "/twilio/status"]))
def test_on_postgresql_no_signed_twilio_webhook_gets_a_5xx(fuzzed_pg: Fuzzed, params: dict, path: str) -> None:
    check(fuzzed_pg.twilio(path, params, signed=True), params)


# --- the console's reputation page (tests/test_reputation.py) -----------------------------------------------

@pytest.fixture
def owner_console(fuzzed: Fuzzed) -> FlaskClient:
    from tests.console_support import logged_in

    return logged_in(fuzzed.rt, "owner")


@SMALL
@given(query=st.dictionaries(wire_text, wire_text, max_size=4),
       fields=st.dictionaries(st.sampled_from(["csrf_token", "by"]) | wire_text, wire_text, max_size=4),
       with_token=st.booleans())
def test_no_request_to_the_reputation_page_gets_a_5xx(owner_console: FlaskClient, query: dict, fields: dict,
                                                       with_token: bool) -> None:
    from tests.console_support import csrf_token

    check(owner_console.get("/reputation", query_string=query), query)
    if with_token:
        fields = {**fields, "csrf_token": csrf_token(owner_console, "/reputation")}
    response = owner_console.post("/reputation/resume", query_string=query, data=fields)
    check(response, query, fields)
    assert response.status_code in (302, 400), response.status_code
# --- the console's import and export (an owner's session) -------------------------------------------------------

IMPORT_KEYS = ["check", "col-0", "col-1", "col-2", "col-9", "sequence", "basis", "consent", "csrf_token"]
IMPORT_VALUES = st.sampled_from(["email", "phone", "first_name", "tags", "stage", "fields.plan", "fields.", "ignore",
                                 "lead-nurture", "consent", "legitimate-interest", "1"]) | wire_text
CSV_BODIES = st.sampled_from([b"email,phone,name\nann@example.com,+14155552671,Ann\n", b"", b"\xff\xfe\x00",
                              b"email\n" + b"x" * 200_000 + b"\n", b'"unclosed,\nann@example.com\n',
                              "email;name\nj\u00fcrgen@example.com;J\n".encode()]) | st.binary(max_size=300)


@pytest.fixture
def owner(fuzzed: Fuzzed) -> FlaskClient:
    from tests.console_support import logged_in

    return logged_in(fuzzed.rt)


def owner_upload(client: FlaskClient, body: bytes = b"email,phone,name\nann@example.com,+14155552671,Ann\n") -> str:
    from tests.console_support import csrf_token

    response = client.post("/import", data={"csrf_token": csrf_token(client, "/import"),
                                            "file": (io.BytesIO(body), "f.csv")}, content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Location"]


@SMALL
@given(body=CSV_BODIES, name=wire_text)
def test_no_uploaded_file_gets_a_5xx(fuzzed: Fuzzed, owner: FlaskClient, body: bytes, name: str) -> None:
    from tests.console_support import csrf_token

    response = owner.post("/import", data={"csrf_token": csrf_token(owner, "/import"),
                                           "file": (io.BytesIO(body), name or "x")}, content_type="multipart/form-data")
    check(response, name)
    if response.status_code == 303:
        check(owner.get(response.headers["Location"], query_string={"check": "1"}), name)


@SMALL
@given(query=st.dictionaries(st.sampled_from(IMPORT_KEYS) | wire_text, IMPORT_VALUES, max_size=6),
       post=st.booleans())
def test_no_mapping_or_option_chosen_for_an_import_gets_a_5xx(fuzzed: Fuzzed, owner: FlaskClient, query: dict,
                                                                 post: bool) -> None:
    from tests.console_support import csrf_token

    preview = owner_upload(owner)
    if post:
        response = owner.post(preview, data={**query, "csrf_token": csrf_token(owner, "/import")})
    else:
        response = owner.get(preview, query_string=query)
    check(response, query)
    if response.status_code == 303:  # queued (no Redis here: the record waits for the worker's tick)
        check(owner.get(response.headers["Location"], query_string=query), query)


@SMALL
@given(name=wire_text, prefix=st.sampled_from(["/export/", "/import/"]))
def test_no_export_or_upload_name_gets_a_5xx(fuzzed: Fuzzed, owner: FlaskClient, name: str, prefix: str) -> None:
    suffix = ".csv" if prefix == "/export/" else ""
    check(owner.get(prefix + quote(name or "x", safe="") + suffix), name)


@SMALL
@given(name=wire_text)
def test_no_import_status_name_gets_a_5xx(fuzzed: Fuzzed, owner: FlaskClient, name: str) -> None:
    check(owner.get("/import/" + quote(name or "x", safe="") + "/status"), name)



# --- webhooks in: Stripe and the generic hooks (tests/test_integrations_in.py) -------------------------------

from tests.integrations_support import (  # noqa: E402 (this section's own imports, kept with it)
    SECRETS,
    calendly_signed,
    nurture_signed,
    shopify_signed,
    stripe_signed,
    write_integrations,
)

INBOUND_PATHS = ["/integrations/stripe", "/integrations/hooks/shopify-orders", "/integrations/hooks/calendly-bookings",
              "/integrations/hooks/studio-pos", "/integrations/hooks/nope"]
STRIPE_TYPES = ["checkout.session.completed", "invoice.paid", "charge.refunded", "customer.created"]
STRIPE_OBJECT = st.fixed_dictionaries({}, optional={
    "id": json_value, "amount_total": ids, "amount_paid": ids, "amount_refunded": ids,
    "currency": st.sampled_from(["usd", "jpy", "kwd"]) | json_value,
    "customer_details": st.fixed_dictionaries({}, optional={"email": st.emails() | json_value, "name": json_value}),
    "customer_email": st.emails() | json_value, "billing_details": json_value, "payment_link": json_value,
    "metadata": json_value, "lines": json_value, "payment_intent": json_value, "customer_name": json_value})
STRIPE_EVENT = st.fixed_dictionaries({"object": st.just("event")}, optional={
    "id": st.just("evt_1") | json_value, "type": st.sampled_from(STRIPE_TYPES) | json_value, "created": ids,
    "data": st.fixed_dictionaries({"object": STRIPE_OBJECT}) | json_value})
HOOK_PAYLOAD = st.fixed_dictionaries({}, optional={
    "id": ids, "email": st.emails() | json_value, "total_price": json_value, "currency": json_value,
    "customer": json_value, "line_items": json_value, "event": st.sampled_from(["invitee.created"]) | json_value,
    "payload": st.fixed_dictionaries({}, optional={"email": st.emails() | json_value, "uri": json_value,
                                                   "first_name": json_value, "scheduled_event": json_value}),
    "sale": st.fixed_dictionaries({}, optional={"ref": ids, "buyer": st.emails() | json_value, "total": json_value,
                                                "item": json_value, "currency": json_value})})


def signed_for(path: str, payload: object, now) -> tuple[bytes, dict[str, str]]:  # noqa: ANN001
    if path.endswith("/stripe"):
        return stripe_signed(payload)  # type: ignore[arg-type]
    if path.endswith("/shopify-orders"):
        return shopify_signed(payload)  # type: ignore[arg-type]
    if path.endswith("/calendly-bookings"):
        return calendly_signed(payload, now)  # type: ignore[arg-type]
    return nurture_signed(payload)  # type: ignore[arg-type]


def webhooks_client(make_runtime, url: str, project: Path) -> FlaskClient:  # noqa: ANN001
    write_integrations(project)
    rt = make_runtime(url, **SECRETS)
    add_contact(rt, "ann@example.com", "lead-nurture")
    return create_app(rt).test_client()


@pytest.fixture
def webhooks(make_runtime, sqlite_url: str, project: Path) -> FlaskClient:  # noqa: ANN001
    return webhooks_client(make_runtime, sqlite_url, project)


@pytest.fixture
def webhooks_pg(make_runtime, project: Path) -> Iterator[FlaskClient]:  # noqa: ANN001
    for url in _postgres_database():
        yield webhooks_client(make_runtime, url, project)


def post_webhook(client: FlaskClient, path: str, payload: object, signed: bool, header: str, clock) -> None:  # noqa: ANN001
    body, headers = signed_for(path, payload, clock())
    if not signed:  # the real header's name, holding something else
        headers = {name: header for name in headers if name != "Content-Type"}
    response = client.post(path, data=body, headers=headers, content_type="application/json")
    check(response, payload, header)
    if not signed:
        assert response.status_code in (400, 404), (path, response.status_code)
    if response.status_code >= 400:
        assert isinstance(response.json.get("error"), str), response.json


@FUZZ
@given(path=st.sampled_from(INBOUND_PATHS), payload=HOOK_PAYLOAD | json_value, stripe_event=STRIPE_EVENT,
       signed=st.booleans(), header=header_text)
def test_no_webhook_in_gets_a_5xx_signed_or_not(webhooks: FlaskClient, clock: FakeClock, path: str, payload: object,
                                                stripe_event: dict, signed: bool, header: str) -> None:
    post_webhook(webhooks, path, stripe_event if path.endswith("/stripe") else payload, signed, header, clock)


@SMALL
@given(raw=RAW_JSON, path=st.sampled_from(INBOUND_PATHS), header=header_text)
def test_no_raw_webhook_body_gets_a_5xx(webhooks: FlaskClient, raw: str | bytes, path: str, header: str) -> None:
    for name in ("Stripe-Signature", "X-Shopify-Hmac-Sha256", "Calendly-Webhook-Signature", "X-Nurture-Signature"):
        check(webhooks.post(path, data=raw, headers={name: header}, content_type="application/json"), raw, header)


@SMALL
@given(path=st.sampled_from(INBOUND_PATHS[:4]), payload=HOOK_PAYLOAD, stripe_event=STRIPE_EVENT)
def test_on_postgresql_no_signed_webhook_in_gets_a_5xx(webhooks_pg: FlaskClient, clock: FakeClock, path: str,
                                                       payload: dict, stripe_event: dict) -> None:
    post_webhook(webhooks_pg, path, stripe_event if path.endswith("/stripe") else payload, True, "", clock)

# --- the email providers' webhooks ---------------------------------------------------------------------------

@pytest.fixture
def sns_host() -> Iterator[SnsHost]:
    host = SnsHost()
    yield host
    host.close()


EVENT_NAMES = st.sampled_from(["Bounce", "Complaint", "Delivery", "Open", "HardBounce", "SoftBounce", "Blocked",
                               "SpamComplaint", "delivered", "open", "bounce", "spamreport", "failed", "opened",
                               "complained", "Permanent", "Transient", "temporary", "permanent", "old"])
HOOK_KEYS = ["notificationType", "eventType", "mail", "bounce", "complaint", "bouncedRecipients", "bounceType",
             "RecordType", "Type", "MessageID", "Metadata", "Details", "event", "type", "status", "reason",
             "smtp-id", "sg_event_id", "sg_message_id", "severity", "message", "headers", "message-id",
             "delivery-status", "user-variables", "id", "source", "commonHeaders", "messageId", "email"]
# Shaped like the providers' payloads (their field names and event names), with anything in the fields.
hook_leaf = json_scalar | EVENT_NAMES | st.just("MSGID")
hook_value = st.recursive(hook_leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.sampled_from(HOOK_KEYS) | json_text, inner, max_size=4), max_leaves=8)
HOOK_BODY = hook_value | st.lists(hook_value, max_size=3) | st.binary(max_size=60)


def with_message_id(value: object, message_id: str) -> object:
    """Put the sent delivery's Message-ID wherever the strategy left a MSGID."""
    if value == "MSGID":
        return message_id
    if isinstance(value, dict):
        return {k: with_message_id(v, message_id) for k, v in value.items()}
    if isinstance(value, list):
        return [with_message_id(v, message_id) for v in value]
    return value


@FUZZ
@given(path=st.sampled_from(HOOK_PATHS), body=HOOK_BODY, signed=st.booleans(),
       sns_type=st.sampled_from(["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation", "x"]))
def test_no_provider_webhook_gets_a_5xx(fuzzed: Fuzzed, sns_host: SnsHost, path: str, body: object, signed: bool,
                                        sns_type: str) -> None:
    body = with_message_id(body, fuzzed.message_id())
    response = fuzzed.hook(path, body, signed, sns_host, sns_type)
    check(response, body)
    if not signed:
        assert response.status_code == 403


@FUZZ
@given(path=st.sampled_from(HOOK_PATHS), raw=st.binary(max_size=200) | wire_text,
       headers=st.dictionaries(st.sampled_from(["Authorization", "X-Twilio-Email-Event-Webhook-Signature",
                                                "X-Twilio-Email-Event-Webhook-Timestamp", "Content-Type"]),
                               header_text, max_size=3))
def test_no_unsigned_raw_body_to_a_provider_webhook_gets_past_the_proof(fuzzed: Fuzzed, path: str, raw: bytes | str,
                                                                        headers: dict[str, str]) -> None:
    response = fuzzed.client.post(path, data=raw, headers=headers)
    check(response, raw, headers)
    assert response.status_code in (400, 403)


def positions(value: object) -> Iterator[tuple[dict | list, object]]:
    """Every (container, key) in a JSON value: where a mutation may go."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield value, key
            yield from positions(item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield value, index
            yield from positions(item)


def mutated_sample(data: st.DataObject, path: str, message_id: str) -> object:
    """One of the provider's documented samples about the sent delivery, with one to three fields replaced:
    the events then reach the database, where what PostgreSQL refuses (NUL, lone surrogates) would show."""
    body = data.draw(st.sampled_from(samples(path, message_id)))
    for _ in range(data.draw(st.integers(1, 3))):
        container, key = data.draw(st.sampled_from(list(positions(body))))
        container[key] = data.draw(hook_leaf)  # type: ignore[index]
    return with_message_id(body, message_id)


@FUZZ
@given(path=st.sampled_from(HOOK_PATHS), data=st.data())
def test_no_signed_provider_sample_with_fields_fuzzed_gets_a_5xx(fuzzed: Fuzzed, sns_host: SnsHost, path: str,
                                                                 data: st.DataObject) -> None:
    body = mutated_sample(data, path, fuzzed.message_id())
    check(fuzzed.hook(path, body, True, sns_host, "Notification"), body)


@SMALL
@given(path=st.sampled_from(HOOK_PATHS), body=HOOK_BODY, data=st.data())
def test_on_postgresql_no_signed_provider_webhook_gets_a_5xx(fuzzed_pg: Fuzzed, sns_host: SnsHost, path: str,
                                                             body: object, data: st.DataObject) -> None:
    body = with_message_id(body, fuzzed_pg.message_id())
    check(fuzzed_pg.hook(path, body, True, sns_host, "Notification"), body)
    sample = mutated_sample(data, path, fuzzed_pg.message_id())
    check(fuzzed_pg.hook(path, sample, True, sns_host, "Notification"), sample)


# --- the console's webhooks page (an owner logged in) -------------------------------------------------------

@pytest.fixture
def webhooks_console(make_runtime, sqlite_url: str, project: Path) -> FlaskClient:  # noqa: ANN001
    # A private address, not allowed: a ping is refused before any connection, so the fuzz sends nothing out.
    (project / "webhooks.yaml").write_text("endpoints:\n  - name: crm\n    url: http://127.0.0.1:9/in\n"
                                           "    secret_env: WEBHOOK_SECRET_CRM\n")
    rt = make_runtime(sqlite_url, WEBHOOK_SECRET_CRM="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    from tests.console_support import logged_in
    return logged_in(rt, "owner")


@SMALL
@given(name=st.sampled_from(["crm", "nope"]) | wire_text, action=st.sampled_from(["ping", "enable"]),
       query=st.dictionaries(st.sampled_from(["name", "x"]) | wire_text, wire_text, max_size=2),
       with_token=st.booleans())
def test_no_request_to_the_webhooks_page_gets_a_5xx(webhooks_console: FlaskClient, name: str, action: str,
                                                    query: dict, with_token: bool) -> None:
    check(webhooks_console.get("/webhooks", query_string=query), query)
    from tests.console_support import csrf_token
    form = {"csrf_token": csrf_token(webhooks_console, "/webhooks")} if with_token else {}
    response = webhooks_console.post(f"/webhooks/{quote(name or 'x', safe='')}/{action}", data=form)
    check(response, name)
    if not with_token:  # refused for want of the token; or no such page at all (a name holding a slash)
        assert response.status_code in (400, 404)


@SMALL
@given(form=st.fixed_dictionaries({}, optional={
    "name": st.sampled_from(["crm", "shop"]) | wire_text, "url": st.sampled_from(["http://127.0.0.1:9/x"]) | wire_text,
    "secret_env": st.sampled_from(["WEBHOOK_SECRET_CRM"]) | wire_text,
    "events": st.lists(st.sampled_from(["feedback", "referral"]) | wire_text, max_size=3)}))
def test_no_endpoint_added_in_the_console_gets_a_5xx(webhooks_console: FlaskClient, form: dict) -> None:
    from tests.console_support import csrf_token
    response = webhooks_console.post("/webhooks/new", data={**form, "csrf_token": csrf_token(webhooks_console,
                                                                                             "/webhooks")})
    check(response, form)
    assert response.status_code in (302, 400)
    if "shop" in response.headers.get("Location", ""):  # added: take it away, so the next example may add it
        webhooks_console.post("/webhooks/shop/remove", data={"csrf_token": csrf_token(webhooks_console, "/webhooks")})


# --- the console's Forms and Suppressions pages (logged in as an owner) --------------------------------------

CONSOLE_READS = st.sampled_from(["/signup-forms", f"/signup-forms/{FORM}", "/suppressions"])
CONSOLE_QUERY = st.dictionaries(st.sampled_from(["since", "q", "page"]) | wire_text, wire_text, max_size=3)
SUPPRESSION_FIELDS = st.fixed_dictionaries({}, optional={
    "address": wire_text | st.emails() | st.sampled_from(["+14155552671", "(415) 555-2671", "ann@"]),
    "reason": wire_text})


def owner_client(fuzzed: Fuzzed) -> FlaskClient:
    """One logged-in owner per test (not per example: the login's own limits would stop the run)."""
    if not hasattr(fuzzed, "owner"):
        fuzzed.owner = logged_in(fuzzed.rt)  # type: ignore[attr-defined]
    return fuzzed.owner  # type: ignore[attr-defined]


def console_requests(fuzzed: Fuzzed, path: str, query: dict, form_id: str, fields: dict, remove: bool) -> None:
    client = owner_client(fuzzed)
    check(client.get(path, query_string=query), query)
    check(client.get(f"/signup-forms/{quote(form_id, safe='') or 'x'}"), form_id)
    target = "/suppressions/remove" if remove else "/suppressions"
    response = client.post(target, data={"csrf_token": csrf_token(client, "/suppressions"), **fields})
    check(response, fields)
    assert response.status_code in (303, 400), (response.status_code, fields)


@FUZZ
@given(path=CONSOLE_READS, query=CONSOLE_QUERY, form_id=wire_text, fields=SUPPRESSION_FIELDS, remove=st.booleans())
def test_no_console_forms_or_suppressions_request_gets_a_5xx(fuzzed: Fuzzed, path: str, query: dict, form_id: str,
                                                              fields: dict, remove: bool) -> None:
    console_requests(fuzzed, path, query, form_id, fields, remove)


@SMALL
@given(path=CONSOLE_READS, query=CONSOLE_QUERY, form_id=wire_text, fields=SUPPRESSION_FIELDS, remove=st.booleans())
def test_on_postgresql_no_console_forms_or_suppressions_request_gets_a_5xx(fuzzed_pg: Fuzzed, path: str,
                                                                            query: dict, form_id: str, fields: dict,
                                                                            remove: bool) -> None:
    console_requests(fuzzed_pg, path, query, form_id, fields, remove)


# --- the contact list and the console's contact pages ----------------------------------------------------------

LIST_KEYS = ["q", "stage", "tag", "sequence", "email_status", "sms_status", "limit", "cursor"]
LIST_VALUES = wire_text | st.sampled_from(["lead", "vip", "lead-nurture", "subscribed", "erased", "0", "200",
                                           "201", "1", str(2**31), "9" * 30, "ann", "%", "_", "\\"])
LIST_QUERY = st.dictionaries(st.sampled_from(LIST_KEYS) | wire_text, LIST_VALUES, max_size=5)


@SMALL
@given(query=LIST_QUERY, email=wire_text | st.sampled_from(["ann@example.com", "ANN@example.com", "x@y"]),
       auth=st.sampled_from([AUTH, {}]))
def test_no_contact_list_query_or_erasure_gets_a_5xx(fuzzed: Fuzzed, query: dict, email: str, auth: dict) -> None:
    response = fuzzed.client.get("/api/contacts", headers=AUTH, query_string=query)
    check(response, query)
    assert response.status_code in (200, 400), response.status_code
    response = fuzzed.client.delete(f"/api/contacts/{quote(email or 'x', safe='@')}", headers=auth)
    check(response, email)
    if response.status_code == 308:  # the router merged a double slash: the answer is at that address
        check(fuzzed.client.delete(response.headers["Location"], headers=auth), email)
    assert response.status_code in (200, 308, 400, 401, 404, 405), response.status_code


@SMALL
@given(query=LIST_QUERY)
def test_on_postgresql_no_contact_list_query_gets_a_5xx(fuzzed_pg: Fuzzed, query: dict) -> None:
    check(fuzzed_pg.client.get("/api/contacts", headers=AUTH, query_string=query), query)


@pytest.fixture
def contacts_owner(fuzzed: Fuzzed) -> tuple[FlaskClient, str]:
    """An owner logged in through the real form, and a valid CSRF token of that session."""
    from tests.console_support import csrf_token, logged_in

    client = logged_in(fuzzed.rt, "owner")
    return client, csrf_token(client, "/contacts")


CONSOLE_ACTIONS = ["enroll", "tags", "tags/remove", "unsubscribe", "erase", "export", "enrollments/1/pause",
                   "enrollments/1/resume", "enrollments/1/end", "enrollments/2/pause", "enrollments/1/x", "locale"]


@FUZZ
@given(contact=st.sampled_from(["1", "2", "0", "-1", str(2**31), "x"]) | wire_text,
       action=st.sampled_from(CONSOLE_ACTIONS),
       form=st.dictionaries(st.sampled_from(["sequence", "tag", "channel", "confirm", "locale"]) | wire_text,
                            st.sampled_from(["lead-nurture", "customer", "vip", "email", "sms", "ann@example.com",
                                             "fr", "pt-BR", "xx-ZZ"])
                            | wire_text, max_size=3),
       query=LIST_QUERY)
def test_no_console_contact_page_or_action_gets_a_5xx(contacts_owner: tuple[FlaskClient, str], contact: str,
                                                      action: str, form: dict, query: dict) -> None:
    client, token = contacts_owner
    path = f"/contacts/{quote(contact, safe='')}"
    check(client.get("/contacts", query_string=query), query)
    check(client.get(path), contact)
    check(client.post(f"{path}/{action}", data={**form, "csrf_token": token}), contact, form)


@SMALL
@given(contact=st.sampled_from(["1", str(2**31), str(2**63 - 1)]) | wire_text, action=st.sampled_from(CONSOLE_ACTIONS),
       form=st.dictionaries(st.sampled_from(["sequence", "tag", "channel", "confirm", "locale"]), wire_text,
                            max_size=3),
       query=LIST_QUERY)
def test_on_postgresql_no_console_contact_action_gets_a_5xx(fuzzed_pg: Fuzzed, contact: str, action: str,
                                                            form: dict, query: dict) -> None:
    from tests.console_support import csrf_token, logged_in

    if not hasattr(fuzzed_pg, "owner"):
        fuzzed_pg.owner = logged_in(fuzzed_pg.rt, "owner")  # type: ignore[attr-defined]
    client = fuzzed_pg.owner  # type: ignore[attr-defined]
    path = f"/contacts/{quote(contact, safe='')}"
    check(client.get("/contacts", query_string=query), query)
    check(client.get(path), contact)
    check(client.post(f"{path}/{action}", data={**form, "csrf_token": csrf_token(client, "/contacts")}), form)


# --- the console's segments pages (tests/test_segments_console.py) ------------------------------------------------

@pytest.fixture
def segments_owner(fuzzed: Fuzzed, project: Path) -> FlaskClient:
    from tests.console_support import logged_in

    (project / "segments").mkdir(exist_ok=True)
    (project / "segments" / "vips.yaml").write_text("id: vips\nname: VIPs\ncondition: {tag: vip}\n")
    return logged_in(fuzzed.rt, "owner")


@SMALL
@given(segment=st.sampled_from(["vips", "VIPS", "vips/", "..", "%00"]) | wire_text,
       query=st.dictionaries(wire_text, wire_text, max_size=3))
def test_no_request_to_the_segments_pages_gets_a_5xx(segments_owner: FlaskClient, segment: str, query: dict) -> None:
    check(segments_owner.get("/segments", query_string=query), query)
    response = segments_owner.get(f"/segments/{quote(segment, safe='')}", query_string=query)
    check(response, segment, query)
    assert response.status_code in (200, 404, 308), response.status_code


# --- the console's broadcasts (an owner logged in; docs/broadcasts.md) --------------------------------------

@pytest.fixture
def broadcasts_console(make_runtime, sqlite_url: str, project: Path) -> FlaskClient:  # noqa: ANN001
    from tests.broadcasts_support import add_broadcast_files, crowd

    add_broadcast_files(project)
    rt = make_runtime(sqlite_url)  # the outbox: a test send is written to a file, nothing goes out
    crowd(rt, 5, suppressed=1, unconsented=1, capped=0)
    return logged_in(rt, "owner")


@SMALL
@given(key=st.sampled_from(["spring", "nope"]) | wire_text,
       action=st.sampled_from(["test", "start", "cancel", "nope"]),
       form=st.dictionaries(st.sampled_from(["to", "confirm", "x"]), st.sampled_from(["yes", "a@b.example"])
                            | wire_text, max_size=2),
       with_token=st.booleans())
def test_no_request_to_a_broadcast_gets_a_5xx(broadcasts_console: FlaskClient, key: str, action: str, form: dict,
                                              with_token: bool) -> None:
    path = f"/broadcasts/{quote(key or 'x', safe='')}"
    check(broadcasts_console.get(path), key)
    token = {"csrf_token": csrf_token(broadcasts_console, "/broadcasts")} if with_token else {}
    response = broadcasts_console.post(f"{path}/{action}", data={**form, **token})
    check(response, key, form)
    if not with_token:
        assert response.status_code in (400, 404, 405)


@SMALL
@given(form=st.fixed_dictionaries({}, optional={
    "id": st.sampled_from(["fall", "spring", "Bad Id", "x" * 60]) | wire_text,
    "name": st.sampled_from(["Fall"]) | wire_text, "segment": st.sampled_from(["leads", "nope"]) | wire_text,
    "channel": st.sampled_from(["email", "sms", "fax"]) | wire_text,
    "template": st.sampled_from(["broadcasts/open-studio", "../x", "system/confirm"]) | wire_text,
    "subject": st.sampled_from(["Hi {{ contact.first_name }}", "{{ nope", ""]) | wire_text,
    "send_at": st.sampled_from(["now", "2027-01-01T10:00:00+01:00", "2027-01-01", "tomorrow"]) | wire_text,
    "timing": st.sampled_from(["own-window", "at-once"]) | wire_text,
    "hours": st.sampled_from(["09:00-17:00", "17:00-09:00", "25:00-26:00"]) | wire_text}))
def test_no_broadcast_made_in_the_console_gets_a_5xx(broadcasts_console: FlaskClient, form: dict) -> None:
    token = csrf_token(broadcasts_console, "/broadcasts")
    response = broadcasts_console.post("/broadcasts/new", data={**form, "csrf_token": token})
    check(response, form)
    assert response.status_code in (302, 400)
