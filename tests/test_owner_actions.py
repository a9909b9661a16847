"""An owner's actions on one contact (nurture.people.owner_actions), through the real send path, on SQLite
and PostgreSQL: pause holds an enrollment at its step until resumed, never mid-send; end stops it; tags
start what a tag starts; an unsubscribe writes a consent record. Each lands on the timeline with who did it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from nurture.people import owner_actions
from nurture.people.owner_actions import ActionRefused
from nurture.runtime import Runtime
from nurture.store.models import Consent, Contact, Enrollment, EnrollmentStatus, Event, Subscription
from tests.conftest import FakeClock
from tests.contacts_support import OWNER, add_vip_sequence
from tests.helpers import add_contact, deliveries, enrollment, send_due


@pytest.fixture
def rt(make_runtime, database_url: str, project: Path) -> Runtime:  # noqa: ANN001
    add_vip_sequence(project)
    return make_runtime(database_url)


def act(rt: Runtime, contact_id: int, action, *args) -> None:  # noqa: ANN001
    with Session(rt.db) as session:
        action(session, session.get(Contact, contact_id), *args, OWNER, rt.clock())
        session.commit()


def events(rt: Runtime, contact_id: int, type_: str) -> list[Event]:
    with Session(rt.db) as session:
        return list(session.exec(select(Event).where(Event.contact_id == contact_id, Event.type == type_)))


def test_it_holds_a_paused_enrollment_at_its_step_until_resumed(rt: Runtime, clock: FakeClock) -> None:
    ann = add_contact(rt, "ann@example.com", "lead-nurture")
    held = enrollment(rt, "ann@example.com", "lead-nurture")
    act(rt, ann, owner_actions.pause, held.id)

    clock.advance(days=30)
    send_due(rt)
    assert deliveries(rt, "ann@example.com") == []
    paused = enrollment(rt, "ann@example.com", "lead-nurture")
    assert (paused.status, paused.step_id) == ("paused", held.step_id)
    assert paused.stop_reason == "paused by owner@example.com"

    act(rt, ann, owner_actions.resume, held.id)
    send_due(rt)
    assert [d.step_id for d in deliveries(rt, "ann@example.com")] == [held.step_id]
    (pause_event,) = events(rt, ann, "enrollment.paused")
    assert pause_event.data == {"by": "owner@example.com", "via": "console", "sequence": "lead-nurture",
                                "step": held.step_id, "entry": 1}
    assert events(rt, ann, "enrollment.resumed")[0].data["by"] == "owner@example.com"


def test_it_refuses_to_pause_what_a_batch_is_sending_and_takes_it_once_the_lease_ran_out(
        rt: Runtime, clock: FakeClock) -> None:
    ann = add_contact(rt, "ann@example.com", "lead-nurture")
    held = enrollment(rt, "ann@example.com", "lead-nurture")
    with Session(rt.db) as session:  # what store.claims.claim_batches leaves on a row a batch works on
        row = session.get(Enrollment, held.id)
        row.claim_token, row.claimed_until = "batch-1", clock() + timedelta(minutes=5)
        session.commit()
    with pytest.raises(ActionRefused, match="being sent this moment"):
        act(rt, ann, owner_actions.pause, held.id)

    clock.advance(minutes=6)  # that worker died: its lease ran out, and the pause takes its token away
    act(rt, ann, owner_actions.pause, held.id)
    paused = enrollment(rt, "ann@example.com", "lead-nurture")
    assert (paused.status, paused.claim_token) == ("paused", None)
    with pytest.raises(ActionRefused, match="not running"):
        act(rt, ann, owner_actions.pause, held.id)


def test_it_ends_an_enrollment_for_good_and_the_sequence_policy_decides_a_new_one(rt: Runtime,
                                                                                 clock: FakeClock) -> None:
    ann = add_contact(rt, "ann@example.com", "lead-nurture")
    held = enrollment(rt, "ann@example.com", "lead-nurture")
    act(rt, ann, owner_actions.end, held.id)
    clock.advance(days=30)
    send_due(rt)
    assert deliveries(rt, "ann@example.com") == []
    ended = enrollment(rt, "ann@example.com", "lead-nurture")
    assert (ended.status, ended.stop_reason) == (EnrollmentStatus.STOPPED, "ended by owner@example.com")
    with pytest.raises(ActionRefused, match="had ended already"):
        act(rt, ann, owner_actions.end, held.id)
    with pytest.raises(ActionRefused, match="already in lead-nurture"):
        with Session(rt.db) as session:
            owner_actions.add_to_sequence(session, rt, session.get(Contact, ann), "lead-nurture", OWNER, clock())


def test_it_adds_a_contact_to_a_sequence_and_says_who(rt: Runtime) -> None:
    ann = add_contact(rt, "ann@example.com")
    with Session(rt.db) as session:
        owner_actions.add_to_sequence(session, rt, session.get(Contact, ann), "lead-nurture", OWNER, rt.clock())
        session.commit()
        with pytest.raises(ActionRefused, match="no sequence 'nope'"):
            owner_actions.add_to_sequence(session, rt, session.get(Contact, ann), "nope", OWNER, rt.clock())
    assert enrollment(rt, "ann@example.com", "lead-nurture").status == "active"
    assert events(rt, ann, "sequence.enrolled")[0].data["by"] == "owner@example.com"
    send_due(rt)
    assert len(deliveries(rt, "ann@example.com")) == 1


def test_it_acts_only_on_the_contacts_own_enrollments(rt: Runtime) -> None:
    add_contact(rt, "ann@example.com", "lead-nurture")
    bob = add_contact(rt, "bob@example.com")
    anns = enrollment(rt, "ann@example.com", "lead-nurture")
    with pytest.raises(ActionRefused, match="no such enrollment"):
        act(rt, bob, owner_actions.pause, anns.id)
    assert enrollment(rt, "ann@example.com", "lead-nurture").status == "active"


def test_a_tag_starts_what_a_tag_starts_and_both_are_on_the_timeline(rt: Runtime) -> None:
    ann = add_contact(rt, "ann@example.com")

    def add_tag(session: Session, contact: Contact, tag: str, actor, now) -> None:  # noqa: ANN001
        owner_actions.add_tag(session, rt, contact, tag, actor, now)

    act(rt, ann, add_tag, " vip ")
    assert enrollment(rt, "ann@example.com", "vip-welcome").status == "active"
    with pytest.raises(ActionRefused, match="already tagged"):
        act(rt, ann, add_tag, "vip")
    with pytest.raises(ValueError, match="one line"):
        act(rt, ann, add_tag, "a\nb")
    act(rt, ann, owner_actions.remove_tag, "vip")
    with Session(rt.db) as session:
        assert session.get(Contact, ann).tags == []
    assert events(rt, ann, "tag.added")[0].data == {"tag": "vip", "by": "owner@example.com", "via": "console"}
    assert events(rt, ann, "tag.removed")[0].data["by"] == "owner@example.com"
    with pytest.raises(ActionRefused, match="not tagged"):
        act(rt, ann, owner_actions.remove_tag, "vip")


def test_an_owner_unsubscribes_a_contact_with_a_consent_record_and_nothing_more_is_sent(
        rt: Runtime, clock: FakeClock) -> None:
    ann = add_contact(rt, "ann@example.com", "lead-nurture")
    act(rt, ann, owner_actions.unsubscribe, "email")
    with pytest.raises(ActionRefused, match="not subscribed to email"):
        act(rt, ann, owner_actions.unsubscribe, "email")
    with pytest.raises(ActionRefused, match="not subscribed to sms"):
        act(rt, ann, owner_actions.unsubscribe, "sms")
    with pytest.raises(ActionRefused, match="no channel"):
        act(rt, ann, owner_actions.unsubscribe, "fax")
    with Session(rt.db) as session:
        assert session.get(Contact, ann).email_status == Subscription.UNSUBSCRIBED
        (record,) = session.exec(select(Consent).where(Consent.contact_id == ann)).all()
        assert (record.channel, record.action, record.method) == ("email", "opt-out", "console")
    assert events(rt, ann, "email.unsubscribed")[0].data == {"scope": "all", "via": "console",
                                                             "by": "owner@example.com"}
    send_due(rt)
    assert [d.status for d in deliveries(rt, "ann@example.com")] == ["skipped"]
