"""The pure engine: given a contact's place in a sequence and `now`, what is due and when the next step falls.

Imports nothing from flask, rq, sqlmodel, jinja2 or twilio and never reads the clock: every function is handed
the times it needs. All datetimes in and out are timezone-aware UTC; the contact's timezone is only used to
interpret calendar days, clock times and weekdays.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nurture.sequence import Delay, Sequence, Step, Wait


def contact_zone(name: str | None) -> tzinfo:
    """The contact's timezone, or UTC when it is unknown or unset (never an error mid-batch)."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name like "America" is a folder
        return UTC


def local_to_utc(naive: datetime, tz: tzinfo) -> datetime:
    """Wall-clock time in `tz` -> UTC.

    A time skipped by a spring-forward change (02:30 on the night clocks jump 02:00 -> 03:00) lands the same
    distance after the gap (03:30); a repeated autumn time takes its first occurrence. zoneinfo's fold=0 does
    both.
    """
    return naive.replace(tzinfo=tz, fold=0).astimezone(UTC)


def add_delay(start: datetime, delay: Delay, tz: tzinfo) -> datetime:
    """`start` + calendar days on the contact's wall clock + elapsed seconds."""
    moment = start
    if delay.days:
        local = start.astimezone(tz).replace(tzinfo=None)
        moment = local_to_utc(local + timedelta(days=delay.days), tz)
    return moment.astimezone(UTC) + timedelta(seconds=delay.seconds)


def next_opening(moment: datetime, wait: Wait, tz: tzinfo) -> datetime:
    """The first instant at or after `moment` that is at `wait.at` on one of `wait.days` (local time)."""
    if wait.at is None and wait.days is None:
        return moment
    local_day = moment.astimezone(tz).date()
    for offset in range(8):
        day: date = local_day + timedelta(days=offset)
        if wait.days is not None and day.weekday() not in wait.days:
            continue
        if wait.at is None:
            # Any time on an allowed day will do: today as is, a later day from its first minute.
            return moment if offset == 0 else local_to_utc(datetime.combine(day, datetime.min.time()), tz)
        candidate = local_to_utc(datetime.combine(day, wait.at), tz)
        if candidate >= moment:
            return candidate
    raise ValueError("wait.days is empty")  # the loader never builds one; a week always has an opening


def due_at(wait: Wait, after: datetime, tz: tzinfo) -> datetime:
    """When a step with `wait` falls, counted from `after` (the previous step, or enrollment)."""
    return next_opening(add_delay(after, wait.delay, tz), wait, tz)


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


def next_in_window(moment: datetime, window: Window, tz: tzinfo) -> datetime:
    """`moment` if it falls inside `window` (local to `tz`), else the window's next opening."""
    local = moment.astimezone(tz)
    if window.contains(local):
        return moment
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        if window.days is not None and day.weekday() not in window.days:
            continue
        opening = local_to_utc(datetime.combine(day, window.start), tz)
        if opening > moment:
            return opening
    raise ValueError("window.days is empty")


@dataclass(frozen=True)
class Due:
    """The next step of an enrollment and when it falls."""

    step_id: str
    at: datetime


def first_due(sequence: Sequence, enrolled_at: datetime, tz: tzinfo) -> Due | None:
    if not sequence.steps:
        return None
    step = sequence.steps[0]
    return Due(step.id, due_at(step.wait, enrolled_at, tz))


def next_due(sequence: Sequence, done_step_id: str, done_at: datetime, tz: tzinfo) -> Due | None:
    """The step after `done_step_id`, timed from when that step was done; None when the sequence is over."""
    step = sequence.step_after(done_step_id)
    if step is None:
        return None
    return Due(step.id, due_at(step.wait, done_at, tz))


@dataclass(frozen=True)
class Send:
    step: Step


@dataclass(frozen=True)
class NotYet:
    until: datetime


@dataclass(frozen=True)
class Finished:
    reason: str


Decision = Send | NotYet | Finished


def decide(sequence: Sequence, step_id: str | None, due: datetime | None, now: datetime) -> Decision:
    """What to do for an enrollment waiting at `step_id`, due at `due`, at `now`.

    A step id the sequence no longer has is reported, not guessed at: moving contacts across versions is
    the job of the versioning code, which knows the old order.
    """
    if step_id is None:
        return Finished("sequence complete")
    step = sequence.step(step_id)
    if step is None:
        return Finished(f"step {step_id!r} no longer exists in {sequence.id}")
    if due is not None and due > now:
        return NotYet(due)
    return Send(step)


def retry_at(attempts: int, now: datetime, backoff: tuple[int, ...]) -> datetime | None:
    """When to try a temporarily failed send again, after `attempts` failures; None once backoff is spent."""
    if attempts > len(backoff):
        return None
    return now + timedelta(seconds=backoff[attempts - 1])
