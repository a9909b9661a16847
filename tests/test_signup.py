"""Signing up through a form over HTTP: double opt-in through the real send path and a real SMTP server,
re-submission, bad input, bots, rate limit, CORS, attribution, consent records and expiry."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import signal
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue, SimpleWorker
from sqlmodel import Session, select

from nurture.people import signup
from nurture.runtime import Runtime, use_runtime
from nurture.store.models import Consent, Contact, Enrollment, Event
from nurture.web import create_app
from nurture.web.submit_limit import SubmitLimit, Verdict
from tests.conftest import CONTENT, FakeClock, SmtpServer, free_port, worker_env
from tests.helpers import add_contact, deliveries, send_due

FORM = "beginners-guide"
CONSENT_TEXT = ("By signing up you agree to get emails from Juniper Pottery Studio about classes and making "
                "pottery, about once a week. Unsubscribe any time with the link in every email.")
JSON = {"Accept": "application/json"}
UA = "Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0"


@pytest.fixture
def project_with_forms(project: Path) -> Path:
    shutil.copytree(CONTENT / "forms", project / "forms")
    return project


@pytest.fixture
def rt(make_runtime, database_url, smtp_server: SmtpServer, project_with_forms) -> Runtime:  # noqa: ANN001
    return make_runtime(database_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url,
                        FORM_RATE_LIMIT="1000 per minute")


@pytest.fixture
def client(rt: Runtime) -> FlaskClient:
    return create_app(rt).test_client()


def started(rt: Runtime, clock: FakeClock, form_id: str = FORM) -> str:
    """The signed time a form was handed out, then the time a person takes to fill it in."""
    token = rt.signer.form_token(form_id, clock())
    clock.advance(seconds=20)
    return token


def post(client: FlaskClient, rt: Runtime, clock: FakeClock, form_id: str = FORM, headers: dict | None = None,
         query: str = "", **fields: object):  # noqa: ANN201
    data = {"_started": started(rt, clock, form_id), "website": "", **fields}
    return client.post(f"/forms/{form_id}{query}", data=data, headers={"User-Agent": UA, **(headers or {})})


def contacts(rt: Runtime) -> list[Contact]:
    with Session(rt.db) as session:
        return list(session.exec(select(Contact).order_by(Contact.id)))


def consents(rt: Runtime) -> list[Consent]:
    with Session(rt.db) as session:
        return list(session.exec(select(Consent).order_by(Consent.id)))


def events(rt: Runtime, type_: str | None = None) -> list[Event]:
    with Session(rt.db) as session:
        query = select(Event).order_by(Event.id)
        return list(session.exec(query.where(Event.type == type_) if type_ else query))


def enrollments(rt: Runtime) -> list[tuple[str, str]]:
    with Session(rt.db) as session:
        return [(e.sequence_id, e.status) for e in session.exec(select(Enrollment).order_by(Enrollment.id))]


def nothing_saved(rt: Runtime) -> bool:
    return contacts(rt) == [] and consents(rt) == [] and events(rt) == [] and enrollments(rt) == []


def confirm_path(smtp_server: SmtpServer, address: str) -> str:
    """The path of the confirmation link in the last email `address` received (text part)."""
    text = smtp_server.handler.to(address)[-1].message.get_body(("plain",)).get_content()
    return urlsplit(re.search(r"https://nurture\.test/confirm/\S+", text)[0]).path


def subjects(smtp_server: SmtpServer, address: str) -> list[str]:
    return [r.message["Subject"] for r in smtp_server.handler.to(address)]


def write_form(project: Path, name: str, text: str) -> None:
    (project / "forms" / f"{name}.yaml").write_text(textwrap.dedent(text).lstrip())


# --- double opt-in, end to end -------------------------------------------------------------------------------

def test_it_sends_a_confirmation_and_only_after_the_click_the_welcome_with_the_lead_magnet(
        rt, client, clock, smtp_server) -> None:
    response = post(client, rt, clock, email="Ann@Example.com", first_name="Ann", interest="Mugs")
    assert response.status_code == 303
    assert response.headers["Location"] == f"https://nurture.test/forms/{FORM}/thanks"
    [contact] = contacts(rt)
    assert (contact.email, contact.email_status, contact.pending_form) == ("ann@example.com", "pending", FORM)
    assert contact.fields == {"interest": "Mugs"} and contact.tags == ["guide"]

    send_due(rt)
    assert subjects(smtp_server, "ann@example.com") == ["Please confirm your email for Juniper Pottery Studio"]
    assert enrollments(rt) == [("confirm-email", "completed")]  # nothing else until the click
    clock.advance(days=10)
    send_due(rt)
    assert len(smtp_server.received) == 1

    path = confirm_path(smtp_server, "ann@example.com")
    page = client.get(path)
    assert page.status_code == 200 and "Confirm my email" in page.get_data(as_text=True)
    assert contacts(rt)[0].email_status == "pending"  # a GET (a link scanner) changes nothing

    done = client.post(path, headers={"User-Agent": UA})
    assert done.status_code == 200 and "You're in!" in done.get_data(as_text=True)
    assert "https://juniperpottery.example/guides/beginners-guide.pdf" in done.get_data(as_text=True)
    assert contacts(rt)[0].email_status == "subscribed" and contacts(rt)[0].pending_form is None
    send_due(rt)
    welcome = smtp_server.handler.to("ann@example.com")[-1].message
    assert welcome["Subject"] == "Welcome to Juniper Pottery Studio, Ann"
    text = welcome.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "As promised, here is the beginner's guide (PDF):\nhttps://juniperpottery.example/guides/" in text
    assert ("lead-nurture", "active") in enrollments(rt)


def test_no_marketing_email_reaches_a_pending_contact_even_when_enrolled_elsewhere(
        rt, client, clock, smtp_server) -> None:
    post(client, rt, clock, email="ann@example.com")
    add_contact(rt, "ann@example.com", "customer")  # e.g. through the API, before the click
    send_due(rt)
    assert subjects(smtp_server, "ann@example.com") == ["Please confirm your email for Juniper Pottery Studio"]
    skipped = [d for d in deliveries(rt) if d.sequence_id == "customer"]
    assert [d.status for d in skipped] == ["skipped"] and skipped[0].error.startswith("contact is pending")


def test_confirming_twice_changes_nothing_the_second_time(rt, client, clock, smtp_server) -> None:
    post(client, rt, clock, email="ann@example.com")
    send_due(rt)
    path = confirm_path(smtp_server, "ann@example.com")
    client.post(path)
    again = client.post(path)
    assert again.status_code == 200 and "Already confirmed" in again.get_data(as_text=True)
    assert "Already confirmed" in client.get(path).get_data(as_text=True)
    assert [c.action for c in consents(rt)] == ["opt-in", "confirm"]
    assert enrollments(rt).count(("lead-nurture", "active")) == 1


def test_a_forged_confirmation_link_changes_nothing(rt, client, clock, smtp_server) -> None:
    post(client, rt, clock, email="ann@example.com")
    send_due(rt)
    path = confirm_path(smtp_server, "ann@example.com")
    head, _, signature = path.rpartition(".")
    altered = f"{head}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"  # not the last character: its
    for forged in (path[:-3], altered, "/confirm/Mg.nonsense"):                # low bits are base64 padding
        response = client.post(forged)
        assert response.status_code == 400 and "This link has expired" in response.get_data(as_text=True)
    assert contacts(rt)[0].email_status == "pending"


# --- re-submission -------------------------------------------------------------------------------------------

def test_submitting_again_never_creates_a_second_contact(rt, client, clock, smtp_server) -> None:
    post(client, rt, clock, email="Ann@Example.com", first_name="Ann")
    post(client, rt, clock, email="  ann@EXAMPLE.com ", first_name="Someone Else", phone="(415) 555-2671")
    client.post(f"/forms/{FORM}", json={"email": "ANN@example.com", "_started": started(rt, clock)})
    [contact] = contacts(rt)
    # A form is not signed in: the second sender may fill gaps but not rename the contact.
    assert (contact.first_name, contact.phone) == ("Ann", "+14155552671")
    assert [c.action for c in consents(rt)] == ["opt-in", "opt-in", "opt-in"]
    send_due(rt)
    assert len(smtp_server.handler.to("ann@example.com")) == 1  # one confirmation on its way is enough


def test_asking_again_later_sends_another_confirmation_but_not_every_minute(rt, client, clock, smtp_server) -> None:
    post(client, rt, clock, email="ann@example.com")
    send_due(rt)
    clock.advance(minutes=15)
    post(client, rt, clock, email="ann@example.com")
    send_due(rt)
    post(client, rt, clock, email="ann@example.com")
    send_due(rt)
    assert len(smtp_server.handler.to("ann@example.com")) == 2
    assert [e for e in enrollments(rt) if e[0] == "confirm-email"] == [("confirm-email", "completed")] * 2
    assert len(contacts(rt)) == 1


def test_a_contact_who_unsubscribed_may_opt_in_again_with_fresh_consent(rt, client, clock, smtp_server) -> None:
    add_contact(rt, "ann@example.com", "customer")
    send_due(rt)
    unsubscribe = re.match(r"<https://nurture\.test([^>]+)>", smtp_server.received[0].message["List-Unsubscribe"])[1]
    client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    assert contacts(rt)[0].email_status == "unsubscribed"

    post(client, rt, clock, email="ann@example.com")
    assert contacts(rt)[0].email_status == "pending"
    send_due(rt)
    client.post(confirm_path(smtp_server, "ann@example.com"))
    assert contacts(rt)[0].email_status == "subscribed"
    assert [(c.action, c.method, c.form_id) for c in consents(rt)] == [
        ("opt-out", "one-click", None), ("opt-in", "form", FORM), ("confirm", "form", FORM)]


# --- bad input -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"email": "ann@"}, "email", "There must be something after the @-sign."),
    ({"email": "ann@@example.com"}, "email", "The part after the @-sign contains invalid characters: '@'."),
    ({"email": "ann example.com"}, "email", "An email address must have an @-sign."),
    ({"email": ""}, "email", "This field is required."),
    ({}, "email", "This field is required."),
    ({"email": "ann@example.com", "phone": "12"}, "phone", "Please enter a valid phone number, like +1 415 555 2671."),
    ({"email": "ann@example.com", "first_name": "Ann\r\nBcc: x@evil.test"}, "first_name",
     "Please keep this on one line."),
    ({"email": "ann@example.com\r\nBcc: x@evil.test"}, "email", "Please keep this on one line."),
    ({"email": "ann@example.com", "first_name": "A" * 101}, "first_name", "Please use at most 100 characters."),
    ({"email": "ann@example.com", "interest": "Teapots"}, "interest",
     "Please choose one of: Mugs, Bowls, Plates, Not sure yet."),
    ({"email": "ann@example.com", "is_admin": "1"}, "_form",
     "This form has no field 'is_admin'. Please use the form as it is."),
], ids=["no-domain", "two-at", "no-at", "empty", "missing", "phone", "crlf-name", "crlf-email", "long-name",
        "bad-choice", "unknown-field"])
def test_bad_input_gets_a_clear_message_on_the_form_and_saves_nothing(rt, client, clock, fields, field,
                                                                     message) -> None:
    page = post(client, rt, clock, **fields)
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    assert str(message).replace("'", "&#39;") in html
    if "email" in fields and "\n" not in fields["email"]:  # what the person typed is kept (escaped)
        assert f'value="{fields["email"]}"' in html.replace("&#39;", "'")
    answer = post(client, rt, clock, headers=JSON, **fields)
    assert answer.status_code == 400 and answer.get_json()["errors"][field] == message
    assert nothing_saved(rt)


def test_every_bad_field_is_reported_at_once(rt, client, clock) -> None:
    answer = post(client, rt, clock, headers=JSON, email="nope", phone="12", interest="Teapots")
    assert set(answer.get_json()["errors"]) == {"email", "phone", "interest"}


def test_a_body_that_is_not_a_json_object_gets_a_message(rt, client, clock) -> None:
    for body in ("[1, 2]", "{not json"):
        answer = client.post(f"/forms/{FORM}", data=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 400 and "JSON object" in answer.get_json()["errors"]["_form"]
    answer = client.post(f"/forms/{FORM}", json={"email": ["a@example.com"], "_started": started(rt, clock)})
    assert answer.get_json()["errors"]["email"] == "Please give a single value."
    assert nothing_saved(rt)


def test_an_oversized_body_gets_413_with_a_message(rt, client, clock) -> None:
    big = {"email": "ann@example.com", "first_name": "A" * 70_000, "_started": started(rt, clock)}
    page = client.post(f"/forms/{FORM}", data=big)
    assert page.status_code == 413 and "far more than this form takes" in page.get_data(as_text=True)
    answer = client.post(f"/forms/{FORM}", data=big, headers=JSON)
    assert answer.status_code == 413 and "far more than this form takes" in answer.get_json()["message"]
    assert nothing_saved(rt)


def test_html_in_a_name_is_stored_as_text_and_escaped_wherever_shown_or_mailed(rt, client, clock,
                                                                                smtp_server) -> None:
    name = '<script>alert("x")</script><b>Ann</b>'
    page = post(client, rt, clock, email="ann@", first_name=name)
    assert "<script>alert" not in page.get_data(as_text=True)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.get_data(as_text=True)
    post(client, rt, clock, email="ann@example.com", first_name=name)
    assert contacts(rt)[0].first_name == name  # stored as the person typed it
    send_due(rt)
    message = smtp_server.handler.to("ann@example.com")[0].message
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html and "<b>Ann</b>" not in html and "&lt;script&gt;" in html
    assert name in message.get_body(("plain",)).get_content()  # plain text is shown as text
    api = client.get("/api/contacts/ann@example.com", headers={"Authorization": "Bearer test-api-key-0123456789"})
    assert api.get_json()["first_name"] == name and api.mimetype == "application/json"


# --- bots -----------------------------------------------------------------------------------------------------

def test_a_bot_that_fills_the_honeypot_gets_the_usual_answer_and_no_contact(rt, client, clock) -> None:
    page = post(client, rt, clock, email="bot@example.com", website="http://spam.example")
    assert page.status_code == 303 and page.headers["Location"].endswith(f"/forms/{FORM}/thanks")
    answer = post(client, rt, clock, headers=JSON, email="bot@example.com", website="x")
    real = post(client, rt, clock, headers=JSON, email="ann@example.com")
    assert answer.status_code == real.status_code == 200 and answer.get_json() == real.get_json()
    assert [c.email for c in contacts(rt)] == ["ann@example.com"]


def test_a_submission_faster_than_the_minimum_fill_time_is_turned_away_silently(rt, client, clock) -> None:
    token = rt.signer.form_token(FORM, clock())
    clock.advance(seconds=2)
    fast = client.post(f"/forms/{FORM}", data={"email": "bot@example.com", "_started": token}, headers=JSON)
    assert fast.status_code == 200 and fast.get_json()["ok"] is True
    assert nothing_saved(rt)
    clock.advance(seconds=1)  # FORM_MIN_FILL_SECONDS (3) after the form was handed out: a person
    slow = client.post(f"/forms/{FORM}", data={"email": "ann@example.com", "_started": token}, headers=JSON)
    assert slow.get_json() == fast.get_json()
    assert [c.email for c in contacts(rt)] == ["ann@example.com"]


def test_a_person_who_fixes_a_typo_at_once_is_not_taken_for_a_bot(rt, client, clock) -> None:
    token = started(rt, clock)
    typo = client.post(f"/forms/{FORM}", data={"email": "ann@exmple", "_started": token}, headers=JSON)
    assert typo.status_code == 400 and typo.get_json()["started"] == token  # not a fresh one
    page = client.post(f"/forms/{FORM}", data={"email": "ann@exmple", "_started": token})
    assert f'name="_started" value="{token}"' in page.get_data(as_text=True)
    fixed = client.post(f"/forms/{FORM}", data={"email": "ann@example.com", "_started": token}, headers=JSON)
    assert fixed.get_json()["ok"] is True and [c.email for c in contacts(rt)] == ["ann@example.com"]


@pytest.mark.parametrize("token", [None, "", "garbage", "forged"])
def test_a_missing_or_altered_timestamp_shows_the_form_again_with_a_fresh_one(rt, client, clock, token) -> None:
    if token == "forged":
        token = rt.signer.form_token("another-form", clock())
    data = {"email": "ann@example.com"} | ({"_started": token} if token is not None else {})
    answer = client.post(f"/forms/{FORM}", data=data, headers=JSON)
    assert answer.status_code == 400
    assert answer.get_json()["errors"]["_form"] == "This form had expired. Please check your details and send it again."
    assert rt.signer.form_issued(answer.get_json()["started"], FORM) == clock()
    assert nothing_saved(rt)


# --- rate limit and CORS --------------------------------------------------------------------------------------

def test_the_rate_limit_holds_per_ip_in_redis_and_only_on_submissions(make_runtime, database_url, project_with_forms,
                                                                       redis_url, clock) -> None:
    rt = make_runtime(database_url, REDIS_URL=redis_url, FORM_RATE_LIMIT="3 per minute")
    client = create_app(rt).test_client()
    for n in range(3):
        assert post(client, rt, clock, headers=JSON, email=f"p{n}@example.com").status_code == 200
    blocked = post(client, rt, clock, headers=JSON, email="p4@example.com")
    assert blocked.status_code == 429 and "Please wait a minute" in blocked.get_json()["message"]
    page = post(client, rt, clock, email="p5@example.com")
    assert page.status_code == 429 and "Too many sign-ups" in page.get_data(as_text=True)
    assert client.get(f"/forms/{FORM}").status_code == 200 and client.get("/healthz").status_code == 200
    assert len(contacts(rt)) == 3
    assert any(b"nurture-forms" in key for key in Redis.from_url(redis_url).keys("*"))
    fresh_client = create_app(rt).test_client()  # the count lives in Redis, not in one app's memory
    assert post(fresh_client, rt, clock, headers=JSON, email="p7@example.com").status_code == 429
    another = fresh_client.post(f"/forms/{FORM}", headers=JSON, environ_base={"REMOTE_ADDR": "10.0.0.7"},
                                data={"email": "p8@example.com", "_started": started(rt, clock)})
    assert another.status_code == 200  # per IP


def test_past_the_limit_the_answer_is_the_429_whatever_else_is_wrong(make_runtime, database_url,
                                                                    project_with_forms, redis_url, clock) -> None:
    """The count is sent as the request starts and read before anything is written or answered
    (web/submit_limit.py): a bad address, a missing form or a bot's post over the limit is still a 429."""
    rt = make_runtime(database_url, REDIS_URL=redis_url, FORM_RATE_LIMIT="1 per minute")
    client = create_app(rt).test_client()
    assert post(client, rt, clock, headers=JSON, email="p0@example.com").status_code == 200
    assert post(client, rt, clock, headers=JSON, email="not an address").status_code == 429
    assert client.post("/forms/no-such-form", headers=JSON, data={"email": "p1@example.com"}).status_code == 429
    assert post(client, rt, clock, headers=JSON, email="p2@example.com", website="http://spam").status_code == 429
    assert [c.email for c in contacts(rt)] == ["p0@example.com"]


