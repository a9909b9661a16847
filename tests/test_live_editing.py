"""Editing sequence files while the service runs: a version `nurture check` rejects never runs (the last
good one keeps running, and the log says why once), going back to an earlier version works exactly like
going forward, and the worker, `plan` and `simulate` agree on which version runs.

Every test builds its own small project in tmp_path: the starter files change, these rules do not.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session

from nurture.cli import main
from nurture.config import load_settings
from nurture.delivery import versions
from nurture.insight.plan import SequencePlan, make_plan
from nurture.runtime import Runtime, build_runtime
from nurture.store.db import upgrade
from nurture.web import create_app
from tests.conftest import FakeClock, worker_env
from tests.helpers import add_contact, deliveries, enrollment, send_due

COURSE = """
id: course
name: Course
stage: nurture-prospects
steps:
  - {id: hello, kind: educate, template: hello, subject: Hello}
  - {id: offer, kind: offer, wait: 1d, template: offer, subject: Offer}
"""
EMAIL = "<p>{{ contact.first_name }}</p><p>{{ postal_address }} <a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A project of its own: one sequence and the two emails it sends."""
    root = tmp_path / "tree"
    (root / "sequences").mkdir(parents=True)
    (root / "sequences" / "course.yaml").write_text(COURSE)
    for name in ("hello", "offer"):
        write_template(root, name)
    return root


def write_template(root: Path, name: str) -> None:
    (root / "email_templates").mkdir(exist_ok=True)
    (root / "email_templates" / f"{name}.html").write_text(EMAIL)
    (root / "email_templates" / f"{name}.txt").write_text("{{ postal_address }} {{ unsubscribe_url }}\n")


def edit(root: Path, text: str) -> None:
    (root / "sequences" / "course.yaml").write_text(text)


@pytest.fixture
def runtime(tree: Path, sqlite_url: str, clock: FakeClock) -> Runtime:
    rt = start(tree, sqlite_url, clock)
    versions.sync(rt)
    return rt


def start(tree: Path, database_url: str, clock: FakeClock) -> Runtime:
    rt = build_runtime(load_settings(worker_env(tree, database_url)), clock=clock)
    upgrade(rt.db)
    return rt


def plan_of(rt: Runtime) -> SequencePlan:
    with Session(rt.db) as session:
        [plan] = make_plan(session, rt.settings.sequences_dir, rt.sequences.check)
    return plan


def running_in_database(rt: Runtime) -> str:
    with Session(rt.db) as session:
        row = versions.running(session, "course")
    assert row is not None
    return row.version


def test_an_edit_naming_a_missing_template_never_runs(runtime: Runtime, tree: Path) -> None:
    good = runtime.sequences.get("course").version
    edit(tree, COURSE.replace("template: offer", "template: offfer"))
    problems = versions.sync(runtime)
    assert [str(p) for p in problems] == [
        "sequences/course.yaml:7: step 'offer': unknown template 'offfer' (no email_templates/offfer.html)",
        "sequences/course.yaml:7: step 'offer': unknown template 'offfer' (no email_templates/offfer.txt)",
    ]
    assert runtime.sequences.get("course").version == good
    assert running_in_database(runtime) == good
    plan = plan_of(runtime)
    head = plan.render().splitlines()[0]
    assert head == f"course (sequences/course.yaml): has errors; the running version {good} stays"


def test_the_refused_version_is_not_sent(runtime: Runtime, tree: Path, clock: FakeClock) -> None:
    add_contact(runtime, "ann@example.com", "course")
    send_due(runtime)
    edit(tree, COURSE.replace("template: offer", "template: offfer"))
    versions.sync(runtime)
    clock.advance(days=1)
    send_due(runtime)
    assert [(d.step_id, d.status) for d in deliveries(runtime, "ann@example.com")] == [("hello", "sent"),
                                                                                      ("offer", "sent")]


def test_the_edit_runs_once_its_missing_template_is_added(runtime: Runtime, tree: Path) -> None:
    edited = COURSE.replace("template: offer", "template: better-offer")
    edit(tree, edited)
    versions.sync(runtime)
    assert runtime.sequences.get("course").step("offer").template == "offer"
    write_template(tree, "better-offer")  # the sequence file itself is not touched again
    assert versions.sync(runtime) == []
    assert runtime.sequences.get("course").step("offer").template == "better-offer"
    assert plan_of(runtime).render().startswith("course (sequences/course.yaml): unchanged")


def test_a_template_error_in_the_layout_an_email_extends_refuses_the_edit(runtime: Runtime, tree: Path) -> None:
    (tree / "email_templates" / "_layout.html").write_text("{% block body %}{% endblock %}{{ oops(}}")
    (tree / "email_templates" / "framed.html").write_text(
        '{% extends "_layout.html" %}{% block body %}' + EMAIL + "{% endblock %}")
    (tree / "email_templates" / "framed.txt").write_text("{{ postal_address }} {{ unsubscribe_url }}\n")
    edit(tree, COURSE.replace("template: offer", "template: framed"))
    problems = versions.sync(runtime)
    assert [p.path for p in problems] == ["email_templates/_layout.html"]
    assert runtime.sequences.get("course").step("offer").template == "offer"


