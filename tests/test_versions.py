"""Editing live sequences: in-flight contacts keep their place by step id, a removed step moves them on (never
back, never past a new step), `nurture plan` predicts exactly that, and a broken file never replaces the
running version — not even across a restart."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from nurture.delivery import versions
from nurture.insight.plan import make_plan
from nurture.rules import engine
from nurture.runtime import Runtime, build_runtime
from nurture.store.models import Contact, Enrollment, Event, SequenceVersion
from tests.conftest import SmtpServer
from tests.helpers import add_contact, deliveries, enrollment, send_due

STEPS = """
id: course
name: Course
stage: nurture-prospects
steps:
  - {id: edu-1, kind: educate, template: lead/edu-1, subject: "One"}
  - {id: edu-2, kind: educate, wait: 1d, template: lead/edu-2, subject: "Two"}
  - {id: edu-3, kind: educate, wait: 1d, template: lead/edu-3, subject: "Three"}
  - {id: offer, kind: offer, wait: 1d, template: lead/offer, subject: "Offer"}
"""
EDITED = """
id: course
name: Course
stage: nurture-prospects
steps:
  - {id: edu-1, kind: educate, template: lead/edu-1, subject: "One"}
  - {id: edu-2, kind: educate, wait: 1d, template: lead/edu-2, subject: "Two"}
  - {id: edu-2b, kind: educate, wait: 1d, template: lead/edu-3, subject: "Two and a half"}
  - {id: offer, kind: offer, wait: 1d, template: lead/offer, subject: "A better offer"}
"""


@pytest.mark.parametrize(("old", "new", "at", "done", "expected"), [
    ("a b c", "a b c", "b", "a", "b"),            # still there: stays
    ("a b c", "a c", "b", "a", "c"),              # removed: the next one that survived
    ("a b c d", "a x c d", "b", "a", "x"),        # a step inserted where it was is not skipped
    ("a b c", "x b2 c", "b", "a", "x"),           # everything before it gone: the new steps first
    ("a b c", "c a", "b", "a", "c"),              # reordered: never back to what it already had
    ("a b", "a", "b", "a", None),                 # nothing left
])
def test_a_removed_step_relocates_by_id(old, new, at, done, expected) -> None:
    assert engine.relocate(old.split(), new.split(), at, frozenset(done.split())) == expected


@pytest.fixture
def course(make_runtime, sqlite_url, smtp_server: SmtpServer, project, clock):  # noqa: ANN001, ANN201
    (project / "sequences" / "course.yaml").write_text(STEPS)
    (project / "sequences" / "_lifecycle.yaml").write_text("caps: {per_day: 0, per_week: 0}\n")
    rt = make_runtime(sqlite_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url)
    # In flight: two contacts waiting at edu-2, one at edu-3, one at offer.
    for email in ("a@example.com", "b@example.com", "c@example.com", "d@example.com"):
        add_contact(rt, email, "course")
    send_due(rt)
    clock.advance(days=1)
    _send_to(rt, {"c@example.com", "d@example.com"})
    clock.advance(days=1)
    _send_to(rt, {"d@example.com"})
    return rt


def _send_to(rt: Runtime, emails: set[str]) -> None:
    """Hold everyone else back by pushing their due time out, send, then restore it."""
    with Session(rt.db) as session:
        held = [e for e in session.exec(select(Enrollment).join(Contact, Contact.id == Enrollment.contact_id)
                                        .where(Contact.email.not_in(emails)))]  # type: ignore[attr-defined]
        saved = {e.id: e.due_at for e in held}
        for e in held:
            e.due_at = e.due_at + timedelta(days=365)
        session.commit()
    send_due(rt)
    with Session(rt.db) as session:
        for e in session.exec(select(Enrollment).where(Enrollment.id.in_(saved))):  # type: ignore[attr-defined]
            e.due_at = saved[e.id]
        session.commit()


def test_plan_predicts_what_the_worker_then_does(course: Runtime, project, smtp_server, clock) -> None:
    waiting = [enrollment(course, f"{name}@example.com", "course").step_id for name in "abcd"]
    assert waiting == ["edu-2", "edu-2", "edu-3", "offer"]
    (project / "sequences" / "course.yaml").write_text(EDITED)
    with Session(course.db) as session:
        [plan] = [p for p in make_plan(session, project / "sequences", course.sequences.check)
                  if p.sequence_id == "course"]
    assert plan.render().splitlines()[1:] == [
        "  2 contacts waiting at edu-2: unchanged",
        "  new step edu-2b: 3 contacts before it will get it",
        "  1 contact waiting at offer will get the new offer",
        "  1 contact at the removed step edu-3 move to edu-2b",
    ]
    for _ in range(5):
        clock.advance(days=1)
        send_due(course)

    def got(email: str) -> list[str]:
        return [d.step_id for d in deliveries(course, email)]

    assert got("a@example.com") == ["edu-1", "edu-2", "edu-2b", "offer"]
    assert got("c@example.com") == ["edu-1", "edu-2", "edu-2b", "offer"]  # moved on, not back to the start
    assert got("d@example.com") == ["edu-1", "edu-2", "edu-3", "offer"]
    offer = [r for r in smtp_server.handler.to("d@example.com")][-1]
    assert offer.message["Subject"] == "A better offer"
    with Session(course.db) as session:
        [moved] = session.exec(select(Event).where(Event.type == "sequence.version_moved")).all()
    assert (moved.data["from"], moved.data["to"]) == ("edu-3", "edu-2b")


def test_a_broken_edit_leaves_the_running_version_in_place(course: Runtime, project, smtp_server, clock,
                                                           sqlite_url) -> None:
    (project / "sequences" / "course.yaml").write_text(STEPS.replace("wait: 1d", "wait: one day", 1))
    problems = versions.sync(course)
    assert [p.line for p in problems] == [7] and "bad duration" in problems[0].message
    assert course.sequences.get("course").step("edu-3") is not None  # still the old version
    with Session(course.db) as session:
        [plan] = [p for p in make_plan(session, project / "sequences", course.sequences.check)
                  if p.sequence_id == "course"]
    assert "has errors; the running version" in plan.render()

    # A restart while the file is still broken runs the last good version from the database.
    restarted = build_runtime(course.settings, clock=clock)
    assert restarted.sequences.get("course") is None
    versions.sync(restarted)
    assert restarted.sequences.get("course").version == course.sequences.get("course").version
    clock.advance(days=3)
    send_due(restarted)
    assert [d.step_id for d in deliveries(restarted, "a@example.com")] == ["edu-1", "edu-2"]


def test_each_loaded_version_is_kept_once(course: Runtime, project) -> None:
    versions.sync(course)
    (project / "sequences" / "course.yaml").write_text(EDITED)
    versions.sync(course)
    versions.sync(course)
    with Session(course.db) as session:
        kept = session.exec(select(SequenceVersion).where(SequenceVersion.sequence_id == "course")).all()
    assert [v.steps for v in kept] == [["edu-1", "edu-2", "edu-3", "offer"], ["edu-1", "edu-2", "edu-2b", "offer"]]
