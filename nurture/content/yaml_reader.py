"""YAML with line numbers: the one reader behind sequence, form and lifecycle files.

It walks PyYAML's node tree instead of plain `safe_load` output because nodes keep their line numbers: a
marketer who mistypes a key should be sent to the line, not to the file. Each kind of file subclasses
`NodeReader` with what its own keys mean; every problem is collected (not raised), so one run reports all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode

_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def compose(source: str, path: str) -> tuple[Node | None, list[Problem]]:
    """The node tree of `source` (None when the file holds nothing), or its syntax error as a problem."""
    try:
        return yaml.compose(source, Loader=yaml.SafeLoader), []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc)
        return None, [Problem(path, mark.line + 1 if mark else 1, f"YAML syntax error: {reason}")]


def line(node: Node) -> int:
    return node.start_mark.line + 1


def value(node: Node) -> object:
    """The plain Python value of a node (what `safe_load` would have given)."""
    return SafeConstructor().construct_object(node, deep=True)


class NodeReader:
    """Collects the problems of one file while its subclass turns the node tree into a model."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def problem(self, node: Node | int, message: str) -> None:
        at = node if isinstance(node, int) else line(node)
        self.problems.append(Problem(self.path, at, message))

    def mapping(self, node: Node, allowed: set[str], what: str) -> dict[str, Node]:
        if not isinstance(node, MappingNode):
            self.problem(node, f"{what} must be a mapping of keys to values")
            return {}
        fields: dict[str, Node] = {}
        for key_node, value_node in node.value:
            # The raw text, not the constructed value: YAML 1.1 reads a bare `on:` key as True.
            key = key_node.value if isinstance(key_node, ScalarNode) else str(value(key_node))
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
        return str(value(node))

    def flag(self, fields: dict[str, Node], key: str) -> bool:
        node = fields.get(key)
        if node is None:
            return False
        given = value(node)
        if not isinstance(given, bool):
            self.problem(node, f"{key!r} must be true or false")
            return False
        return given

    def identifier(self, fields: dict[str, Node], key: str, parent: Node, what: str) -> str:
        given = self.text(fields, key, parent, what)
        if given and not _ID.match(given):
            self.problem(fields[key], f"{key} {given!r} must use lowercase letters, digits and dashes")
        return given

    def choice(self, fields: dict[str, Node], key: str, parent: Node, what: str, allowed: tuple[str, ...]) -> str:
        given = self.text(fields, key, parent, what)
        if given and given not in allowed:
            self.problem(fields[key], f"unknown {key} {given!r} (expected one of: {', '.join(allowed)})")
        return given