def test_a_refused_edit_is_logged_once_not_every_tick(runtime: Runtime, tree: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    edit(tree, COURSE.replace("template: offer", "template: offfer"))
    with caplog.at_level(logging.INFO, logger="nurture"):
        for _ in range(3):
            versions.sync(runtime)
        write_template(tree, "unrelated")  # another file changes: the refused text is looked at again
        versions.sync(runtime)
    said = [r.getMessage() for r in caplog.records if "course.yaml" in r.getMessage()]
    assert len(said) == 3  # the head line and its two problems
    assert said[0].startswith("sequences/course.yaml has errors; version ")
    assert all(r.levelno < logging.ERROR for r in caplog.records)  # a last good version still runs


def test_a_new_version_is_logged_at_info(runtime: Runtime, tree: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = runtime.sequences.get("course").version
    edit(tree, COURSE.replace("Hello", "Hi"))
    with caplog.at_level(logging.DEBUG, logger="nurture"):
        versions.sync(runtime)
    new = runtime.sequences.get("course").version
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", f"sequences/course.yaml: running version {new} (was {good})")]


def test_going_back_to_an_earlier_version_works_like_going_forward(runtime: Runtime, tree: Path,
                                                                    clock: FakeClock, sqlite_url: str) -> None:
    first = runtime.sequences.get("course").version
    edit(tree, COURSE.replace("Offer", "A better offer"))
    versions.sync(runtime)
    second = runtime.sequences.get("course").version
    assert running_in_database(runtime) == second
    edit(tree, COURSE)  # the original text back, at the same instant of the (injected) clock
    versions.sync(runtime)
    assert runtime.sequences.get("course").version == first
    assert running_in_database(runtime) == first
    assert plan_of(runtime).render() == f"course (sequences/course.yaml): unchanged (version {first})"

    # A process started while the file is broken runs the version that ran last: the earlier one.
    edit(tree, COURSE.replace("wait: 1d", "wait: one day"))
    restarted = start(tree, sqlite_url, clock)
    versions.sync(restarted)
    assert restarted.sequences.get("course").version == first


def test_plan_exits_one_whenever_check_would(runtime: Runtime, tree: Path, sqlite_url: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in worker_env(tree, sqlite_url).items():
        monkeypatch.setenv(name, value)
    assert CliRunner().invoke(main, ["plan"]).exit_code == 0
    edit(tree, COURSE.replace("template: offer", "template: offfer"))
    result = CliRunner().invoke(main, ["plan"])
    assert result.exit_code == 1
    assert "unknown template 'offfer'" in result.output
    edit(tree, COURSE)
    (tree / "email_templates" / "unused.html").write_text("{{ nobody_knows_me }}")  # no sequence uses it
    result = CliRunner().invoke(main, ["plan"])
    assert result.exit_code == 1
    assert result.output.splitlines()[-2:] == [
        "other problems (nurture check):",
        "  email_templates/unused.html:1: undefined template variable 'nobody_knows_me' (known: brand, confirm_url, "
        "contact, postal_address, preferences_url, rating_links, referral_url, sequence, step, unsubscribe_url)",
    ]


def test_simulate_does_not_show_a_version_that_never_runs(tree: Path, sqlite_url: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in worker_env(tree, sqlite_url).items():
        monkeypatch.setenv(name, value)
    edit(tree, COURSE.replace("template: offer", "template: offfer"))
    result = CliRunner().invoke(main, ["simulate", "course"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "nurture: sequences/course.yaml has 2 problem(s), so the worker keeps running the last version that "
        "passed; there is nothing new to simulate until nurture check passes")


def test_the_web_enrolls_by_the_version_the_worker_runs(runtime: Runtime, tree: Path, sqlite_url: str,
                                                        clock: FakeClock) -> None:
    web = create_app(start(tree, sqlite_url, clock)).test_client()  # a process of its own, like gunicorn's

    def enroll(email: str) -> str:
        response = web.post("/api/contacts", json={"email": email, "sequence": "course"},
                            headers={"Authorization": "Bearer test-api-key-0123456789"})
        assert response.status_code == 201, response.json
        return enrollment(runtime, email, "course").sequence_version

    first = runtime.sequences.get("course").version
    assert enroll("ann@example.com") == first
    edit(tree, COURSE.replace("Hello", "Hi"))
    versions.sync(runtime)  # the worker's tick
    clock.advance(seconds=5)
    assert enroll("bob@example.com") == runtime.sequences.get("course").version != first

    edit(tree, COURSE.replace("template: offer", "template: offfer"))  # never runs, in the web either
    versions.sync(runtime)
    clock.advance(seconds=5)
    assert enroll("cy@example.com") == runtime.sequences.get("course").version != first
    restarted = create_app(start(tree, sqlite_url, clock)).test_client()  # started while the file is broken
    response = restarted.post("/api/contacts", json={"email": "di@example.com", "sequence": "course"},
                              headers={"Authorization": "Bearer test-api-key-0123456789"})
    assert response.status_code == 201, response.json
    assert enrollment(runtime, "di@example.com", "course").sequence_version == runtime.sequences.get("course").version

    edit(tree, COURSE)  # back to the first version
    versions.sync(runtime)
    clock.advance(seconds=5)
    assert enroll("eve@example.com") == first


def test_a_web_started_after_a_sequence_file_was_deleted_does_not_run_it(runtime: Runtime, tree: Path,
                                                                         sqlite_url: str, clock: FakeClock) -> None:
    (tree / "sequences" / "course.yaml").unlink()
    versions.sync(runtime)
    assert runtime.sequences.get("course") is None
    web = create_app(start(tree, sqlite_url, clock)).test_client()
    response = web.post("/api/contacts", json={"email": "ann@example.com", "sequence": "course"},
                        headers={"Authorization": "Bearer test-api-key-0123456789"})
    assert response.status_code == 400 and response.json["error"] == "unknown sequence 'course'"
