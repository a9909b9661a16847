"""The sequences a running process uses, reloaded when their files change.

A file with errors never replaces the version that is running: the last good version of that file stays,
and the problems are logged. (A process that starts with a broken file has no version of it to run.)
"""

from __future__ import annotations

import logging
from pathlib import Path

from nurture.loader import Problem, parse_sequence, sequence_files
from nurture.sequence import Sequence

log = logging.getLogger(__name__)


class SequenceRegistry:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._by_file: dict[Path, Sequence] = {}
        self._stamps: dict[Path, tuple[int, int]] = {}
        self._by_id: dict[str, Sequence] = {}
        self.problems: list[Problem] = []

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
                problems += found
                kept = self._by_file.get(file)
                log.error("%s has errors; %s", file, f"keeping version {kept.version}" if kept else "not loaded")
                for problem in found:
                    log.error("  %s", problem)
                continue
            self._by_file[file] = sequence
        for gone in set(self._by_file) - set(files):
            del self._by_file[gone]
            self._stamps.pop(gone, None)
        self._by_id = {sequence.id: sequence for sequence in self._by_file.values()}
        self.problems = problems
        return problems

    def get(self, sequence_id: str) -> Sequence | None:
        return self._by_id.get(sequence_id)

    def all(self) -> list[Sequence]:
        return sorted(self._by_id.values(), key=lambda s: s.id)
