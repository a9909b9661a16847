"""The pure engine: given a contact's place in a sequence and `now`, what is due and when the next step falls.

Imports nothing from flask, rq, sqlmodel, jinja2 or twilio and never reads the clock: every function is handed
the times it needs. All datetimes in and out are timezone-aware UTC; the contact's timezone is only used to
interpret calendar days, clock times and weekdays.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nurture.rules import experiments
from nurture.rules.conditions import Condition, Facts
from nurture.rules.sequence import Delay, Offer, Sequence, Step, Wait, Window


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


def step_due(step: Step, after: datetime, tz: tzinfo) -> datetime:
    """When `step` falls if entered at `after`. A wait-for step falls at its timeout (the event, when it
    comes first, makes it due at once: see nurture.people.automation)."""
    if step.wait_for is not None:
        return add_delay(after, step.wait_for.timeout, tz)
    return due_at(step.wait, after, tz)


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


END = "end"  # goto/then/else target that finishes the sequence


@dataclass(frozen=True)
class Due:
    """The next step of an enrollment and when it falls."""

    step_id: str
    at: datetime


def first_due(sequence: Sequence, enrolled_at: datetime, tz: tzinfo) -> Due | None:
    if not sequence.steps:
        return None
    step = sequence.steps[0]
    return Due(step.id, step_due(step, enrolled_at, tz))


def next_due(sequence: Sequence, done_step_id: str, done_at: datetime, tz: tzinfo, skipped: bool = False,
             target: str | None = None) -> Due | None:
    """The step after `done_step_id` (its `goto` unless it was skipped, or `target` when a branch chose
    one), timed from `done_at`; None when the sequence is over."""
    done = sequence.step(done_step_id)
    if target == END:
        step = None
    elif target is not None:
        step = sequence.step(target)
    elif done is None:
        step = None
    else:
        step = sequence.following(done, skipped)
    if step is None:
        return None
    return Due(step.id, step_due(step, done_at, tz))


@dataclass(frozen=True)
class Send:
    step: Step  # for an upsell with offers: the step with the chosen offer's template and subject


@dataclass(frozen=True)
class NotYet:
    until: datetime


@dataclass(frozen=True)
class Finished:
    reason: str


@dataclass(frozen=True)
class Skip:
    """The step's condition is false: record why, and move on to the next step in order. A held-out
    contact's step (`held_out`) is passed as if it had been sent: on by its goto, like the others."""

    step: Step
    reason: str
    held_out: bool = False


@dataclass(frozen=True)
class Branch:
    """A wait-for step resolved: continue at `target` (None: the next step in order)."""

    step: Step
    target: str | None
    reason: str


Decision = Send | NotYet | Finished | Skip | Branch


def reached_goal(sequence: Sequence, facts: Facts, now: datetime) -> Condition | None:
    return next((goal for goal in sequence.goals if goal.holds(facts, now)), None)


def decide(sequence: Sequence, step_id: str | None, due: datetime | None, now: datetime,
           facts: Facts | None = None, entered_at: datetime | None = None, contact_id: int | None = None) -> Decision:
    """What to do for an enrollment waiting at `step_id`, due at `due`, at `now`.

    `facts` (the contact's tags, score and events since it entered the sequence) are needed only when the
    sequence has goals, conditions or wait-for steps; `entered_at` is when it reached this step. A step id
    the sequence no longer has is reported, not guessed at: moving contacts across versions is the job of
    the versioning code, which knows the old order. With `contact_id`, experiments apply: a contact in the
    sequence's holdout is sent nothing (each step skipped, its goals still looked at), and a step with
    variants is sent as the contact's variant (`Send.step.variant` names it).
    """
    if step_id is None:
        return Finished("sequence complete")
    step = sequence.step(step_id)
    if step is None:
        return Finished(f"step {step_id!r} no longer exists in {sequence.id}")
    facts = facts or Facts()
    goal = reached_goal(sequence, facts, now)
    if goal is not None:
        return Finished(f"goal reached: {goal}")
    if step.wait_for is not None:
        came = any(e.type == step.wait_for.event and (entered_at is None or e.at >= entered_at)
                   for e in facts.events)
        if came:
            return Branch(step, step.wait_for.then, f"{step.wait_for.event} came")
        if due is not None and due > now:
            return NotYet(due)
        return Branch(step, step.wait_for.otherwise, f"no {step.wait_for.event} within {step.wait_for.timeout}")
    if due is not None and due > now:
        return NotYet(due)
    if step.condition is not None and not step.condition.holds(facts, now):
        return Skip(step, f"condition false: {step.condition}")
    if contact_id is not None and experiments.held_out(sequence, contact_id):
        return Skip(step, experiments.held_out_reason(sequence), held_out=True)
    if step.offers:
        offer = choose_offer(step, facts)
        if offer is None:
            bought = ", ".join(sorted(facts.purchased)) or "nothing yet"
            return Skip(step, f"no offer fits (bought: {bought})")
        return Send(replace(step, template=offer.template, subject=offer.subject))
    if not step.variants:
        return Send(step)
    # No contact (a preview of no one in particular): the first variant, so that there is a template.
    variant = experiments.variant_for(sequence.id, step, contact_id) if contact_id is not None else step.variants[0]
    return Send(experiments.with_variant(step, variant or step.variants[0]))


