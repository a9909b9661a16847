"""Contacts in a real browser (headless Chromium): a page without a session goes to the login and back,
find a contact by searching, open it, pause its enrollment, refuse a form posted without its token; the
list and the contact page at desktop and phone width.

Set CONSOLE_SCREENSHOTS=DIR to keep the screenshots (contacts-*.png) and look at them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from sqlmodel import Session

from nurture.people import owner_actions
from nurture.people.preferences import Origin, set_sms
from nurture.runtime import Runtime
from nurture.store.models import Contact
from nurture.web import create_app
from tests.conftest import FakeClock, free_port
from tests.console_nav_support import follow_nav
from tests.console_support import PASSWORD, add_account
from tests.contacts_support import OWNER
from tests.helpers import add_contact, enrollment, send_due
from tests.test_browser import serve, wait_for
from tests.test_console_browser import (
    browser,  # noqa: F401  (a fixture)
    log_in,
    screenshot,
)


@pytest.fixture
def studio(make_runtime, sqlite_url: str, clock: FakeClock) -> Iterator[tuple[Runtime, str]]:  # noqa: ANN001
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rt = make_runtime(sqlite_url, BASE_URL=base)
    for n, name in enumerate(["Mia Okafor", "Theo Brandt", "Priya Raman", "Jonas Eklund"]):
        first, last = name.split()
        add_contact(rt, f"{first.lower()}.{last.lower()}@example.com", "lead-nurture" if n % 2 else None,
                    first_name=first, last_name=last, tags=("guide",))
    ann = add_contact(rt, "ann.lee@example.com", "lead-nurture", first_name="Ann", last_name="Lee",
                      phone="+14155552671", timezone="America/Los_Angeles", tags=("guide", "wheel"),
                      fields={"interest": "Mugs"})
    with Session(rt.db) as session:
        contact = session.get(Contact, ann)
        set_sms(session, contact, True, Origin(method="form", form_id="beginners-guide", ip="203.0.113.7",
                                               consent_text="Text me class reminders"), clock())
        owner_actions.add_tag(session, rt, contact, "vip", OWNER, clock())
        session.commit()
    send_due(rt)
    clock.advance(days=2, hours=1)
    send_due(rt)  # edu-2 is sent; the window or the wait decides the rest
    add_account(rt, "owner@example.com")
    stop = serve(create_app(rt), port)
    yield rt, base
    stop()


def fits_a_phone(driver: WebDriver) -> bool:
    return driver.execute_script("return document.documentElement.scrollWidth") <= 390


def test_find_a_contact_pause_its_enrollment_and_refuse_a_form_without_its_token(studio, browser: WebDriver) -> None:  # noqa: F811  (browser: a fixture)
    rt, base = studio
    browser.set_window_size(1280, 900)
    browser.get(f"{base}/contacts/5")
    wait_for(browser, "h1", "Log in")
    assert browser.current_url == f"{base}/login?next=/contacts/5"
    log_in(browser, "owner@example.com", PASSWORD)
    wait_for(browser, "h1", "ann.lee@example.com")

    follow_nav(browser, "Contacts")
    wait_for(browser, "h1", "Contacts")
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr[data-contact]")) == 5
    screenshot(browser, "contacts-list-1280.png", 1280)
    screenshot(browser, "contacts-list-390.png", 390)
    assert fits_a_phone(browser)
    browser.set_window_size(1280, 900)
    search = browser.find_element(By.CSS_SELECTOR, "input[name=q]")
    search.send_keys("lee")
    search.submit()
    WebDriverWait(browser, 15).until(lambda d: "q=lee" in d.current_url)
    wait_for(browser, "tr[data-contact='5']")
    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-contact]")
    assert [r.get_attribute("data-contact") for r in rows] == ["5"]
    browser.find_element(By.LINK_TEXT, "ann.lee@example.com").click()

    run = wait_for(browser, ".run[data-sequence='lead-nurture']")
    assert "edu-1" in run.text and "sent" in run.text and "next:" in run.text
    run.find_element(By.CSS_SELECTOR, "button[data-action=pause]").click()
    wait_for(browser, ".note.done", "Paused.")
    run = wait_for(browser, ".run[data-sequence='lead-nurture']")
    assert run.find_element(By.CSS_SELECTOR, "[data-status]").text == "paused"
    assert run.find_elements(By.CSS_SELECTOR, "button[data-action=resume]")
    assert "owner@example.com paused lead-nurture" in browser.find_element(By.ID, "actions").text
    screenshot(browser, "contacts-contact-1280.png", 1280)
    screenshot(browser, "contacts-contact-390.png", 390)
    assert fits_a_phone(browser)
    assert enrollment(rt, "ann.lee@example.com", "lead-nurture").status == "paused"

    # Another site's form (no token) asking to resume it is refused; the enrollment stays paused.
    browser.execute_script("""const f = document.createElement('form'); f.method = 'post';
        f.action = document.querySelector('button[data-action=resume]').form.action;
        document.body.appendChild(f); f.submit();""")
    wait_for(browser, "h1", "Please try again")
    assert enrollment(rt, "ann.lee@example.com", "lead-nurture").status == "paused"
