"""A French browser, in real headless Chromium at a phone's width (390 px): the hosted form, its error messages,
the confirm page and its answer come in French, from the starter content the repository ships.

Set LOCALE_SCREENSHOTS=DIR to keep the screenshots (locale-*.png)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from nurture.runtime import Runtime
from nurture.web import create_app
from tests.conftest import SmtpServer, free_port
from tests.helpers import send_due
from tests.locales_support import FORM, contact, text_part, use_starter_content
from tests.test_browser import chromium, serve, wait_for

PHONE = 390
FRENCH = "fr-FR,fr;q=0.9"


@pytest.fixture
def french_browser(tmp_path: Path) -> Iterator[WebDriver]:
    driver = chromium(tmp_path)
    # What a browser set to French sends with every request.
    agent = driver.execute_script("return navigator.userAgent")
    driver.execute_cdp_cmd("Network.setUserAgentOverride", {"userAgent": agent, "acceptLanguage": FRENCH})
    yield driver
    driver.quit()


@pytest.fixture
def served(make_runtime, sqlite_url: str, project: Path, smtp_server: SmtpServer) -> Iterator[tuple[Runtime, str]]:  # noqa: ANN001
    use_starter_content(project)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rt = make_runtime(sqlite_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url, BASE_URL=base,
                      FORM_MIN_FILL_SECONDS="0")
    stop = serve(create_app(rt), port)
    yield rt, base
    stop()


def keep(driver: WebDriver, name: str) -> None:
    """A full-page screenshot at the phone's width, kept when LOCALE_SCREENSHOTS names a folder."""
    driver.set_window_size(PHONE, 844)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(PHONE, min(height + 140, 4000))
    png = driver.get_screenshot_as_png()
    folder = os.environ.get("LOCALE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_bytes(png)


def fits_the_phone(driver: WebDriver) -> bool:
    return driver.execute_script("return document.documentElement.scrollWidth") <= PHONE


def test_a_french_visitor_signs_up_and_confirms_in_french_at_390_px(
        french_browser: WebDriver, served: tuple[Runtime, str], smtp_server: SmtpServer) -> None:
    rt, base = served
    browser = french_browser
    browser.set_window_size(PHONE, 844)
    browser.get(f"{base}/forms/{FORM}")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "fr"
    browser.find_element(By.NAME, "email").send_keys("ann@@example")
    browser.find_element(By.CSS_SELECTOR, ".nf-submit").click()
    wait_for(browser, ".nf-form-error", "Veuillez vérifier les champs signalés.")
    assert "Veuillez saisir une adresse e-mail valide." in browser.find_element(By.CSS_SELECTOR, ".nf-invalid").text
    assert fits_the_phone(browser)
    keep(browser, "locale-form-errors-390.png")

    email = browser.find_element(By.NAME, "email")
    email.clear()
    email.send_keys("ann@example.com")
    browser.find_element(By.NAME, "first_name").send_keys("Ann")
    browser.find_element(By.CSS_SELECTOR, ".nf-submit").click()
    wait_for(browser, "h1", "Merci !")
    assert contact(rt, "ann@example.com").locale == "fr"

    send_due(rt)
    [confirmation] = smtp_server.handler.to("ann@example.com")
    assert confirmation.message["Subject"] == "Confirmez votre adresse e-mail pour Juniper Pottery Studio"
    browser.get(_confirm_url(text_part(confirmation), base))  # the link in the email, as the person clicks it
    wait_for(browser, "h1", "Confirmez votre adresse e\u2011mail")
    assert fits_the_phone(browser)
    keep(browser, "locale-confirm-390.png")
    browser.find_element(By.CSS_SELECTOR, "button.nf-submit").click()
    wait_for(browser, "h1", "C'est parti !")
    assert "Télécharger" in browser.find_element(By.CSS_SELECTOR, "a.nf-submit").text
    keep(browser, "locale-confirmed-390.png")


def _confirm_url(text: str, base: str) -> str:
    start = text.index(f"{base}/confirm/")
    return text[start:].split()[0]


def test_an_owner_sets_a_contacts_language_on_its_page_at_390_px(
        french_browser: WebDriver, served: tuple[Runtime, str]) -> None:
    from tests.console_support import PASSWORD, add_account
    from tests.helpers import add_contact
    from tests.test_console_browser import log_in

    rt, base = served
    add_account(rt, "owner@example.com")
    contact_id = add_contact(rt, "ann@example.com", first_name="Ann")
    browser = french_browser
    browser.set_window_size(PHONE, 844)
    browser.get(f"{base}/contacts/{contact_id}")
    log_in(browser, "owner@example.com", PASSWORD)
    field = wait_for(browser, "input[name=locale]")
    field.send_keys("fr-CA")
    field.find_element(By.XPATH, "./following-sibling::button").click()
    wait_for(browser, "[data-locale=fr_CA]", "Français (Canada) (fr_CA)")
    assert contact(rt, "ann@example.com").locale == "fr_CA"
    assert "changed the language" in browser.page_source  # on the owner's actions, with who did it
    assert fits_the_phone(browser)
    keep(browser, "locale-console-contact-390.png")
