"""Revenue per sequence step: a simulated week of lead nurture with the real send path, clicks and Stripe
purchases posted over HTTP, each purchase credited to the last touch in its window (click 5 days, send 7 days);
the funnel, `nurture stats` and the console page show conversions and revenue. The rule itself, without
fixtures. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from nurture.cli import main
from nurture.insight.funnel import format_funnel, funnel_json
from nurture.insight.sequence_stats import sequence_funnel
from nurture.people import automation
from nurture.rules.attribution import Purchase, Touch, credit, credited_touch, money
from nurture.rules.inbound import Attribution
from nurture.store.models import Contact
from tests.conftest import FakeClock, worker_env
from tests.console_support import logged_in
from tests.helpers import add_contact, send_due
from tests.integrations_support import (
    SECRETS,
    Site,
    checkout_completed,
    invoice_paid,
    open_site,
    stripe_signed,
    write_integrations,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


# --- the rule ------------------------------------------------------------------------------------------------

def touch(kind: str, hours: float, step: str = "edu-1", sequence: str = "lead-nurture") -> Touch:
    return Touch(1, sequence, step, kind, T0 + timedelta(hours=hours))


def bought(hours: float, amount: str = "10", currency: str = "USD") -> Purchase:
    return Purchase(1, 1, T0 + timedelta(hours=hours), Decimal(amount), currency)


def test_the_last_touch_inside_its_window_is_credited() -> None:
    windows = Attribution()
    touches = [touch("send", 0, "edu-1"), touch("click", 3, "edu-1"), touch("send", 48, "edu-2")]
    assert credited_touch(bought(50), touches, windows).step == "edu-2"  # the later send beats the older click
    assert credited_touch(bought(47), touches, windows) == touches[1]  # before edu-2 was sent: the click
    assert credited_touch(bought(-1), touches, windows) is None  # nothing before it


def test_a_click_counts_five_days_and_a_send_seven() -> None:
    windows = Attribution()
    assert credited_touch(bought(6 * 24), [touch("click", 0)], windows) is None
    assert credited_touch(bought(5 * 24), [touch("click", 0)], windows) is not None
    assert credited_touch(bought(6 * 24), [touch("send", 0)], windows) is not None
    assert credited_touch(bought(7 * 24 + 1), [touch("send", 0)], windows) is None
    longer = Attribution(click=timedelta(days=10), send=timedelta(days=1))
    assert credited_touch(bought(6 * 24), [touch("click", 0)], longer) is not None
    assert credited_touch(bought(2 * 24), [touch("send", 0)], longer) is None


def test_a_tie_goes_to_the_click_and_another_sequence_s_touch_takes_the_credit_away() -> None:
    windows = Attribution()
    tie = [touch("send", 1, "edu-1"), touch("click", 1, "edu-2")]
    assert credited_touch(bought(2), tie, windows).step == "edu-2"
    touches = [touch("send", 0, "edu-1"), touch("send", 5, "thank-you", "customer")]
    assert credit([bought(6)], touches, windows, "lead-nurture") == {}
    steps = credit([bought(6, "240"), bought(7, "35.5", "EUR")], touches, windows, "customer")
    assert steps["thank-you"].conversions == 2
    assert money(steps["thank-you"].revenue) == "EUR 35.50 + USD 240.00"
    assert money({"JPY": Decimal(5000)}) == "JPY 5,000" and money({}) == "—"


# --- a simulated week ----------------------------------------------------------------------------------------

@pytest.fixture
def site(make_runtime, database_url: str, project: Path) -> Iterator[Site]:  # noqa: ANN001
    yield from open_site(make_runtime, database_url, project)


def click(site: Site, email: str, sequence: str, step: str) -> None:
    rt = site.rt
    with Session(rt.db) as session:
        contact = session.exec(select(Contact).where(Contact.email == email)).one()
        automation.record(session, rt, contact, "email.clicked",
                          {"sequence": sequence, "step": step, "bot": False, "url": "https://x.example"}, rt.clock())
        session.commit()


def buy(site: Site, event: dict) -> None:
    reply = site.post("/integrations/stripe", stripe_signed(event))
    assert reply.status == 200 and reply.body["recorded"] is True, reply.body


def at(clock: FakeClock, **delta: float) -> datetime:
    clock.now = T0 + timedelta(**delta)
    return clock.now


def simulated_week(site: Site, clock: FakeClock) -> None:
    """Mon 09:00 four leads get edu-1; ann clicks it at noon and buys on Tuesday (240: edu-1's); Wed 10:00 the
    other three get edu-2; Thu bob buys (120: edu-2's) and ann buys again (45: the customer thank-you's, the
    last message she had); the next Monday's offer goes to cat and dan, and cat buys on Tuesday (90: the
    offer's); eve, in no sequence, buys too (credited to none)."""
    rt = site.rt
    for name in ("ann", "bob", "cat", "dan"):
        add_contact(rt, f"{name}@example.com", "lead-nurture")
    assert send_due(rt)["sent"] == 4
    at(clock, hours=3)
    click(site, "ann@example.com", "lead-nurture", "edu-1")
    buy(site, checkout_completed("ann@example.com", at(clock, days=1), amount=24000))
    assert send_due(rt)["sent"] == 1  # the customer sequence's thank-you, Tuesday 09:00
    at(clock, days=2, hours=1)
    assert send_due(rt)["sent"] == 3  # edu-2, Wednesday 10:00
    buy(site, invoice_paid("bob@example.com", at(clock, days=3), amount=12000))
    buy(site, checkout_completed("ann@example.com", at(clock, days=3, minutes=5), amount=4500))
    for day in range(4, 9):
        at(clock, days=day, hours=2)
        send_due(rt)  # edu-3 on Saturday; the offer on Monday 10:00
    buy(site, checkout_completed("cat@example.com", at(clock, days=8, hours=3), amount=9000))
    buy(site, checkout_completed("eve@example.com", at(clock, days=8, hours=4), amount=1000))


def test_a_week_of_purchases_is_credited_to_the_right_steps(site: Site, clock: FakeClock) -> None:
    simulated_week(site, clock)
    funnel = sequence_funnel(site.rt, "lead-nurture", "30d")
    credited = {row.step: funnel.step_revenue(row.step) for row in funnel.rows}
    assert {step: r.conversions for step, r in credited.items()} == {"edu-1": 1, "edu-2": 1, "edu-3": 0, "offer": 1}
    assert credited["edu-1"].revenue == {"USD": Decimal("240")}
    assert credited["edu-2"].revenue == {"USD": Decimal("120")}
    assert credited["offer"].revenue == {"USD": Decimal("90")}
    assert funnel.total_revenue.conversions == 3 and funnel.total_revenue.revenue == {"USD": Decimal("450")}
    customer = sequence_funnel(site.rt, "customer", "30d")
    assert customer.step_revenue("thank-you").conversions == 1
    assert customer.step_revenue("thank-you").revenue == {"USD": Decimal("45")}

    lines = format_funnel(funnel)
    assert any(line.split()[:3] == ["edu-1", "1", "25%"] and line.endswith("USD 240.00") for line in lines)
    assert "whole sequence: 3 conversions, USD 450.00" in lines
    data = funnel_json(funnel)
    assert data["steps"][0]["conversions"] == 1 and data["steps"][0]["revenue"] == {"USD": "240.0"}
    assert data["revenue"]["conversions"] == 3


def test_changing_the_windows_in_integrations_yaml_credits_again(site: Site, clock: FakeClock,
                                                                   project: Path) -> None:
    simulated_week(site, clock)
    write_integrations(project, "attribution: {click: 1h, send: 1h}\n")
    funnel = sequence_funnel(site.rt, "lead-nurture", "30d")
    # cat bought an hour after the offer was sent; the others a day or more after their touch.
    assert {row.step: funnel.step_revenue(row.step).conversions for row in funnel.rows} == {
        "edu-1": 0, "edu-2": 0, "edu-3": 0, "offer": 1}


def test_stats_and_the_console_show_conversions_and_revenue(make_runtime, sqlite_url: str, project: Path,
                                                              clock: FakeClock, monkeypatch) -> None:  # noqa: ANN001
    site = next(open_site(make_runtime, sqlite_url, project))
    simulated_week(site, clock)
    page = logged_in(site.rt, "viewer").get("/sequences/lead-nurture?since=30d").get_data(as_text=True)
    assert 'data-metric="conversions">1' in page and "USD 240.00" in page and "USD 450.00" in page
    for key, value in worker_env(project, sqlite_url, **SECRETS).items():
        monkeypatch.setenv(key, value)
    # The command reads the real clock: the simulated week lies in late 2026, so look far enough back.
    out = CliRunner().invoke(main, ["stats", "lead-nurture", "--since", "3650d"])
    assert out.exit_code == 0, out.output
    assert "conversions" in out.output and "whole sequence: 3 conversions, USD 450.00" in out.output
    data = json.loads(CliRunner().invoke(main, ["stats", "lead-nurture", "--since", "3650d", "--json"]).output)
    assert data["revenue"] == {"conversions": 3, "revenue": {"USD": "450.0"}}


def test_a_refund_of_a_credited_purchase_comes_off_its_step_s_revenue(site: Site, clock: FakeClock) -> None:
    from tests.integrations_support import charge_refunded

    simulated_week(site, clock)
    cat = next(e for e in events_of_type(site, "purchase") if e.data.get("amount") == 90.0)
    refund = charge_refunded("cat@example.com", at(clock, days=9), amount=3000,
                             payment_intent=cat.data["payment_intent"])
    assert site.post("/integrations/stripe", stripe_signed(refund)).body["type"] == "refund"
    offer = sequence_funnel(site.rt, "lead-nurture", "30d").step_revenue("offer")
    assert offer.conversions == 1 and offer.revenue == {"USD": Decimal("60")}  # 90 less the 30 refunded
    site.post("/integrations/stripe", stripe_signed(charge_refunded("cat@example.com", at(clock, days=9, hours=1),
                                                                   amount=9000, payment_intent="pi_other")))
    assert sequence_funnel(site.rt, "lead-nurture", "30d").step_revenue("offer").revenue == {"USD": Decimal("60")}


def events_of_type(site: Site, type_: str) -> list:
    from nurture.store.models import Event

    with Session(site.rt.db) as session:
        return list(session.exec(select(Event).where(Event.type == type_)))


def test_a_refund_never_takes_more_than_its_purchase() -> None:
    purchase = Purchase(1, 1, T0 + timedelta(hours=2), Decimal("90"), "USD", "pi_1")
    steps = credit([purchase], [touch("send", 0, "offer")], Attribution(), "lead-nurture",
                   {"pi_1": Decimal("500")})
    assert steps["offer"].revenue == {"USD": Decimal("0")} and steps["offer"].conversions == 1
