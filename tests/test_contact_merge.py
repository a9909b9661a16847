"""One merge rule for a contact that signs up again, whichever door it comes through (form, API, CLI):
what is on record stays, empty fields are filled, tags accumulate, and the timeline says what happened."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session, select

from nurture.people.contacts import ContactInput, merge_into
from nurture.runtime import Runtime
from nurture.store.models import Contact, Event
from nurture.web import create_app
from tests.conftest import ROOT, FakeClock

AUTH = {"Authorization": "Bearer test-api-key-0123456789"}
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def rt(make_runtime, database_url, project: Path) -> Runtime:  # noqa: ANN001
    shutil.copytree(ROOT / "forms", project / "forms")
    return make_runtime(database_url, FORM_RATE_LIMIT="1000 per minute")


@pytest.fixture
def client(rt: Runtime) -> FlaskClient:
    return create_app(rt).test_client()


def contact(rt: Runtime, email: str) -> Contact:
    with Session(rt.db) as session:
        return session.exec(select(Contact).where(Contact.email == email)).one()


def merges(rt: Runtime) -> list[dict]:
    with Session(rt.db) as session:
        return [e.data for e in session.exec(select(Event).where(Event.type == "contact.merged").order_by(Event.id))]


def test_it_fills_what_is_empty_and_keeps_what_is_there() -> None:
    known = Contact(email="ann@example.com", first_name="Ann", fields={"plan": "wheel", "note": ""}, tags=["vip"],
                    created_at=NOW, updated_at=NOW)
    merge = merge_into(known, ContactInput(email="ann@example.com", first_name="Someone", last_name="Lee",
                                           fields={"plan": "hand", "note": "hi", "kiln": "yes"}, tags=("vip", "new")))
    assert (known.first_name, known.last_name) == ("Ann", "Lee")
    assert known.fields == {"plan": "wheel", "note": "hi", "kiln": "yes"} and known.tags == ["vip", "new"]
    assert merge.filled == {"last_name": "Lee", "fields": {"note": "hi", "kiln": "yes"}, "tags": ["new"]}
    assert merge.kept == ["first_name", "fields.plan"]


def test_the_api_does_not_overwrite_what_the_contact_has(client: FlaskClient, rt: Runtime) -> None:
    client.post("/api/contacts", headers=AUTH, json={"email": "ann@example.com", "first_name": "Ann",
                                                      "fields": {"plan": "wheel"}})
    again = client.post("/api/contacts", headers=AUTH, json={"email": "ANN@example.com", "first_name": "Someone",
                                                              "phone": "(415) 555-2671", "fields": {"plan": "hand"}})
    assert again.status_code == 200, again.json
    ann = contact(rt, "ann@example.com")
    assert (ann.first_name, ann.phone, ann.fields) == ("Ann", "+14155552671", {"plan": "wheel"})
    assert merges(rt) == [{"source": "api", "filled": {"phone": "+14155552671"}, "kept": ["first_name", "fields.plan"]}]


def test_a_form_merges_the_same_way_as_the_api(client: FlaskClient, rt: Runtime, clock: FakeClock) -> None:
    client.post("/api/contacts", headers=AUTH, json={"email": "ann@example.com", "first_name": "Ann",
                                                      "fields": {"interest": "Mugs"}})
    started = rt.signer.form_token("beginners-guide", clock())
    clock.advance(seconds=20)
    client.post("/forms/beginners-guide", data={"_started": started, "website": "", "email": "ann@example.com",
                                                "first_name": "Someone", "phone": "(415) 555-2671",
                                                "interest": "Bowls"})
    ann = contact(rt, "ann@example.com")
    assert (ann.first_name, ann.phone, ann.fields) == ("Ann", "+14155552671", {"interest": "Mugs"})
    assert ann.tags == ["guide"]
    [merge] = merges(rt)
    assert merge["source"] == "form:beginners-guide" and merge["kept"] == ["first_name", "fields.interest"]
    assert merge["filled"]["phone"] == "+14155552671" and merge["filled"]["tags"] == ["guide"]


def test_a_sign_up_that_brings_nothing_new_leaves_no_merge_on_the_timeline(client: FlaskClient, rt: Runtime) -> None:
    for _ in range(2):
        client.post("/api/contacts", headers=AUTH, json={"email": "ann@example.com", "first_name": "Ann"})
    assert merges(rt) == []
