"""The reputation guard: bounces and complaints coming back through the real bounce path (DSNs and ARF
reports in the bounce maildir) raise the rates over the newest sends; above a threshold marketing email
pauses by itself while confirmations still go, the owner gets one alert email, and `nurture
resume-sending` (or the console) lets it go again. The pause is in the database: a Redis flush keeps it."""

from __future__ import annotations

import json
import mailbox
from pathlib import Path

import pytest
from click.testing import CliRunner
from redis import Redis
from sqlmodel import Session, select

from nurture.cli import main
from nurture.delivery import bounce_mail, reputation
from nurture.delivery.deliverability import current_backoffs
from nurture.delivery.pacing import pacer
from nurture.insight import why
from nurture.rules.pacing import domain_group
from nurture.rules.reputation import Rates, Thresholds, percent, verdict
from nurture.runtime import Runtime
from nurture.store.models import Delivery, SendingPause
from tests.bounce_samples import arf_complaint, postfix_dsn
from tests.conftest import FakeClock, SmtpServer, worker_env
from tests.console_support import csrf_token, logged_in
from tests.helpers import add_contact, send_due
from tests.pacing_support import events_of

OWNER = "owner@juniper.example"  # tests/content/sequences/_lifecycle.yaml
PAUSED = "sending paused: reputation guard"


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    return tmp_path / "bounces"


def guard_env(maildir: Path, smtp_server: SmtpServer, **extra: str) -> dict[str, str]:
    return dict(EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url, BOUNCE_MAILDIR=str(maildir),
                BOUNCE_ADDRESS="bounces@juniper.test", REPUTATION_MIN_SENDS="20", **extra)


@pytest.fixture
def rt(make_runtime, database_url, smtp_server: SmtpServer, maildir: Path, redis_url: str) -> Runtime:  # noqa: ANN001
    return make_runtime(database_url, REDIS_URL=redis_url, **guard_env(maildir, smtp_server))


def send_to(rt: Runtime, n: int, prefix: str = "lead") -> None:
    for i in range(n):
        add_contact(rt, f"{prefix}{i}@example.com", "lead-nurture")
    assert send_due(rt) == {"sent": n}


def bounce(rt: Runtime, smtp_server: SmtpServer, maildir: Path, addresses: list[str], complaint: bool = False) -> None:
    """Each address's message comes back as the relay writes it, and the worker reads the mailbox."""
    box = mailbox.Maildir(maildir, create=True)
    for address in addresses:
        [received] = smtp_server.handler.to(address)
        report = arf_complaint(received.mail_from, address, received.data) if complaint \
            else postfix_dsn(received.mail_from, address, received.data)
        box.add(report)
    assert sum(bounce_mail.read_mailbox(rt).values()) == len(addresses)


def alerts_to_owner(smtp_server: SmtpServer) -> list[str]:
    return [r.message["Subject"] for r in smtp_server.handler.to(OWNER)]


def test_the_verdict_is_over_the_threshold_only_from_enough_sends() -> None:
    limits = Thresholds(0.05, 0.001, min_sends=200)
    assert verdict(Rates(199, 50, 5), limits) is None  # too few sends to judge
    assert verdict(Rates(1000, 50, 1), limits) is None  # exactly 5% and 0.1%: not above
    assert verdict(Rates(1000, 51, 0), limits) == "bounce rate 5.1% over 5% in the last 1000 sends"
    assert verdict(Rates(1000, 30, 2), limits) == "complaint rate 0.2% over 0.1% in the last 1000 sends"
    assert [percent(x) for x in (0.05, 0.001, 0.0123, 0.0)] == ["5%", "0.1%", "1.23%", "0%"]


def test_a_run_where_10_percent_bounce_pauses_marketing_and_confirmations_still_go(
        rt, smtp_server, maildir, clock: FakeClock, redis_url) -> None:
    send_to(rt, 30)
    bounce(rt, smtp_server, maildir, ["lead0@example.com", "lead1@example.com", "lead2@example.com"])

    for i in range(5):
        add_contact(rt, f"later{i}@example.com", "lead-nurture")
    add_contact(rt, "new@example.com", "confirm-email")
    assert send_due(rt) == {"sent": 1, "deferred": 5}
    assert smtp_server.handler.to("new@example.com")  # the confirmation went
    assert not any(smtp_server.handler.to(f"later{i}@example.com") for i in range(5))
    held = events_of(rt, "email.deferred")
    assert [e.data["reason"] for e in held] == [PAUSED] * 5

    with Session(rt.db) as session:
        [pause] = session.exec(select(SendingPause)).all()
    assert pause.reason == "bounce rate 10% over 5% in the last 30 sends"
    assert (pause.sends_total, pause.window_sends, pause.alert_recipient) == (30, 30, OWNER)

    Redis.from_url(redis_url).flushall()  # the pause is the database's: a flush does not resume
    send_due(rt)  # the tick sends the owner's alert
    clock.advance(minutes=16)
    assert send_due(rt) == {"deferred": 5}
    assert alerts_to_owner(smtp_server) == ["Marketing email paused: bounce rate 10% over 5% in the last 30 sends"]
    [alert] = smtp_server.handler.to(OWNER)
    assert "nurture resume-sending" in alert.message.get_body(("plain",)).get_content()


