"""The console's Forms and Suppressions pages in a real browser (headless Chromium): from the nav to a
form's numbers and snippets, a snippet copied with its button (and selectable by hand with JavaScript
off), an address suppressed, refused when it is not one, and taken off with a reason; at desktop and phone
width.

Set CONSOLE_SCREENSHOTS=DIR to keep the screenshots (console-pages-*.png).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from nurture.runtime import Runtime
from nurture.web import create_app
from tests.conftest import free_port
from tests.console_nav_support import follow_nav
from tests.console_pages_support import add_forms, sign_up
from tests.console_support import PASSWORD, add_account
from tests.test_browser import chromium, serve, wait_for
from tests.test_console_browser import browser, log_in, screenshot  # noqa: F401  (browser: a fixture)

PHONE = 390


@pytest.fixture
def console(make_runtime, sqlite_url, project: Path, clock) -> Iterator[tuple[Runtime, str]]:  # noqa: ANN001
    add_forms(project)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rt = make_runtime(sqlite_url, BASE_URL=base)
    for n in range(7):
        sign_up(rt, f"lead{n}@example.com", confirm=n < 5)
        clock.advance(hours=5)
    sign_up(rt, "quick@example.com", form_id="quick-list")
    add_account(rt, "owner@example.com")
    stop = serve(create_app(rt), port)
    yield rt, base
    stop()


def fits_a_phone(driver: WebDriver) -> bool:
    return driver.execute_script("return document.documentElement.scrollWidth") <= PHONE


def test_forms_from_the_nav_to_a_snippet_on_the_clipboard(console, browser: WebDriver) -> None:  # noqa: F811
    _rt, base = console
    browser.get(f"{base}/")
    log_in(browser, "owner@example.com", PASSWORD)
    wait_for(browser, "h1", "The lifecycle map")
    follow_nav(browser, "Forms")  # at the phone width the browser starts with: through the menu
    wait_for(browser, "h1", "Signup forms")
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-form="beginners-guide"]')
    assert row.find_element(By.CSS_SELECTOR, '[data-metric="signups"]').text == "7"
    assert row.find_element(By.CSS_SELECTOR, '[data-metric="rate"]').text == "71%"  # 5 of 7
    screenshot(browser, "console-pages-forms-1280.png", 1280)
    screenshot(browser, "console-pages-forms-390.png", PHONE)
    assert fits_a_phone(browser)

    browser.set_window_size(1280, 900)
    browser.find_element(By.LINK_TEXT, "Beginner's guide").click()
    wait_for(browser, "h1", "Beginner's guide")
    assert browser.find_element(By.CSS_SELECTOR, '[data-metric="confirmed"]').text.startswith("5")
    buttons = browser.find_elements(By.CSS_SELECTOR, "button.copy")
    assert len(buttons) == 3 and all(b.is_displayed() for b in buttons)
    buttons[1].click()
    wait_for(browser, ".snippet .copied", "")
    script = browser.find_elements(By.CSS_SELECTOR, ".snippet textarea")[1]
    selected = browser.execute_script(
        "const t = arguments[0]; return t.value.substring(t.selectionStart, t.selectionEnd);", script)
    assert selected == f'<script src="{base}/forms/beginners-guide/embed.js" async></script>'
    said = browser.find_elements(By.CSS_SELECTOR, ".snippet .copied")[1].text
    assert buttons[1].text == "Copied" or said == "selected: press Ctrl+C", (buttons[1].text, said)
    screenshot(browser, "console-pages-form-1280.png", 1280)
    screenshot(browser, "console-pages-form-390.png", PHONE)
    assert fits_a_phone(browser)


def test_without_javascript_the_snippets_are_there_to_select(console, tmp_path: Path) -> None:
    _rt, base = console
    driver = chromium(tmp_path, javascript=False)
    try:
        driver.get(f"{base}/")
        log_in(driver, "owner@example.com", PASSWORD)
        wait_for(driver, "h1", "The lifecycle map")
        driver.get(f"{base}/signup-forms/beginners-guide")
        wait_for(driver, "h1", "Beginner's guide")
        boxes = driver.find_elements(By.CSS_SELECTOR, ".snippet textarea")
        assert len(boxes) == 3 and 'class="nf-form"' in boxes[0].get_attribute("value")
        assert not any(b.is_displayed() for b in driver.find_elements(By.CSS_SELECTOR, "button.copy"))
    finally:
        driver.quit()


def test_suppress_an_address_refuse_a_bad_one_and_take_one_off(console, browser: WebDriver) -> None:  # noqa: F811
    _rt, base = console
    browser.get(f"{base}/suppressions")
    log_in(browser, "owner@example.com", PASSWORD)
    wait_for(browser, "h1", "Suppressions")
    assert "The list is empty" in browser.page_source

    for address, reason in (("Ann@Example.COM", "complained by phone"), ("+1 (415) 555-2671", "asked by text")):
        browser.find_element(By.ID, "add-address").send_keys(address)
        browser.find_element(By.ID, "add-reason").send_keys(reason)
        browser.find_element(By.CSS_SELECTOR, "#add button[type=submit]").click()
        wait_for(browser, ".notice", "is suppressed")
    browser.get(f"{base}/suppressions")
    wait_for(browser, "h1", "Suppressions")
    entries = [e.get_attribute("data-address") for e in browser.find_elements(By.CSS_SELECTOR, "ul.entries > li")]
    assert entries == ["+14155552671", "ann@example.com"]

    browser.find_element(By.ID, "add-address").send_keys("ann@")
    browser.find_element(By.CSS_SELECTOR, "#add button[type=submit]").click()
    assert "something after the @-sign" in wait_for(browser, ".error-box").text
    assert browser.find_element(By.ID, "add-address").get_attribute("value") == "ann@"
    screenshot(browser, "console-pages-suppressions-error-390.png", PHONE)
    assert fits_a_phone(browser)

    browser.get(f"{base}/suppressions")
    entry = wait_for(browser, 'li[data-address="ann@example.com"]')
    entry.find_element(By.CSS_SELECTOR, "summary").click()
    entry.find_element(By.CSS_SELECTOR, "input[name=reason]").send_keys("wrote to ask back in")
    screenshot(browser, "console-pages-suppressions-1280.png", 1280)
    screenshot(browser, "console-pages-suppressions-390.png", PHONE)
    assert fits_a_phone(browser)
    browser.set_window_size(1280, 900)
    entry = wait_for(browser, 'li[data-address="ann@example.com"]')
    entry.find_element(By.CSS_SELECTOR, "details.remove button[type=submit]").click()
    wait_for(browser, ".notice", "ann@example.com is no longer suppressed")
    entries = [e.get_attribute("data-address") for e in browser.find_elements(By.CSS_SELECTOR, "ul.entries > li")]
    assert entries == ["+14155552671"]
    change = browser.find_element(By.CSS_SELECTOR, 'li[data-change="removed"]').text
    assert "ann@example.com" in change and "owner@example.com" in change and "wrote to ask back in" in change
