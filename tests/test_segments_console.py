"""The console's Segments pages: the list with live counts, a segment in plain words with its count and its
newest members linking to their contact pages — in a real browser at desktop and phone width, and through
the test client (a viewer may look; an unknown segment is a 404; a broken file is shown, not a 500).

Set CONSOLE_SCREENSHOTS=DIR to keep the screenshots (segments-*.png).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from nurture.runtime import Runtime
from nurture.web import create_app
from tests.conftest import ROOT, free_port
from tests.console_nav_support import follow_nav
from tests.console_support import PASSWORD, add_account, logged_in
from tests.helpers import add_contact
from tests.test_browser import serve, wait_for
from tests.test_console_browser import browser, log_in, screenshot  # noqa: F401  (browser: a fixture)

PHONE = 390
AUTH = {"Authorization": "Bearer test-api-key-0123456789"}


def with_people(project: Path, make_runtime, url: str, **overrides: str) -> Runtime:  # noqa: ANN001
    """The starter segments and a `vips` one; 12 contacts, 5 of them tagged vip, 3 who bought."""
    shutil.copytree(ROOT / "segments", project / "segments")
    (project / "segments" / "vips.yaml").write_text(
        "id: vips\nname: VIPs\ndescription: Tagged vip by the studio.\ncondition: {tag: vip}\n")
    rt = make_runtime(url, **overrides)
    client = create_app(rt).test_client()
    for n in range(12):
        vip = n % 3 == 0 or n == 1
        add_contact(rt, f"person{n}@example.com", first_name=f"Person{n}", tags=("vip",) if vip else ())
    for n in (2, 5, 7):
        assert client.post("/api/events", headers=AUTH, json={"email": f"person{n}@example.com",
                                                              "type": "purchase"}).status_code < 300
    return rt


@pytest.fixture
def console(make_runtime, sqlite_url, project: Path) -> Iterator[tuple[Runtime, str]]:  # noqa: ANN001
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rt = with_people(project, make_runtime, sqlite_url, BASE_URL=base)
    add_account(rt, "owner@example.com")
    stop = serve(create_app(rt), port)
    yield rt, base
    stop()


def fits_a_phone(driver: WebDriver) -> bool:
    return driver.execute_script("return document.documentElement.scrollWidth") <= PHONE


def test_from_the_nav_to_a_segment_and_on_to_a_member(console, browser: WebDriver) -> None:  # noqa: F811
    _rt, base = console
    browser.get(f"{base}/")
    log_in(browser, "owner@example.com", PASSWORD)
    wait_for(browser, "h1", "The lifecycle map")
    follow_nav(browser, "Segments")  # at phone width, through the Menu
    wait_for(browser, "h1", "Segments")
    counts = {el.get_attribute("data-segment"): el.find_element(By.CSS_SELECTOR, '[data-metric="count"]').text
              for el in browser.find_elements(By.CSS_SELECTOR, "section.segment")}
    assert counts == {"customers-90d": "3 contacts", "engaged-leads": "0 contacts", "lapsed": "0 contacts",
                      "vips": "5 contacts"}
    screenshot(browser, "segments-list-1280.png", 1280)
    screenshot(browser, "segments-list-390.png", PHONE)
    assert fits_a_phone(browser)

    browser.find_element(By.LINK_TEXT, "VIPs").click()
    wait_for(browser, "h1", "VIPs")
    assert browser.find_element(By.CSS_SELECTOR, "[data-words]").text == "In this segment: tagged “vip”."
    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-contact]")
    assert [r.find_element(By.TAG_NAME, "a").text for r in rows] == [
        "person9@example.com", "person6@example.com", "person3@example.com", "person1@example.com",
        "person0@example.com"]
    screenshot(browser, "segments-one-1280.png", 1280)
    screenshot(browser, "segments-one-390.png", PHONE)
    assert fits_a_phone(browser)
    rows[0].find_element(By.TAG_NAME, "a").click()
    wait_for(browser, "h1", "person9@example.com")
    assert browser.find_element(By.CSS_SELECTOR, "[data-segments]").text == "VIPs"  # the segments it is in
    screenshot(browser, "segments-contact-390.png", PHONE)
    assert fits_a_phone(browser)


def test_a_viewer_sees_the_counts_and_an_unknown_segment_is_not_found(make_runtime, database_url,  # noqa: ANN001
                                                                      project: Path) -> None:
    rt = with_people(project, make_runtime, database_url)
    client = logged_in(rt, role="viewer")
    page = client.get("/segments")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'data-segment="vips"' in text and "tagged “vip”" in text
    one = client.get("/segments/lapsed").get_data(as_text=True)
    assert "where segment" in one and "customers-90d" in one  # the segment it names, in words too
    assert client.get("/segments/no-such-thing").status_code == 404
    buyer = client.get("/contacts/3").get_data(as_text=True)  # person2: bought, not a vip
    assert 'href="/segments/customers-90d">Customers of the last 90 days</a></dd>' in buyer


def test_a_broken_segment_file_is_shown_and_the_loaded_segments_keep_counting(make_runtime, sqlite_url,  # noqa: ANN001
                                                                              project: Path) -> None:
    rt = with_people(project, make_runtime, sqlite_url)
    client = logged_in(rt)
    assert 'data-segment="vips"' in client.get("/segments").get_data(as_text=True)
    (project / "segments" / "vips.yaml").write_text("id: vips\nname: VIPs\ncondition: {tag: [}\n")
    page = client.get("/segments")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "segments/vips.yaml:3: YAML syntax error" in text
    assert 'data-segment="vips"' in text  # the version loaded before keeps counting
