"""Import and export in the console: upload, preview and mapping, the check that writes nothing, the import
(run by the worker: a status page with its progress, then its report; queued again when Redis or the worker
loses it); owners only; exports streamed as CSV with typed-in formulas defused. The same in a real headless
Chromium, at desktop and phone width."""

from __future__ import annotations

import csv
import io
import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue, SimpleWorker
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select
from sqlmodel import Session, select

from nurture import jobs
from nurture.people import import_runs, importing
from nurture.people import import_uploads as uploads
from nurture.people.import_file import read_csv
from nurture.people.preferences import Origin, record_consent
from nurture.runtime import Runtime, use_runtime
from nurture.store.models import Consent, ConsentAction, Contact, Event, Subscription
from nurture.web import create_app
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


def queue_of(rt: Runtime) -> Queue:
    return Queue(rt.settings.queue_name, connection=Redis.from_url(rt.settings.redis_url))


def run_jobs(rt: Runtime) -> None:
    """What the worker does: every queued job, run here (in this process, with this runtime)."""
    use_runtime(rt)
    try:
        queue = queue_of(rt)
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
    finally:
        use_runtime(None)


FORM = {"col-0": "email", "col-1": "first_name", "col-2": "last_name", "col-3": "phone", "col-4": "fields.company",
        "col-5": "ignore", "basis": "consent", "consent": "Yes, the newsletter"}


def start_import(client: FlaskClient, preview: str, form: dict[str, str] = FORM) -> str:
    """Press Import; the status page's path."""
    response = client.post(preview, data={**form, "csrf_token": csrf_token(client, "/import")})
    assert response.status_code == 303, response.get_data(as_text=True)
    assert response.headers["Location"] == f"{preview}/status"
    return response.headers["Location"]


def test_an_owner_uploads_checks_every_row_and_imports_and_nothing_is_written_before(make_runtime,  # noqa: ANN001
                                                                                     sqlite_url: str,
                                                                                     redis_url: str) -> None:
    rt = make_runtime(sqlite_url, REDIS_URL=redis_url)
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
    status = start_import(client, preview, form)
    waiting = client.get(status).get_data(as_text=True)
    assert "Importing" in waiting and '<meta http-equiv="refresh" content="2">' in waiting and "<progress" in waiting
    assert count(rt, Contact) == 0 and queue_of(rt).job_ids == [jobs.import_job_id(preview.rsplit("/", 1)[1])]
    run_jobs(rt)
    done = client.get(status).get_data(as_text=True)
    assert 'data-outcome="created"><strong>2</strong>' in done and "http-equiv" not in done
    assert "leads.csv:4: phone: &#39;12&#39; is not a valid phone number" in done
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


def test_a_second_click_on_import_goes_to_the_status_page_and_queues_nothing_more(make_runtime,  # noqa: ANN001
                                                                                   sqlite_url: str,
                                                                                   redis_url: str) -> None:
    rt = make_runtime(sqlite_url, REDIS_URL=redis_url)
    client = logged_in(rt)
    preview = upload(client, LEADS)
    status = start_import(client, preview)
    again = client.post(preview, data={**FORM, "csrf_token": csrf_token(client, "/import")})
    assert again.status_code == 303 and again.headers["Location"] == status
    assert queue_of(rt).count == 1
    run_jobs(rt)
    assert count(rt, Contact) == 2


def test_the_progress_is_reported_once_a_batch_with_the_rows_done(make_runtime, database_url: str,  # noqa: ANN001
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # (On PostgreSQL two batches are written at once: each is still reported in file order, once written.)
    monkeypatch.setattr(importing, "BATCH", 2)
    rt = make_runtime(database_url)
    csv_file = read_csv(write_csv(tmp_path, LEADS))
    choices = import_runs.Choices(None, "", "", "")
    calls: list[tuple[int, int]] = []
    importing.run(rt.db, csv_file, import_runs.mapping_for(csv_file, choices),
                  import_runs.options_for(csv_file, choices, rt.sequences), rt.clock(), write=True,
                  progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 5), (4, 5), (5, 5)]


def test_an_import_lost_with_redis_is_queued_again_by_the_status_page_and_finishes(make_runtime,  # noqa: ANN001
                                                                                    sqlite_url: str,
                                                                                    redis_url: str) -> None:
    rt = make_runtime(sqlite_url, REDIS_URL=redis_url)
    client = logged_in(rt)
    status = start_import(client, upload(client, LEADS))
    Redis.from_url(redis_url).flushall()  # the queued job is gone; the record on disk is not
    assert queue_of(rt).count == 0
    assert "Importing" in client.get(status).get_data(as_text=True)
    assert queue_of(rt).count == 1  # the page saw no job carrying it
    run_jobs(rt)
    assert 'data-outcome="created"><strong>2</strong>' in client.get(status).get_data(as_text=True)
    assert count(rt, Contact) == 2


class Killed(BaseException):
    """The worker killed (kill -9) between two batches: nothing after the last commit is recorded."""


