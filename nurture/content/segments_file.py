"""Segment files (`segments/*.yaml`) -> `Segment` objects, every problem as `path:line: message`.

    id: engaged-leads
    name: Engaged leads
    description: Leads who opened or clicked in the last 30 days and may be emailed.
    condition:
      all:
        - {stage: lead}
        - {engaged: 30d}
        - {consent: email}

The condition is the sequences' condition language (nurture.rules.conditions). A segment looks at all the
contact's events, and has no steps of its own: `opened`/`clicked` (which name a sequence's step) are refused.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from yaml.nodes import MappingNode, Node, SequenceNode

from nurture.content.yaml_reader import NodeReader, Problem, compose
from nurture.content.yaml_reader import line as _line
from nurture.content.yaml_reader import value as _value
from nurture.rules.conditions import Condition, parse_condition, segments_named, walk
from nurture.rules.segments import Segment, cycles, resolve
from nurture.rules.sequence import Sequence

log = logging.getLogger(__name__)

SEGMENT_KEYS = {"id", "name", "description", "condition"}
STEP_ONLY = ("opened", "clicked")


def _where(node: Node, kind: str) -> int:
    """The line of the first `kind:` key under `node` (where a refused condition is written)."""
    if isinstance(node, MappingNode):
        for key, child in node.value:
            if getattr(key, "value", None) == kind:
                return _line(key)
            if (found := _where(child, kind)) != -1:
                return found
    if isinstance(node, SequenceNode):
        for child in node.value:
            if (found := _where(child, kind)) != -1:
                return found
    return -1


class _SegmentReader(NodeReader):
    def condition(self, fields: dict[str, Node], root: Node) -> Condition | None:
        node = fields.get("condition")
        if node is None:
            self.problem(root, "segment is missing required key 'condition'")
            return None
        try:
            condition = parse_condition(_value(node))
        except (ValueError, TypeError) as exc:
            self.problem(node, str(exc))
            return None
        for kind in STEP_ONLY:
            if any(c.kind == kind for c in walk(condition)):
                at = _where(node, kind)
                self.problem(at if at > 0 else node, f"{kind} names a step of a sequence, and a segment has "
                             f"none: use {{event: email.{kind}, where: {{sequence: ID, step: ID}}}}")
                return None
        return condition

    def segment(self, root: Node, source: str) -> Segment | None:
        fields = self.mapping(root, SEGMENT_KEYS, "segment")
        if not fields:
            return None
        segment_id = self.identifier(fields, "id", root, "segment")
        name = self.text(fields, "name", root, "segment")
        description = self.text(fields, "description", root, "segment", required=False)
        condition = self.condition(fields, root)
        if condition is None or self.problems:
            return None
        return Segment(segment_id, name, condition, description, self.path, _line(root), source)


def parse_segment(source: str, path: str) -> tuple[Segment | None, list[Problem]]:
    """One segment file's text -> the segment (only when it has no problem) and its problems."""
    root, problems = compose(source, path)
    if root is None:
        return None, problems or [Problem(path, 1, "file is empty")]
    reader = _SegmentReader(path)
    segment = reader.segment(root, source)
    return segment, reader.problems


def segment_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.y*ml") if p.suffix in (".yaml", ".yml")) if directory.is_dir() else []


def load_segments(directory: Path, display_root: Path | None = None) -> tuple[dict[str, Segment], list[Problem]]:
    """Every segment in `directory` by id, and every problem: in a file, a duplicate id, a {segment: ID}
    naming no segment, segments naming each other in a circle. A segment with such a problem is left out."""
    segments: dict[str, Segment] = {}
    problems: list[Problem] = []
    for file in segment_files(directory):
        shown = _display(file, display_root)
        segment, found = parse_segment(file.read_text(encoding="utf-8"), shown)
        problems += found
        if segment is None:
            continue
        if segment.id in segments:
            problems.append(Problem(shown, 1, f"segment id {segment.id!r} is already used by "
                                              f"{segments[segment.id].path}"))
            continue
        segments[segment.id] = segment
    with_errors = _ids_in_files(directory) - set(segments)
    broken = {sid: f"names segment {other!r}, which has errors of its own (see its file)"
              for sid, segment in segments.items() for other in sorted(segment.refers_to & with_errors)}
    broken |= {sid: message for sid, message in cycles(segments) if sid not in broken}
    problems += [Problem(segments[sid].path, _condition_line(segments[sid]), message)
                 for sid, message in broken.items()]
    return resolve({sid: s for sid, s in segments.items() if sid not in broken}), problems


