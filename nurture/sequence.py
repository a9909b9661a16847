"""The sequence model: what a sequence file means, as plain frozen dataclasses.

Pure: no I/O, no clock. The loader (`nurture.loader`) builds these from YAML; the engine (`nurture.engine`)
reasons about them. Steps are addressed by their stable `id`, never by position, so that an edited file
can be applied to contacts already in flight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time

LIFECYCLE_STAGES = (
    "attract-traffic",
    "capture-leads",
    "nurture-prospects",
    "convert-sales",
    "deliver-satisfy",
    "upsell-customers",
    "get-referrals",
)
MESSAGE_KINDS = ("educate", "offer", "thank-you", "feedback", "referral-request", "upsell")
CHANNELS = ("email",)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_SETS = {
    "weekdays": frozenset(range(5)),
    "weekends": frozenset({5, 6}),
    "every day": frozenset(range(7)),
    "daily": frozenset(range(7)),
}

_DURATION_PART = re.compile(r"(\d+)\s*([dhms])")
_DURATION = re.compile(r"^\s*(\d+\s*[dhms]\s*)+$")
_SECONDS = {"h": 3600, "m": 60, "s": 1}


@dataclass(frozen=True)
class Delay:
    """Calendar days (wall clock in the contact's timezone) plus elapsed seconds.

    Days and seconds are kept apart on purpose: "1d" after 10:00 the day before a DST change is 10:00 again,
    while "24h" is 24 real hours (09:00 or 11:00 on the wall clock).
    """

    days: int = 0
    seconds: int = 0

    def __str__(self) -> str:
        parts, rest = [], self.seconds
        if self.days:
            parts.append(f"{self.days}d")
        for unit, size in _SECONDS.items():
            if rest >= size:
                parts.append(f"{rest // size}{unit}")
                rest %= size
        return " ".join(parts) or "0s"


def parse_duration(text: str) -> Delay:
    """'2d 4h', '90m', '45s', '1d12h' -> Delay. Raises ValueError with a readable message."""
    if not isinstance(text, str) or not _DURATION.match(text):
        raise ValueError(f"bad duration {text!r}: use numbers with d, h, m or s, like '2d 4h' or '90m'")
    days = seconds = 0
    for number, unit in _DURATION_PART.findall(text):
        if unit == "d":
            days += int(number)
        else:
            seconds += int(number) * _SECONDS[unit]
    return Delay(days=days, seconds=seconds)


def parse_days(value: object) -> frozenset[int]:
    """'weekdays' | 'weekends' | 'every day' | [mon, wed] -> weekday numbers (Monday = 0)."""
    if isinstance(value, str) and value.strip().lower() in DAY_SETS:
        return DAY_SETS[value.strip().lower()]
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise ValueError("`on` takes weekdays, weekends, every day, or a list like [mon, wed, fri]")
    days = set()
    for name in names:
        key = str(name).strip().lower()
        key = key[:3] if key in _DAY_NAMES else key
        if key not in WEEKDAYS:
            raise ValueError(f"unknown day {name!r}: use mon, tue, wed, thu, fri, sat, sun")
        days.add(WEEKDAYS.index(key))
    return frozenset(days)


def parse_clock(value: object) -> time:
    """'10:00' -> time(10, 0). YAML reads unquoted 10:00 as 600 (sexagesimal), so accept that too."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return time(value // 60, value % 60)
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", str(value).strip())
    if not match:
        raise ValueError(f"bad time of day {value!r}: use HH:MM, like \"10:00\"")
    return time(int(match[1]), int(match[2]))


@dataclass(frozen=True)
class Wait:
    """When a step falls: `delay` after the previous step, then (optionally) the next `at` on allowed `days`."""

    delay: Delay = Delay()
    at: time | None = None
    days: frozenset[int] | None = None


@dataclass(frozen=True)
class Step:
    id: str
    kind: str
    channel: str
    template: str
    subject: str
    wait: Wait = Wait()
    line: int = 0
    key_lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)  # for error messages

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


@dataclass(frozen=True)
class Sequence:
    id: str
    name: str
    stage: str
    steps: tuple[Step, ...]
    description: str = ""
    # Transactional sequences (the double opt-in confirmation) are sent to contacts who asked for them even
    # before they have opted in to marketing; suppression still applies. Everything else is marketing.
    transactional: bool = False
    path: str = ""
    version: str = ""
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update({step.id: n for n, step in enumerate(self.steps)})

    def step(self, step_id: str) -> Step | None:
        n = self._index.get(step_id)
        return None if n is None else self.steps[n]

    def step_after(self, step_id: str) -> Step | None:
        n = self._index.get(step_id)
        if n is None or n + 1 >= len(self.steps):
            return None
        return self.steps[n + 1]