def test_resume_sending_lets_marketing_go_and_judges_the_sends_after_it(
        rt, smtp_server, maildir, clock: FakeClock, project, database_url, monkeypatch) -> None:
    send_to(rt, 20)
    bounce(rt, smtp_server, maildir, ["lead0@example.com", "lead1@example.com"])
    add_contact(rt, "later@example.com", "lead-nurture")
    assert send_due(rt) == {"deferred": 1}
    for name, value in worker_env(project, database_url, **guard_env(maildir, smtp_server)).items():
        monkeypatch.setenv(name, value)

    shown = CliRunner().invoke(main, ["reputation"])
    assert shown.exit_code == 0
    assert "PAUSED since" in shown.output and "bounce rate 10% over 5% in the last 20 sends" in shown.output
    assert "  lead-nurture                    20 sends      10% bounced (2)       0% complaints (0)" in shown.output

    resumed = CliRunner().invoke(main, ["resume-sending", "--by", "kim"])
    assert (resumed.exit_code, "resumed: the pause of" in resumed.output) == (0, True)
    assert CliRunner().invoke(main, ["resume-sending"]).output == "sending was not paused\n"
    clock.advance(minutes=16)
    assert send_due(rt) == {"sent": 1}
    assert smtp_server.handler.to("later@example.com")
    with Session(rt.db) as session:
        [pause] = session.exec(select(SendingPause)).all()
        newest = max(session.exec(select(Delivery.id)).all())
    assert (pause.resumed_by, pause.open_key, pause.resumed_after) == ("kim", None, newest - 1)
    assert "since the last resume" in CliRunner().invoke(main, ["reputation"]).output


def test_a_complaint_rate_over_the_threshold_pauses_too(rt, smtp_server, maildir, clock) -> None:
    send_to(rt, 25)
    bounce(rt, smtp_server, maildir, ["lead3@example.com"], complaint=True)
    add_contact(rt, "new@example.com", "confirm-email")
    assert send_due(rt) == {"sent": 1}
    standing = reputation.standing(rt)
    assert standing.pause is not None and standing.pause.reason == \
        "complaint rate 4% over 0.1% in the last 25 sends"
    assert standing.by_sequence["lead-nurture"] == Rates(25, 0, 1)
    assert standing.by_sequence["confirm-email"] == Rates(1, 0, 0)


def test_with_the_guard_off_nothing_pauses(make_runtime, database_url, smtp_server, maildir) -> None:
    rt = make_runtime(database_url, **guard_env(maildir, smtp_server, REPUTATION_GUARD="false"))
    send_to(rt, 20)
    bounce(rt, smtp_server, maildir, [f"lead{i}@example.com" for i in range(5)])
    send_to(rt, 3, prefix="more")
    assert reputation.standing(rt).pause is None


def test_the_console_shows_the_rates_and_an_owner_resumes_there(rt, smtp_server, maildir, clock) -> None:
    send_to(rt, 20)
    bounce(rt, smtp_server, maildir, ["lead0@example.com", "lead1@example.com"])
    add_contact(rt, "later@example.com", "lead-nurture")
    send_due(rt)
    viewer = logged_in(rt, "viewer")
    page = viewer.get("/reputation").get_data(as_text=True)
    assert "Marketing email is paused" in page and "bounce rate 10% over 5%" in page
    assert 'data-sequence="lead-nurture"' in page
    assert viewer.post("/reputation/resume", data={"csrf_token": csrf_token(viewer, "/reputation")}).status_code == 403
    owner = logged_in(rt, "owner")
    assert owner.post("/reputation/resume").status_code == 400  # no CSRF token
    response = owner.post("/reputation/resume", data={"csrf_token": csrf_token(owner, "/reputation")})
    assert (response.status_code, response.headers["Location"]) == (302, "/reputation")
    assert "Sending normally" in owner.get("/reputation").get_data(as_text=True)
    assert reputation.standing(rt).history[0].resumed_by == "owner@example.com"


