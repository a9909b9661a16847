"""Versions of sequence files: recorded as the service loads them, used to move in-flight contacts when a
step they wait at is removed, and to restore the last good version of a file that is broken on disk."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from nurture.content.loader import Problem, parse_sequence
from nurture.content.registry import SequenceRegistry
from nurture.people import automation
from nurture.rules.sequence import Sequence
from nurture.store.models import Delivery, Enrollment, SequenceVersion

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime

log = logging.getLogger(__name__)


def record(session: Session, sequences: list[Sequence], now: datetime) -> int:
    """Keep a copy of every loaded version not seen before. Returns how many were new."""
    known = {(v.sequence_id, v.version) for v in session.exec(select(SequenceVersion))}
    new = 0
    for sequence in sequences:
        if (sequence.id, sequence.version) in known or not sequence.source:
            continue
        try:
            with session.begin_nested():
                session.add(SequenceVersion(sequence_id=sequence.id, version=sequence.version, path=sequence.path,
                                            steps=[s.id for s in sequence.steps], source=sequence.source,
                                            loaded_at=now))
            new += 1
        except IntegrityError:  # another process recorded it a moment ago
            pass
    return new


def order_of(session: Session, sequence_id: str, version: str) -> list[str] | None:
    row = session.exec(select(SequenceVersion).where(SequenceVersion.sequence_id == sequence_id,
                                                     SequenceVersion.version == version)).first()
    return list(row.steps) if row else None


def latest(session: Session, sequence_id: str) -> SequenceVersion | None:
    return session.exec(select(SequenceVersion).where(SequenceVersion.sequence_id == sequence_id)
                        .order_by(SequenceVersion.loaded_at.desc(), SequenceVersion.id.desc())).first()  # type: ignore[attr-defined]


def done_steps(session: Session, enrollment_id: int) -> frozenset[str]:
    rows = session.exec(select(Delivery.step_id).where(Delivery.enrollment_id == enrollment_id)).all()
    return frozenset(rows)


def restore_broken(session: Session, registry: SequenceRegistry) -> list[str]:
    """A process that starts while a sequence file is broken runs that file's last good version from the
    database instead of nothing. Returns the ids restored."""
    restored = []
    for path in registry.broken_files():
        row = session.exec(select(SequenceVersion).where(SequenceVersion.path == str(path))
                           .order_by(SequenceVersion.id.desc())).first()  # type: ignore[attr-defined]
        if row is None:
            continue
        sequence, problems = parse_sequence(row.source, str(path))
        if sequence is not None and registry.adopt(path, sequence):
            log.warning("%s is broken on disk; running its last good version %s", path, row.version)
            restored.append(sequence.id)
    return restored


def active_counts(session: Session, sequence_id: str) -> dict[str, int]:
    """How many contacts wait at each step of a sequence."""
    counts: dict[str, int] = {}
    for step_id in session.exec(select(Enrollment.step_id).where(Enrollment.sequence_id == sequence_id,
                                                                 Enrollment.status == "active")):
        counts[step_id or ""] = counts.get(step_id or "", 0) + 1
    return counts


def sync(rt: Runtime) -> list[Problem]:
    """Reload changed sequence files (a broken file keeps its running version), restore the last good
    version of files broken at start-up, and record every version now running. Run by each tick."""
    problems = rt.sequences.refresh()
    with Session(rt.db) as session:
        restore_broken(session, rt.sequences)
        record(session, rt.sequences.all(), rt.clock())
        session.commit()
    return problems


def housekeeping(rt: Runtime) -> None:
    """What every tick does before claiming due work: reload sequences, and start win-back sequences for
    contacts who went quiet."""
    sync(rt)
    with Session(rt.db) as session:
        automation.enroll_inactive(session, rt, rt.clock())
        session.commit()
