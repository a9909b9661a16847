"""The sequence model: what a sequence file means, as plain frozen dataclasses.

Pure: no I/O, no clock. The loader (`nurture.content.loader`) builds these from YAML; the engine
(`nurture.rules.engine`) reasons about them. Steps are addressed by their stable `id`, never by position,
so that an edited file can be applied to contacts already in flight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

from nurture.rules.durations import Delay, parse_duration  # noqa: F401  (part of the model's vocabulary)

if TYPE_CHECKING:  # the model only refers to the type; conditions are parsed by nurture.rules.conditions
    from nurture.rules.conditions import Condition

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
CHANNELS = ("email", "sms")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_SETS = {
    "weekdays": frozenset(range(5)),
    "weekends": frozenset({5, 6}),
    "every day": frozenset(range(7)),
    "daily": frozenset(range(7)),
}

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
class Window:
    """Allowed sending hours in the recipient's local time: [start, end) on `days` (None: every day).

    One mechanism for a sequence's send window (weekdays 09:00-17:00) and for SMS quiet hours (no texts
    before 08:00 or from 21:00): a message due outside it waits for the next opening, never dropped.
    """

    start: time
    end: time
    days: frozenset[int] | None = None

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError("a window must start before it ends (e.g. 08:00-21:00)")

    def contains(self, local: datetime) -> bool:
        on_day = self.days is None or local.weekday() in self.days
        return on_day and self.start <= local.time().replace(tzinfo=None) < self.end


def parse_hours(value: object) -> tuple[time, time]:
    """'09:00-17:00' -> (09:00, 17:00)."""
    parts = str(value).split("-")
    if len(parts) != 2:
        raise ValueError(f"hours take a range like \"09:00-17:00\", got {value!r}")
    return parse_clock(parts[0]), parse_clock(parts[1])


@dataclass(frozen=True)
class Wait:
    """When a step falls: `delay` after the previous step, then (optionally) the next `at` on allowed `days`."""

    delay: Delay = Delay()
    at: time | None = None
    days: frozenset[int] | None = None


@dataclass(frozen=True)
class WaitFor:
    """Wait for an event up to `timeout`, then branch: `then` if it came, `otherwise` if not (None: the
    next step in order)."""

    event: str
    timeout: Delay
    then: str | None = None
    otherwise: str | None = None


@dataclass(frozen=True)
class Offer:
    """An upsell chosen by what was bought: to buyers of `after`, offer `product` with this template."""

    after: str
    product: str
    template: str
    subject: str


@dataclass(frozen=True)
class Variant:
    """One arm of a step's experiment: its share (`weight`, relative to the others') and the template
    and/or subject it sends instead of the step's."""

    id: str
    weight: float
    template: str = ""
    subject: str = ""
    line: int = field(default=0, compare=False)


JUDGES = ("clicks", "goal")  # what an experiment is judged on: people's clicks (never opens), or the goal


@dataclass(frozen=True)
class Step:
    """A message step (template on a channel) or, with `wait_for`, a control step that sends nothing."""

    id: str
    kind: str = ""
    channel: str = "email"
    template: str = ""
    subject: str = ""  # the default language's (or, for a `subject:` mapping, its first entry)
    # `subject: {en: ..., fr: ...}`: (locale, subject) per language, in the file's order.
    subjects: tuple[tuple[str, str], ...] = ()
    wait: Wait = Wait()
    condition: Condition | None = None  # `if:` — false skips the step (recorded), the contact moves on
    goto: str | None = None  # after this step, continue at this step id instead of the next
    wait_for: WaitFor | None = None
    set_stage: str | None = None  # the contact's lifecycle stage once this step is sent
    offers: tuple[Offer, ...] = ()  # an upsell step: the first offer that fits what the contact bought
    variants: tuple[Variant, ...] = ()  # an experiment: each contact gets one, by a stable hash
    judge: str = "clicks"  # what the experiment is judged on (JUDGES)
    variant: str | None = None  # set on the copy of the step a contact is sent: the variant it got
    line: int = 0
    key_lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)  # for error messages

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)

    def subject_for(self, chain: tuple[str, ...]) -> tuple[str, str | None]:
        """The subject for a contact whose locale lookup chain is `chain`, and the locale it is written for
        (None: the default subject)."""
        by_locale = dict(self.subjects)
        for locale in chain:
            if locale in by_locale:
                return by_locale[locale], locale
        return self.subject, None

    @property
    def sends(self) -> bool:
        return self.wait_for is None


@dataclass(frozen=True)
class Reentry:
    """May a contact enter the sequence again? "once" (never again), "always" (whenever it is not in it),
    or not within `after` of its last entry."""

    policy: str = "once"
    after: timedelta | None = None


@dataclass(frozen=True)
class Trigger:
    """What enrolls a contact: kind is event | tag | form | stage | inactive | segment, value the name (for
    inactive: a duration — no open, click or purchase for that long; for segment: the segment's id, entered
    when the contact comes into it)."""

    kind: str
    value: str


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
    triggers: tuple[Trigger, ...] = ()
    reentry: Reentry = Reentry()
    goals: tuple[Condition, ...] = ()  # any one reached ends the sequence for the contact
    window: Window | None = None  # send window in the contact's timezone
    holdout: float = 0.0  # the share of contacts that get nothing from it (its lift is measured on them)
    utm: dict[str, str] = field(default_factory=dict, compare=False)
    source: str = field(default="", compare=False, repr=False)  # the file's text, kept with each version
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

    def following(self, step: Step, skipped: bool = False) -> Step | None:
        """The step after `step`: its `goto` when it ran (`end` finishes), else the next in order."""
        if step.goto and not skipped:
            return self.step(step.goto)  # None for "end"
        return self.step_after(step.id)

    def other_channel_ahead(self, step: Step) -> bool:
        """Whether a later step sends on another channel (a text after emails, say)."""
        later = self.steps[self.steps.index(step) + 1:] if step in self.steps else ()
        return any(s.sends and s.channel != step.channel for s in later)

    def needs_facts(self, step_id: str | None) -> bool:
        """Whether deciding about `step_id` needs the contact's events, tags and score: two queries a
        message, skipped on the hot path when no goal, condition, wait or offer looks at them."""
        step = self.step(step_id) if step_id else None
        return bool(self.goals) or (step is not None and bool(step.condition or step.wait_for or step.offers))
