"""Versions of sequence files: recorded as the service runs them, used to move in-flight contacts when a
step they wait at is removed, and to restore the last good version of a file that is broken on disk.

Which version of a file runs is decided by the registry (nurture.content.registry: only a version that passes
`nurture check` runs); `sync` writes that decision down, so `nurture plan` and a process started later agree.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import Session

from nurture.content.loader import Problem, parse_sequence
from nurture.content.registry import SequenceRegistry
from nurture.people import automation, segment_triggers
from nurture.rules.sequence import Sequence
from nurture.store import versions as stored
from nurture.store.models import SequenceVersion

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime

log = logging.getLogger(__name__)


def record(session: Session, sequences: list[Sequence], now: datetime) -> int:
    """Write down the version each sequence runs: a copy of every version not seen before, and the return
    to an earlier one. Returns how many sequences changed version."""
    changed = 0
    for sequence in sequences:
        current = stored.running_version(session, sequence.id)
        if not sequence.source or (current is not None and current.version == sequence.version):
            continue
        row = stored.find_version(session, sequence.id, sequence.version) or SequenceVersion(
            sequence_id=sequence.id, version=sequence.version, path=sequence.path,
            steps=[s.id for s in sequence.steps], source=sequence.source, loaded_at=now)
        changed += stored.make_running(session, row, current, now)
    return changed


def order_of(session: Session, sequence_id: str, version: str) -> list[str] | None:
    """The step ids of a recorded version, in order (None if that version was never recorded)."""
    row = stored.find_version(session, sequence_id, version)
    return list(row.steps) if row else None


def running(session: Session, sequence_id: str) -> SequenceVersion | None:
    """The recorded version that runs (the one the ticking process adopted last)."""
    return stored.running_version(session, sequence_id)


def done_steps(session: Session, enrollment_id: int) -> frozenset[str]:
    return stored.steps_done(session, enrollment_id)


def restore_broken(session: Session, registry: SequenceRegistry) -> list[str]:
    """A process that starts while a sequence file is broken runs that file's last good version from the
    database instead of nothing. Returns the ids restored."""
    restored = []
    for path in registry.broken_files():
        row = stored.running_version_of_file(session, str(path))
        if row is None:
            continue
        sequence, _ = parse_sequence(row.source, str(path))
        if sequence is not None and registry.adopt(path, sequence):
            log.warning("%s is broken on disk; running its last good version %s", path, row.version)
            restored.append(sequence.id)
    return restored


def sync(rt: Runtime) -> list[Problem]:
    """Reload changed sequence files (a file that fails the check keeps its running version), restore the
    last good version of files broken at start-up, and record which version of each now runs. Run by each tick."""
    problems = rt.sequences.refresh()
    with Session(rt.db) as session:
        restore_broken(session, rt.sequences)
        record(session, rt.sequences.all(), rt.clock())
        session.commit()
    return problems


def refresh_before_fork(rt: Runtime) -> None:
    """For a worker about to fork a work horse: read the sequence files here, in the long-lived process, so
    that a refused edit is checked and logged once, not by every horse again. A file broken since start-up
    gets its last good version from the database; no connection is left open to cross the fork."""
    rt.sequences.refresh()
    if rt.sequences.broken_files():
        with Session(rt.db) as session:
            restore_broken(session, rt.sequences)
        rt.db.dispose()


def follow(rt: Runtime) -> int:
    """For a process that does not tick (the web): run the versions the ticking process recorded as running,
    so both enroll and explain by the same version. Reads only; returns how many sequences changed here."""
    changed = 0
    with Session(rt.db) as session:
        for sequence_id, (row_id, version) in stored.running_versions(session).items():
            held = rt.sequences.get(sequence_id)
            if held is not None and held.version == version:
                continue
            row = stored.version_by_id(session, row_id)
            # A sequence whose file was deleted runs nowhere: the worker dropped it when the file went.
            if row is None or not Path(row.path).is_file():
                continue
            sequence, _ = parse_sequence(row.source, row.path)
            if sequence is not None:
                rt.sequences.follow(Path(row.path), sequence)
                changed += 1
    return changed


def housekeeping(rt: Runtime) -> None:
    """What every tick does before claiming due work: reload sequences, start win-back sequences for
    contacts who went quiet, and enter contacts who came into a segment that triggers a sequence."""
    sync(rt)
    with Session(rt.db) as session:
        automation.enroll_inactive(session, rt, rt.clock())
        session.commit()
    with Session(rt.db) as session:
        segment_triggers.enter(session, rt, rt.clock())
        session.commit()
