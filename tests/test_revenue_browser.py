"""The funnel page with conversions and revenue, in headless Chromium at desktop and phone width, after the
simulated week of tests/test_revenue.py. CONSOLE_SCREENSHOTS=DIR keeps the screenshots."""

from __future__ import annotations

from pathlib import Path

from selenium.webdriver.common.by import By

from nurture.web import create_app
from tests.conftest import FakeClock, free_port
from tests.console_support import PASSWORD, add_account
from tests.integrations_support import SECRETS, write_integrations
from tests.test_browser import serve, wait_for
from tests.test_console_browser import browser, log_in, screenshot  # noqa: F401 (browser: a fixture)
from tests.test_revenue import Site, simulated_week


def test_the_funnel_page_shows_revenue_per_step_at_both_widths(make_runtime, sqlite_url: str, project: Path,
                                                                clock: FakeClock, browser) -> None:  # noqa: ANN001, F811
    write_integrations(project)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rt = make_runtime(sqlite_url, BASE_URL=base, **SECRETS)
    stop = serve(create_app(rt), port)
    try:
        simulated_week(Site(rt, base), clock)
        add_account(rt, "owner@example.com")
        browser.get(f"{base}/login?next=/sequences/lead-nurture?since=30d")
        log_in(browser, "owner@example.com", PASSWORD)
        wait_for(browser, "h1", "Lead nurture")
        revenue = browser.find_element(By.CSS_SELECTOR, 'tr[data-step="edu-1"] td[data-metric="revenue"]')
        assert revenue.text == "USD 240.00"
        conversions = browser.find_element(By.CSS_SELECTOR, 'tr[data-step="offer"] td[data-metric="conversions"]')
        assert conversions.text.split()[0] == "1"
        assert "USD 450.00" in browser.find_element(By.CSS_SELECTOR, '[data-total="revenue"]').text
        screenshot(browser, "revenue-funnel-1280.png", 1280)
        screenshot(browser, "revenue-funnel-390.png", 390)
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
        # On a phone the table scrolls in its frame, the step name staying in view, to its revenue column.
        frame = browser.find_element(By.CSS_SELECTOR, ".table-scroll")
        browser.execute_script("arguments[0].scrollLeft = arguments[0].scrollWidth", frame)
        assert revenue.is_displayed()
        screenshot(browser, "revenue-funnel-390-scrolled.png", 390)
    finally:
        stop()