def choose_offer(step: Step, facts: Facts) -> Offer | None:
    """The first offer for something the contact bought, of something it does not own already."""
    return next((o for o in step.offers if o.after in facts.purchased and o.product not in facts.purchased), None)


def cap_opening(sent: Seq[datetime], now: datetime, per_day: int, per_week: int) -> datetime | None:
    """None when one more marketing message is within the caps at `now`, else when it will be.

    Rolling windows (the last 24 hours, the last 7 days) rather than calendar days: no timezone to get
    wrong, and no burst at midnight. A cap of 0 means no cap.
    """
    opening: datetime | None = None
    for cap, span in ((per_day, timedelta(days=1)), (per_week, timedelta(days=7))):
        recent = sorted(t for t in sent if t > now - span)
        if cap and len(recent) >= cap:
            # The window has room again once the oldest sends that fill it have aged out.
            free_at = recent[len(recent) - cap] + span
            opening = free_at if opening is None else max(opening, free_at)
    return opening


def retry_at(attempts: int, now: datetime, backoff: tuple[int, ...]) -> datetime | None:
    """When to try a temporarily failed send again, after `attempts` failures; None once backoff is spent."""
    if attempts > len(backoff):
        return None
    return now + timedelta(seconds=backoff[attempts - 1])


def relocate(old_order: Seq[str], new_order: Seq[str], step_id: str, done: frozenset[str] = frozenset()) -> str | None:
    """Where a contact waiting at `step_id` goes when a new version of its sequence no longer has that step.

    After the nearest earlier step that survived, in the new order — so a step inserted there is not
    skipped silently — and never back to the start: steps the contact already had (`done`) are passed
    over. None when nothing is left to send.
    """
    if step_id in new_order:
        return step_id
    position = old_order.index(step_id) if step_id in old_order else len(old_order)
    survivors = [s for s in old_order[:position] if s in new_order]
    start = new_order.index(survivors[-1]) + 1 if survivors else 0
    ahead = next((s for s in new_order[start:] if s not in done), None)
    if ahead is not None:
        return ahead
    # Reordered so that nothing follows the survivor: the steps it was still heading to, in their old order.
    return next((s for s in old_order[position + 1:] if s in new_order and s not in done), None)


def hold_reason(now: datetime, window: Window | None, tz: tzinfo, sent: Seq[datetime], per_day: int,
                per_week: int) -> tuple[datetime, str] | None:
    """(until, reason) when a marketing message may not go at `now`, else None: outside the sequence's send
    window first, then over the frequency cap (`sent`: the contact's marketing sends of the last 7 days).

    The channel's own hold (SMS quiet hours) comes before this and transactional messages skip it: see
    `decisions.send_hold`, which the worker and `nurture simulate` both call, so they defer alike and say
    why alike.
    """
    if window is not None and (opening := next_in_window(now, window, tz)) > now:
        return opening, "outside the send window"
    opening = cap_opening(sent, now, per_day, per_week)
    if opening is not None:
        return opening, f"frequency cap ({per_day}/day, {per_week}/week)"
    return None
