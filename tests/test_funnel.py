"""A sequence as a funnel, from real delivery and event rows on SQLite and PostgreSQL: reached, sent,
skipped by reason, deferred, delivered, clicked by people (not bots), goal, unsubscribed, bounced, with
rates; per period and per version; `nurture stats` and the console page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from nurture.cli import main
from nurture.insight.funnel import BadPeriod, parse_since
from nurture.insight.sequence_stats import UnknownSequence, sequence_funnel
from nurture.people import automation
from nurture.people.contacts import record_event
from nurture.store.bounces import mark_bounced
from nurture.store.models import Contact, Delivery
from tests.conftest import worker_env
from tests.console_support import logged_in
from tests.helpers import add_contact, send_due


def row(funnel, step: str):  # noqa: ANN001, ANN201
    return next(r for r in funnel.rows if r.step == step)


def click(rt, email: str, step: str, bot: bool = False) -> None:  # noqa: ANN001
    with Session(rt.db) as session:
        contact = session.exec(select(Contact).where(Contact.email == email)).one()
        automation.record(session, rt, contact, "email.clicked",
                          {"sequence": "customer", "step": step, "bot": bot, "url": "https://x.example"}, rt.clock())
        session.commit()


def bounce(rt, email: str, step: str) -> None:  # noqa: ANN001
    with Session(rt.db) as session:
        contact = session.exec(select(Contact).where(Contact.email == email)).one()
        delivery = session.exec(select(Delivery).where(Delivery.contact_id == contact.id,
                                                       Delivery.step_id == step)).one()
        record_event(session, contact.id, "email.bounced", rt.clock(), {"step": step}, delivery.id)
        mark_bounced(session, delivery.id, "550 no such user", rt.clock())  # as nurture.people.bounces does
        session.commit()


def test_the_customer_funnel_counts_people_step_by_step(make_runtime, database_url, clock) -> None:
    rt = make_runtime(database_url)
    for name in ("ann", "bob", "cat", "dan"):
        add_contact(rt, f"{name}@example.com", "customer")
    send_due(rt)  # thank-you to all four
    click(rt, "ann@example.com", "thank-you")
    click(rt, "ann@example.com", "thank-you")  # the same person twice: one
    click(rt, "bob@example.com", "thank-you", bot=True)  # a mail scanner: not a person
    bounce(rt, "dan@example.com", "thank-you")
    funnel = sequence_funnel(rt, "customer")
    thanks = row(funnel, "thank-you")
    assert thanks.counts["reached"] == 4 and thanks.counts["sent"] == 4
    assert thanks.counts["clicked"] == 1 and thanks.counts["bounced"] == 1 and thanks.counts["delivered"] == 3
    assert thanks.rates["clicked"] == pytest.approx(1 / 3) and thanks.rates["sent"] == 1.0
    assert row(funnel, "feedback").counts["reached"] == 4  # waiting there now: they reached it
    assert row(funnel, "feedback").rates["reached"] == 1.0
    assert funnel.total["entered"] == 4 and funnel.total["sent"] == 4

    clock.advance(days=3, hours=2)
    send_due(rt)  # feedback at 10:00, three days on
    clock.advance(days=8)
    send_due(rt)  # no rating came: wait-rating branches on to the referral ask, whose condition is false
    funnel = sequence_funnel(rt, "customer")
    assert row(funnel, "feedback").counts["sent"] == 4 and row(funnel, "feedback").rates["sent"] == 1.0
    assert row(funnel, "wait-rating").counts["reached"] == 4
    clock.advance(days=3)
    send_due(rt)
    ask = row(sequence_funnel(rt, "customer"), "referral-request")
    assert ask.counts["skipped"] == 4 and ask.counts["sent"] == 0
    assert any(reason.startswith("condition false") for reason in ask.skip_reasons)


def test_a_goal_counts_for_the_steps_sent_before_it(make_runtime, database_url) -> None:
    rt = make_runtime(database_url)
    ann = add_contact(rt, "ann@example.com", "lead-nurture")
    add_contact(rt, "bob@example.com", "lead-nurture")
    send_due(rt)
    with Session(rt.db) as session:
        automation.record(session, rt, session.get(Contact, ann), "purchase", {}, rt.clock())
        session.commit()
    funnel = sequence_funnel(rt, "lead-nurture")
    assert row(funnel, "edu-1").counts["goal"] == 1 and row(funnel, "edu-1").rates["goal"] == 0.5
    assert funnel.total["goal"] == 1 and funnel.total["entered"] == 2


def test_the_period_and_the_version_narrow_the_funnel(make_runtime, sqlite_url, clock) -> None:
    rt = make_runtime(sqlite_url)
    add_contact(rt, "ann@example.com", "lead-nurture")
    send_due(rt)
    clock.advance(days=40)
    assert row(sequence_funnel(rt, "lead-nurture", "30d"), "edu-1").counts["sent"] == 0
    assert row(sequence_funnel(rt, "lead-nurture", "8w"), "edu-1").counts["sent"] == 1
    version = rt.sequences.get("lead-nurture").version
    assert row(sequence_funnel(rt, "lead-nurture", "8w", version), "edu-1").counts["sent"] == 1
    assert row(sequence_funnel(rt, "lead-nurture", "8w", "0" * 12), "edu-1").counts["sent"] == 0
    with pytest.raises(UnknownSequence):
        sequence_funnel(rt, "nope")
    with pytest.raises(BadPeriod):
        parse_since("30x", clock())


def test_nurture_stats_prints_the_funnel(sqlite_url, project: Path, monkeypatch) -> None:
    for key, value in worker_env(project, sqlite_url).items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    assert runner.invoke(main, ["contacts", "add", "ann@example.com", "--sequence", "lead-nurture"]).exit_code == 0
    assert runner.invoke(main, ["send-due"]).exit_code == 0
    text = runner.invoke(main, ["stats", "lead-nurture", "--since", "7d"])
    assert text.exit_code == 0, text.output
    assert "Lead nurture (lead-nurture)" in text.output and "whole sequence: 1 entered, 1 sent" in text.output
    data = json.loads(runner.invoke(main, ["stats", "lead-nurture", "--json"]).output)
    assert data["steps"][0]["step"] == "edu-1" and data["steps"][0]["counts"]["sent"] == 1
    unknown = runner.invoke(main, ["stats", "nope"])
    assert unknown.exit_code == 1 and "unknown sequence 'nope'" in unknown.output


def test_the_funnel_page_shows_each_step_to_a_logged_in_user(make_runtime, sqlite_url) -> None:
    rt = make_runtime(sqlite_url)
    add_contact(rt, "ann@example.com", "lead-nurture")
    send_due(rt)
    client = logged_in(rt, "viewer")
    assert 'href="/sequences/lead-nurture"' in client.get("/").get_data(as_text=True)
    page = client.get("/sequences/lead-nurture?since=7d").get_data(as_text=True)
    assert "Lead nurture" in page and 'data-step="edu-1"' in page and 'data-step="offer"' in page
    assert client.get("/sequences/nope").status_code == 404
    assert client.get("/sequences/lead-nurture?since=bogus").status_code == 200
    assert new_session_redirects(rt)


def new_session_redirects(rt) -> bool:  # noqa: ANN001
    from tests.console_support import new_client

    return new_client(rt).get("/sequences/lead-nurture").status_code == 302