def unknown_segments(condition: Condition | None, segments: Mapping[str, Segment]) -> list[str]:
    """The ids a condition names with {segment: ID} that no segment file defines."""
    if condition is None:
        return []
    return sorted(str(c.arg) for c in walk(condition) if c.kind == "segment" and c.arg not in segments)


def _condition_line(segment: Segment) -> int:
    root, _ = compose(segment.source, segment.path)
    at = _where(root, "segment") if root is not None else -1
    return at if at > 0 else segment.line


def _display(file: Path, root: Path | None) -> str:
    try:
        return str(file.relative_to(root)) if root else str(file)
    except ValueError:
        return str(file)


def segments_used(sequence: Sequence) -> list[tuple[int, str]]:
    """(line, segment id) for every segment a sequence names: `trigger: {segment: ID}`, `{segment: ID}` in a
    goal or a step's `if`."""
    used = [(_line_naming(sequence.source, t.value), t.value) for t in sequence.triggers if t.kind == "segment"]
    used += [(_line_naming(sequence.source, sid), sid) for goal in sequence.goals for sid in segments_named(goal)]
    for step in sequence.steps:
        if step.condition is not None:
            used += [(step.line_of("if"), sid) for sid in segments_named(step.condition)]
    return used


def _line_naming_stage(source: str, stage: str) -> int:
    pattern = re.compile(rf"\b{re.escape(stage)}\b")
    lines = source.splitlines()
    return next((n for n, text in enumerate(lines, 1) if "stage" in text and pattern.search(text)),
                next((n for n, text in enumerate(lines, 1) if pattern.search(text)), 1))


def _line_naming(source: str, segment_id: str) -> int:
    """The first line of a file's text that says `segment: ID` (the sequence model keeps no line for it)."""
    pattern = re.compile(rf"segment\s*:\s*['\"]?{re.escape(segment_id)}\b")
    return next((n for n, text in enumerate(source.splitlines(), 1) if pattern.search(text)), 1)


def check_segments(directory: Path, sequences: Mapping[str, Sequence], display_root: Path | None = None,
                   stages: Iterable[str] | None = None) -> tuple[int, list[Problem]]:
    """What `nurture check` says about segment files and the segments sequences name: (segments, problems).
    With `stages` (the lifecycle's), a segment naming another stage is a problem: it would match nobody."""
    segments, problems = load_segments(directory, display_root)
    known_stages = list(stages or [])
    for segment in segments.values() if known_stages else ():
        for condition in walk(segment.condition):
            for stage in sorted(condition.arg) if condition.kind == "stage" else ():  # type: ignore[call-overload]
                if stage not in known_stages:
                    problems.append(Problem(segment.path, _line_naming_stage(segment.source, stage),
                                            f"unknown stage {stage!r} (stages: {', '.join(known_stages)})"))
    known = {s.id for s in segments.values()} | _ids_in_files(directory)
    for sequence in sequences.values():
        for line, segment_id in segments_used(sequence):
            if segment_id not in known:
                problems.append(Problem(sequence.path, line, f"sequence {sequence.id!r} names unknown segment "
                                                             f"{segment_id!r} (no segments/*.yaml has that id)"))
    return len(segments), problems


def _ids_in_files(directory: Path) -> set[str]:
    """Ids of segment files that have problems of their own (reported there, not again as "unknown")."""
    ids = set()
    for file in segment_files(directory):
        root, _ = compose(file.read_text(encoding="utf-8"), str(file))
        found = _value(root) if root is not None else None
        if isinstance(found, dict) and isinstance(found.get("id"), str):
            ids.add(found["id"])
    return ids


class SegmentFiles:
    """The segments a running process uses, re-read when a file in segments/ changes. When the files have
    problems, the segments already loaded keep running (as a broken sequence file keeps its version) and
    the problems are logged once."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._stamp: frozenset[tuple[str, int, int]] | None = None
        self._segments: dict[str, Segment] = {}
        self.problems: list[Problem] = []
        self._lock = threading.Lock()

    def _current_stamp(self) -> frozenset[tuple[str, int, int]]:
        return frozenset((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in segment_files(self.directory))

    def get(self) -> dict[str, Segment]:
        """Every segment in force now, by id."""
        with self._lock:
            stamp = self._current_stamp()
            if stamp != self._stamp:
                self._stamp = stamp
                segments, self.problems = load_segments(self.directory, self.directory.parent)
                if self.problems:
                    log.error("segments/ has errors; %s (nurture check):", "keeping the segments already loaded"
                              if self._segments else "using the segments without errors")
                    for problem in self.problems:
                        log.error("  %s", problem)
                if not self.problems or not self._segments:
                    self._segments = segments
            return dict(self._segments)
