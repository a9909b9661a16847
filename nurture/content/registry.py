"""The sequences a running process uses, reloaded when their files change.

A version runs only if `nurture check` would find no problem in its file and the templates it uses
(`check_sequence_file`). A file that fails keeps the version already running, and the reason is logged once
per failing text, not on every refresh. (A process that starts with a failing file has no version of it to
run until nurture.delivery.versions restores the last good one from the database.)
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from nurture.content.checker import TemplateCheck, check_sequence_file, shown_path
from nurture.content.lifecycle_file import LIFECYCLE_FILE, parse_lifecycle
from nurture.content.loader import Problem, sequence_files
from nurture.content.segments_file import SegmentFiles
from nurture.rules.lifecycle import Lifecycle
from nurture.rules.segments import Segment
from nurture.rules.sequence import Sequence

log = logging.getLogger(__name__)

Stamp = tuple[int, int]


def _stamp(path: Path) -> Stamp:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _tree_stamp(*directories: Path) -> frozenset[tuple[str, Stamp]]:
    """Every file under the template folders: a refused file is looked at again when one of them changes (the
    missing template it named may have been added). A few dozen stats: microseconds."""
    return frozenset((str(p), _stamp(p)) for d in directories if d.is_dir() for p in d.rglob("*") if p.is_file())


@dataclass(frozen=True)
class Refusal:
    """Why the text of a file on disk does not run."""

    path: str  # the sequence file, as `nurture check` shows it
    sequence_id: str  # its id, as far as it could be read (else the file name)
    problems: tuple[Problem, ...]


class SequenceRegistry:
    def __init__(self, directory: Path, check: TemplateCheck) -> None:
        self.directory = directory
        self.check = check
        self._by_file: dict[Path, Sequence] = {}
        self._stamps: dict[Path, Stamp] = {}
        self._by_id: dict[str, Sequence] = {}
        self._refused: dict[Path, Refusal] = {}
        self._templates: frozenset[tuple[str, Stamp]] = frozenset()
        self.problems: list[Problem] = []
        self.lifecycle = Lifecycle()
        self._lifecycle_stamp: Stamp | None = None
        self._lifecycle_problems: list[Problem] = []
        self._lock = threading.Lock()  # a threaded web server may refresh from two requests at once
        # The segments the sequences' conditions and triggers name (segments/ beside sequences/), so that
        # whoever holds the sequences can judge them; re-read when their files change.
        self.segment_files = SegmentFiles(directory.parent / "segments")

    def segments(self) -> dict[str, Segment]:
        return self.segment_files.get()

    def refresh(self) -> list[Problem]:
        """Re-read changed files. Returns the problems of every file whose text on disk does not run."""
        with self._lock:
            lifecycle_changed = self._refresh_lifecycle()
            templates = _tree_stamp(self.check.templates_dir, self.check.sms_templates_dir)
            # Other files changed: a refused text may pass now (its missing template was added, its stage defined).
            recheck = lifecycle_changed or templates != self._templates
            self._templates = templates
            files = sequence_files(self.directory) if self.directory.is_dir() else []
            for file in files:
                stamp = _stamp(file)
                if self._stamps.get(file) != stamp or (recheck and file in self._refused):
                    self._stamps[file] = stamp
                    self._examine(file)
            for gone in set(self._stamps) - set(files):
                self._by_file.pop(gone, None)
                self._stamps.pop(gone, None)
                self._refused.pop(gone, None)
            self._by_id = {sequence.id: sequence for sequence in self._by_file.values()}
            self.problems = [p for r in self._refused.values() for p in r.problems] + self._lifecycle_problems
            return self.problems

    def _examine(self, file: Path) -> None:
        checked = check_sequence_file(file, self.check, self.lifecycle.stages)
        sequence = checked.sequence
        problems = self._id_taken(file, sequence) if sequence is not None else checked.problems
        if sequence is None or problems:
            self._refuse(file, Refusal(self._shown(file), checked.sequence_id, tuple(problems)))
            return
        self._refused.pop(file, None)
        kept = self._by_file.get(file)
        self._by_file[file] = sequence
        if kept is None or kept.version != sequence.version:
            was = f" (was {kept.version})" if kept else ""
            log.info("%s: running version %s%s", self._shown(file), sequence.version, was)

    def _id_taken(self, file: Path, sequence: Sequence) -> list[Problem]:
        other = next((f for f, s in self._by_file.items() if s.id == sequence.id and f != file), None)
        if other is None:
            return []
        return [Problem(self._shown(file), 1, f"sequence id {sequence.id!r} is already used by {self._shown(other)}")]

    def _refuse(self, file: Path, refusal: Refusal) -> None:
        if self._refused.get(file) == refusal:
            return  # said already; the same text looked at again after another file changed
        self._refused[file] = refusal
        kept = self._by_file.get(file)
        if kept is None:
            # ERROR: nothing of this file runs here (unless a last good version is restored from the database).
            log.error("%s has errors, so this text of it does not run (nurture check):", self._shown(file))
        else:
            log.warning("%s has errors; version %s keeps running (nurture check):", self._shown(file), kept.version)
        for problem in refusal.problems:
            log.warning("  %s", problem)

    def _refresh_lifecycle(self) -> bool:
        """Re-read the lifecycle rules if their file changed; a file with errors keeps the rules running."""
        path = self.directory / LIFECYCLE_FILE
        stamp = _stamp(path) if path.is_file() else None
        if stamp == self._lifecycle_stamp:
            return False
        self._lifecycle_stamp = stamp
        if stamp is None:
            return True
        lifecycle, problems = parse_lifecycle(path.read_text(encoding="utf-8"), self._shown(path))
        self._lifecycle_problems = problems
        if problems:
            log.error("%s has errors; keeping the rules already loaded", self._shown(path))
            for problem in problems:
                log.error("  %s", problem)
            return False
        self.lifecycle = lifecycle
        return True

    def _shown(self, path: Path) -> str:
        return shown_path(path, self.check.root)

    def refused(self) -> dict[Path, Refusal]:
        """Files whose text on disk does not run, and why."""
        return dict(self._refused)

    def broken_files(self) -> list[Path]:
        """Files whose text on disk is refused and for which no version is running."""
        return sorted(f for f in self._refused if f not in self._by_file)

    def adopt(self, file: Path, sequence: Sequence) -> bool:
        """Run `sequence` (a last good version from elsewhere) for `file`, unless a version already runs."""
        if file in self._by_file or any(s.id == sequence.id for s in self._by_file.values()):
            return False
        self._by_file[file] = sequence
        self._by_id[sequence.id] = sequence
        return True

    def follow(self, file: Path, sequence: Sequence) -> None:
        """Run `sequence` in place of whatever version of it runs here: the version another process adopted."""
        with self._lock:
            for other in [f for f, s in self._by_file.items() if s.id == sequence.id]:
                del self._by_file[other]
            self._by_file[file] = sequence
            self._by_id[sequence.id] = sequence

    def get(self, sequence_id: str) -> Sequence | None:
        return self._by_id.get(sequence_id)

    def all(self) -> list[Sequence]:
        return sorted(self._by_id.values(), key=lambda s: s.id)
