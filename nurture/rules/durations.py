"""Durations as sequence files write them ('2d 4h', '90m'): calendar days apart from elapsed seconds.

Its own module so that conditions (`within: 7d`) and the sequence model both use it without importing
each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
