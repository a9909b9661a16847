"""The sequences a running process uses, reloaded when their files change.

A file with errors never replaces the version that is running: the last good version of that file stays,
and the problems are logged. (A process that starts with a broken file has no version of it to run.)
"""

from __future__ import annotations

import logging
from pathlib import Path

from nurture.content.lifecycle_file import parse_lifecycle
from nurture.content.loader import Problem, parse_sequence, sequence_files
from nurture.rules.lifecycle import Lifecycle
from nurture.rules.sequence import Sequence

LIFECYCLE_FILE = "_lifecycle.yaml"

log = logging.getLogger(__name__)


class SequenceRegistry:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._by_file: dict[Path, Sequence] = {}
        self._stamps: dict[Path, tuple[int, int]] = {}
        self._by_id: dict[str, Sequence] = {}
        self._broken: set[Path] = set()
        self.problems: list[Problem] = []
        self.lifecycle = Lifecycle()
        self._lifecycle_stamp: tuple[int, int] | None = None

    def refresh(self) -> list[Problem]:
        """Re-read changed files. Returns the problems of files whose new version was refused."""
        files = sequence_files(self.directory) if self.directory.is_dir() else []
        problems: list[Problem] = []
        for file in files:
            stat = file.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if self._stamps.get(file) == stamp:
                continue
            self._stamps[file] = stamp
            sequence, found = parse_sequence(file.read_text(encoding="utf-8"), str(file))
            if sequence is None:
                self._broken.add(file)
                problems += found
                kept = self._by_file.get(file)
                log.error("%s has errors; %s", file, f"keeping version {kept.version}" if kept else "not loaded")
                for problem in found:
                    log.error("  %s", problem)
                continue
            self._by_file[file] = sequence
            self._broken.discard(file)
        self._broken &= set(files)
        for gone in set(self._by_file) - set(files):
            del self._by_file[gone]
            self._stamps.pop(gone, None)
        self._by_id = {sequence.id: sequence for sequence in self._by_file.values()}
        problems += self._refresh_lifecycle()
        self.problems = problems
        return problems

    def _refresh_lifecycle(self) -> list[Problem]:
        path = self.directory / LIFECYCLE_FILE
        if not path.is_file():
            return []
        stat = path.stat()
        if self._lifecycle_stamp == (stat.st_mtime_ns, stat.st_size):
            return []
        self._lifecycle_stamp = (stat.st_mtime_ns, stat.st_size)
        lifecycle, problems = parse_lifecycle(path.read_text(encoding="utf-8"), str(path))
        if problems:
            log.error("%s has errors; keeping the rules already loaded", path)
            for problem in problems:
                log.error("  %s", problem)
            return problems
        self.lifecycle = lifecycle
        return []

    def broken_files(self) -> list[Path]:
        """Files whose text on disk has errors and for which no version is running."""
        return sorted(f for f in self._broken if f not in self._by_file)

    def adopt(self, file: Path, sequence: Sequence) -> bool:
        """Run `sequence` (a last good version from elsewhere) for `file`, unless a version already runs."""
        if file in self._by_file or any(s.id == sequence.id for s in self._by_file.values()):
            return False
        self._by_file[file] = sequence
        self._by_id[sequence.id] = sequence
        return True

    def get(self, sequence_id: str) -> Sequence | None:
        return self._by_id.get(sequence_id)

    def all(self) -> list[Sequence]:
        return sorted(self._by_id.values(), key=lambda s: s.id)
