"""The console's Suppressions page: the list with search and pages, adding an email address or a phone
number (validated, normalised), removing one with a reason (owners only), every change kept with who made
it — through the same code as `nurture suppress`, and honoured by the send path at once."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from nurture.people import suppression
from nurture.store.models import Suppression, SuppressionChange
from tests.conftest import worker_env
from tests.console_support import csrf_token, logged_in
from tests.helpers import add_contact, deliveries, send_due


@pytest.fixture
def rt(make_runtime, database_url):  # noqa: ANN001, ANN201
    return make_runtime(database_url)


def changes(rt) -> list[tuple[str, str, str, str]]:  # noqa: ANN001
    with Session(rt.db) as session:
        rows = session.exec(select(SuppressionChange).order_by(SuppressionChange.id)).all()
    return [(row.action, row.address, row.reason, row.actor) for row in rows]


def listed(rt) -> dict[str, tuple[str, str]]:  # noqa: ANN001
    with Session(rt.db) as session:
        return {row.address: (row.channel, row.reason) for row in session.exec(select(Suppression))}


def post(client, path: str, **fields: str):  # noqa: ANN001, ANN201
    return client.post(path, data={"csrf_token": csrf_token(client, "/suppressions"), **fields})


def test_an_owner_adds_an_email_address_and_a_phone_number_normalised(rt) -> None:
    client = logged_in(rt)
    response = post(client, "/suppressions", address=" Ann@Example.COM ", reason="asked by phone")
    assert response.status_code == 303 and response.headers["Location"] == "/suppressions?q=ann@example.com"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "ann@example.com is suppressed" in page and 'data-address="ann@example.com"' in page
    assert post(client, "/suppressions", address="(415) 555-2671", reason="").status_code == 303
    assert listed(rt) == {"ann@example.com": ("email", "asked by phone"), "+14155552671": ("sms", "manual")}
    assert changes(rt) == [("added", "ann@example.com", "asked by phone", "owner@example.com"),
                           ("added", "+14155552671", "manual", "owner@example.com")]


@pytest.mark.parametrize("address, says", [
    ("", "an email address or a phone number is required"),
    ("ann@", "There must be something after the @-sign"),
    ("jürgen@example.com", "Internationalized characters before the @-sign are not supported"),
    ("555-0000-12345678", "is not a valid phone number"),
    ("not an address", "is not a phone number"),
])
def test_a_bad_address_is_refused_with_the_reason_and_kept_in_the_box(rt, address: str, says: str) -> None:
    client = logged_in(rt)
    response = post(client, "/suppressions", address=address, reason="typo test")
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "Not added" in page and says in page.replace("&#39;", "'")
    assert 'value="typo test"' in page
    assert listed(rt) == {} and changes(rt) == []


def test_removing_needs_a_reason_and_is_kept_with_who_did_it(rt, clock) -> None:
    client = logged_in(rt)
    post(client, "/suppressions", address="ann@example.com", reason="complaint")
    refused = post(client, "/suppressions/remove", address="ann@example.com", reason=" ")
    assert refused.status_code == 400 and "say why" in refused.get_data(as_text=True)
    assert "ann@example.com" in listed(rt)
    clock.advance(hours=1)
    done = post(client, "/suppressions/remove", address="ann@example.com", reason="she wrote to ask back in")
    assert done.status_code == 303
    page = client.get("/suppressions").get_data(as_text=True)
    assert "ann@example.com is no longer suppressed" in page and "The list is empty" in page
    assert 'data-change="removed"' in page and "she wrote to ask back in" in page
    assert listed(rt) == {}
    assert changes(rt)[-1] == ("removed", "ann@example.com", "she wrote to ask back in", "owner@example.com")
    again = post(client, "/suppressions/remove", address="ann@example.com", reason="twice")
    assert "was not on the list" in client.get(again.headers["Location"]).get_data(as_text=True)


def test_a_viewer_sees_the_list_but_may_not_change_it(rt, clock) -> None:
    with Session(rt.db) as session:
        suppression.add(session, "ann@example.com", "complaint", clock())
        session.commit()
    client = logged_in(rt, "viewer")
    page = client.get("/suppressions").get_data(as_text=True)
    assert 'data-address="ann@example.com"' in page and "Remove…" not in page and "may look but not change" in page
    token = csrf_token(client, "/suppressions")
    for path, fields in (("/suppressions", {"address": "bob@example.com", "reason": "x"}),
                         ("/suppressions/remove", {"address": "ann@example.com", "reason": "x"})):
        assert client.post(path, data={"csrf_token": token, **fields}).status_code == 403
    assert list(listed(rt)) == ["ann@example.com"]


def test_search_and_pages(rt, clock) -> None:
    with Session(rt.db) as session:
        for n in range(120):
            clock.advance(minutes=1)
            suppression.add(session, f"user{n:03}@{'shop' if n % 2 else 'mail'}.example", "bounced", clock())
        suppression.add(session, "under_score@example.com", "x", clock())
        session.commit()
    client = logged_in(rt, "viewer")
    first = client.get("/suppressions").get_data(as_text=True)
    assert "121 entries" in first and "page 1 of 3" in first
    assert first.index("under_score@example.com") < first.index("user119@shop.example")  # newest first
    assert first.count("data-address=") == 50
    last = client.get("/suppressions?page=3").get_data(as_text=True)
    assert last.count("data-address=") == 21 and "user000@mail.example" in last
    found = client.get("/suppressions?q=SHOP.example").get_data(as_text=True)
    assert "60 entries" in found and "mail.example" not in found.split("Latest changes")[0]
    assert "1 entry" in client.get("/suppressions?q=_").get_data(as_text=True)  # `_` is itself, not any one letter
    assert "0 entries" in client.get("/suppressions?q=%25").get_data(as_text=True)
    for page in ("0", "-1", "x", "99999999999", "٣"):
        assert client.get(f"/suppressions?page={page}").status_code == 200


def test_the_page_and_the_command_share_the_list_and_the_send_path_honours_it(rt, clock, project, monkeypatch,
                                                                               database_url) -> None:
    for name, value in worker_env(project, database_url).items():
        monkeypatch.setenv(name, value)
    from nurture.cli import main

    client = logged_in(rt)
    post(client, "/suppressions", address="lead@example.com", reason="asked not to be mailed")
    shown = CliRunner().invoke(main, ["suppress", "--list"]).output
    assert shown.startswith("lead@example.com\t") and "asked not to be mailed" in shown
    add_contact(rt, "lead@example.com", "lead-nurture")
    send_due(rt)
    assert [d.status for d in deliveries(rt)] == ["skipped"]
    result = CliRunner().invoke(main, ["suppress", "lead@example.com", "--remove", "--reason", "back in"])
    assert result.output == "removed lead@example.com\n"
    assert changes(rt)[-1] == ("removed", "lead@example.com", "back in", "cli")
    assert "back in" in client.get("/suppressions").get_data(as_text=True)
    assert CliRunner().invoke(main, ["suppress", "+1 415 555 2671"]).output == "suppressed +14155552671\n"
