"""Sequence, form and lifecycle files are read by one YAML reader (nurture.content.yaml_reader): a syntax
error reads the same in each, in one line, at its line."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from nurture.content.forms import parse_form
from nurture.content.lifecycle_file import parse_lifecycle
from nurture.content.loader import parse_sequence


def _problems(parse: Callable[[str, str], tuple[object, list]], text: str) -> list[str]:
    return [str(p) for p in parse(text, "f.yaml")[1]]


@pytest.mark.parametrize("parse", [parse_sequence, parse_form, parse_lifecycle],
                         ids=["sequence", "form", "lifecycle"])
def test_a_syntax_error_is_one_line_at_its_line_in_every_kind_of_file(
        parse: Callable[[str, str], tuple[object, list]]) -> None:
    assert _problems(parse, "id: demo\n  name: indented\n") == [
        "f.yaml:2: YAML syntax error: mapping values are not allowed here"]


def test_an_empty_lifecycle_file_means_the_default_rules() -> None:
    rules, problems = parse_lifecycle("# nothing yet\n", "f.yaml")
    assert problems == [] and rules == parse_lifecycle("", "f.yaml")[0]
