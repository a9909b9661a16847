"""Import and export in the console: upload, preview and mapping, the check that writes nothing, the import;
owners only; exports streamed as CSV with typed-in formulas defused. The same in a real headless Chromium,
at desktop and phone width."""

from __future__ import annotations

import csv
import io
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select
from sqlmodel import Session

from nurture.people.preferences import Origin, record_consent
from nurture.runtime import Runtime
from nurture.store.models import ConsentAction, Contact, Subscription
from nurture.web import create_app
from nurture.web.console import import_uploads as uploads
from tests.conftest import ROOT, free_port
from tests.console_nav_support import follow_nav
from tests.console_support import PASSWORD, add_account, csrf_token, logged_in
from tests.helpers import add_contact, send_due
from tests.import_support import LEADS, consents_of, contact, count, run_cli, write_csv
from tests.test_browser import serve, wait_for
from tests.test_console_browser import (
    browser,  # noqa: F401  (a fixture)
    log_in,
    screenshot,
)


def upload(client: FlaskClient, text: str | bytes, name: str = "leads.csv") -> str:
    """Upload a file through the form; the preview's path."""
    data = text.encode() if isinstance(text, str) else text
    response = client.post("/import", data={"csrf_token": csrf_token(client, "/import"),
                                            "file": (io.BytesIO(data), name)}, content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Location"]


def test_an_owner_uploads_checks_every_row_and_imports_and_nothing_is_written_before(make_runtime,  # noqa: ANN001
                                                                                     sqlite_url: str) -> None:
    rt = make_runtime(sqlite_url)
    client = logged_in(rt)
    preview = upload(client, LEADS)
    page = client.get(preview).get_data(as_text=True)
    assert 'name="col-0"' in page and '<option value="email" selected>' in page
    assert "fields.company" in page and "ann@example.com" in page
    assert count(rt, Contact) == 0

    query = {"check": "1", "col-0": "email", "col-1": "first_name", "col-2": "last_name", "col-3": "phone",
             "col-4": "fields.company", "col-5": "ignore", "basis": "consent", "consent": "Yes, the newsletter"}
    checked = client.get(preview, query_string=query).get_data(as_text=True)
    assert re.search(r'data-outcome="created"><strong>2</strong>', checked)
    assert re.search(r'data-outcome="skipped"><strong>3</strong>', checked)
    assert "leads.csv:4: phone: &#39;12&#39; is not a valid phone number" in checked
    assert count(rt, Contact) == 0  # the check wrote nothing

    form = {k: v for k, v in query.items() if k != "check"}
    done = client.post(preview, data={**form, "csrf_token": csrf_token(client, "/import")})
    assert done.status_code == 200 and 'data-outcome="created"><strong>2</strong>' in done.get_data(as_text=True)
    ann = contact(rt, "ann@example.com")
    assert ann.tags == [] and ann.fields == {"company": "Kiln Co"}  # tags were ignored as chosen
    assert ann.email_status == Subscription.SUBSCRIBED
    assert consents_of(rt, "ann@example.com")[0].consent_text == "Yes, the newsletter"
    assert client.get(preview).status_code == 404  # the upload is gone once imported


def test_of_two_clicks_on_import_only_one_imports(make_runtime, sqlite_url: str) -> None:  # noqa: ANN001
    rt = make_runtime(sqlite_url)
    client = logged_in(rt)
    preview = upload(client, LEADS)
    uploads.claim(rt.settings.var_dir, preview.rsplit("/", 1)[1])  # the first click's import, running now
    second = client.post(preview, data={"csrf_token": csrf_token(client, "/import"), "col-0": "email"})
    assert second.status_code == 409 and "imported already" in second.get_data(as_text=True)
    assert count(rt, Contact) == 0


def test_bad_files_and_bad_choices_get_a_clear_answer_not_a_500(make_runtime, sqlite_url: str) -> None:  # noqa: ANN001
    rt = make_runtime(sqlite_url)
    client = logged_in(rt)
    token = csrf_token(client, "/import")
    latin = client.post("/import", data={"csrf_token": token, "file": (io.BytesIO("email\nj\xfcrgen@x.de\n".encode(
        "latin-1")), "old.csv")}, content_type="multipart/form-data")
    assert latin.status_code == 400 and "old.csv:2: not UTF-8 text" in latin.get_data(as_text=True)
    assert client.post("/import", data={"csrf_token": token}).status_code == 400
    preview = upload(client, "Name,Mail\nAnn,ann@example.com\n")
    no_email = client.get(preview, query_string={"check": "1", "col-0": "first_name", "col-1": "ignore"})
    assert no_email.status_code == 400 and "no column is mapped to email" in no_email.get_data(as_text=True)
    refused = client.post(preview, data={"csrf_token": token, "col-1": "email", "consent": "Yes"})
    assert refused.status_code == 400 and "needs both the text" in refused.get_data(as_text=True)
    assert client.get("/import/not-a-token").status_code == 404
    assert client.get("/import/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert count(rt, Contact) == 0


def test_a_viewer_may_neither_import_nor_take_the_contacts_away(make_runtime, sqlite_url: str) -> None:  # noqa: ANN001
    rt = make_runtime(sqlite_url)
    owner = logged_in(rt)
    preview = upload(owner, LEADS)
    viewer = logged_in(rt, "viewer")
    token = csrf_token(viewer, "/import")
    assert viewer.post("/import", data={"csrf_token": token}).status_code == 403
    assert viewer.get(preview).status_code == 403
    assert viewer.post(preview, data={"csrf_token": token, "col-0": "email"}).status_code == 403
    for table in ("contacts", "deliveries", "consent"):
        assert viewer.get(f"/export/{table}.csv").status_code == 403
    assert count(rt, Contact) == 0


def test_exports_are_streamed_csv_and_typed_in_formulas_are_defused(make_runtime, sqlite_url: str, project: Path,  # noqa: ANN001
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    rt = make_runtime(sqlite_url)
    add_contact(rt, "ann@example.com", first_name="=HYPERLINK(\"http://evil.example\")", phone="+14155552671",
                tags=("vip", "wheel"), fields={"plan": "wheel"})
    with Session(rt.db) as session:
        record_consent(session, session.get(Contact, 1), "email", ConsentAction.OPT_IN,
                       Origin(method="form", consent_text="Yes"), rt.clock())
        session.commit()
    client = logged_in(rt)
    response = client.get("/export/contacts.csv")
    assert response.is_streamed and response.mimetype == "text/csv"
    assert 'filename="nurture-contacts-20261123-0900.csv"' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 1 and rows[0]["first_name"] == "'=HYPERLINK(\"http://evil.example\")"
    assert (rows[0]["phone"], rows[0]["tags"], rows[0]["fields"]) == ("+14155552671", "vip,wheel", '{"plan": "wheel"}')
    assert rows[0]["created_at"] == "2026-11-23T09:00:00Z"
    consent = list(csv.DictReader(io.StringIO(client.get("/export/consent.csv").get_data(as_text=True))))
    assert [(c["email"], c["action"], c["consent_text"]) for c in consent] == [("ann@example.com", "opt-in", "Yes")]
    assert client.get("/export/passwords.csv").status_code == 404
    # The CLI writes the same table.
    out = project / "contacts.csv"
    result = run_cli(monkeypatch, project, sqlite_url, "contacts", "export", "contacts", "--csv", str(out))
    assert result.exit_code == 0 and "wrote 1 contacts rows" in result.output
    assert out.read_bytes() == response.get_data()
    add_contact(rt, "bea@example.com", "lead-nurture")
    send_due(rt)
    sent = list(csv.DictReader(io.StringIO(client.get("/export/deliveries.csv").get_data(as_text=True))))
    assert [(d["email"], d["step_id"], d["status"]) for d in sent] == [("bea@example.com", "edu-1", "sent")]


def test_an_export_of_more_rows_than_a_page_has_every_row_once(make_runtime, sqlite_url: str,  # noqa: ANN001
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from nurture.store import exports

    monkeypatch.setattr(exports, "PAGE", 2)
    rt = make_runtime(sqlite_url)
    for n in range(5):
        add_contact(rt, f"p{n}@example.com")
    body = logged_in(rt).get("/export/contacts.csv").get_data(as_text=True)
    assert [r["email"] for r in csv.DictReader(io.StringIO(body))] == [f"p{n}@example.com" for n in range(5)]


# --- in a real browser ------------------------------------------------------------------------------------------

@pytest.fixture
def console(make_runtime, sqlite_url: str, project: Path) -> Iterator[tuple[Runtime, str]]:  # noqa: ANN001
    shutil.copytree(ROOT / "forms", project / "forms")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rt = make_runtime(sqlite_url, BASE_URL=base)
    add_contact(rt, "ann@example.com", first_name="Ann")
    add_account(rt, "owner@example.com")
    stop = serve(create_app(rt), port)
    yield rt, base
    stop()


def test_an_owner_imports_a_csv_through_the_page(console, browser: WebDriver, tmp_path: Path) -> None:  # noqa: ANN001, F811
    rt, base = console
    path = write_csv(tmp_path, LEADS + "erin@example.com,Erin,Ode,,,\n")
    browser.get(f"{base}/")
    log_in(browser, "owner@example.com", PASSWORD)
    wait_for(browser, "h1", "The lifecycle map")
    follow_nav(browser, "Import")  # at the phone width the browser starts with: through the menu
    wait_for(browser, "h1", "Import contacts")
    screenshot(browser, "import-upload-1280.png", 1280)
    screenshot(browser, "import-upload-390.png", 390)
    browser.set_window_size(1280, 900)
    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(path))
    browser.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
    wait_for(browser, "h1", "leads.csv")
    assert "ann@example.com" in browser.find_element(By.ID, "preview").text
    Select(browser.find_element(By.NAME, "col-5")).select_by_value("ignore")  # no tags this time
    Select(browser.find_element(By.ID, "basis")).select_by_value("existing-customer")
    browser.find_element(By.ID, "consent").send_keys("Customers of the studio: news and class dates")
    browser.find_element(By.CSS_SELECTOR, "#mapping button[type=submit]").click()
    wait_for(browser, "#plan", "What the import will do")
    counts = {card.get_attribute("data-outcome"): card.find_element(By.TAG_NAME, "strong").text
              for card in browser.find_elements(By.CSS_SELECTOR, ".counts .card")}
    assert counts == {"created": "2", "updated": "1", "unchanged": "0", "skipped": "3", "consented": "2"}
    assert browser.find_element(By.CSS_SELECTOR, 'tr[data-line="3"] .why').text.startswith("email:")
    assert count(rt, Contact) == 1  # the check wrote nothing
    screenshot(browser, "import-check-1280.png", 1280)
    screenshot(browser, "import-check-390.png", 390)
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390

    browser.set_window_size(1280, 900)
    browser.find_element(By.CSS_SELECTOR, "#run button").click()
    wait_for(browser, "h1", "Imported")
    screenshot(browser, "import-done-390.png", 390)
    screenshot(browser, "import-done-1280.png", 1280)
    assert contact(rt, "erin@example.com").last_name == "Ode"
    assert contact(rt, "ann@example.com").last_name == "Lee"  # filled: it was empty
    assert contact(rt, "dora@example.com").email_status == Subscription.SUBSCRIBED
    assert contact(rt, "ann@example.com").tags == []
