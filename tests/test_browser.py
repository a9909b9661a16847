"""A real browser, from another origin: headless Chromium (Debian's `chromium` + `chromedriver`, driven by
selenium) loads a page served on one localhost port that embeds the form nurture serves on another port,
fills it in and sends it — with the script embed, and with the plain HTML form and JavaScript off. Then
the confirmation email arrives at a real SMTP server, the link is followed in the browser, and the
contact is enrolled and gets the first nurture email."""

from __future__ import annotations

import functools
import re
import shutil
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from sqlmodel import Session, select
from werkzeug.serving import make_server

from nurture.content.forms import FormRegistry
from nurture.runtime import Runtime
from nurture.store.models import Contact, Enrollment
from nurture.web import create_app
from nurture.web.forms import snippets
from tests.conftest import CONTENT, FakeClock, SmtpServer, free_port
from tests.helpers import send_due

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
THANKS = "Almost done: we've sent you an email. Click the link in it to confirm your address."


@dataclass
class Site:
    """nurture on one port, the business's own site on another: two origins."""

    rt: Runtime
    nurture: str
    host: str
    pages: Path


def serve(app: Callable, port: int) -> Callable[[], None]:
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.shutdown


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def serve_directory(directory: Path, port: int) -> Callable[[], None]:
    server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(QuietHandler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.shutdown


@pytest.fixture
def site(make_runtime, sqlite_url, smtp_server: SmtpServer, project: Path, tmp_path: Path) -> Iterator[Site]:
    nurture_port, host_port = free_port(), free_port()
    nurture, host = f"http://127.0.0.1:{nurture_port}", f"http://127.0.0.1:{host_port}"
    shutil.copytree(CONTENT / "forms", project / "forms")
    text = (CONTENT / "forms" / "beginners-guide.yaml").read_text()
    text = text.replace("  - https://juniperpottery.example\n", f"  - {host}\n")
    (project / "forms" / "beginners-guide.yaml").write_text(text + f"redirect: {host}/thanks.html\n")
    rt = make_runtime(sqlite_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url, BASE_URL=nurture)
    pages = tmp_path / "site"
    pages.mkdir()
    (pages / "thanks.html").write_text("<!doctype html><title>Thanks</title><h1>Thanks from the studio site</h1>")
    stop_nurture = serve(create_app(rt), nurture_port)
    stop_host = serve_directory(pages, host_port)
    yield Site(rt, nurture, host, pages)
    stop_host()
    stop_nurture()


def chromium(tmp_path: Path, javascript: bool = True) -> WebDriver:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("chromium and chromedriver are needed (apt-get install -y chromium chromium-driver; "
                    ".ci/run does this)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=390,844"):
        options.add_argument(arg)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    driver = chromium(tmp_path)
    yield driver
    driver.quit()


@pytest.fixture
def browser_without_javascript(tmp_path: Path) -> Iterator[WebDriver]:
    driver = chromium(tmp_path, javascript=False)
    yield driver
    driver.quit()


def wait_for(driver: WebDriver, css: str, text: str | None = None):  # noqa: ANN201
    """The element, once the page has drawn it (and it shows `text`)."""
    def found(d: WebDriver):  # noqa: ANN202
        try:
            elements = [e for e in d.find_elements(By.CSS_SELECTOR, css) if text is None or text in e.text]
        except WebDriverException as exc:
            # The same race as a stale element, as Chromium 156 reports it when the node's document was
            # replaced between finding the element and reading its text: look again.
            if "does not belong to the document" not in str(exc):
                raise
            return False
        return elements[0] if elements else False
    # Stale: the page navigated between finding an element and reading it. Look again.
    wait = WebDriverWait(driver, 15, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(found, f"{css} {text or ''} never appeared")


def fill(driver: WebDriver, **values: str) -> None:
    for name, value in values.items():
        field = driver.find_element(By.CSS_SELECTOR, f"form.nf-form [name={name}]")
        field.clear()
        field.send_keys(value)


def contact(rt: Runtime, email: str) -> Contact:
    with Session(rt.db) as session:
        return session.exec(select(Contact).where(Contact.email == email)).one()


def sequences_of(rt: Runtime, email: str) -> list[str]:
    with Session(rt.db) as session:
        rows = session.exec(select(Enrollment).join(Contact, Contact.id == Enrollment.contact_id)
                            .where(Contact.email == email))
        return [e.sequence_id for e in rows]


def confirm_and_get_the_welcome(site: Site, driver: WebDriver, smtp_server: SmtpServer, email: str) -> None:
    """The rest of every flow: the email arrives, the link is followed, the contact is in."""
    assert contact(site.rt, email).email_status == "pending"
    send_due(site.rt)
    [confirmation] = smtp_server.handler.to(email)
    assert confirmation.message["Subject"] == "Please confirm your email for Juniper Pottery Studio"
    text = confirmation.message.get_body(("plain",)).get_content()
    link = re.search(rf"{re.escape(site.nurture)}/confirm/\S+", text)[0]
    driver.get(link)
    wait_for(driver, "button.nf-submit", "Confirm my email").click()
    wait_for(driver, "h1", "You're in!")
    assert contact(site.rt, email).email_status == "subscribed"
    assert "lead-nurture" in sequences_of(site.rt, email)
    send_due(site.rt)
    welcome = smtp_server.handler.to(email)[-1].message
    assert welcome["Subject"].startswith("Welcome to Juniper Pottery Studio")
    assert "https://juniperpottery.example/guides/beginners-guide.pdf" in welcome.get_body(("plain",)).get_content()


def test_the_script_embed_works_from_another_origin(site: Site, browser: WebDriver, smtp_server: SmtpServer,
                                                     clock: FakeClock) -> None:
    (site.pages / "index.html").write_text(textwrap.dedent(f"""\
        <!doctype html><html><head><meta charset="utf-8"><title>Juniper Pottery Studio</title></head>
        <body><h1>Learn the wheel</h1>
        <script src="{site.nurture}/forms/beginners-guide/embed.js" async></script>
        <p>Footer of the studio's own site.</p></body></html>"""))
    page = f"{site.host}/index.html?utm_source=browser-test&utm_campaign=spring&ref=FRIEND1"
    browser.get(page)
    wait_for(browser, "form.nf-form button.nf-submit", "Send me the guide")
    clock.advance(seconds=10)  # the time a person takes to read and type (the minimum fill time is 3 s)

    fill(browser, email="ann@", first_name="Ann", phone="12")
    browser.find_element(By.CSS_SELECTOR, "form.nf-form button.nf-submit").click()
    wait_for(browser, "[data-field=email] .nf-error", "There must be something after the @-sign.")
    assert wait_for(browser, "[data-field=phone] .nf-error").text.startswith("Please enter a valid phone number")
    assert browser.current_url == page  # errors are shown inline, on the host page

    fill(browser, email="Ann.Browser@Example.com", phone="+1 415 555 2671")
    browser.find_element(By.CSS_SELECTOR, "form.nf-form button.nf-submit").click()
    assert wait_for(browser, ".nf-embed .nf-status", THANKS)
    assert browser.current_url == page
    ann = contact(site.rt, "ann.browser@example.com")
    assert ann.phone == "+14155552671" and ann.first_name == "Ann"
    assert ann.attribution["utm_source"] == "browser-test" and ann.attribution["ref"] == "FRIEND1"
    assert ann.attribution["landing_page"] == page and ann.timezone  # the browser's own zone
    confirm_and_get_the_welcome(site, browser, smtp_server, "ann.browser@example.com")


def test_the_plain_html_form_works_from_another_origin_with_javascript_off(
        site: Site, browser_without_javascript: WebDriver, smtp_server: SmtpServer, clock: FakeClock) -> None:
    browser = browser_without_javascript
    form = FormRegistry(site.rt.settings.forms_dir).get("beginners-guide")
    html = next(text for title, text in snippets(site.rt, form).items() if title.startswith("plain HTML"))
    (site.pages / "plain.html").write_text(f"<!doctype html><meta charset='utf-8'><title>Sign up</title>{html}")
    browser.get(f"{site.host}/plain.html")
    clock.advance(seconds=10)

    fill(browser, email="bob@example.com", first_name="<b>Bob</b>", phone="12")
    browser.find_element(By.CSS_SELECTOR, "button.nf-submit").click()
    # Shown again by nurture (its own origin), with the message and what was typed, escaped.
    wait_for(browser, ".nf-error", "Please enter a valid phone number")
    assert browser.current_url == f"{site.nurture}/forms/beginners-guide"
    assert browser.find_element(By.NAME, "first_name").get_attribute("value") == "<b>Bob</b>"
    assert browser.find_elements(By.CSS_SELECTOR, ".nf-form b") == []

    fill(browser, phone="(415) 555-2671")  # at once: the fill time still counts from the first page
    browser.find_element(By.CSS_SELECTOR, "button.nf-submit").click()
    wait_for(browser, "h1", "Thanks from the studio site")  # POST, then 303 to the site's thank-you page
    assert browser.current_url == f"{site.host}/thanks.html"
    assert contact(site.rt, "bob@example.com").first_name == "<b>Bob</b>"
    confirm_and_get_the_welcome(site, browser, smtp_server, "bob@example.com")
