"""Broadcasts in the console: the list and a broadcast's page (plan figures, test send, start after a
confirmation, progress), one made in the console, owners only and behind CSRF; and the pages in a real
browser at 1280 and 390 px (CONSOLE_SCREENSHOTS=DIR keeps the screenshots)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from sqlmodel import Session, select

from nurture.delivery import broadcasts
from nurture.runtime import Runtime
from nurture.store import broadcasts as store
from nurture.web import create_app
from tests.broadcasts_support import add_broadcast_files, broadcast_deliveries, crowd
from tests.conftest import free_port
from tests.console_nav_support import follow_nav
from tests.console_support import PASSWORD, add_account, csrf_token, logged_in
from tests.helpers import send_due
from tests.test_browser import serve, wait_for
from tests.test_console_browser import (
    browser,  # noqa: F401  (a fixture)
    keep,
    log_in,
)


@pytest.fixture
def bc(make_runtime, sqlite_url, project, smtp_server) -> Runtime:  # noqa: ANN001
    add_broadcast_files(project)
    rt = make_runtime(sqlite_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url)
    crowd(rt, 30, suppressed=3, unconsented=4, capped=2, outsiders=5)
    return rt


def test_the_list_and_a_broadcasts_page_show_its_figures_a_viewer_only_looks(bc: Runtime) -> None:
    viewer = logged_in(bc, "viewer")
    listing = viewer.get("/broadcasts").get_data(as_text=True)
    assert "Spring news" in listing and 'class="state draft">draft' in listing and "not tested" in listing
    assert "Make a broadcast" not in listing
    page = viewer.get("/broadcasts/spring").get_data(as_text=True)
    assert "<strong>30</strong> in the segment" in page and "<strong>21</strong> will get it" in page
    assert "suppressed</td><td class=\"n\">3" in page and "Send the test" not in page
    token = csrf_token(viewer, "/broadcasts/spring")
    assert viewer.post("/broadcasts/spring/test", data={"csrf_token": token}).status_code == 403
    assert viewer.get("/broadcasts/nope").status_code == 404


def test_an_owner_tests_confirms_and_starts_and_the_worker_sends(bc: Runtime, smtp_server) -> None:
    owner = logged_in(bc, "owner")
    token = csrf_token(owner, "/broadcasts/spring")
    assert owner.post("/broadcasts/spring/start", data={}).status_code == 400  # no CSRF token
    refused = owner.post("/broadcasts/spring/start", data={"csrf_token": token, "confirm": "yes"},
                         follow_redirects=True).get_data(as_text=True)
    assert "no test send was made" in refused
    unconfirmed = owner.post("/broadcasts/spring/start", data={"csrf_token": token}, follow_redirects=True)
    assert "Tick the box to confirm" in unconfirmed.get_data(as_text=True)
    tested = owner.post("/broadcasts/spring/test", data={"csrf_token": token, "to": "me@example.com"},
                        follow_redirects=True).get_data(as_text=True)
    assert "Test sent to me@example.com" in tested
    assert [r.rcpt_tos for r in smtp_server.received] == [["me@example.com"]]
    started = owner.post("/broadcasts/spring/start", data={"csrf_token": token, "confirm": "yes"},
                         follow_redirects=True).get_data(as_text=True)
    assert "Started: it goes from" in started
    broadcasts.materialise_due(bc)
    send_due(bc)
    assert broadcast_deliveries(bc) == {"sent": 21, "skipped": 7}
    page = owner.get("/broadcasts/spring").get_data(as_text=True)
    assert "<strong>21</strong> sent" in page and "<strong>2</strong> waiting" in page
    # A person's click on its link counts for the broadcast, like a sequence step's.
    from nurture.store.models import Delivery
    with Session(bc.db) as session:
        delivery = session.exec(select(Delivery).where(Delivery.sequence_id == "broadcast:spring",
                                                       Delivery.status == "sent")).first()
    bc.clock.advance(minutes=5)
    link = bc.signer.click_token(delivery.id, "https://juniperpottery.example/open-studio")
    assert owner.get(f"/c/{link}", headers={"User-Agent": "Mozilla/5.0 (Macintosh) Firefox/130.0"}).status_code == 302
    page = owner.get("/broadcasts/spring").get_data(as_text=True)
    assert "Since: 1 clicked (people, not link scanners)" in page
    # The pages that read every delivery and enrollment take a broadcast's in their stride.
    for path in ("/", "/contacts", "/reputation", "/sequences/lead-nurture"):
        assert owner.get(path).status_code == 200, path


def test_an_owner_makes_a_broadcast_in_the_console_and_a_bad_one_is_refused_on_the_form(bc: Runtime) -> None:
    owner = logged_in(bc, "owner")
    token = csrf_token(owner, "/broadcasts")
    form = {"csrf_token": token, "id": "fall-news", "name": "Fall news", "segment": "leads", "channel": "email",
            "template": "broadcasts/open-studio", "subject": "Fall at the studio", "send_at": "tomorrow",
            "timing": "own-window", "hours": "09:00-17:00"}
    bad = owner.post("/broadcasts/new", data=form)
    assert bad.status_code == 400 and "send_at &#39;tomorrow&#39; is not a time" in bad.get_data(as_text=True)
    assert 'value="Fall news"' in bad.get_data(as_text=True)  # what was typed is kept
    missing = owner.post("/broadcasts/new", data={**form, "send_at": "now", "template": "broadcasts/none"})
    assert missing.status_code == 400 and "unknown template" in missing.get_data(as_text=True)
    made = owner.post("/broadcasts/new", data={**form, "send_at": "2026-11-24T10:00:00-05:00"})
    assert made.status_code == 302 and made.headers["Location"].endswith("/broadcasts/fall-news")
    with Session(bc.db) as session:
        row = store.by_key(session, "fall-news")
        assert (row.origin, row.status, row.definition["send_at"]) == ("console", "draft", "2026-11-24T10:00:00-05:00")
    again = owner.post("/broadcasts/new", data={**form, "send_at": "now"})
    assert again.status_code == 400 and "exists already" in again.get_data(as_text=True)
    # It runs like a file's: tested, started, written when its time comes, sent in each contact's window.
    token = csrf_token(owner, "/broadcasts/fall-news")
    owner.post("/broadcasts/fall-news/test", data={"csrf_token": token, "to": "me@example.com"})
    started = owner.post("/broadcasts/fall-news/start", data={"csrf_token": token, "confirm": "yes"},
                         follow_redirects=True).get_data(as_text=True)
    assert "Started: it goes from 2026-11-24 15:00 UTC" in started
    bc.clock.advance(days=1, hours=6)
    broadcasts.materialise_due(bc)
    send_due(bc)
    # 30 hours on, the two capped a day ago are under the cap again: 23 of 30, 7 suppressed or unconsented.
    assert broadcast_deliveries(bc, "fall-news") == {"sent": 23, "skipped": 7}


# --- in a real browser ---------------------------------------------------------------------------------------

@pytest.fixture
def console(make_runtime, sqlite_url, project, smtp_server) -> Iterator[tuple[Runtime, str]]:  # noqa: ANN001
    add_broadcast_files(project)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rt = make_runtime(sqlite_url, BASE_URL=base, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url)
    crowd(rt, 120, suppressed=9, unconsented=14, capped=5, outsiders=10)
    add_account(rt, "owner@example.com")
    stop = serve(create_app(rt), port)
    yield rt, base
    stop()


def shot(driver: WebDriver, name: str, width: int) -> None:
    driver.set_window_size(width, 900)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(height + 140, 4000))
    keep(f"broadcasts-{name}-{width}.png", driver.get_screenshot_as_png())
    assert driver.execute_script("return document.documentElement.scrollWidth") <= width


def test_the_broadcast_pages_in_a_browser(console, browser: WebDriver, smtp_server) -> None:  # noqa: F811
    rt, base = console
    browser.get(f"{base}/login")
    log_in(browser, "owner@example.com", PASSWORD)
    wait_for(browser, "h1", "The lifecycle map")
    follow_nav(browser, "Broadcasts")  # at phone width, through the Menu
    wait_for(browser, "h1", "Broadcasts")
    for width in (1280, 390):
        shot(browser, "list", width)
    browser.set_window_size(1280, 900)
    browser.find_element(By.LINK_TEXT, "Spring news").click()
    wait_for(browser, "h1", "Spring news")
    assert not browser.find_element(By.CSS_SELECTOR, "button.primary").is_enabled()  # no test yet
    for width in (1280, 390):
        shot(browser, "draft", width)
    browser.set_window_size(1280, 900)
    browser.find_element(By.XPATH, "//button[text()='Send the test']").click()
    wait_for(browser, ".flash.ok", "Test sent to owner@example.com")
    browser.find_element(By.CSS_SELECTOR, "input[name=confirm]").click()
    browser.find_element(By.CSS_SELECTOR, "button.primary").click()
    wait_for(browser, ".flash.ok", "Started")
    broadcasts.materialise_due(rt)
    send_due(rt)
    browser.get(f"{base}/broadcasts/spring")
    assert wait_for(browser, "#progress .figure.go strong").text == "92"
    for width in (1280, 390):
        shot(browser, "started", width)
    browser.set_window_size(390, 900)
    browser.get(f"{base}/broadcasts")
    browser.find_element(By.CSS_SELECTOR, "details.add summary").click()
    browser.find_element(By.ID, "b-id").send_keys("Bad Id")
    browser.find_element(By.ID, "b-name").send_keys("Winter")
    browser.find_element(By.ID, "b-template").send_keys("broadcasts/open-studio")
    browser.find_element(By.CSS_SELECTOR, "details.add button.primary").click()
    assert "lowercase letters" in wait_for(browser, "details.add .error", "lowercase").text
    shot(browser, "make-refused", 390)
