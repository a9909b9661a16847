"""The contact list (people.directory over store.contact_list) and GET /api/contacts, on SQLite and
PostgreSQL: search by the start of an address or a name (anywhere inside them on PostgreSQL with
pg_trgm), filters, and cursor pages that walk the whole list once."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session

from nurture.people import directory, erasure, owner_actions
from nurture.runtime import Runtime
from nurture.store import contact_list
from nurture.store.models import Contact
from nurture.web import create_app
from tests.contacts_support import OWNER
from tests.helpers import add_contact, enrollment

AUTH = {"Authorization": "Bearer test-api-key-0123456789"}


@pytest.fixture
def rt(make_runtime, database_url: str, project: Path) -> Runtime:  # noqa: ANN001
    rt = make_runtime(database_url)
    add_contact(rt, "ann.lee@example.com", "lead-nurture", first_name="Ann", last_name="Lee", tags=("vip",))
    add_contact(rt, "bob@kilnstudio.com", "customer", first_name="Bob", last_name="Annandale")
    add_contact(rt, "carla_x@example.com", first_name="Carla", last_name="Diaz", tags=("vip", "wheel"))
    add_contact(rt, "dan@example.com", "lead-nurture")
    return rt


@pytest.fixture
def client(rt: Runtime) -> FlaskClient:
    return create_app(rt).test_client()


def emails(rt: Runtime, **args: str) -> list[str]:
    with Session(rt.db) as session:
        page = directory.listing(session, directory.filters_from(args), 50)
        return [row.contact.email for row in page.rows]


def test_it_searches_the_start_of_an_address_or_a_name_whatever_the_case(rt: Runtime) -> None:
    assert emails(rt, q="ANN") == ["bob@kilnstudio.com", "ann.lee@example.com"]  # Annandale, ann.lee
    assert emails(rt, q="ann.") == ["ann.lee@example.com"]
    assert emails(rt, q="Lee") == ["ann.lee@example.com"]  # a last name
    assert emails(rt, q="carla diaz") == ["carla_x@example.com"]  # a full name
    assert emails(rt, q="carla_") == ["carla_x@example.com"]  # LIKE's _ is a character, not a wildcard
    assert emails(rt, q="carla%") == [] and emails(rt, q="nobody") == []


def trigrams(rt: Runtime) -> bool:
    with Session(rt.db) as session:
        return contact_list.trigrams(session)


def test_on_postgresql_it_finds_a_part_from_inside_an_address_or_a_name(rt: Runtime) -> None:
    if rt.db.dialect.name != "postgresql":
        assert not trigrams(rt)  # SQLite searches by prefix only: what is inside is not found
        assert emails(rt, q="studio") == []
        return
    assert trigrams(rt), "pg_trgm could be created here: migration 0008_contacts should have built its indexes"
    assert emails(rt, q="studio") == ["bob@kilnstudio.com"]
    assert emails(rt, q="nnandal") == ["bob@kilnstudio.com"]  # inside a last name
    assert emails(rt, q="ee") == []  # under 3 characters, by prefix only: not "ann.lee", not "Lee"


def test_it_filters_by_stage_tag_sequence_and_consent(rt: Runtime) -> None:
    assert emails(rt, tag="vip") == ["carla_x@example.com", "ann.lee@example.com"]
    assert emails(rt, tag="vip", q="ann") == ["ann.lee@example.com"]
    assert emails(rt, sequence="lead-nurture") == ["dan@example.com", "ann.lee@example.com"]
    anns = enrollment(rt, "ann.lee@example.com", "lead-nurture").id
    with Session(rt.db) as session:
        owner_actions.unsubscribe(session, session.get(Contact, 4), "email", OWNER, rt.clock())
        owner_actions.pause(session, session.get(Contact, 1), anns, OWNER, rt.clock())
        session.commit()
    assert emails(rt, email_status="unsubscribed") == ["dan@example.com"]
    assert emails(rt, sequence="lead-nurture") == ["dan@example.com", "ann.lee@example.com"]  # paused is still in
    assert emails(rt, stage="lead", sms_status="none", tag="wheel") == ["carla_x@example.com"]
    assert emails(rt, stage="customer") == []


def test_an_erased_contact_is_left_out_unless_asked_for(rt: Runtime) -> None:
    with Session(rt.db) as session:
        erasure.erase(session, session.get(Contact, 4), OWNER, rt.clock())
        session.commit()
    assert "dan@example.com" not in emails(rt)
    assert len(emails(rt)) == 3
    assert emails(rt, email_status="erased") == ["erased-4@erased.invalid"]


def test_cursor_pages_walk_the_whole_list_once_newest_first(rt: Runtime) -> None:
    for n in range(7):
        add_contact(rt, f"page{n}@example.com")
    seen, cursor = [], None
    with Session(rt.db) as session:
        while True:
            page = directory.listing(session, directory.Filters(), 3, cursor)
            seen += [row.contact.id for row in page.rows]
            if page.next_cursor is None:
                break
            cursor = directory.cursor_from(page.next_cursor)
    assert seen == list(range(11, 0, -1))


@pytest.mark.parametrize(("args", "field"), [
    ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"limit": "x"}, "limit"), ({"limit": "²"}, "limit"),
    ({"cursor": "-1"}, "cursor"), ({"cursor": "9" * 30}, "cursor"), ({"cursor": "2147483648"}, "cursor"),
    ({"email_status": "happy"}, "email_status"),
    ({"q": "a\x00b"}, "q"), ({"q": "x" * 321}, "q"),
])
def test_the_api_names_a_bad_parameter_with_a_400(client: FlaskClient, args: dict, field: str) -> None:
    response = client.get("/api/contacts", headers=AUTH, query_string=args)
    assert response.status_code == 400 and response.json["field"] == field, response.json


def test_the_api_lists_by_cursor_with_filters_behind_the_key(client: FlaskClient) -> None:
    assert client.get("/api/contacts").status_code == 401
    first = client.get("/api/contacts?limit=2", headers=AUTH).json
    assert [c["email"] for c in first["contacts"]] == ["dan@example.com", "carla_x@example.com"]
    rest = client.get(f"/api/contacts?limit=2&cursor={first['next_cursor']}", headers=AUTH).json
    assert [c["email"] for c in rest["contacts"]] == ["bob@kilnstudio.com", "ann.lee@example.com"]
    assert rest["next_cursor"] is None
    ann = client.get("/api/contacts?tag=vip&sequence=lead-nurture", headers=AUTH).json["contacts"]
    assert ann == [{"id": 1, "email": "ann.lee@example.com", "first_name": "Ann", "last_name": "Lee",
                    "stage": "lead", "tags": ["vip"], "email_status": "subscribed", "sms_status": "none",
                    "sequences": [{"sequence": "lead-nurture", "status": "active"}],
                    "created_at": "2026-11-23T09:00:00+00:00"}]
