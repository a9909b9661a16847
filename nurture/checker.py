"""`nurture check`: every problem in sequence files and templates, in one run, as `path:line: message`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jinja2
import jinja2.meta
from jinja2 import nodes

from nurture.context import BrandView, ContactView, SequenceView, StepView
from nurture.loader import Problem, load_sequences
from nurture.rendering import _BLOCK, _EXTENDS, flatten, make_environment
from nurture.sequence import Sequence

# What a template may use, and the attributes of each object (a typo there is an error, not a blank).
CONTEXT_OBJECTS: dict[str, type] = {
    "contact": ContactView,
    "brand": BrandView,
    "sequence": SequenceView,
    "step": StepView,
}
CONTEXT_NAMES = set(CONTEXT_OBJECTS) | {"postal_address", "unsubscribe_url", "preferences_url", "confirm_url"}
REQUIRED_IN_EMAIL = {
    "unsubscribe_url": "has no unsubscribe link ({{ unsubscribe_url }}); every marketing email needs one",
    "postal_address": "has no postal address ({{ postal_address }}); CAN-SPAM requires one in every email",
}
TEMPLATE_SUFFIXES = (".html", ".txt")


@dataclass(frozen=True)
class CheckResult:
    problems: list[Problem]
    sequences: int
    steps: int
    templates: int

    @property
    def summary(self) -> str:
        return (f"ok: {self.sequences} sequences, {self.steps} steps, {self.templates} templates checked, "
                f"no problems")


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _names_used(tree: nodes.Template) -> Iterator[tuple[str, int]]:
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load":
            yield node.name, node.lineno


def _bad_attributes(tree: nodes.Template) -> Iterator[tuple[str, int]]:
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name in CONTEXT_OBJECTS:
            allowed = {f.name for f in dataclasses.fields(CONTEXT_OBJECTS[node.node.name])}
            if node.attr not in allowed:
                yield f"{node.node.name}.{node.attr}", node.lineno


class _Checker:
    def __init__(self, sequences_dir: Path, templates_dir: Path, root: Path) -> None:
        self.sequences_dir = sequences_dir
        self.templates_dir = templates_dir
        self.root = root
        self.env = make_environment(templates_dir)
        self.problems: list[Problem] = []

    def add(self, path: Path | str, line: int, message: str) -> None:
        shown = _shown(path, self.root) if isinstance(path, Path) else path
        self.problems.append(Problem(shown, line, message))

    def check_source(self, path: Path, source: str) -> nodes.Template | None:
        """Syntax and names of one template source; returns its AST when it parses."""
        try:
            tree = self.env.parse(source)
        except jinja2.TemplateSyntaxError as exc:
            self.add(path, exc.lineno, f"template syntax error: {exc.message}")
            return None
        declared = jinja2.meta.find_undeclared_variables(tree)
        for name, line in _names_used(tree):
            if name in declared and name not in CONTEXT_NAMES:
                known = ", ".join(sorted(CONTEXT_NAMES))
                self.add(path, line, f"undefined template variable {name!r} (known: {known})")
        for dotted, line in _bad_attributes(tree):
            self.add(path, line, f"undefined template variable {dotted!r}")
        if source.count("{% block") + source.count("{%- block") > 0 and "super()" in source:
            self.add(path, 1, "super() is not supported in email templates (layouts are flattened once)")
        return tree

    def check_template_files(self) -> int:
        files = sorted(p for p in self.templates_dir.rglob("*") if p.suffix in TEMPLATE_SUFFIXES)
        for file in files:
            self.check_source(file, file.read_text(encoding="utf-8"))
            self.check_blocks(file)
        return len(files)

    def check_blocks(self, file: Path) -> None:
        source = file.read_text(encoding="utf-8")
        if _EXTENDS.search(source):
            for _name, body in _BLOCK.findall(source):
                if "{% block" in body or "{%- block" in body:
                    self.add(file, 1, "nested blocks are not supported in email templates")

    def check_email_step(self, sequence: Sequence, sequence_file: Path, step_index: int) -> None:
        step = sequence.steps[step_index]
        missing = False
        for suffix in TEMPLATE_SUFFIXES:
            if not (self.templates_dir / f"{step.template}{suffix}").is_file():
                self.add(sequence_file, step.line_of("template"),
                         f"step {step.id!r}: unknown template {step.template!r} "
                         f"(no {_shown(self.templates_dir / (step.template + suffix), self.root)})")
                missing = True
        self.check_subject(sequence_file, step.line_of("subject"), step.id, step.subject)
        if not missing:
            for suffix in TEMPLATE_SUFFIXES:
                self.check_compliance(f"{step.template}{suffix}")

    def check_subject(self, path: Path, line: int, step_id: str, subject: str) -> None:
        try:
            tree = self.env.parse(subject)
        except jinja2.TemplateSyntaxError as exc:
            self.add(path, line, f"step {step_id!r}: subject: template syntax error: {exc.message}")
            return
        for name, _ in _names_used(tree):
            if name in jinja2.meta.find_undeclared_variables(tree) and name not in CONTEXT_NAMES:
                self.add(path, line, f"step {step_id!r}: subject: undefined template variable {name!r}")
        for dotted, _ in _bad_attributes(tree):
            self.add(path, line, f"step {step_id!r}: subject: undefined template variable {dotted!r}")

    def check_compliance(self, name: str) -> None:
        """The flattened template (layout included) must show the unsubscribe link and postal address."""
        path = self.templates_dir / name
        try:
            assert self.env.loader is not None
            source = flatten(name, lambda n: self.env.loader.get_source(self.env, n)[0])  # type: ignore[union-attr]
            tree = self.env.parse(source)
        except jinja2.TemplateNotFound as exc:
            self.add(path, 1, f"template {exc.name!r} not found (extended by {name})")
            return
        except (jinja2.TemplateError, OSError):
            return  # a syntax error, already reported by check_source
        used = {name for name, _ in _names_used(tree)}
        for variable, message in REQUIRED_IN_EMAIL.items():
            if variable not in used:
                self.add(path, 1, f"email template {message}")


def check_tree(sequences_dir: Path, templates_dir: Path, root: Path) -> CheckResult:
    checker = _Checker(sequences_dir, templates_dir, root)
    sequences, problems = load_sequences(sequences_dir, display_root=root.resolve(), partial=True)
    checker.problems += [Problem(_shown(Path(p.path), root) if Path(p.path).is_absolute() else p.path, p.line,
                                 p.message) for p in problems]
    if not sequences_dir.is_dir():
        checker.add(sequences_dir, 1, "sequences directory not found")
    templates = checker.check_template_files() if templates_dir.is_dir() else 0
    steps = 0
    for sequence in sequences.values():
        for index, step in enumerate(sequence.steps):
            steps += 1
            if step.channel == "email" and step.template:
                checker.check_email_step(sequence, sequences_dir / Path(sequence.path).name, index)
    unique = sorted(set(checker.problems), key=lambda p: (p.path, p.line, p.message))
    return CheckResult(problems=unique, sequences=len(sequences), steps=steps, templates=templates)
