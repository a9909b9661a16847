"""Conditions in sequence files (`if:`, goals, triggers), parsed from YAML and evaluated against `Facts`.

Pure: no I/O, no clock (`now` is handed in). Conditions are YAML mappings rather than a string language so
that every mistake is reported at its line by the loader and nothing is ever `eval`-ed:

    {tag: vip}                          the contact has the tag
    {field: {plan: pro}}                a custom field equals a value
    {stage: [customer, repeat-customer]}
    {score: ">= 10"}                    lead score compared with a number
    {event: purchase}                   the event happened (since the contact entered the sequence)
    {event: purchase, within: 30d}      ... in the last 30 days
    {event: rating, where: {score: ">= 9"}}   ... with a property matching
    {opened: edu-1} / {clicked: offer}  an earlier message of this sequence was opened / clicked
    {all: [...]} / {any: [...]} / {not: {...}}
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from nurture.rules.durations import parse_duration

_COMPARISON = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*(-?\d+(?:\.\d+)?)\s*$")
_OPERATORS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt,
              "<": operator.lt}
KEYS = ("tag", "field", "stage", "score", "event", "opened", "clicked", "all", "any", "not")


@dataclass(frozen=True)
class EventFact:
    type: str
    at: datetime
    data: Mapping = field(default_factory=dict)


@dataclass(frozen=True)
class Facts:
    """What conditions may look at, loaded once per decision by the caller."""

    tags: frozenset[str] = frozenset()
    fields: Mapping = field(default_factory=dict)
    stage: str = "lead"
    score: float = 0.0
    events: tuple[EventFact, ...] = ()  # since the contact entered the sequence (or as the caller chose)
    opened: frozenset[str] = frozenset()  # step ids of this sequence
    clicked: frozenset[str] = frozenset()
    purchased: frozenset[str] = frozenset()  # products bought, ever (purchase events' `product`)


@dataclass(frozen=True)
class Comparison:
    op: str
    value: float

    def holds(self, number: object) -> bool:
        try:
            return _OPERATORS[self.op](float(number), self.value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


def parse_comparison(value: object) -> Comparison:
    if isinstance(value, bool):
        raise ValueError(f"expected a comparison like '>= 10', got {value!r}")
    match = _COMPARISON.match(str(value))
    if not match:
        raise ValueError(f"expected a comparison like '>= 10', got {value!r}")
    return Comparison(match[1] or "==", float(match[2]))


@dataclass(frozen=True)
class Condition:
    """One node of a condition tree. `kind` is one of KEYS; `arg` its parsed argument."""

    kind: str
    arg: object
    within: timedelta | None = None
    where: tuple[tuple[str, object], ...] = ()
    children: tuple[Condition, ...] = ()

    def holds(self, facts: Facts, now: datetime) -> bool:
        return _CHECKS[self.kind](self, facts, now)

    def __str__(self) -> str:
        if self.kind in ("all", "any"):
            return f" {'and' if self.kind == 'all' else 'or'} ".join(f"({c})" for c in self.children)
        if self.kind == "not":
            return f"not ({self.children[0]})"
        extra = f" within {self.within}" if self.within else ""
        return f"{self.kind} {self.arg}{extra}"


def _event_matches(c: Condition, event: EventFact, now: datetime) -> bool:
    if event.type != c.arg or (c.within is not None and event.at < now - c.within):
        return False
    for key, expected in c.where:
        value = event.data.get(key)
        if isinstance(expected, Comparison) and not expected.holds(value):
            return False
        if not isinstance(expected, Comparison) and value != expected:
            return False
    return True


_CHECKS = {
    "tag": lambda c, f, now: c.arg in f.tags,
    "field": lambda c, f, now: all(f.fields.get(k) == v for k, v in c.arg),  # type: ignore[attr-defined]
    "stage": lambda c, f, now: f.stage in c.arg,  # type: ignore[operator]
    "score": lambda c, f, now: c.arg.holds(f.score),  # type: ignore[attr-defined]
    "event": lambda c, f, now: any(_event_matches(c, e, now) for e in f.events),
    "opened": lambda c, f, now: c.arg in f.opened,
    "clicked": lambda c, f, now: c.arg in f.clicked,
    "all": lambda c, f, now: all(child.holds(f, now) for child in c.children),
    "any": lambda c, f, now: any(child.holds(f, now) for child in c.children),
    "not": lambda c, f, now: not c.children[0].holds(f, now),
}


def parse_condition(value: object) -> Condition:
    """YAML value -> Condition. Raises ValueError with a message fit for `path:line: message`."""
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"a condition is a mapping like {{tag: vip}} or {{event: purchase}}, got {value!r}")
    keys = [k for k in value if k in KEYS]
    if len(keys) != 1:
        raise ValueError(f"a condition needs exactly one of: {', '.join(KEYS)} (got {', '.join(map(str, value))})")
    kind = keys[0]
    extra = set(value) - {kind, "within", "where"}
    if extra or (kind != "event" and set(value) - {kind}):
        raise ValueError(f"unexpected key(s) {', '.join(sorted(map(str, set(value) - {kind})))} in a {kind} "
                         "condition (only event conditions take within/where)")
    return _PARSERS[kind](value[kind], value)


def _names(value: object, what: str) -> tuple[str, ...]:
    names = value if isinstance(value, list) else [value]
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{what} takes a name or a list of names, got {value!r}")
    return tuple(names)


def _parse_field(value: object) -> tuple[tuple[str, object], ...]:
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"field takes a mapping like {{plan: pro}}, got {value!r}")
    return tuple((str(k), v) for k, v in value.items())


def _parse_event(name: object, whole: Mapping) -> Condition:
    if not isinstance(name, str) or not name:
        raise ValueError(f"event takes an event type like purchase, got {name!r}")
    within = None
    if "within" in whole:
        delay = parse_duration(whole["within"])
        within = timedelta(days=delay.days, seconds=delay.seconds)
    where = whole.get("where") or {}
    if not isinstance(where, Mapping):
        raise ValueError("where takes a mapping of property: value or property: '>= number'")
    parsed = tuple((str(k), parse_comparison(v) if isinstance(v, str) and _COMPARISON.match(v) and
                    v.strip()[:1] in "<>=!" else v) for k, v in where.items())
    return Condition("event", name, within=within, where=parsed)


def _parse_group(kind: str, value: object) -> Condition:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{kind} takes a non-empty list of conditions")
    return Condition(kind, None, children=tuple(parse_condition(v) for v in value))


_PARSERS = {
    "tag": lambda v, w: Condition("tag", _names(v, "tag")[0]),
    "field": lambda v, w: Condition("field", _parse_field(v)),
    "stage": lambda v, w: Condition("stage", frozenset(_names(v, "stage"))),
    "score": lambda v, w: Condition("score", parse_comparison(v)),
    "event": _parse_event,
    "opened": lambda v, w: Condition("opened", _names(v, "opened")[0]),
    "clicked": lambda v, w: Condition("clicked", _names(v, "clicked")[0]),
    "all": lambda v, w: _parse_group("all", v),
    "any": lambda v, w: _parse_group("any", v),
    "not": lambda v, w: Condition("not", None, children=(parse_condition(v),)),
}


def event_types(condition: Condition) -> frozenset[str]:
    """Every event type a condition looks at (so callers load only those events)."""
    if condition.kind == "event":
        return frozenset({str(condition.arg)})
    return frozenset().union(*(event_types(c) for c in condition.children)) if condition.children else frozenset()
