"""Webhooks out in the console and on the command line: the endpoints and their log, a test ping, a
disabled endpoint switched back on (owners only), `nurture check` on webhooks.yaml, and the page in a real
browser at desktop and phone width (CONSOLE_SCREENSHOTS=DIR keeps the screenshots)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from standardwebhooks.webhooks import Webhook

from nurture.cli import main
from nurture.delivery import webhooks
from nurture.runtime import Runtime
from nurture.web import create_app
from tests.conftest import ROOT, free_port, worker_env
from tests.console_nav_support import follow_nav
from tests.console_support import PASSWORD, add_account, csrf_token, logged_in
from tests.helpers import add_contact
from tests.test_browser import serve, wait_for
from tests.test_console_browser import (
    browser,  # noqa: F401  (a fixture)
    keep,
    log_in,
)
from tests.webhooks_support import SECRET, SECRET_ENV, Receiver, receiver, write_webhooks  # noqa: F401

DEAD = {"WEBHOOK_SECRET_WAREHOUSE": SECRET}


def two_endpoints(project: Path, receiver: Receiver) -> None:  # noqa: F811
    """crm (the receiver: fails three times, then accepts) and warehouse (nothing listens: refused)."""
    (project / "webhooks.yaml").write_text(
        "endpoints:\n"
        f"  - name: crm\n    url: {receiver.url}\n    events: [contact.created, stage.changed]\n"
        "    secret_env: WEBHOOK_SECRET_CRM\n"
        f"  - name: warehouse\n    url: http://127.0.0.1:{free_port()}/in\n    secret_env: WEBHOOK_SECRET_WAREHOUSE\n")


def a_day_of_traffic(rt: Runtime, clock, receiver: Receiver) -> None:  # noqa: ANN001, F811
    webhooks.deliver_due(rt)
    receiver.fail_first = 3
    add_contact(rt, "ann@example.com", first_name="Ann")
    add_contact(rt, "bob@example.com", first_name="Bob")
    for _ in range(32):
        webhooks.deliver_due(rt)
        clock.advance(hours=1)


@pytest.fixture
def busy(make_runtime, sqlite_url, project, clock, receiver) -> Runtime:  # noqa: ANN001, F811
    two_endpoints(project, receiver)
    rt = make_runtime(sqlite_url, **SECRET_ENV, **DEAD)
    a_day_of_traffic(rt, clock, receiver)
    return rt


def test_the_page_lists_endpoints_their_state_and_attempts(busy: Runtime) -> None:
    page = logged_in(busy, "viewer").get("/webhooks").get_data(as_text=True)
    assert "crm" in page and "warehouse" in page
    assert 'class="state active">active' in page and 'class="state disabled">disabled' in page
    assert "204 accepted" in page and "HTTP 503" in page and "Connection refused" in page
    assert "Send a test ping" not in page  # a viewer only looks


def test_an_owner_pings_and_switches_an_endpoint_back_on_a_viewer_may_not(busy: Runtime, receiver) -> None:  # noqa: F811
    viewer = logged_in(busy, "viewer")
    assert viewer.post("/webhooks/crm/ping", data={"csrf_token": csrf_token(viewer, "/webhooks")}).status_code == 403
    owner = logged_in(busy, "owner")
    token = csrf_token(owner, "/webhooks")
    before = len(receiver.requests)
    answer = owner.post("/webhooks/crm/ping", data={"csrf_token": token}, follow_redirects=True)
    assert "Test ping to crm: 204 accepted" in answer.get_data(as_text=True)
    assert len(receiver.requests) == before + 1
    assert owner.post("/webhooks/crm/ping", data={}).status_code == 400  # no CSRF token
    assert owner.post("/webhooks/nope/ping", data={"csrf_token": token}).status_code == 404
    answer = owner.post("/webhooks/warehouse/enable", data={"csrf_token": token}, follow_redirects=True)
    assert 'class="state active">active' in answer.get_data(as_text=True).split("warehouse", 2)[1]


def test_the_cli_lists_logs_and_pings(busy: Runtime, project: Path, sqlite_url: str, receiver) -> None:  # noqa: F811
    env = worker_env(project, sqlite_url, **SECRET_ENV, **DEAD)
    runner = CliRunner()
    listed = runner.invoke(main, ["webhooks", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "crm  active" in listed.output and "warehouse  disabled" in listed.output
    logged = runner.invoke(main, ["webhooks", "log", "crm"], env=env)
    assert logged.exit_code == 0 and "204 accepted" in logged.output and "warehouse" not in logged.output
    pinged = runner.invoke(main, ["webhooks", "test", "crm"], env=env)
    assert pinged.exit_code == 0 and "crm: 204 accepted" in pinged.output
    refused = runner.invoke(main, ["webhooks", "test", "warehouse"], env=env)
    assert refused.exit_code == 1 and "Connection refused" in refused.output
    assert runner.invoke(main, ["webhooks", "test", "nope"], env=env).exit_code == 1
    assert runner.invoke(main, ["webhooks", "secret"]).output.startswith("whsec_")


def test_check_reports_webhooks_yaml_problems_with_their_line(project: Path, sqlite_url: str) -> None:
    (project / "webhooks.yaml").write_text(
        "endpoints:\n"
        "  - name: crm\n    url: ftp://crm.example.com/\n    events: [contact.created, contact.exploded]\n"
        "    secret_env: WEBHOOK_SECRET_CRM\n"
        "  - name: shop\n    url: https://shop.example.com/in\n    secret_env: whsec_pasted-the-secret-itself\n"
        "  - name: erp\n    url: https://erp.example.com/in\n    secret_env: WEBHOOK_SECRET_ERP\n    colour: red\n")
    env = worker_env(project, sqlite_url, WEBHOOK_SECRET_CRM="whsec_c2hvcnQ=")
    result = CliRunner().invoke(main, ["check", "--root", str(project)], env=env)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    for expected in ("webhooks.yaml:3: url must be an http(s) address",
                     "webhooks.yaml:4: unknown event 'contact.exploded'",
                     "webhooks.yaml:5: WEBHOOK_SECRET_CRM must hold at least 24 random bytes",
                     "webhooks.yaml:8: secret_env names a variable like WEBHOOK_SECRET_CRM",
                     "webhooks.yaml:11: WEBHOOK_SECRET_ERP is not set", "webhooks.yaml:12: unknown key 'colour'"):
        assert any(line.startswith(expected) for line in lines), (expected, result.output)
    assert "pasted-the-secret" not in result.output  # a secret put in the file by mistake is not echoed


# --- in a real browser ---------------------------------------------------------------------------------------

@pytest.fixture
def console(make_runtime, sqlite_url, project, clock, receiver) -> Iterator[tuple[Runtime, str]]:  # noqa: ANN001, F811
    shutil.copytree(ROOT / "forms", project / "forms")
    two_endpoints(project, receiver)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rt = make_runtime(sqlite_url, BASE_URL=base, **SECRET_ENV, **DEAD)
    a_day_of_traffic(rt, clock, receiver)
    add_account(rt, "owner@example.com")
    stop = serve(create_app(rt), port)
    yield rt, base
    stop()


def shot(driver: WebDriver, name: str, width: int) -> None:
    driver.set_window_size(width, 900)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(height + 140, 4000))
    keep(f"webhooks-out-{name}-{width}.png", driver.get_screenshot_as_png())


def test_the_webhooks_page_in_a_browser(console, browser: WebDriver) -> None:  # noqa: F811  (browser: a fixture)
    _, base = console
    browser.get(f"{base}/login")
    log_in(browser, "owner@example.com", PASSWORD)
    wait_for(browser, "h1", "The lifecycle map")
    follow_nav(browser, "Webhooks")  # at the phone width the browser starts with: through the menu
    wait_for(browser, "h1", "Webhooks")
    assert wait_for(browser, "#endpoint-warehouse .state", "DISABLED").is_displayed()
    for width in (1280, 390):
        shot(browser, "page", width)
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    browser.set_window_size(1280, 900)
    browser.find_element(By.CSS_SELECTOR, "#endpoint-crm button").click()
    wait_for(browser, ".flash.ok", "Test ping to crm: 204 accepted")
    assert browser.find_element(By.CSS_SELECTOR, "table.log tbody tr td:nth-child(3)").text == "webhook.ping"
    browser.get(f"{base}/webhooks")
    browser.find_element(By.CSS_SELECTOR, "#endpoint-warehouse button.primary").click()
    wait_for(browser, ".flash.ok", "warehouse is switched back on")
    assert browser.find_element(By.CSS_SELECTOR, "#endpoint-warehouse .state").text.lower() == "active"
    shot(browser, "after-actions", 390)
    browser.set_window_size(390, 900)
    browser.find_element(By.CSS_SELECTOR, "details.add summary").click()
    browser.find_element(By.ID, "wh-name").send_keys("Bad Name")
    browser.find_element(By.ID, "wh-url").send_keys("https://shop.example.com/in")
    browser.find_element(By.CSS_SELECTOR, "details.add button.primary").click()
    assert "must use lowercase letters" in wait_for(browser, "details.add .error", "lowercase").text
    shot(browser, "add-refused", 390)
    name = browser.find_element(By.ID, "wh-name")
    name.clear()
    name.send_keys("shop")
    browser.find_element(By.CSS_SELECTOR, "input[value='feedback']").click()
    browser.find_element(By.CSS_SELECTOR, "details.add button.primary").click()
    wait_for(browser, ".flash.ok", "shop added")
    assert "feedback" in browser.find_element(By.CSS_SELECTOR, "#endpoint-shop").text
    shot(browser, "added", 1280)


def test_an_owner_adds_an_endpoint_in_the_console_and_it_receives_events(make_runtime, sqlite_url, clock,
                                                                          receiver) -> None:  # noqa: F811
    rt = make_runtime(sqlite_url, **SECRET_ENV)
    owner = logged_in(rt, "owner")
    token = csrf_token(owner, "/webhooks")
    bad = owner.post("/webhooks/new", data={"csrf_token": token, "name": "Shop!", "url": "ftp://x",
                                            "secret_env": "WEBHOOK_SECRET_NOPE", "events": ["feedback"]})
    page = bad.get_data(as_text=True)
    assert bad.status_code == 400 and "must use lowercase letters" in page and "http(s)" in page
    assert "WEBHOOK_SECRET_NOPE is not set" in page
    assert webhooks.has_endpoints(rt) is False  # nothing was added
    added = owner.post("/webhooks/new", data={"csrf_token": token, "name": "shop", "url": receiver.url,
                                              "secret_env": "WEBHOOK_SECRET_CRM", "events": ["contact.created"]},
                       follow_redirects=True)
    assert "shop added" in added.get_data(as_text=True)
    again = owner.post("/webhooks/new", data={"csrf_token": token, "name": "shop", "url": receiver.url,
                                              "secret_env": "WEBHOOK_SECRET_CRM"})
    assert again.status_code == 400 and "already an endpoint named" in again.get_data(as_text=True)
    add_contact(rt, "ann@example.com")
    webhooks.deliver_due(rt)
    assert [json.loads(r.body)["type"] for r in receiver.accepted] == ["contact.created"]
    assert Webhook(SECRET).sign(receiver.accepted[0].headers["webhook-id"], receiver.accepted[0].at,
                                receiver.accepted[0].body) == receiver.accepted[0].headers["webhook-signature"]

    viewer = logged_in(rt, "viewer")
    assert viewer.post("/webhooks/shop/remove", data={"csrf_token": csrf_token(viewer, "/webhooks")}).status_code == 403
    assert owner.post("/webhooks/shop/remove", data={"csrf_token": token}).status_code == 302
    assert owner.post("/webhooks/shop/remove", data={"csrf_token": token}).status_code == 404
    add_contact(rt, "bob@example.com")
    webhooks.deliver_due(rt)
    assert len(receiver.requests) == 1  # removed: nothing more
