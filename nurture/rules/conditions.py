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
    {consent: email}                    subscribed on the channel (email | sms)
    {engaged: 30d}                      a person (not a link scanner) opened or clicked an email in the window
    {inactive: 90d}                     known that long, and no open, click or purchase in that long
    {segment: engaged-leads}            in the named segment (segments/*.yaml; its events: all of them)
    {all: [...]} / {any: [...]} / {not: {...}}

A segment's condition is counted in SQL (nurture.store.segments compiles these same nodes); this module's
`holds` is the definition the SQL is tested against.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from nurture.rules.durations import parse_duration

_COMPARISON = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*(-?\d+(?:\.\d+)?)\s*$")
# A property compared with a number may hold a JSON number, true/false, or a number written as text
# ("12", "-3.5"): exactly this form, so that SQL (store.segments) can tell the same texts apart.
NUMBER_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_OPERATORS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt,
              "<": operator.lt}
KEYS = ("tag", "field", "stage", "score", "event", "opened", "clicked", "consent", "engaged", "inactive", "segment",
        "all", "any", "not")
# Engagement with a message (by a person: link scanners' events never reach Facts.events).
ENGAGEMENT = ("email.opened", "email.clicked")
ACTIVITY = (*ENGAGEMENT, "purchase")  # what `inactive` looks for
CONSENT_CHANNELS = ("email", "sms")


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
    subscribed: frozenset[str] = frozenset()  # channels the contact is subscribed on (consent)
    segments: frozenset[str] = frozenset()  # ids of the segments the contact is in (told by the caller)
    created_at: datetime | None = None  # when the contact became known (`inactive` needs that long)


@dataclass(frozen=True)
class Comparison:
    op: str
    value: float

    def holds(self, number: object) -> bool:
        if isinstance(number, str) and not NUMBER_TEXT.fullmatch(number):
            return False
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
        if self.kind in ("engaged", "inactive"):
            return f"{self.kind}{extra}"
        return f"{self.kind} {self.arg}{extra}"


def _event_matches(c: Condition, event: EventFact, now: datetime) -> bool:
    if event.type != c.arg or (c.within is not None and event.at < now - c.within):
        return False
    for key, expected in c.where:
        value = event.data.get(key)
        if isinstance(expected, Comparison) and not expected.holds(value):
            return False
        if not isinstance(expected, Comparison) and not field_equals(value, expected):
            return False
    return True


def _engaged(c: Condition, f: Facts, now: datetime) -> bool:
    since = now - c.within  # type: ignore[operator]
    return any(e.type in ENGAGEMENT and e.at >= since for e in f.events)


def _inactive(c: Condition, f: Facts, now: datetime) -> bool:
    since = now - c.within  # type: ignore[operator]
    known = f.created_at is None or f.created_at <= since
    return known and not any(e.type in ACTIVITY and e.at >= since for e in f.events)


def field_equals(stored: object, expected: object) -> bool:
    """A field (or event property) equals a condition's scalar: Python's ==, so 1 == 1.0 == true."""
    return stored == expected


_CHECKS = {
    "tag": lambda c, f, now: c.arg in f.tags,
    "field": lambda c, f, now: all(field_equals(f.fields.get(k), v) for k, v in c.arg),  # type: ignore[attr-defined]
    "stage": lambda c, f, now: f.stage in c.arg,  # type: ignore[operator]
    "score": lambda c, f, now: c.arg.holds(f.score),  # type: ignore[attr-defined]
    "event": lambda c, f, now: any(_event_matches(c, e, now) for e in f.events),
    "opened": lambda c, f, now: c.arg in f.opened,
    "clicked": lambda c, f, now: c.arg in f.clicked,
    "consent": lambda c, f, now: c.arg in f.subscribed,
    "engaged": _engaged,
    "inactive": _inactive,
    "segment": lambda c, f, now: c.arg in f.segments,
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


_SCALARS = (str, int, float, bool, type(None))
_KEY = re.compile(r"[^\"\\]+")  # a JSON path names the key in quotes: no quote or backslash in it


def _scalar_pairs(value: Mapping, what: str) -> tuple[tuple[str, object], ...]:
    for key, expected in value.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(f"{what} name {key!r} must be a text without quotes or backslashes")
        if not isinstance(expected, _SCALARS) or (isinstance(expected, float) and expected != expected):
            raise ValueError(f"{what} {key!r} is compared with a text, a number, true/false or null; "
                             f"got {expected!r}")
    return tuple(value.items())


def _parse_field(value: object) -> tuple[tuple[str, object], ...]:
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"field takes a mapping like {{plan: pro}}, got {value!r}")
    return _scalar_pairs(value, "field")


def _window(value: object, kind: str) -> timedelta:
    try:
        delay = parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{kind} takes a duration like 30d: {exc}") from None
    window = timedelta(days=delay.days, seconds=delay.seconds)
    if window <= timedelta(0):
        raise ValueError(f"{kind} takes a duration longer than zero, like 30d")
    return window


def _parse_consent(value: object) -> Condition:
    if value not in CONSENT_CHANNELS:
        raise ValueError(f"consent takes a channel, one of {', '.join(CONSENT_CHANNELS)}; got {value!r}")
    return Condition("consent", value)


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
    parsed = tuple((k, parse_comparison(v) if isinstance(v, str) and _COMPARISON.match(v) and
                    v.strip()[:1] in "<>=!" else v) for k, v in _scalar_pairs(where, "where property"))
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
    "consent": lambda v, w: _parse_consent(v),
    "engaged": lambda v, w: Condition("engaged", None, within=_window(v, "engaged")),
    "inactive": lambda v, w: Condition("inactive", None, within=_window(v, "inactive")),
    "segment": lambda v, w: Condition("segment", _names(v, "segment")[0]),
    "all": lambda v, w: _parse_group("all", v),
    "any": lambda v, w: _parse_group("any", v),
    "not": lambda v, w: Condition("not", None, children=(parse_condition(v),)),
}


def event_types(condition: Condition) -> frozenset[str]:
    """Every event type a condition looks at (so callers load only those events)."""
    if condition.kind == "event":
        return frozenset({str(condition.arg)})
    if condition.kind in ("engaged", "inactive"):
        return frozenset(ACTIVITY if condition.kind == "inactive" else ENGAGEMENT)
    return frozenset().union(*(event_types(c) for c in condition.children)) if condition.children else frozenset()


def walk(condition: Condition) -> Iterator[Condition]:
    """Every node of a condition tree, the root first."""
    yield condition
    for child in condition.children:
        yield from walk(child)


def segments_named(condition: Condition) -> frozenset[str]:
    """The segment ids a condition refers to with {segment: ID} (not those segments' own references)."""
    return frozenset(str(c.arg) for c in walk(condition) if c.kind == "segment")


def _span(window: timedelta | None) -> str:
    if window is None:
        return "ever"
    days, seconds = window.days, window.seconds
    if seconds == 0:
        return "in the last day" if days == 1 else f"in the last {days} days"
    hours = days * 24 + seconds // 3600
    return f"in the last {hours} hours" if seconds % 3600 == 0 else f"in the last {window}"


def _value_words(value: object) -> str:
    if isinstance(value, Comparison):
        return {">=": "at least", "<=": "at most", "==": "exactly", "!=": "not", ">": "more than",
                "<": "less than"}[value.op] + f" {value.value:g}"
    return "empty" if value is None else f"“{value}”" if isinstance(value, str) else str(value).lower()


def in_words(condition: Condition) -> str:
    """The condition in plain words, for the console, `nurture segments` and `why`."""
    c = condition
    if c.kind in ("all", "any"):
        parts = [in_words(child) for child in c.children]
        joined = f" {'and' if c.kind == 'all' else 'or'} ".join(
            f"({p})" if child.kind in ("all", "any") and len(child.children) > 1 else p
            for p, child in zip(parts, c.children, strict=True))
        return joined
    words = {
        "tag": lambda: f"tagged “{c.arg}”",
        "field": lambda: " and ".join(f"field {k} is {_value_words(v)}" for k, v in c.arg),  # type: ignore[attr-defined]
        "stage": lambda: "at stage " + " or ".join(sorted(c.arg)),  # type: ignore[arg-type, call-overload]
        "score": lambda: f"lead score {_value_words(c.arg)}",
        "event": lambda: f"had a {c.arg} event {_span(c.within)}" + "".join(
            f", {k} {_value_words(v)}" for k, v in c.where),
        "opened": lambda: f"opened step {c.arg}",
        "clicked": lambda: f"clicked in step {c.arg}",
        "consent": lambda: f"subscribed to {c.arg}",
        "engaged": lambda: f"opened or clicked an email {_span(c.within)}",
        "inactive": lambda: f"no open, click or purchase {_span(c.within)} (and known that long)",
        "segment": lambda: f"in segment {c.arg}",
        "not": lambda: f"not ({in_words(c.children[0])})",
    }
    return words[c.kind]()
