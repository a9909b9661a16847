"""The queries behind sequence versions and `nurture plan`: which version of a sequence runs, what a
recorded version's steps were, and who is in flight where.

The running version of a sequence is its row with the latest `loaded_at`: `loaded_at` is when that version
last became the one that runs, so going back to an earlier version moves its row forward again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from nurture.store.models import Delivery, Enrollment, EnrollmentStatus, SequenceVersion

_NEWEST_FIRST = (SequenceVersion.loaded_at.desc(), SequenceVersion.id.desc())  # type: ignore[attr-defined]
_OLDEST_FIRST = (SequenceVersion.loaded_at.asc(), SequenceVersion.id.asc())  # type: ignore[attr-defined]


def running_version(session: Session, sequence_id: str) -> SequenceVersion | None:
    return session.exec(select(SequenceVersion).where(SequenceVersion.sequence_id == sequence_id)
                        .order_by(*_NEWEST_FIRST)).first()


def running_versions(session: Session) -> dict[str, tuple[int, str]]:
    """Sequence id -> (row id, version) of the version that runs, for every sequence ever recorded."""
    rows = session.exec(select(SequenceVersion.sequence_id, SequenceVersion.id, SequenceVersion.version)
                        .order_by(*_OLDEST_FIRST)).all()
    return {sequence_id: (row_id, version) for sequence_id, row_id, version in rows}  # the newest comes last


def version_by_id(session: Session, row_id: int) -> SequenceVersion | None:
    return session.get(SequenceVersion, row_id)


def running_version_of_file(session: Session, path: str) -> SequenceVersion | None:
    """The version that last ran from the file at `path` (a process starting while that file is broken runs it)."""
    return session.exec(select(SequenceVersion).where(SequenceVersion.path == path).order_by(*_NEWEST_FIRST)).first()


def find_version(session: Session, sequence_id: str, version: str) -> SequenceVersion | None:
    return session.exec(select(SequenceVersion).where(SequenceVersion.sequence_id == sequence_id,
                                                      SequenceVersion.version == version)).first()


def make_running(session: Session, row: SequenceVersion, current: SequenceVersion | None, now: datetime) -> bool:
    """Record that `row` (new, or a version seen before) runs from `now` on, after `current`. Returns False
    when another process recorded the same new version a moment ago."""
    # Strictly later than the version it replaces, so the order holds even when two changes share an
    # instant (an injected clock in tests, a coarse clock on some hosts).
    row.loaded_at = now if current is None or now > current.loaded_at else current.loaded_at + timedelta(microseconds=1)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # another process recorded this new version first
        return False
    return True


def steps_done(session: Session, enrollment_id: int) -> frozenset[str]:
    """The steps an enrollment has a delivery for (sent, skipped or failed)."""
    return frozenset(session.exec(select(Delivery.step_id).where(Delivery.enrollment_id == enrollment_id)).all())


def in_flight(session: Session, sequence_id: str) -> list[Enrollment]:
    """The active enrollments of a sequence: the contacts an edit of it affects."""
    return list(session.exec(select(Enrollment).where(Enrollment.sequence_id == sequence_id,
                                                      Enrollment.status == EnrollmentStatus.ACTIVE)).all())
