"""The experiments on the sequence's funnel page, in headless Chromium at desktop and phone width: each
variant's rate with its interval drawn, the verdict when there are enough contacts, and "not enough data
yet" when there are not. CONSOLE_SCREENSHOTS=DIR keeps the screenshots."""

from __future__ import annotations

from pathlib import Path

from selenium.webdriver.common.by import By

from nurture.web import create_app
from tests.conftest import free_port, write_sequence
from tests.console_support import PASSWORD, add_account
from tests.experiments_support import TRIAL, seed_results
from tests.test_browser import serve, wait_for
from tests.test_console_browser import browser, keep, log_in, screenshot  # noqa: F401 (browser: a fixture)

# 12,000 contacts: A's people click one message in 10, B's one in 8; a goal for one held-out entry in 20
# and one sent-to entry in 12.
CLICKS = {"A": 10, "B": 8}
GOALS = {True: 20, False: 12}


def test_the_funnel_page_shows_each_variant_with_its_interval_and_the_verdict(make_runtime, sqlite_url: str,
                                                                             project: Path, browser) -> None:  # noqa: ANN001, F811
    write_sequence(project, "trial", TRIAL)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rt = make_runtime(sqlite_url, BASE_URL=base)
    seed_results(rt, 12_000, CLICKS, GOALS)
    stop = serve(create_app(rt), port)
    try:
        add_account(rt, "owner@example.com")
        browser.get(f"{base}/login?next=/sequences/trial?since=30d")
        log_in(browser, "owner@example.com", PASSWORD)
        wait_for(browser, "h2#experiments", "Experiments")
        hello = browser.find_element(By.CSS_SELECTOR, '[data-experiment="hello"]')
        assert hello.find_element(By.CSS_SELECTOR, "h3").text == "step hello: 2 variants, judged on clicks"
        assert hello.find_element(By.CSS_SELECTOR, ".verdict").text.startswith("B is ahead: 12.5% vs 10.0%")
        b_row = hello.find_element(By.CSS_SELECTOR, 'tr[data-arm="B"]').text
        assert "12.5%" in b_row
        offer = browser.find_element(By.CSS_SELECTOR, '[data-experiment="offer"] .verdict').text
        assert offer == "not enough data yet — nothing sent yet"
        holdout = browser.find_element(By.CSS_SELECTOR, '[data-experiment="holdout"]')
        assert holdout.find_element(By.CSS_SELECTOR, "h3").text == "holdout 10%: goal reached, sent vs held out"
        waiting = holdout.find_element(By.CSS_SELECTOR, ".verdict").text
        assert waiting.startswith("not enough data yet — about ") and waiting.endswith(" more contacts needed")
        browser.execute_script("document.getElementById('experiments').scrollIntoView()")
        screenshot(browser, "experiments-1280.png", 1280)
        screenshot(browser, "experiments-390.png", 390)
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
        assert hello.find_element(By.CSS_SELECTOR, ".verdict").is_displayed()
        keep("experiments-390-section.png", browser.find_element(By.ID, "experiments-list").screenshot_as_png)
    finally:
        stop()
