"""Pacing decisions without I/O: which group a receiving domain belongs to, what a relay's reply means, the
warm-up's cap for a day, and how long a throttled group backs off. The Redis limiter
(nurture.delivery.pacing) applies them."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

# Mailbox providers that pace and throttle each sender on their own: each gets its own rate, so a
# provider that slows down holds back only its own recipients. Country variants (hotmail.co.uk,
# yahoo.fr) go by the name before the public suffix.
GROUPS: dict[str, frozenset[str]] = {
    "gmail": frozenset({"gmail", "googlemail"}),
    "outlook": frozenset({"outlook", "hotmail", "live", "msn", "windowslive"}),
    "yahoo": frozenset({"yahoo", "ymail", "rocketmail", "aol", "aim", "verizon"}),
    "other": frozenset(),
}

# "Slow down" replies come as 421, 451 or 454 — but so does every other temporary failure (a full queue, a
# lost connection, greylisting), and those are retried with RETRY_BACKOFF and given up in the end. A reply
# is a slow-down when it says so: Gmail's 421 4.7.28 ("unusual rate"), Outlook's 451 4.7.500-4.7.699
# ("server busy", throttled), Yahoo's 421 4.7.0 [TSS04] ("deferred due to unexpected volume"), or words
# about rate or volume in the text.
THROTTLE_CODES = frozenset({421, 451, 454})
_THROTTLE_STATUS = re.compile(r"\b4\.7\.(28|[56]\d\d)\b")
_THROTTLE_WORDS = re.compile(r"\brate\b|rate.?limit|too many|slow down|throttl|volume|\[TS[S0]?\d+\]", re.I)


def domain_group(address: str) -> str:
    """The pacing group of a recipient address: gmail, outlook, yahoo or other."""
    domain = address.rpartition("@")[2].lower().rstrip(".")
    labels = domain.split(".")
    # gmail.com -> gmail; hotmail.co.uk -> hotmail; mail.yahoo.co.jp is not a mailbox domain anyone uses.
    name = labels[0] if len(labels) >= 2 else domain
    for group, names in GROUPS.items():
        if name in names:
            return group
    return "other"


def is_throttle(code: int | None, text: str) -> bool:
    """Whether an SMTP reply asks the sender to slow down (see THROTTLE_CODES)."""
    return code in THROTTLE_CODES and bool(_THROTTLE_STATUS.search(text) or _THROTTLE_WORDS.search(text))


def warmup_cap(schedule: tuple[int, ...], start: date | None, today: date) -> int | None:
    """The day's cap on email from a warming-up domain, or None (no warm-up, or it is over)."""
    if start is None:
        return None
    day = max((today - start).days, 0)
    return schedule[day] if day < len(schedule) else None


def next_midnight(now: datetime) -> datetime:
    """The next UTC midnight: when a warm-up day's count starts again."""
    return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(0), tzinfo=UTC)


def day_start(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)


def backoff_seconds(steps: tuple[int, ...], level: int) -> int:
    """The `level`-th throttle in a row (1 = the first) backs off steps[level-1], the last step after."""
    return steps[min(max(level, 1), len(steps)) - 1]
