"""`trigger: {segment: ID}` and `if: {segment: ID}` through the real tick and send path (SQLite and
PostgreSQL, real SMTP): a contact who comes into a segment enters the sequence once, under its re-entry
policy; time alone (nothing happening) brings a contact into an `inactive` segment; a step's `if` names a
segment."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from nurture.runtime import Runtime
from nurture.store.models import Enrollment, Event, SegmentMember
from nurture.web import create_app
from tests.conftest import SmtpServer, write_sequence
from tests.helpers import add_contact, deliveries, send_due

AUTH = {"Authorization": "Bearer test-api-key-0123456789"}


def write_segment(project: Path, segment_id: str, condition: str) -> None:
    folder = project / "segments"
    folder.mkdir(exist_ok=True)
    text = f"id: {segment_id}\nname: {segment_id.title()}\ncondition: {condition}\n"
    (folder / f"{segment_id}.yaml").write_text(text)


def sequence_text(sequence_id: str, trigger: str = "", reentry: str = "once", step_if: str = "") -> str:
    return (f"id: {sequence_id}\nname: {sequence_id.title()}\nstage: upsell-customers\n"
            + (f"trigger: {trigger}\n" if trigger else "") + f"reentry: {reentry}\nsteps:\n"
            "  - id: thanks\n    kind: thank-you\n    template: lead/edu-1\n    subject: Thank you\n"
            + (f"    if: {step_if}\n" if step_if else ""))


@pytest.fixture
def rt(make_runtime, database_url, smtp_server: SmtpServer, project: Path) -> Runtime:  # noqa: ANN001
    write_segment(project, "vip-buyers", "{all: [{tag: vip}, {event: purchase, within: 30d}]}")
    write_sequence(project, "vip-thanks", sequence_text("vip-thanks", "{segment: vip-buyers}"))
    return make_runtime(database_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url)


def enrollments(rt: Runtime, sequence_id: str) -> list[tuple[int, int]]:
    with Session(rt.db) as session:
        rows = session.exec(select(Enrollment).where(Enrollment.sequence_id == sequence_id).order_by(Enrollment.id))
        return [(e.contact_id, e.entry) for e in rows]


def thanked(rt: Runtime, sequence_id: str = "vip-thanks") -> list[str]:
    """Who got `sequence_id`'s email (a purchase also starts the customer sequence: not counted here)."""
    return sorted(d.recipient for d in deliveries(rt) if d.sequence_id == sequence_id)


def purchase(rt: Runtime, email: str) -> None:
    response = create_app(rt).test_client().post("/api/events", headers=AUTH,
                                                 json={"email": email, "type": "purchase"})
    assert response.status_code in (200, 201), response.get_data(as_text=True)


def test_a_contact_who_comes_into_the_segment_enters_the_sequence_once(rt: Runtime, clock, smtp_server) -> None:  # noqa: ANN001
    carl = add_contact(rt, "carl@example.com", tags=("vip",))
    purchase(rt, "carl@example.com")  # inside before the trigger first looked: its first sweep enters him
    ann = add_contact(rt, "ann@example.com", tags=("vip",))
    add_contact(rt, "bob@example.com")
    send_due(rt)
    assert enrollments(rt, "vip-thanks") == [(carl, 1)]
    assert thanked(rt) == ["carl@example.com"]

    clock.advance(minutes=1)
    purchase(rt, "ann@example.com")  # an event: ann comes in, found among the changed contacts
    purchase(rt, "bob@example.com")  # not a vip: stays out
    send_due(rt)
    assert enrollments(rt, "vip-thanks") == [(carl, 1), (ann, 1)]
    assert thanked(rt) == ["ann@example.com", "carl@example.com"]

    clock.advance(minutes=1)
    purchase(rt, "ann@example.com")  # still inside: nothing new
    send_due(rt)
    clock.advance(days=31)  # the purchases fall out of the window: the hourly sweep sees ann outside
    send_due(rt)
    with Session(rt.db) as session:
        assert session.exec(select(SegmentMember.contact_id)).all() == []
    purchase(rt, "ann@example.com")  # back in: an entry again, and `reentry: once` refuses it
    send_due(rt)
    assert enrollments(rt, "vip-thanks") == [(carl, 1), (ann, 1)]
    assert thanked(rt) == ["ann@example.com", "carl@example.com"]


def test_with_reentry_always_coming_back_in_enters_again(rt: Runtime, clock, project: Path) -> None:  # noqa: ANN001
    write_sequence(project, "vip-thanks", sequence_text("vip-thanks", "{segment: vip-buyers}", reentry="always"))
    ann = add_contact(rt, "ann@example.com", tags=("vip",))
    purchase(rt, "ann@example.com")
    send_due(rt)
    send_due(rt)  # the enrollment ends with its one step
    clock.advance(days=31)
    send_due(rt)  # outside now
    purchase(rt, "ann@example.com")
    send_due(rt)
    assert enrollments(rt, "vip-thanks") == [(ann, 1), (ann, 2)]


def test_time_alone_brings_a_quiet_contact_into_an_inactive_segment(rt: Runtime, clock, project: Path) -> None:  # noqa: ANN001
    write_segment(project, "quiet", "{all: [{consent: email}, {inactive: 30d}]}")
    write_sequence(project, "win-back", sequence_text("win-back", "{segment: quiet}"))
    quiet = add_contact(rt, "quiet@example.com")
    add_contact(rt, "busy@example.com")
    send_due(rt)
    assert enrollments(rt, "win-back") == []
    clock.advance(days=20)
    purchase(rt, "busy@example.com")
    clock.advance(days=11)  # nothing happened to quiet@ for 31 days: only the sweep can see it
    send_due(rt)
    assert enrollments(rt, "win-back") == [(quiet, 1)]


def test_a_step_if_names_a_segment(rt: Runtime, project: Path) -> None:
    write_segment(project, "vips", "{tag: vip}")
    write_sequence(project, "vip-only", sequence_text("vip-only", step_if="{segment: vips}"))
    rt.sequences.refresh()
    add_contact(rt, "vip@example.com", "vip-only", tags=("vip",))
    add_contact(rt, "other@example.com", "vip-only")
    send_due(rt)
    assert thanked(rt, "vip-only") == ["vip@example.com"]
    with Session(rt.db) as session:
        skipped = session.exec(select(Event).where(Event.type == "step.skipped")).all()
    assert [e.data["reason"] for e in skipped] == ["condition false: segment vips"]
