"""Experiments through the real send path (SQLite and PostgreSQL, a real SMTP server): each contact gets its
variant, recorded on its delivery row; the holdout gets nothing and its goals count; the results count
people's clicks (not bots') and goals per variant; `nurture stats` and `nurture why` say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import inspect, text
from sqlmodel import Session, select

from nurture.cli import main
from nurture.insight.experiments import format_results
from nurture.insight.sequence_stats import sequence_experiments
from nurture.insight.why import explain, format_story
from nurture.people import automation
from nurture.rules import experiments
from nurture.runtime import Runtime
from nurture.store.db import alembic_config
from nurture.store.models import Contact, Enrollment, Event
from tests.conftest import SmtpServer, worker_env, write_sequence
from tests.experiments_support import SUBJECTS, TRIAL, trial
from tests.helpers import add_contact, deliveries, send_due

CONTACTS = 40


@pytest.fixture
def rt(make_runtime, database_url, smtp_server: SmtpServer, project: Path) -> Runtime:  # noqa: ANN001
    write_sequence(project, "trial", TRIAL)
    return make_runtime(database_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url)


def record(rt: Runtime, email: str, type_: str, data: dict) -> None:
    with Session(rt.db) as session:
        contact = session.exec(select(Contact).where(Contact.email == email)).one()
        automation.record(session, rt, contact, type_, data, rt.clock())
        session.commit()


def enroll_all(rt: Runtime) -> dict[str, int]:
    return {f"p{n:02d}@example.com": add_contact(rt, f"p{n:02d}@example.com", "trial") for n in range(CONTACTS)}


def test_each_contact_gets_its_variant_and_the_holdout_gets_nothing(rt, smtp_server) -> None:  # noqa: ANN001
    ids = enroll_all(rt)
    send_due(rt)
    sequence = trial()
    held = {email for email, contact_id in ids.items() if experiments.held_out(sequence, contact_id)}
    assert 0 < len(held) < CONTACTS  # 40 contacts at 10%: a few (the hash decides which, the same every run)
    got = {r.rcpt_tos[0]: SUBJECTS[r.message["Subject"]] for r in smtp_server.received}
    assert set(got) == set(ids) - held and len(smtp_server.received) == len(got)
    expected = {email: experiments.variant_for("trial", sequence.steps[0], ids[email]).id for email in got}
    assert got == expected
    recorded = {d.contact_id: d.variant for d in deliveries(rt)}
    assert recorded == {ids[email]: variant for email, variant in got.items()}
    with Session(rt.db) as session:
        skipped = session.exec(select(Event).where(Event.type == "step.skipped")).all()
    assert {e.contact_id for e in skipped} == {ids[email] for email in held}
    assert {e.data["reason"] for e in skipped} == {experiments.held_out_reason(sequence)}


def test_the_results_count_people_clicks_per_variant_and_the_holdouts_goals(rt, smtp_server, clock) -> None:  # noqa: ANN001
    ids = enroll_all(rt)
    send_due(rt)
    sequence = trial()
    held = sorted(email for email, n in ids.items() if experiments.held_out(sequence, n))
    by_variant: dict[str, list[str]] = {"A": [], "B": []}
    for email, n in sorted(ids.items()):
        if email not in held:
            by_variant[experiments.variant_for("trial", sequence.steps[0], n).id].append(email)
    clock.advance(hours=1)
    for email in by_variant["A"][:3] + by_variant["B"][:2]:  # people
        record(rt, email, "email.clicked", {"sequence": "trial", "step": "hello", "bot": False, "url": "https://x"})
    record(rt, by_variant["A"][0], "email.clicked", {"sequence": "trial", "step": "hello", "bot": False})  # again
    record(rt, by_variant["B"][3], "email.clicked", {"sequence": "trial", "step": "hello", "bot": True})  # scanner
    record(rt, held[0], "purchase", {"product": "wheel-6-week"})  # a held-out contact converts anyway
    record(rt, by_variant["B"][0], "purchase", {"product": "wheel-6-week"})

    hello, offer, holdout = sequence_experiments(rt, "trial", "30d")
    assert [(a.id, a.n, a.k) for a in hello.arms] == [("A", len(by_variant["A"]), 3), ("B", len(by_variant["B"]), 2)]
    assert hello.summary.startswith("not enough data yet — about ") and hello.summary.endswith(
        " more contacts needed")
    assert [(a.id, a.n, a.k) for a in holdout.arms] == [("holdout", len(held), 1), ("sent", CONTACTS - len(held), 1)]
    with Session(rt.db) as session:
        ended = session.exec(select(Enrollment).where(Enrollment.contact_id == ids[held[0]],
                                                  Enrollment.sequence_id == "trial")).one()
    assert ended.stop_reason == "goal reached: event purchase"
    assert offer.step == "offer" and sum(a.n for a in offer.arms) == 0  # not sent yet
    lines = format_results((hello, holdout))
    assert lines[0] == "step hello: 2 variants, judged on clicks"
    assert lines[1].split()[:6] == ["A", "70%", str(len(by_variant["A"])), "contacts", "3", "clicked"]
    assert lines[4] == "holdout 10%: goal reached, sent vs held out"
    assert lines[5].split()[:7] == ["holdout", "10%", str(len(held)), "contacts", "1", "reached", "the"]

    # Two days on, the offer's variants go to those still in the sequence; judged on the goal.
    clock.advance(days=2, hours=1)
    send_due(rt)
    offer = sequence_experiments(rt, "trial", "30d")[1]
    assert offer.step == "offer" and offer.judge == "goal"
    assert sum(a.n for a in offer.arms) == CONTACTS - len(held) - 1  # the buyer's sequence had ended
    assert sum(a.k for a in offer.arms) == 0
    buyer = by_variant["A"][1]  # its run ended with the offer, the last step: the purchase after it still counts
    clock.advance(hours=1)
    record(rt, buyer, "purchase", {"product": "wheel-6-week"})
    offer = sequence_experiments(rt, "trial", "30d")[1]
    bought = experiments.variant_for("trial", sequence.steps[1], ids[buyer]).id
    assert [(a.id, a.k) for a in offer.arms] == [(v, int(v == bought)) for v in ("plain", "urgent")]
    holdout = sequence_experiments(rt, "trial", "30d")[2]
    assert [(a.id, a.k) for a in holdout.arms] == [("holdout", 1), ("sent", 2)]


def test_why_names_the_variant_sent_and_says_held_out(rt, smtp_server, clock) -> None:  # noqa: ANN001
    ids = enroll_all(rt)
    send_due(rt)
    sequence = trial()
    held = next(email for email, n in ids.items() if experiments.held_out(sequence, n))
    sent = next(email for email, n in ids.items() if not experiments.held_out(sequence, n))
    variant = experiments.variant_for("trial", sequence.steps[0], ids[sent]).id
    offer = experiments.variant_for("trial", sequence.steps[1], ids[sent]).id
    with Session(rt.db) as session:
        story = "\n".join(format_story(explain(session, sent, rt.sequences, clock())))
        held_story = "\n".join(format_story(explain(session, held, rt.sequences, clock())))
    assert f", variant {variant}" in story and f"next: offer (variant {offer}) not yet due" in story
    assert "hello  skipped     held out (the sequence's 10% holdout gets nothing; its goals still count)" \
        in held_story
    assert "next: offer due" in held_story and "will be skipped: held out" in held_story


def test_nurture_stats_prints_each_variant_and_not_enough_data(sqlite_url, project: Path, monkeypatch) -> None:  # noqa: ANN001
    write_sequence(project, "trial", TRIAL)
    for key, value in worker_env(project, sqlite_url).items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    for n in range(6):
        assert runner.invoke(main, ["contacts", "add", f"p{n}@example.com", "--sequence", "trial"]).exit_code == 0
    assert runner.invoke(main, ["send-due"]).exit_code == 0
    result = runner.invoke(main, ["stats", "trial"])
    assert result.exit_code == 0, result.output
    text = result.output.split("experiments:\n", 1)[1].splitlines()
    assert text[0] == "  step hello: 2 variants, judged on clicks"
    assert text[1].split()[:2] == ["A", "70%"] and text[2].split()[:2] == ["B", "30%"]
    assert text[3].startswith("    not enough data yet — about ") and text[3].endswith(" more contacts needed")
    assert "  holdout 10%: goal reached, sent vs held out" in text
    data = json.loads(runner.invoke(main, ["stats", "trial", "--json"]).output)
    first = data["experiments"][0]
    assert first["step"] == "hello" and [a["id"] for a in first["arms"]] == ["A", "B"]
    assert sum(a["contacts"] for a in first["arms"]) + data["experiments"][2]["arms"][0]["contacts"] == 6
    assert first["more_needed"] > 0



def test_the_migration_adds_the_variant_column_and_goes_back_down(make_runtime, database_url) -> None:  # noqa: ANN001
    rt = make_runtime(database_url)
    config = alembic_config()
    with rt.db.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0010_broadcasts")  # the migration before 0011_experiments
    assert "variant" not in {c["name"] for c in inspect(rt.db).get_columns("delivery")}
    with rt.db.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    assert "variant" in {c["name"] for c in inspect(rt.db).get_columns("delivery")}
    if rt.db.dialect.name == "sqlite":  # the funnel rollup's triggers on the table survived both ways
        with rt.db.connect() as connection:
            triggers = connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                               "AND tbl_name = 'delivery'")).scalars().all()
        assert {"funnel_delivery_insert", "funnel_delivery_update", "funnel_delivery_delete"} <= set(triggers)


def test_a_retried_message_is_the_same_variant_on_the_same_row(rt, smtp_server, clock) -> None:  # noqa: ANN001
    sequence = trial()
    ids = {f"p{n:02d}@example.com": add_contact(rt, f"p{n:02d}@example.com", "trial") for n in range(4)}
    sent_to = [email for email, n in ids.items() if not experiments.held_out(sequence, n)]
    replies = ["451 4.3.0 Try again later"] * len(sent_to)
    smtp_server.handler.on_data = lambda _item: replies.pop(0) if replies else None
    send_due(rt)
    assert {d.status for d in deliveries(rt)} == {"retry"} and not smtp_server.received
    clock.advance(seconds=61)
    send_due(rt)
    rows = {d.contact_id: (d.status, d.variant) for d in deliveries(rt)}
    assert rows == {ids[email]: ("sent", experiments.variant_for("trial", sequence.steps[0], ids[email]).id)
                    for email in sent_to}
    assert sorted(SUBJECTS[r.message["Subject"]] for r in smtp_server.received) == sorted(v for _, v in rows.values())
