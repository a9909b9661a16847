"""The console's contact pages through the Flask test client, on SQLite and PostgreSQL: behind the login,
CSRF on every action, viewers may look but not act, and each action an owner takes lands on the timeline
with their account; the page shows what `nurture why` shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session, select

from nurture.runtime import Runtime
from nurture.store.models import Contact, Event
from tests.console_support import csrf_token, logged_in, new_client
from tests.helpers import add_contact, enrollment, send_due


@pytest.fixture
def rt(make_runtime, database_url: str, project: Path) -> Runtime:  # noqa: ANN001
    rt = make_runtime(database_url)
    add_contact(rt, "ann@example.com", "lead-nurture", first_name="Ann", last_name="Lee", tags=("vip",))
    add_contact(rt, "bob@example.com")
    send_due(rt)
    return rt


@pytest.fixture
def owner(rt: Runtime) -> FlaskClient:
    return logged_in(rt, "owner")


def post(client: FlaskClient, path: str, **data: str):  # noqa: ANN201
    return client.post(path, data={"csrf_token": csrf_token(client, "/contacts/1"), **data})


def page(client: FlaskClient, path: str = "/contacts/1") -> str:
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def test_without_a_session_every_contact_page_sends_to_the_login(rt: Runtime) -> None:
    client = new_client(rt)
    for path in ("/contacts", "/contacts/1", "/contacts?q=ann"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=/contacts")
    assert client.post("/contacts/1/erase", data={"confirm": "ann@example.com"}).status_code == 400  # no token
    with Session(rt.db) as session:
        assert session.get(Contact, 1).email == "ann@example.com"


def test_the_list_finds_a_contact_and_links_to_its_page(owner: FlaskClient) -> None:
    listed = page(owner, "/contacts?q=lee")
    assert 'href="/contacts/1"' in listed and "bob@example.com" not in listed
    assert "lead-nurture" in listed and "email subscribed" in listed
    assert 'href="/contacts"' in page(owner, "/")  # the nav
    bad = owner.get("/contacts?email_status=happy&cursor=x")
    assert bad.status_code == 400 and "could not be read" in bad.get_data(as_text=True)


def test_the_contact_page_tells_the_timeline_as_nurture_why_does(owner: FlaskClient) -> None:
    html = page(owner)
    assert "Ann Lee" in html and "vip" in html
    assert re.search(r'<td>edu-1</td>\s*<td class="what sent">sent</td><td class="why">educate by email, '
                     r'message &lt;nurture\.1\.\w+@juniper\.test&gt;</td>', html)
    assert '<p class="next">next: edu-2 not yet due, due 2026-11-25 10:00 Wed UTC</p>' in html
    assert owner.get("/contacts/999").status_code == 404
    assert owner.get(f"/contacts/{2**70}").status_code == 404
    assert owner.get(f"/contacts/{2**31}").status_code == 404  # past INTEGER: PostgreSQL would refuse the query


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(rt: Runtime, owner: FlaskClient) -> None:
    held = enrollment(rt, "ann@example.com", "lead-nurture")
    response = owner.post(f"/contacts/1/enrollments/{held.id}/pause")
    assert response.status_code == 400 and "Please try again" in response.get_data(as_text=True)
    assert enrollment(rt, "ann@example.com", "lead-nurture").status == "active"


def test_a_viewer_sees_the_page_without_its_buttons_and_may_not_act(rt: Runtime) -> None:
    viewer = logged_in(rt, "viewer")
    html = page(viewer)
    assert "Ann Lee" in html and "Erase this person" not in html and 'data-action="pause"' not in html
    held = enrollment(rt, "ann@example.com", "lead-nurture")
    assert post(viewer, f"/contacts/1/enrollments/{held.id}/pause").status_code == 403
    assert enrollment(rt, "ann@example.com", "lead-nurture").status == "active"


def test_an_owner_pauses_resumes_tags_unsubscribes_and_each_says_who(rt: Runtime, owner: FlaskClient) -> None:
    held = enrollment(rt, "ann@example.com", "lead-nurture")
    done = post(owner, f"/contacts/1/enrollments/{held.id}/pause")
    assert done.status_code == 303 and done.headers["Location"] == "/contacts/1"
    html = page(owner)
    assert "Paused." in html and 'data-action="resume"' in html and "owner@example.com</strong> paused" in html
    assert post(owner, f"/contacts/1/enrollments/{held.id}/pause").status_code == 303
    assert "Not done: it is not running (paused)" in page(owner)
    post(owner, f"/contacts/1/enrollments/{held.id}/resume")
    post(owner, "/contacts/1/tags", tag="wheel")
    post(owner, "/contacts/1/tags/remove", tag="vip")
    post(owner, "/contacts/1/unsubscribe", channel="email")
    assert post(owner, "/contacts/1/enroll", sequence="x").status_code == 303
    assert "Not done: there is no sequence &#39;x&#39;" in page(owner)
    assert post(owner, f"/contacts/1/enrollments/{held.id}/explode").status_code == 404
    with Session(rt.db) as session:
        ann = session.get(Contact, 1)
        assert (ann.tags, ann.email_status) == (["wheel"], "unsubscribed")
        by = session.exec(select(Event.type, Event.data["by"].as_string()).where(
            Event.type.in_(["enrollment.paused", "enrollment.resumed", "tag.added", "tag.removed",
                            "email.unsubscribed"])).order_by(Event.id)).all()
    assert by == [("enrollment.paused", "owner@example.com"), ("enrollment.resumed", "owner@example.com"),
                  ("tag.added", "owner@example.com"), ("tag.removed", "owner@example.com"),
                  ("email.unsubscribed", "owner@example.com")]


def test_an_owner_exports_the_data_and_erases_only_after_typing_the_address(rt: Runtime,
                                                                           owner: FlaskClient) -> None:
    exported = post(owner, "/contacts/1/export")
    assert exported.headers["Content-Disposition"] == 'attachment; filename="contact-1.json"'
    assert json.loads(exported.get_data())["contact"]["email"] == "ann@example.com"

    post(owner, "/contacts/1/erase", confirm="bob@example.com")
    assert "Not done: type the contact" in page(owner)
    post(owner, "/contacts/1/erase", confirm=" ANN@example.com ")
    html = page(owner)
    assert "Erased:" in html and "was erased at their request" in html and "Ann Lee" not in html
    assert "owner@example.com</strong> erased the person" in html
    assert "erased" in page(owner, "/contacts?email_status=erased")
    with Session(rt.db) as session:
        assert session.get(Contact, 1).email == "erased-1@erased.invalid"