def test_a_count_never_read_is_read_before_the_next_goes_out(redis_url) -> None:
    """A request that failed between sending its count and reading it leaves the answer on the thread's
    connection: the next count must not take it for its own."""
    limit = SubmitLimit("2 per minute", Redis.from_url(redis_url), "gate")
    limit.start("10.0.0.1")  # never read
    assert limit.start("10.0.0.2").verdict().allowed
    assert limit.check("10.0.0.1").allowed and not limit.check("10.0.0.1").allowed  # its third
    assert limit.check("10.0.0.2").allowed


def test_a_count_whose_answer_is_lost_is_counted_in_memory_and_the_next_connects_again(redis_url) -> None:
    """Redis went away between the count and its answer: that sign-up is counted in this process instead
    (never failed), and the next one reaches Redis on a new connection."""
    limit = SubmitLimit("1 per minute", Redis.from_url(redis_url), "gate")
    counting = limit.start("10.0.0.3")
    assert counting.connection is not None
    counting.connection.disconnect()  # the answer can no longer be read
    assert limit.check("10.0.0.9").allowed  # (before the lost count is settled, the next one goes out)
    assert counting.verdict() == Verdict(allowed=True, tick_waiting=False)
    assert not limit.check("10.0.0.3").allowed  # Redis had the first count (it went out): one too many
    assert Redis.from_url(redis_url).keys("*10.0.0.3*")


