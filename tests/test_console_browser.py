"""The console in a real browser (headless Chromium): sent to the login without a session, log in, the map
at desktop and phone width, printed as one landscape sheet on A4 and on Letter, a sequence's funnel, a
form without its CSRF token refused, log out.

Set CONSOLE_SCREENSHOTS=DIR to keep the screenshots and printed PDFs (to look at them, as the note says).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from nurture.runtime import Runtime
from nurture.web import create_app
from tests.conftest import ROOT, free_port
from tests.console_nav_support import follow_nav, lines, log_out, open_menu
from tests.console_support import PASSWORD, add_account
from tests.helpers import add_contact, send_due
from tests.test_browser import chromium, serve, wait_for

PAPERS = {"a4": (11.69, 8.27), "letter": (11.0, 8.5)}  # inches, landscape


@pytest.fixture
def console(make_runtime, sqlite_url, project: Path) -> Iterator[tuple[Runtime, str]]:
    shutil.copytree(ROOT / "forms", project / "forms")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rt = make_runtime(sqlite_url, BASE_URL=base)
    for n in range(2):
        add_contact(rt, f"lead{n}@example.com", "lead-nurture", first_name=f"Lead{n}")
    add_contact(rt, "cust@example.com", "customer")
    send_due(rt)
    add_account(rt, "owner@example.com")
    stop = serve(create_app(rt), port)
    yield rt, base
    stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    driver = chromium(tmp_path)
    yield driver
    driver.quit()


def keep(name: str, data: bytes) -> None:
    folder = os.environ.get("CONSOLE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_bytes(data)


def screenshot(driver: WebDriver, name: str, width: int) -> None:
    driver.set_window_size(width, 900)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(height + 140, 4000))
    keep(name, driver.get_screenshot_as_png())


def printed_pages(driver: WebDriver, paper: str) -> int:
    width, height = PAPERS[paper]
    result = driver.execute_cdp_cmd("Page.printToPDF", {"paperWidth": width, "paperHeight": height,
                                                        "landscape": True, "printBackground": True})
    pdf = base64.b64decode(result["data"])
    keep(f"map-printed-{paper}.pdf", pdf)
    return len(re.findall(rb"/Type\s*/Page(?!s)", pdf))


def log_in(driver: WebDriver, email: str, password: str) -> None:
    wait_for(driver, "input[name=email]").send_keys(email)
    driver.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def test_log_in_see_the_map_print_it_open_a_funnel_and_log_out(console, browser: WebDriver) -> None:
    rt, base = console
    browser.get(f"{base}/")
    wait_for(browser, "h1", "Log in")
    assert browser.current_url == f"{base}/login?next=/"

    log_in(browser, "owner@example.com", "a-wrong-password")
    assert wait_for(browser, ".error", "do not match").is_displayed()
    browser.find_element(By.CSS_SELECTOR, "input[name=email]").clear()
    log_in(browser, "owner@example.com", PASSWORD)
    wait_for(browser, "h1", "The lifecycle map")
    svg_text = browser.find_element(By.CSS_SELECTOR, "#map svg").text
    for stage in ("Attract", "Capture leads", "Nurture", "Convert sales", "Deliver satisfy", "Upsell", "Get referrals"):
        assert stage in svg_text
    assert "GAP" in svg_text and "Lead nurture" in svg_text
    gaps = browser.find_elements(By.CSS_SELECTOR, "ul.gaps li")
    assert [g.get_attribute("data-stage") for g in gaps] == ["attract-traffic"]

    screenshot(browser, "map-1280.png", 1280)
    screenshot(browser, "map-390.png", 390)
    # At phone width the page itself does not scroll sideways: only the picture does, in its frame.
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
    frame = browser.find_element(By.CSS_SELECTOR, ".map-scroll")
    assert browser.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth", frame)
    assert printed_pages(browser, "a4") == 1 and printed_pages(browser, "letter") == 1

    # Open a sequence's funnel from the map, at both widths.
    browser.set_window_size(1280, 900)
    browser.find_element(By.LINK_TEXT, "Lead nurture").click()
    wait_for(browser, "h1", "Lead nurture")
    sent = browser.find_element(By.CSS_SELECTOR, 'tr[data-step="edu-1"] td[data-metric="sent"]')
    assert sent.text.startswith("2")
    screenshot(browser, "funnel-1280.png", 1280)
    screenshot(browser, "funnel-390.png", 390)
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
    browser.get(f"{base}/")

    # A form posted without its token (as another site would) is refused, and the session stays.
    browser.execute_script("""const f = document.createElement('form'); f.method = 'post'; f.action = '/logout';
                              document.body.appendChild(f); f.submit();""")
    wait_for(browser, "h1", "Please try again")
    browser.get(f"{base}/")
    wait_for(browser, "h1", "The lifecycle map")

    log_out(browser)  # at phone width (the last screenshot's): the button is in the menu
    wait_for(browser, "h1", "Log in")
    browser.get(f"{base}/map.svg")
    wait_for(browser, "h1", "Log in")


NAV = ["Map", "Contacts", "Forms", "Segments", "Broadcasts", "Suppressions", "Reputation", "Webhooks", "Import"]


def test_the_nav_is_one_line_on_a_desktop_and_a_menu_on_a_phone(console, browser: WebDriver) -> None:
    _rt, base = console
    browser.get(f"{base}/")
    log_in(browser, "owner@example.com", PASSWORD)
    wait_for(browser, "h1", "The lifecycle map")

    browser.set_window_size(1280, 900)  # the desktop bar as it was: every link shown, all on one line
    links = browser.find_elements(By.CSS_SELECTOR, "header.bar nav a")
    assert [a.text for a in links] == NAV and all(a.is_displayed() for a in links)
    assert not browser.find_element(By.CSS_SELECTOR, ".menu-button").is_displayed()
    assert lines(browser, "header.bar .brand, header.bar nav a, header.bar button") == 1
    screenshot(browser, "nav-1280.png", 1280)

    screenshot(browser, "nav-390.png", 390)  # a phone: the brand and a Menu button, one line
    assert not any(a.is_displayed() for a in browser.find_elements(By.CSS_SELECTOR, "header.bar nav a"))
    assert lines(browser, "header.bar .brand, header.bar .menu-button") == 1
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
    # By keyboard, without a pointer: Tab from the brand reaches the menu, Space opens it, Tab walks its links.
    browser.execute_script("document.querySelector('header.bar .brand').focus()")
    browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("id") == "menu-toggle"
    browser.switch_to.active_element.send_keys(Keys.SPACE)
    assert all(a.is_displayed() for a in browser.find_elements(By.CSS_SELECTOR, "header.bar nav a"))
    assert lines(browser, "header.bar nav a") == len(NAV)  # one under another
    browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Map"
    screenshot(browser, "nav-390-open.png", 390)
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
    follow_nav(browser, "Suppressions")
    wait_for(browser, "h1", "Suppressions")
    open_menu(browser)  # a new page starts folded again
    assert browser.find_element(By.CSS_SELECTOR, "header.bar nav").find_element(By.LINK_TEXT, "Forms").is_displayed()
