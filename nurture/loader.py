"""Sequence files (YAML) -> `Sequence` objects, with every problem reported as `path:line: message`.

The loader walks PyYAML's node tree instead of plain `safe_load` output because nodes keep their line
numbers: a marketer who mistypes a key should be sent to the line, not to the file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from nurture.sequence import (
    CHANNELS,
    LIFECYCLE_STAGES,
    MESSAGE_KINDS,
    Delay,
    Sequence,
    Step,
    Wait,
    parse_clock,
    parse_days,
    parse_duration,
)

_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
SEQUENCE_KEYS = {"id", "name", "stage", "description", "transactional", "steps"}
STEP_KEYS = {"id", "kind", "channel", "wait", "at", "on", "template", "subject"}


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class SequenceFileError(Exception):
    """One or more sequence files cannot be used; `problems` says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _value(node: Node) -> object:
    return SafeConstructor().construct_object(node, deep=True)


class _FileReader:
    """Collects problems for one file while turning its node tree into a Sequence."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def problem(self, node: Node | int, message: str) -> None:
        line = node if isinstance(node, int) else _line(node)
        self.problems.append(Problem(self.path, line, message))

    def mapping(self, node: Node, allowed: set[str], what: str) -> dict[str, Node]:
        if not isinstance(node, MappingNode):
            self.problem(node, f"{what} must be a mapping of keys to values")
            return {}
        fields: dict[str, Node] = {}
        for key_node, value_node in node.value:
            # The raw text, not the constructed value: YAML 1.1 reads a bare `on:` key as True.
            key = key_node.value if isinstance(key_node, ScalarNode) else str(_value(key_node))
            if key not in allowed:
                self.problem(key_node, f"unknown key {key!r} in {what} (allowed: {', '.join(sorted(allowed))})")
            elif key in fields:
                self.problem(key_node, f"duplicate key {key!r} in {what}")
            else:
                fields[key] = value_node
        return fields

    def text(self, fields: dict[str, Node], key: str, parent: Node, what: str, required: bool = True) -> str:
        node = fields.get(key)
        if node is None:
            if required:
                self.problem(parent, f"{what} is missing required key {key!r}")
            return ""
        if not isinstance(node, ScalarNode) or node.value == "" or node.tag.endswith(":null"):
            self.problem(node, f"{key!r} must be a non-empty text")
            return ""
        return str(_value(node))

    def flag(self, fields: dict[str, Node], key: str) -> bool:
        node = fields.get(key)
        if node is None:
            return False
        value = _value(node)
        if not isinstance(value, bool):
            self.problem(node, f"{key!r} must be true or false")
            return False
        return value

    def identifier(self, fields: dict[str, Node], key: str, parent: Node, what: str) -> str:
        value = self.text(fields, key, parent, what)
        if value and not _ID.match(value):
            self.problem(fields[key], f"{key} {value!r} must use lowercase letters, digits and dashes")
        return value

    def choice(self, fields: dict[str, Node], key: str, parent: Node, what: str, allowed: tuple[str, ...]) -> str:
        value = self.text(fields, key, parent, what)
        if value and value not in allowed:
            self.problem(fields[key], f"unknown {key} {value!r} (expected one of: {', '.join(allowed)})")
        return value

    def wait(self, fields: dict[str, Node]) -> Wait:
        parsed: dict[str, object] = {}
        for key, parse in (("wait", parse_duration), ("at", parse_clock), ("on", parse_days)):
            if key in fields:
                node = fields[key]
                # `at` is read from the raw text: YAML 1.1 turns an unquoted 25:00 into the number 1500.
                raw = node.value if key == "at" and isinstance(node, ScalarNode) else _value(node)
                try:
                    parsed[key] = parse(raw)
                except ValueError as exc:
                    self.problem(fields[key], str(exc))
        return Wait(delay=parsed.get("wait", Delay()), at=parsed.get("at"), days=parsed.get("on"))

    def step(self, node: Node, seen: dict[str, int]) -> Step | None:
        fields = self.mapping(node, STEP_KEYS, "step")
        if not fields:
            return None
        step_id = self.identifier(fields, "id", node, "step")
        if step_id in seen:
            self.problem(fields["id"], f"duplicate step id {step_id!r} (first used on line {seen[step_id]})")
        elif step_id:
            seen[step_id] = _line(fields["id"])
        channel = self.choice(fields, "channel", node, "step", CHANNELS) if "channel" in fields else "email"
        return Step(
            id=step_id,
            kind=self.choice(fields, "kind", node, "step", MESSAGE_KINDS),
            channel=channel,
            template=self.text(fields, "template", node, "step"),
            subject=self.text(fields, "subject", node, "step", required=channel == "email"),
            wait=self.wait(fields),
            line=_line(node),
            key_lines={key: _line(value) for key, value in fields.items()},
        )

    def sequence(self, root: Node, version: str) -> Sequence | None:
        fields = self.mapping(root, SEQUENCE_KEYS, "sequence")
        if not fields:
            return None
        steps_node = fields.get("steps")
        steps: list[Step] = []
        if steps_node is None:
            self.problem(root, "sequence is missing required key 'steps'")
        elif not isinstance(steps_node, SequenceNode) or not steps_node.value:
            self.problem(steps_node, "'steps' must be a non-empty list of steps")
        else:
            seen: dict[str, int] = {}
            steps = [s for s in (self.step(n, seen) for n in steps_node.value) if s is not None]
        return Sequence(
            id=self.identifier(fields, "id", root, "sequence"),
            name=self.text(fields, "name", root, "sequence"),
            stage=self.choice(fields, "stage", root, "sequence", LIFECYCLE_STAGES),
            description=self.text(fields, "description", root, "sequence", required=False),
            transactional=self.flag(fields, "transactional"),
            steps=tuple(steps),
            path=self.path,
            version=version,
        )


def parse_sequence(source: str, path: str, partial: bool = False) -> tuple[Sequence | None, list[Problem]]:
    """Parse one sequence file's text. Returns the sequence only when there are no problems, unless
    `partial` (for `nurture check`, which goes on to check the templates of a file with other errors)."""
    reader = _FileReader(path)
    try:
        root = yaml.compose(source, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        reason = getattr(exc, "problem", None) or str(exc)
        return None, [Problem(path, line, f"YAML syntax error: {reason}")]
    if root is None:
        return None, [Problem(path, 1, "file is empty")]
    version = hashlib.sha256(source.encode()).hexdigest()[:12]
    sequence = reader.sequence(root, version)
    return (None if reader.problems and not partial else sequence), reader.problems


def sequence_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))


def load_sequences(directory: Path, display_root: Path | None = None,
                   partial: bool = False) -> tuple[dict[str, Sequence], list[Problem]]:
    """Every sequence in `directory`, keyed by id, and every problem found (including duplicate ids)."""
    sequences: dict[str, Sequence] = {}
    problems: list[Problem] = []
    for file in sequence_files(directory):
        shown = _display(file, display_root)
        sequence, found = parse_sequence(file.read_text(encoding="utf-8"), shown, partial)
        problems += found
        if sequence is None:
            continue
        if sequence.id in sequences and sequence.id:
            problems.append(Problem(shown, 1, f"sequence id {sequence.id!r} is already used by "
                                              f"{sequences[sequence.id].path}"))
            continue
        sequences[sequence.id] = sequence
    return sequences, problems


def _display(file: Path, root: Path | None) -> str:
    try:
        return str(file.relative_to(root)) if root else str(file)
    except ValueError:
        return str(file)
