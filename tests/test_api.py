"""POST /api/contacts and GET /api/contacts/<email>: auth, validation, idempotence."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session, func, select

from nurture.store.models import Contact, Enrollment
from nurture.web import create_app

AUTH = {"Authorization": "Bearer test-api-key-0123456789"}


@pytest.fixture
def client(make_runtime, database_url) -> FlaskClient:  # noqa: ANN001
    rt = make_runtime(database_url)
    app = create_app(rt)
    app.config["TESTING"] = True
    client = app.test_client()
    client.rt = rt  # type: ignore[attr-defined]
    return client


def count(client: FlaskClient, model: type) -> int:
    with Session(client.rt.db) as session:  # type: ignore[attr-defined]
        return session.exec(select(func.count()).select_from(model)).one()


def test_it_refuses_a_request_without_the_api_key(client) -> None:
    response = client.post("/api/contacts", json={"email": "ann@example.com"})
    assert response.status_code == 401
    assert "API key" in response.json["error"]
    assert client.post("/api/contacts", json={"email": "a@example.com"},
                       headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert count(client, Contact) == 0


def test_it_creates_and_enrolls_a_contact(client) -> None:
    response = client.post("/api/contacts", headers=AUTH, json={
        "email": " Ann.Lee@Example.COM ", "first_name": "Ann", "last_name": "Lee", "timezone": "Europe/Paris",
        "fields": {"plan": "wheel"}, "tags": ["vip"], "sequence": "lead-nurture"})
    assert response.status_code == 201, response.json
    body = response.json
    assert body["email"] == "ann.lee@example.com"
    assert body["fields"] == {"plan": "wheel"} and body["tags"] == ["vip"]
    assert body["enrollments"][0]["sequence"] == "lead-nurture"
    assert body["enrollments"][0]["next_step"] == "edu-1"
    got = client.get("/api/contacts/ann.lee@example.com", headers=AUTH)
    assert got.status_code == 200 and got.json["id"] == body["id"]


def test_posting_the_same_contact_twice_makes_one_contact_and_one_enrollment(client) -> None:
    for email in ("ann@example.com", "ANN@example.com"):
        response = client.post("/api/contacts", headers=AUTH, json={"email": email, "sequence": "customer"})
    assert response.status_code == 200
    assert count(client, Contact) == 1 and count(client, Enrollment) == 1


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"email": "not-an-email"}, "email", "@"),
    ({"email": ""}, "email", "required"),
    ({"first_name": "Ann"}, "email", "required"),
    ({"email": "a@example.com", "phone": "12"}, "phone", "phone"),
    ({"email": "a@example.com", "timezone": "Mars/Olympus"}, "timezone", "IANA"),
    ({"email": "a@example.com", "first_name": "Ann\r\nBcc: x@evil.test"}, "first_name", "one line"),
    ({"email": "a@example.com", "favourite": "blue"}, "favourite", "unknown field"),
    ({"email": "a@example.com", "sequence": "nope"}, "sequence", "unknown sequence"),
    ({"email": "a@example.com", "tags": "vip"}, "tags", "list"),
    ({"email": ["a@example.com"]}, "email", "string"),
])
def test_bad_input_gets_a_clear_400_and_saves_nothing(client, body, field, words) -> None:
    response = client.post("/api/contacts", headers=AUTH, json=body)
    assert response.status_code == 400
    assert response.json["field"] == field
    assert words.lower() in response.json["error"].lower()
    assert count(client, Contact) == 0 and count(client, Enrollment) == 0


def test_a_body_that_is_not_json_gets_a_400(client) -> None:
    response = client.post("/api/contacts", headers=AUTH, data="email=a@example.com",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and "JSON" in response.json["error"]


def test_an_oversized_body_gets_a_413(client) -> None:
    response = client.post("/api/contacts", headers=AUTH, json={"email": "a@example.com", "fields": {
        "notes": "x" * 100_000}})
    assert response.status_code == 413


def test_a_phone_is_stored_in_e164(client) -> None:
    response = client.post("/api/contacts", headers=AUTH, json={"email": "a@example.com", "phone": "(415) 555-2671"})
    assert response.json["phone"] == "+14155552671"


def test_a_name_with_markup_is_stored_as_text(client) -> None:
    """(It is escaped on the console's pages: tests/test_console_map.py.)"""
    client.post("/api/contacts", headers=AUTH, json={"email": "a@example.com", "first_name": "<script>x</script>"})
    got = client.get("/api/contacts/a@example.com", headers=AUTH)
    assert got.json["first_name"] == "<script>x</script>"


def test_the_health_check_reports_the_database(client) -> None:
    assert client.get("/healthz").json == {"status": "ok", "database": "ok"}