def test_a_sign_up_never_fails_because_redis_is_down(make_runtime, database_url, project_with_forms,
                                                   clock) -> None:
    rt = make_runtime(database_url, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    client = create_app(rt).test_client()
    assert post(client, rt, clock, headers=JSON, email="ann@example.com").get_json()["ok"] is True
    assert [c.email_status for c in contacts(rt)] == ["pending"]


def test_a_sign_up_queues_a_tick_so_the_confirmation_goes_out_at_once(make_runtime, database_url,
                                                                     project_with_forms, redis_url, clock) -> None:
    rt = make_runtime(database_url, REDIS_URL=redis_url)
    post(create_app(rt).test_client(), rt, clock, email="ann@example.com")
    assert Queue(rt.settings.queue_name, connection=Redis.from_url(redis_url)).job_ids == ["signup-tick"]


def test_a_burst_of_sign_ups_queues_one_tick_not_one_each(make_runtime, database_url, project_with_forms,
                                                          redis_url, clock) -> None:
    rt = make_runtime(database_url, REDIS_URL=redis_url)
    client = create_app(rt).test_client()
    for n in range(3):
        post(client, rt, clock, email=f"p{n}@example.com")
    assert Queue(rt.settings.queue_name, connection=Redis.from_url(redis_url)).job_ids == ["signup-tick"]


def test_a_sign_up_after_the_tick_started_queues_the_next_one(make_runtime, database_url, project_with_forms,
                                                              redis_url, clock) -> None:
    rt = make_runtime(database_url, REDIS_URL=redis_url)
    client, redis = create_app(rt).test_client(), Redis.from_url(redis_url)
    queue = Queue(rt.settings.queue_name, connection=redis)
    post(client, rt, clock, email="ann@example.com")
    use_runtime(rt)
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        SimpleWorker([queue], connection=redis).work(burst=True)  # the tick, then the batch it queued
    finally:
        use_runtime(None)
        for number, handler in handlers.items():  # RQ's stop handlers must not outlive its work()
            signal.signal(number, handler)
    assert queue.job_ids == []
    post(client, rt, clock, email="bob@example.com")
    assert queue.job_ids == ["signup-tick"]


def test_cors_answers_only_the_forms_allowed_origins(rt, client, clock) -> None:
    allowed, other = "https://www.juniperpottery.example", "https://evil.example"
    preflight = client.options(f"/forms/{FORM}", headers={"Origin": allowed,
                                                         "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == allowed
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    refused = client.options(f"/forms/{FORM}", headers={"Origin": other, "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in refused.headers

    ok = post(client, rt, clock, headers={**JSON, "Origin": allowed}, email="ann@example.com")
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == allowed
    assert "Origin" in ok.headers["Vary"]
    bad = post(client, rt, clock, headers={**JSON, "Origin": other}, email="eve@example.com")
    assert bad.status_code == 403 and "Access-Control-Allow-Origin" not in bad.headers
    own = post(client, rt, clock, headers={"Origin": "https://nurture.test"}, email="bob@example.com")
    assert own.status_code == 303  # the hosted page posts from nurture's own origin
    assert [c.email for c in contacts(rt)] == ["ann@example.com", "bob@example.com"]


def test_the_hosted_page_posts_back_to_the_address_it_was_opened_at(rt, client, clock) -> None:
    # BASE_URL is https://nurture.test; the page is opened at http://127.0.0.1:8000 (the same server by
    # another name): the browser posts to the page's own origin, which is this request's own.
    page = client.get(f"/forms/{FORM}", base_url="http://127.0.0.1:8000")
    assert f'action="/forms/{FORM}"' in page.get_data(as_text=True)
    data = {"_started": started(rt, clock), "website": "", "email": "ann@example.com"}
    posted = client.post(f"/forms/{FORM}", data=data, base_url="http://127.0.0.1:8000",
                         headers={"User-Agent": UA, "Origin": "http://127.0.0.1:8000"})
    assert posted.status_code == 303 and [c.email for c in contacts(rt)] == ["ann@example.com"]


# --- attribution ----------------------------------------------------------------------------------------------

def test_attribution_from_the_query_and_hidden_fields_is_kept_on_the_contact_and_its_first_event(
        rt, client, clock) -> None:
    post(client, rt, clock, query="?utm_source=newsletter&utm_medium=email&ref=ANN42&gclid=abc",
         email="ann@example.com", utm_campaign="spring-classes", utm_source="instagram", source="homepage",
         landing_page="https://juniperpottery.example/learn?utm_source=instagram", utm_content="line\r\nbreak")
    expected = {"source": "homepage", "utm_source": "instagram", "utm_medium": "email",
                "utm_campaign": "spring-classes", "utm_content": "line break", "ref": "ANN42", "gclid": "abc",
                "landing_page": "https://juniperpottery.example/learn?utm_source=instagram", "form": FORM}
    [contact] = contacts(rt)
    assert contact.attribution == expected and contact.source == "homepage"
    first = events(rt)[0]
    assert first.type == "contact.created" and first.data["attribution"] == expected

    post(client, rt, clock, query="?utm_source=twitter", email="ann@example.com")
    assert contacts(rt)[0].attribution == expected  # the first sign-up's, kept
    assert events(rt, "signup.submitted")[-1].data["attribution"] == {"utm_source": "twitter"}


def test_the_hosted_page_passes_its_query_and_referrer_on_as_hidden_fields(rt, client) -> None:
    page = client.get(f"/forms/{FORM}?utm_source=fb&ref=ANN42&evil=%22%3E",
                      headers={"Referer": "https://juniperpottery.example/blog"}).get_data(as_text=True)
    assert '<input type="hidden" name="utm_source" value="fb">' in page
    assert '<input type="hidden" name="ref" value="ANN42">' in page
    assert '<input type="hidden" name="referrer" value="https://juniperpottery.example/blog">' in page
    assert "evil" not in page


# --- consent records ------------------------------------------------------------------------------------------

def test_consent_records_hold_when_which_form_the_exact_text_ip_and_user_agent(rt, client, clock,
                                                                               smtp_server) -> None:
    post(client, rt, clock, email="ann@example.com")
    submitted_at = clock()
    send_due(rt)
    clock.advance(hours=2)
    client.post(confirm_path(smtp_server, "ann@example.com"), headers={"User-Agent": "Phone/2.0"},
                environ_base={"REMOTE_ADDR": "203.0.113.9"})
    opt_in, confirmed = consents(rt)
    digest = hashlib.sha256(CONSENT_TEXT.encode()).hexdigest()
    assert (opt_in.created_at, opt_in.channel, opt_in.action, opt_in.method, opt_in.form_id, opt_in.consent_text,
            opt_in.consent_hash, opt_in.ip, opt_in.user_agent) == (
        submitted_at, "email", "opt-in", "form", FORM, CONSENT_TEXT, digest, "127.0.0.1", UA)
    assert (confirmed.created_at, confirmed.action, confirmed.form_id, confirmed.consent_hash, confirmed.ip,
            confirmed.user_agent) == (clock(), "confirm", FORM, digest, "203.0.113.9", "Phone/2.0")


def test_the_consent_text_recorded_is_the_one_shown_even_after_the_form_changes(rt, client, clock, smtp_server,
                                                                                 project_with_forms) -> None:
    post(client, rt, clock, email="ann@example.com")
    send_due(rt)
    path = project_with_forms / "forms" / f"{FORM}.yaml"
    path.write_text(path.read_text().replace("about once a week", "every day"))
    client.post(confirm_path(smtp_server, "ann@example.com"))
    assert {c.consent_text for c in consents(rt)} == {CONSENT_TEXT}


def test_the_api_json_and_the_cli_show_a_contacts_consent(rt, client, clock, smtp_server, project_with_forms,
                                                          database_url, monkeypatch) -> None:
    post(client, rt, clock, email="ann@example.com", query="?utm_source=fb")
    send_due(rt)
    client.post(confirm_path(smtp_server, "ann@example.com"), headers={"User-Agent": "Phone/2.0"})
    body = client.get("/api/contacts/ann@example.com",
                      headers={"Authorization": "Bearer test-api-key-0123456789"}).get_json()
    assert [(c["action"], c["form"], c["consent_text"], c["ip"], c["user_agent"]) for c in body["consent"]] == [
        ("opt-in", FORM, CONSENT_TEXT, "127.0.0.1", UA), ("confirm", FORM, CONSENT_TEXT, "127.0.0.1", "Phone/2.0")]
    assert body["consent"][0]["consent_sha256"] == hashlib.sha256(CONSENT_TEXT.encode()).hexdigest()
    assert body["attribution"]["utm_source"] == "fb" and body["email_status"] == "subscribed"

    for name, value in worker_env(project_with_forms, database_url).items():
        monkeypatch.setenv(name, value)
    from nurture.cli import main

    output = CliRunner().invoke(main, ["contacts", "consent", "Ann@Example.com"]).output
    assert "ann@example.com  email=subscribed  sms=none" in output
    assert f"email opt-in (all) via form {FORM}\n" in output and f"user agent {UA}" in output
    assert f"text sha256 {hashlib.sha256(CONSENT_TEXT.encode()).hexdigest()}: {CONSENT_TEXT!r}" in output
    as_json = json.loads(CliRunner().invoke(main, ["contacts", "consent", "ann@example.com", "--json"]).output)
    assert as_json["consent"] == body["consent"]
    missing = CliRunner().invoke(main, ["contacts", "consent", "nobody@example.com"])
    assert missing.exit_code == 1 and "no contact" in missing.output


# --- expiry ---------------------------------------------------------------------------------------------------

def test_an_unconfirmed_sign_up_expires_and_its_link_stops_working(rt, client, clock, smtp_server) -> None:
    post(client, rt, clock, email="ann@example.com")
    send_due(rt)
    path = confirm_path(smtp_server, "ann@example.com")
    clock.advance(hours=71)
    assert signup.expire_pending(rt) == 0
    clock.advance(hours=2)
    assert signup.expire_pending(rt) == 1 and signup.expire_pending(rt) == 0
    assert contacts(rt)[0].email_status == "expired" and contacts(rt)[0].pending_since is None
    assert client.get(path).status_code == 400
    late = client.post(path)
    assert late.status_code == 400 and "This link has expired" in late.get_data(as_text=True)
    assert ("lead-nurture", "active") not in enrollments(rt)
    assert events(rt, "signup.expired")[0].data == {"form": FORM}

    post(client, rt, clock, email="ann@example.com")  # signing up again starts over
    assert contacts(rt)[0].email_status == "pending" and len(contacts(rt)) == 1


def test_expiry_leaves_a_subscribed_contacts_status_alone(rt, client, clock) -> None:
    add_contact(rt, "ann@example.com")
    post(client, rt, clock, email="ann@example.com")  # someone signs up a known address: still subscribed
    assert contacts(rt)[0].email_status == "subscribed" and contacts(rt)[0].pending_form == FORM
    clock.advance(hours=80)
    assert signup.expire_pending(rt) == 1
    assert contacts(rt)[0].email_status == "subscribed" and contacts(rt)[0].pending_form is None


def test_the_tick_lets_unconfirmed_sign_ups_lapse(rt, client, clock, redis_url, monkeypatch) -> None:
    from nurture import jobs
    from nurture.runtime import use_runtime

    post(client, rt, clock, email="ann@example.com")
    clock.advance(hours=73)
    monkeypatch.setattr(rt, "redis", Redis.from_url(redis_url))
    use_runtime(rt)
    try:
        jobs.tick()
    finally:
        use_runtime(None)
    assert contacts(rt)[0].email_status == "expired"


# --- other forms, other answers -------------------------------------------------------------------------------

SINGLE_OPT_IN = """
    id: studio-news
    name: Studio news
    sequence: lead-nurture
    double_opt_in: false
    consent_text: Yes, send me studio news.
    consent_checkbox: true
    fields:
      - name: email
      - name: first_name
        required: true
      - name: kiln_visits
        type: number
      - name: birthday
        type: date
      - name: beginner
        type: checkbox
    lead_magnet:
      title: the glaze chart
      file: files/glaze-chart.txt
"""


def test_a_single_opt_in_form_subscribes_and_enrolls_at_once_with_its_lead_magnet_file(
        rt, client, clock, smtp_server, project_with_forms) -> None:
    write_form(project_with_forms, "studio-news", SINGLE_OPT_IN)
    (project_with_forms / "forms" / "files").mkdir()
    (project_with_forms / "forms" / "files" / "glaze-chart.txt").write_text("celadon, tenmoku, shino\n")
    missing = post(client, rt, clock, "studio-news", headers=JSON, email="ann@example.com", kiln_visits="x",
                   birthday="31/05/2026")
    assert missing.get_json()["errors"] == {
        "first_name": "This field is required.", "kiln_visits": "Please enter a number.",
        "birthday": "Please enter a date like 2026-05-31.",
        "consent": "Please tick the box to agree, so we may email you."}
    ok = post(client, rt, clock, "studio-news", headers=JSON, email="ann@example.com", first_name="Ann",
              kiln_visits="3", birthday="2026-05-31", beginner="on", consent="on")
    assert ok.get_json() == {"ok": True, "status": "subscribed", "message": "Thank you! You're signed up."}
    [contact] = contacts(rt)
    assert contact.email_status == "subscribed"
    assert contact.fields["kiln_visits"] == 3 and contact.fields["birthday"] == "2026-05-31"
    assert contact.fields["beginner"] is True
    send_due(rt)
    text = smtp_server.handler.to("ann@example.com")[0].message.get_body(("plain",)).get_content()
    link = re.search(r"https://nurture\.test(/forms/studio-news/download/\S+)", text)[1]
    download = client.get(link)
    assert download.status_code == 200 and download.data == b"celadon, tenmoku, shino\n"
    assert client.get(link[:-2] + "xx").status_code == 400


def test_a_form_whose_sequence_is_missing_refuses_sign_ups_and_saves_nothing(rt, client, clock,
                                                                               project_with_forms) -> None:
    write_form(project_with_forms, "orphan", """
        id: orphan
        name: Orphan
        sequence: no-such-sequence
        double_opt_in: false
        consent_text: ok
        fields:
          - name: email
    """)
    answer = post(client, rt, clock, "orphan", headers=JSON, email="ann@example.com")
    assert answer.status_code == 503 and "try again" in answer.get_json()["message"]
    assert nothing_saved(rt)


def test_an_unknown_form_is_a_404_with_a_message(client) -> None:
    assert client.get("/forms/nope").status_code == 404
    answer = client.post("/forms/nope", headers=JSON, data={"email": "a@example.com"})
    assert answer.status_code == 404 and answer.get_json()["message"].startswith("There is no such form")


def test_json_requests_get_json_answers(rt, client, clock) -> None:
    definition = client.get(f"/forms/{FORM}", headers=JSON).get_json()
    assert definition["action"] == f"https://nurture.test/forms/{FORM}"
    assert [f["name"] for f in definition["fields"]] == ["email", "first_name", "phone", "interest"]
    assert rt.signer.form_issued(definition["started"], FORM) == clock()
    clock.advance(seconds=10)
    answer = client.post(f"/forms/{FORM}", json={"email": "ann@example.com", "_started": definition["started"]})
    assert answer.get_json() == {
        "ok": True, "status": "pending",
        "message": "Almost done: we've sent you an email. Click the link in it to confirm your address."}


def test_the_script_embed_carries_the_form_and_a_fresh_timestamp_and_is_never_cached(rt, client, clock) -> None:
    script = client.get(f"/forms/{FORM}/embed.js")
    assert script.mimetype == "text/javascript" and script.headers["Cache-Control"] == "no-store"
    body = script.get_data(as_text=True)
    assert "function nurtureEmbed(config, script)" in body and '"action": "https://nurture.test/forms/' in body
    token = re.search(r'"started": "([^"]+)"', body)[1]
    assert rt.signer.form_issued(token, FORM) == clock()
    assert "<" not in body.split("nurtureEmbed(", 2)[2]  # the config cannot close a tag or open one


def test_forms_snippet_prints_the_three_ways_to_embed(project_with_forms, database_url, monkeypatch) -> None:
    for name, value in worker_env(project_with_forms, database_url).items():
        monkeypatch.setenv(name, value)
    from nurture.cli import main

    output = CliRunner().invoke(main, ["forms", "snippet", FORM]).output
    assert f'<form class="nf-form" method="post" action="https://nurture.test/forms/{FORM}"' in output
    assert 'name="website" tabindex="-1"' in output and 'name="_started" value="' in output
    assert f'<script src="https://nurture.test/forms/{FORM}/embed.js" async></script>' in output
    assert f"\nhttps://nurture.test/forms/{FORM}\n" in output
    unknown = CliRunner().invoke(main, ["forms", "snippet", "nope"])
    assert unknown.exit_code == 1 and f"known: {FORM}" in unknown.output
    assert f"{FORM}\tBeginner's guide\t-> lead-nurture (double opt-in)" in CliRunner().invoke(
        main, ["forms", "list"]).output


# --- the form's own SMS opt-in -------------------------------------------------------------------------------

SMS_WORDS = "Also text me class reminders"


def _the_contact(rt) -> Contact:  # noqa: ANN001
    with Session(rt.db) as session:
        return session.exec(select(Contact)).one()


def _consent_rows(rt) -> list[tuple[str, str, str | None]]:  # noqa: ANN001
    with Session(rt.db) as session:
        rows = session.exec(select(Consent).order_by(Consent.id)).all()
        return [(c.channel, c.action, c.consent_text) for c in rows]


def test_the_form_shows_an_unticked_sms_box_with_its_own_words(client) -> None:
    page = client.get("/forms/beginners-guide").get_data(as_text=True)
    assert re.search(r'<input type="checkbox" name="sms_consent" value="on">\s*' + SMS_WORDS, page)


def test_a_ticked_box_with_a_phone_records_sms_consent_with_its_words(client, rt, clock) -> None:
    response = post(client, rt, clock, email="ann@example.com", phone="(415) 555-2671", sms_consent="on")
    assert response.status_code == 303
    assert _the_contact(rt).sms_status == "subscribed" and _the_contact(rt).phone == "+14155552671"
    [(_, _, email_words), (channel, action, words)] = _consent_rows(rt)
    assert (channel, action) == ("sms", "opt-in") and words.startswith(SMS_WORDS) and words != email_words


def test_no_tick_means_no_texts_even_with_a_phone(client, rt, clock) -> None:
    post(client, rt, clock, email="ann@example.com", phone="(415) 555-2671")
    assert _the_contact(rt).sms_status == "none"
    assert [c for c, _, _ in _consent_rows(rt)] == ["email"]


def test_a_ticked_box_without_a_phone_asks_for_one_and_saves_nothing(client, rt, clock) -> None:
    response = post(client, rt, clock, headers=JSON, email="ann@example.com", sms_consent="on")
    assert response.status_code == 400
    assert "mobile number" in response.json["errors"]["phone"]
    with Session(rt.db) as session:
        assert session.exec(select(Contact)).all() == []