def test_an_import_whose_worker_died_midway_is_run_again_by_the_tick_without_duplicates(  # noqa: ANN001
        make_runtime, sqlite_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importing, "BATCH", 2)
    rt = make_runtime(sqlite_url, REDIS_URL=redis_url)
    client = logged_in(rt)
    status = start_import(client, upload(client, LEADS + "erin@example.com,Erin,,,,\n"))
    token = status.split("/")[-2]
    saving = import_runs.save

    def save_then_die(var_dir: Path, run: import_runs.Run) -> import_runs.Run:
        saving(var_dir, run)
        if run.done >= 2:  # the first batch is committed and recorded
            raise Killed
        return run

    monkeypatch.setattr(import_runs, "save", save_then_die)
    with pytest.raises(Killed):
        import_runs.execute(rt, token)
    monkeypatch.setattr(import_runs, "save", saving)
    assert count(rt, Contact) == 1 and import_runs.load(rt.settings.var_dir, token).state == "running"
    assert "<strong>2</strong> of 6 rows" in client.get(status).get_data(as_text=True)
    Redis.from_url(redis_url).flushall()  # the job that died is gone too

    assert jobs.keep_imports_going(rt, queue_of(rt)) == 1
    assert jobs.keep_imports_going(rt, queue_of(rt)) == 0  # queued: not twice
    run_jobs(rt)
    page = client.get(status).get_data(as_text=True)
    assert "run again from the first row" in page
    assert 'data-outcome="created"><strong>2</strong>' in page  # erin, dora: ann's row was written before
    assert 'data-outcome="unchanged"><strong>1</strong>' in page
    assert count(rt, Contact) == 3 and count(rt, Consent) == 3  # one consent row each, none twice
    with Session(rt.db) as session:
        created = session.exec(select(Event).where(Event.type == "contact.created")).all()
    assert len(created) == 3


def test_an_import_lost_three_times_is_recorded_as_failed(make_runtime, sqlite_url: str,  # noqa: ANN001
                                                         redis_url: str) -> None:
    rt = make_runtime(sqlite_url, REDIS_URL=redis_url)
    client = logged_in(rt)
    status = start_import(client, upload(client, LEADS))
    token = status.split("/")[-2]
    run = import_runs.load(rt.settings.var_dir, token)
    import_runs.save(rt.settings.var_dir, replace(run, state=import_runs.State.RUNNING, starts=jobs.IMPORT_STARTS))
    Redis.from_url(redis_url).flushall()
    page = client.get(status).get_data(as_text=True)
    assert "stopped 3 times in the middle" in page and "nothing after the last" in page
    assert queue_of(rt).count == 0 and "http-equiv" not in page


def test_a_failed_import_shows_its_error_and_what_was_written(make_runtime, sqlite_url: str,  # noqa: ANN001
                                                             redis_url: str) -> None:
    rt = make_runtime(sqlite_url, REDIS_URL=redis_url)
    client = logged_in(rt)
    status = start_import(client, upload(client, LEADS))
    uploads.remove(rt.settings.var_dir, status.split("/")[-2])  # cleared before the worker came to it
    run_jobs(rt)
    page = client.get(status).get_data(as_text=True)
    assert "The import of <code>leads.csv</code> stopped" in page and "the uploaded file is gone" in page
    assert "0 of 0 rows were imported" in page and "nothing after the last" in page
    assert queue_of(rt).count == 0 and count(rt, Contact) == 0  # failed is an end: not queued again


def test_the_status_page_is_for_owners_and_known_imports_only(make_runtime, sqlite_url: str,  # noqa: ANN001
                                                             redis_url: str) -> None:
    rt = make_runtime(sqlite_url, REDIS_URL=redis_url)
    owner = logged_in(rt)
    status = start_import(owner, upload(owner, LEADS))
    assert logged_in(rt, "viewer").get(status).status_code == 403
    assert owner.get("/import/" + "A" * 24 + "/status").status_code == 404
    assert owner.get("/import/not-a-token/status").status_code == 404
    assert owner.get("/import/..%2F..%2Fetc%2Fpasswd/status").status_code == 404


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
def console(make_runtime, sqlite_url: str, redis_url: str, project: Path) -> Iterator[tuple[Runtime, str]]:  # noqa: ANN001
    shutil.copytree(ROOT / "forms", project / "forms")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rt = make_runtime(sqlite_url, BASE_URL=base, REDIS_URL=redis_url)
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
    wait_for(browser, "h1", "Importing")  # the status page: the worker has not taken the job yet
    assert "Waiting for the worker" in browser.find_element(By.ID, "progress").text
    screenshot(browser, "import-waiting-390.png", 390)
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
    browser.set_window_size(1280, 900)
    run_jobs(rt)
    wait_for(browser, "h1", "Imported")  # the page's own refresh (a meta tag, no script) brings the report
    screenshot(browser, "import-done-390.png", 390)
    screenshot(browser, "import-done-1280.png", 1280)
    assert contact(rt, "erin@example.com").last_name == "Ode"
    assert contact(rt, "ann@example.com").last_name == "Lee"  # filled: it was empty
    assert contact(rt, "dora@example.com").email_status == Subscription.SUBSCRIBED
    assert contact(rt, "ann@example.com").tags == []
