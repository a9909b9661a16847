"""The owner's console's queries: the counts the lifecycle map is drawn from, and the console's users.

Counts only, grouped in the database: the map of a list with 100,000 contacts reads a few dozen rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, distinct, func
from sqlmodel import Session, select

from nurture.store.models import Contact, Enrollment, Event, User


@dataclass(frozen=True)
class Measured:
    by_contact_stage: dict[str, int]
    moved: dict[tuple[str, str], int]
    waiting: dict[tuple[str, str], int]
    parked: dict[tuple[str, str], int]
    in_sequence: dict[str, int]
    in_stage_sequences: dict[str, int]


def measure(session: Session, stage_of_sequence: Mapping[str, str], moved_since: datetime,
            parked_since: datetime) -> Measured:
    """Where contacts are now. `stage_of_sequence` maps each sequence to the lifecycle stage it serves;
    contacts who moved stage after `moved_since` are counted by (from, to); active enrollments due
    before `parked_since` are parked. Four grouped scans, whatever the number of contacts."""
    waiting, parked = _at_steps(session, parked_since)
    in_sequence: dict[str, int] = {}
    for (sequence, _step), n in waiting.items():
        # A contact has at most one active enrollment per sequence (people.contacts.may_reenter), so the
        # contacts in a sequence are its enrollments at its steps: no second scan to count them.
        in_sequence[sequence] = in_sequence.get(sequence, 0) + n
    return Measured(
        by_contact_stage=dict(session.execute(select(Contact.stage, func.count()).group_by(Contact.stage)).all()),
        moved=_stage_moves(session, moved_since),
        waiting=waiting,
        parked=parked,
        in_sequence=in_sequence,
        in_stage_sequences=_in_stage_sequences(session, stage_of_sequence),
    )


StepCounts = dict[tuple[str, str], int]  # (sequence id, step id) -> enrollments


def _at_steps(session: Session, parked_before: datetime) -> tuple[StepCounts, StepCounts]:
    """Active enrollments at each (sequence, step), and how many of them fell due before `parked_before`."""
    late = func.sum(case((Enrollment.due_at < parked_before, 1), else_=0))
    rows = session.execute(select(Enrollment.sequence_id, Enrollment.step_id, func.count(), late)
                           .where(Enrollment.status == "active", Enrollment.step_id.is_not(None))
                           .group_by(Enrollment.sequence_id, Enrollment.step_id))
    waiting: StepCounts = {}
    parked: StepCounts = {}
    for sequence, step, n, overdue in rows:
        waiting[(sequence, step)] = n
        if overdue:
            parked[(sequence, step)] = int(overdue)
    return waiting, parked


def _stage_moves(session: Session, since: datetime) -> dict[tuple[str, str], int]:
    """(from, to) -> contacts, from the `stage.changed` events on the timeline (people.automation.set_stage)."""
    before, after = Event.data["from"].as_string(), Event.data["to"].as_string()
    rows = session.execute(select(before, after, func.count(distinct(Event.contact_id)))
                           .where(Event.type == "stage.changed", Event.occurred_at >= since)
                           .group_by(before, after))
    return {(a, b): n for a, b, n in rows if a and b}


def _in_stage_sequences(session: Session, stage_of_sequence: Mapping[str, str]) -> dict[str, int]:
    """Per lifecycle stage, the distinct contacts actively in any of the sequences serving it (a contact in
    two of them counts once)."""
    if not stage_of_sequence:
        return {}
    stage = case(dict(stage_of_sequence), value=Enrollment.sequence_id, else_=None)
    rows = session.execute(select(stage, func.count(distinct(Enrollment.contact_id)))
                           .where(Enrollment.status == "active", Enrollment.sequence_id.in_(list(stage_of_sequence)))
                           .group_by(stage))
    return {name: n for name, n in rows if name}


# --- users -------------------------------------------------------------------------------------------------

def user_by_email(session: Session, email: str) -> User | None:
    return session.exec(select(User).where(User.email == email)).first()


def user_by_session_id(session: Session, session_id: str) -> User | None:
    return session.exec(select(User).where(User.session_id == session_id)).first()


def all_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(User.email)))


def count_users(session: Session) -> int:
    return session.exec(select(func.count()).select_from(User)).one()