def test_the_reputation_page_in_a_browser_at_desktop_and_phone_width(
        make_runtime, sqlite_url, smtp_server, maildir, tmp_path) -> None:  # noqa: ANN001
    from nurture.web import create_app
    from tests.conftest import free_port
    from tests.console_support import PASSWORD, add_account
    from tests.test_browser import chromium, serve, wait_for
    from tests.test_console_browser import log_in, screenshot

    port = free_port()
    rt = make_runtime(sqlite_url, BASE_URL=f"http://127.0.0.1:{port}", **guard_env(maildir, smtp_server))
    send_to(rt, 20)
    bounce(rt, smtp_server, maildir, ["lead0@example.com", "lead1@example.com"])
    bounce(rt, smtp_server, maildir, ["lead5@example.com"], complaint=True)
    add_contact(rt, "new@example.com", "confirm-email")
    send_due(rt)
    add_account(rt, "owner@example.com")
    stop = serve(create_app(rt), port)
    driver = chromium(tmp_path)
    try:
        driver.get(f"http://127.0.0.1:{port}/reputation")
        log_in(driver, "owner@example.com", PASSWORD)
        wait_for(driver, "h1", "Sending reputation")
        assert "Marketing email is paused" in wait_for(driver, "#state").text
        screenshot(driver, "pacing-reputation-1280.png", 1280)
        screenshot(driver, "pacing-reputation-390.png", 390)
        assert driver.execute_script("return document.documentElement.scrollWidth") <= 390
        driver.set_window_size(1280, 900)
        wait_for(driver, "#state button").click()
        assert "Sending normally" in wait_for(driver, "#state", "Sending normally").text
        screenshot(driver, "pacing-reputation-resumed-390.png", 390)
    finally:
        driver.quit()
        stop()


def test_why_says_a_marketing_email_is_held_by_the_pause_and_how_to_lift_it(
        rt, smtp_server, maildir, clock: FakeClock, project, database_url, monkeypatch) -> None:
    send_to(rt, 20)
    bounce(rt, smtp_server, maildir, ["lead0@example.com", "lead1@example.com"])
    add_contact(rt, "later@example.com", "lead-nurture")
    add_contact(rt, "new@example.com", "confirm-email")
    add_contact(rt, "waiting@example.com", "confirm-email")
    assert send_due(rt) == {"deferred": 1, "sent": 2}
    for name, value in worker_env(project, database_url, **guard_env(maildir, smtp_server)).items():
        monkeypatch.setenv(name, value)

    told = CliRunner().invoke(main, ["why", "later@example.com"])
    assert told.exit_code == 0, told.output
    held = [line.strip() for line in told.output.splitlines() if line.strip().startswith("next:")]
    assert held == ["next: edu-1 due 2026-11-23 09:15 Mon UTC, held: sending paused by the reputation guard since "
                    "2026-11-23 09:00 Mon UTC (bounce rate 10% over 5% in the last 20 sends); `nurture resume-sending` "
                    "lifts it"]
    as_json = json.loads(CliRunner().invoke(main, ["why", "later@example.com", "--json"]).output)
    assert as_json["sequences"][0]["next"]["held"].startswith("held: sending paused by the reputation guard")
    # A confirmation is never held by the guard: why does not say it is.
    assert "held:" not in CliRunner().invoke(main, ["why", "new@example.com"]).output

    assert CliRunner().invoke(main, ["resume-sending"]).exit_code == 0
    assert "held:" not in CliRunner().invoke(main, ["why", "later@example.com"]).output


def test_why_says_an_email_is_held_while_its_domain_group_is_backed_off(rt, clock: FakeClock) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    until = pacer(rt).throttle(domain_group("ann@example.com"), clock())
    with Session(rt.db) as session:
        story = why.explain(session, "ann@example.com", rt.sequences, clock(), rt.settings.sms,
                            current_backoffs(rt, clock()))
    [state] = [line.strip() for line in why.format_story(story) if line.strip().startswith("next:")]
    assert state == (f"next: edu-1 due 2026-11-23 09:00 Mon UTC, held: the relay asked to slow down for "
                     f"{domain_group('ann@example.com')}; pacing backs it off until {until:%Y-%m-%d %H:%M %a} UTC")
