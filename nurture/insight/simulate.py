"""`nurture simulate`: the timeline a contact would get from one sequence, worked out without a database and
without sending anything.

It makes the worker's own decisions, in the worker's order: `engine.decide` (goals, wait-for steps,
conditions), then consent, then the channel's hold (SMS quiet hours, via `channels.sms.quiet_until`), then
`engine.hold_reason` (send window, frequency cap), then `engine.next_due`. Synthetic events are
applied as `nurture.people.automation` applies real ones: stage, score, goals, waking a wait-for step.

What it cannot know it leaves out: messages from other sequences (in real life they count toward the cap;
the timeline names the sequences an event would start), the few seconds a tick takes to notice a due step
(here everything happens at its due minute), the SMS sender's pace, and sending failures.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from nurture.config import SmsSettings
from nurture.delivery.channels.sms import quiet_until
from nurture.people.automation import ENGAGEMENT, EVENT_TYPE
from nurture.people.contacts import InvalidContact, check_timezone, normalise_phone
from nurture.rules import engine
from nurture.rules import lifecycle as rules
from nurture.rules.conditions import EventFact, Facts
from nurture.rules.lifecycle import Lifecycle
from nurture.rules.sequence import Sequence, Step, parse_duration
from nurture.store.models import Contact

# A goto loop would otherwise run forever; no real sequence comes near this many moves.
MAX_ENTRIES = 1000
EMAIL_STATUSES = ("subscribed", "pending", "unsubscribed", "expired")
SMS_STATUSES = ("none", "subscribed", "unsubscribed")


class SimulationInputError(ValueError):
    """A --contact, --event or --start value that cannot be read; the message says which and why."""


@dataclass(frozen=True)
class SimContact:
    """The made-up contact: only what decisions look at (names are accepted and ignored: nothing is
    rendered)."""

    timezone: str | None = None
    tags: frozenset[str] = frozenset()
    fields: Mapping[str, object] = field(default_factory=dict)
    stage: str = "lead"
    score: float = 0.0
    phone: str | None = None
    email_status: str = "subscribed"
    sms_status: str = "none"

    @property
    def zone(self) -> tzinfo:
        return engine.contact_zone(self.timezone)


@dataclass(frozen=True)
class Entry:
    """One line of the timeline. `what`: sent | skipped | deferred | branched | goal | completed | stopped
    | event. `reason` is the worker's own wording (what `nurture why` shows for the same outcome)."""

    at: datetime
    what: str
    step: str | None = None
    reason: str | None = None
    until: datetime | None = None  # deferred: when it is due again
    target: str | None = None  # branched: the step it continues at ("end" finishes)
    channel: str | None = None
    kind: str | None = None
    template: str | None = None
    event: EventFact | None = None
    changes: tuple[str, ...] = ()  # what an event or a sent step changed: stage, score, sequences started


@dataclass(frozen=True)
class Timeline:
    sequence: Sequence
    contact: SimContact
    start: datetime
    entries: tuple[Entry, ...]


# --- Reading the command line ------------------------------------------------------------------------------

_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _typed(value: str) -> object:
    """'9' -> 9 and '4.5' -> 4.5, as they would arrive in JSON from the API; anything else stays text."""
    if _NUMBER.match(value):
        return float(value) if "." in value else int(value)
    return value


def _pairs(parts: Iterable[str], what: str) -> dict[str, str]:
    pairs = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise SimulationInputError(f"{what}: expected key=value, got {part!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def _choice(value: str, allowed: tuple[str, ...], key: str) -> str:
    if value not in allowed:
        raise SimulationInputError(f"--contact: {key} is one of {', '.join(allowed)}, got {value!r}")
    return value


def parse_contact(spec: str, lifecycle: Lifecycle) -> SimContact:
    """'timezone=America/New_York,tags=vip;beta,stage=lead,plan=pro' -> SimContact. Keys that are not
    contact attributes become custom fields (for `{field: ...}` conditions)."""
    pairs = _pairs(filter(None, (p.strip() for p in spec.split(","))), "--contact")
    try:
        timezone = check_timezone(pairs.pop("timezone", None))
        phone = normalise_phone(pairs.pop("phone", None))
        score = float(pairs.pop("score", 0))
    except InvalidContact as exc:
        raise SimulationInputError(f"--contact: {exc}") from None
    except ValueError:
        raise SimulationInputError("--contact: score is a number") from None
    stage = pairs.pop("stage", "lead")
    if stage not in lifecycle.stages:
        raise SimulationInputError(f"--contact: unknown stage {stage!r} (stages: {', '.join(lifecycle.stages)})")
    for ignored in ("first_name", "last_name", "email"):
        pairs.pop(ignored, None)
    # A contact given a phone number here is assumed to have agreed to texts, unless told otherwise.
    sms_status = _choice(pairs.pop("sms_status", "subscribed" if phone else "none"), SMS_STATUSES, "sms_status")
    return SimContact(
        timezone=timezone, phone=phone, score=score, stage=stage, sms_status=sms_status,
        tags=frozenset(t.strip() for t in pairs.pop("tags", "").split(";") if t.strip()),
        email_status=_choice(pairs.pop("email_status", "subscribed"), EMAIL_STATUSES, "email_status"),
        fields={key: _typed(value) for key, value in pairs.items()},
    )


def parse_instant(text: str, what: str) -> datetime:
    """An ISO 8601 time with its timezone -> aware UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SimulationInputError(f"{what}: expected an ISO 8601 time like 2026-11-23T09:00:00Z, got {text!r}") \
            from None
    if moment.tzinfo is None:
        raise SimulationInputError(f"{what}: {text!r} needs a timezone (Z or +01:00)")
    return moment.astimezone(UTC)


def parse_event(spec: str, start: datetime, zone: tzinfo) -> EventFact:
    """'purchase@3d' (3 days after `start`, days on the contact's wall clock, as waits count them),
    'webinar-attended@2d4h', 'rating@5d score=9' (with properties) or 'purchase@2026-11-26T10:00:00Z'."""
    head, *props = spec.split()
    type_, sep, when = head.partition("@")
    if not sep or not EVENT_TYPE.match(type_):
        raise SimulationInputError(f"--event: expected TYPE@WHEN like purchase@3d, got {spec!r}")
    try:
        at = engine.add_delay(start, parse_duration(when), zone)
    except ValueError:
        at = parse_instant(when, f"--event {type_}")
    return EventFact(type_, at, {key: _typed(value) for key, value in _pairs(props, "--event").items()})


# --- Simulating ----------------------------------------------------------------------------------------------

@dataclass
class _Run:
    """The enrollment being simulated: where it is, when that is due, and what it has seen."""

    sequence: Sequence
    contact: SimContact
    start: datetime
    lifecycle: Lifecycle
    sms: SmsSettings
    others: tuple[Sequence, ...]
    step_id: str | None = None
    due: datetime | None = None
    entered_at: datetime | None = None
    stage: str = "lead"
    score: float = 0.0
    score_at: datetime | None = None
    sent: list[datetime] = field(default_factory=list)
    seen: list[EventFact] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)

    @property
    def zone(self) -> tzinfo:
        return self.contact.zone

    def facts(self, now: datetime) -> Facts:
        """What conditions see, as automation.facts loads it: events since the contact entered (bots' never),
        and every product bought, ever (so a purchase given before the start counts)."""
        events = tuple(e for e in self.seen if e.at >= self.start and not e.data.get("bot"))
        mine = [e for e in events if e.type in ENGAGEMENT
                and e.data.get("sequence", self.sequence.id) == self.sequence.id]
        return Facts(
            tags=self.contact.tags, fields=self.contact.fields, stage=self.stage,
            score=rules.decayed_score(self.score, self.score_at, now, self.lifecycle.scoring), events=events,
            opened=frozenset(str(e.data.get("step")) for e in mine if e.type == "email.opened"),
            clicked=frozenset(str(e.data.get("step")) for e in mine if e.type == "email.clicked"),
            purchased=frozenset(str(e.data["product"]) for e in self.seen if e.type == "purchase"
                                and e.data.get("product")),
        )

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)


def simulate(sequence: Sequence, contact: SimContact, start: datetime, events: Iterable[EventFact] = (),
             lifecycle: Lifecycle | None = None, sms: SmsSettings | None = None,
             others: Iterable[Sequence] = ()) -> Timeline:
    """The timeline `contact` would get from `sequence` if it entered at `start` and `events` happened.

    Deterministic: the same arguments give the same timeline. An event at the same minute as a due step is
    applied first. `others` (the other loaded sequences) only serve to name the sequences an event starts.
    """
    run = _Run(sequence, contact, start, lifecycle or Lifecycle(), sms or SmsSettings(),
               tuple(s for s in others if s.id != sequence.id), stage=contact.stage, score=contact.score,
               score_at=start if contact.score else None, entered_at=start)
    first = engine.first_due(sequence, start, run.zone)
    run.step_id, run.due = (first.step_id, first.at) if first else (None, None)
    if first is None:
        run.add(Entry(start, "completed", reason="sequence complete"))
    pending = sorted(events, key=lambda e: e.at)
    while run.step_id is not None and run.due is not None and len(run.entries) < MAX_ENTRIES:
        if pending and pending[0].at <= run.due:
            _on_event(run, pending.pop(0))
        else:
            _on_due(run, run.due)
    if run.step_id is not None:
        run.add(Entry(run.due or start, "stopped", run.step_id, reason=f"simulation stopped after {MAX_ENTRIES} "
                                                                       "entries (a goto loop?)"))
    for late in pending:  # shown so that no --event silently disappears
        run.add(Entry(late.at, "event", event=late, changes=("after the sequence ended",)))
    return Timeline(sequence, contact, start, tuple(run.entries))


def _on_event(run: _Run, event: EventFact) -> None:
    """As automation.apply: stage, score, goals, then waking a wait-for step."""
    changes = _apply_stage_and_score(run, event)
    run.seen.append(event)
    run.add(Entry(event.at, "event", event=event, changes=changes))
    if event.at < run.start:  # before the contact entered: it changes the contact, not this enrollment
        return
    goal = engine.reached_goal(run.sequence, run.facts(event.at), event.at)
    if goal is not None:
        run.add(Entry(event.at, "goal", run.step_id, reason=f"goal reached: {goal}"))
        run.step_id = None
        return
    step = run.sequence.step(run.step_id or "")
    if step is not None and step.wait_for is not None and step.wait_for.event == event.type:
        run.due = event.at


def _apply_stage_and_score(run: _Run, event: EventFact) -> tuple[str, ...]:
    if event.data.get("bot"):
        return ()
    changes: list[str] = []
    earlier = sum(1 for e in run.seen if e.type == event.type)
    stage = rules.stage_after_event(run.lifecycle, run.stage, event.type, earlier)
    if stage:
        changes += _set_stage(run, stage)
    scoring = run.lifecycle.scoring
    points = scoring.points.get(event.type)
    if points:
        before = rules.decayed_score(run.score, run.score_at, event.at, scoring)
        run.score, run.score_at = max(0.0, before + points), event.at
        changes.append(f"score {before:g} -> {run.score:g}")
        if scoring.threshold is not None and before < scoring.threshold <= run.score and scoring.sequence:
            changes.append(f"starts {scoring.sequence}")
    changes += [f"starts {s.id}" for s in run.others if any(t.kind == "event" and t.value == event.type
                                                             for t in s.triggers)]
    return tuple(changes)


def _set_stage(run: _Run, stage: str) -> list[str]:
    if stage == run.stage:
        return []
    change = [f"stage {run.stage} -> {stage}"]
    run.stage = stage
    return change + [f"starts {s.id}" for s in run.others if any(t.kind == "stage" and t.value == stage
                                                                  for t in s.triggers)]


def _on_due(run: _Run, now: datetime) -> None:
    """What the worker does when the enrollment's step falls due (dispatch._process)."""
    decision = engine.decide(run.sequence, run.step_id, run.due, now, run.facts(now), run.entered_at)
    if isinstance(decision, engine.NotYet):
        run.due = decision.until
    elif isinstance(decision, engine.Finished):
        goal = decision.reason.startswith("goal reached")
        run.add(Entry(now, "goal" if goal else "stopped", run.step_id, reason=decision.reason))
        run.step_id = None
    elif isinstance(decision, engine.Skip):
        run.add(Entry(now, "skipped", decision.step.id, reason=decision.reason))
        _advance(run, decision.step, now, skipped=True)
    elif isinstance(decision, engine.Branch):
        target = _next(run, decision.step, now, target=decision.target)
        run.add(Entry(now, "branched", decision.step.id, reason=decision.reason, target=target))
        _completed_if_over(run, now)
    else:
        _send(run, decision.step, now)


def _send(run: _Run, step: Step, now: datetime) -> None:
    """dispatch._send without the sending: consent, then hold, then the message and moving on."""
    blocked = _blocked(run.contact, step.channel, run.sequence.transactional)
    if blocked is not None:
        run.add(Entry(now, "skipped", step.id, reason=blocked, channel=step.channel))
        if run.sequence.other_channel_ahead(step):
            _advance(run, step, now, skipped=True)
        else:
            run.add(Entry(now, "stopped", step.id, reason=blocked))
            run.step_id = None
        return
    hold = _hold(run, step, now)
    if hold is not None:
        run.add(Entry(now, "deferred", step.id, reason=hold[1], until=hold[0], channel=step.channel))
        run.due = hold[0]  # the same step, not a new one: a wait-for clock would keep running
        return
    changes = tuple(_set_stage(run, step.set_stage)) if step.set_stage else ()
    run.add(Entry(now, "sent", step.id, channel=step.channel, kind=step.kind, template=step.template,
                  changes=changes))
    if not run.sequence.transactional:
        run.sent.append(now)
    _advance(run, step, now)


def _hold(run: _Run, step: Step, now: datetime) -> tuple[datetime, str] | None:
    """dispatch._hold: the channel's quiet hours, then (marketing only) the send window and the cap."""
    hold = _sms_quiet_hours(run, now) if step.channel == "sms" else None
    if hold is not None or run.sequence.transactional:
        return hold
    week = [t for t in run.sent if t >= now - timedelta(days=7)]
    return engine.hold_reason(now, run.sequence.window, run.zone, week, run.lifecycle.per_day,
                              run.lifecycle.per_week)


def _sms_quiet_hours(run: _Run, now: datetime) -> tuple[datetime, str] | None:
    """SmsChannel.hold's quiet hours (its sender pace is a matter of seconds, and not simulated)."""
    if not run.contact.phone:
        return None
    sms = run.sms
    opening = quiet_until(sms, Contact(phone=run.contact.phone, timezone=run.contact.timezone), now)
    if opening > now:
        return opening, f"quiet hours (texts {sms.hours.start:%H:%M}-{sms.hours.end:%H:%M} local time)"
    return None


def _blocked(contact: SimContact, channel: str, transactional: bool) -> str | None:
    """store.blocked_reason for the made-up contact (it has an email address; a phone only if given)."""
    address = contact.phone if channel == "sms" else "simulated"
    if not address:
        return f"no address for this channel ({channel})"
    status = contact.sms_status if channel == "sms" else contact.email_status
    if status != "subscribed" and not transactional:
        return f"contact is {status} for {channel}" if status != "none" else f"no {channel} consent"
    return None


def _next(run: _Run, step: Step, done_at: datetime, skipped: bool = False, target: str | None = None) -> str:
    """dispatch._advance: on to the next step (or `target`), timed from `done_at`. Returns the step it moved
    to, or "end"."""
    due = engine.next_due(run.sequence, step.id, done_at, run.zone, skipped=skipped, target=target)
    run.entered_at = done_at
    run.step_id, run.due = (due.step_id, due.at) if due else (None, None)
    return due.step_id if due else engine.END


def _completed_if_over(run: _Run, at: datetime) -> None:
    if run.step_id is None:
        run.add(Entry(at, "completed", reason="sequence complete"))


def _advance(run: _Run, step: Step, done_at: datetime, skipped: bool = False) -> None:
    _next(run, step, done_at, skipped=skipped)
    _completed_if_over(run, done_at)


# --- Showing it ----------------------------------------------------------------------------------------------

def stamp(at: datetime, zone: tzinfo) -> str:
    """'2026-11-25 10:00 Wed CET': the contact's wall clock, with the abbreviation that shows DST."""
    local = at.astimezone(zone)
    return local.strftime("%Y-%m-%d %H:%M:%S %a %Z" if local.second else "%Y-%m-%d %H:%M %a %Z")


def iso_utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def describe(entry: Entry, zone: tzinfo) -> str:
    """The text after the `what` column."""
    reason = entry.reason or ""
    if entry.what == "sent":
        text = f"{entry.kind} {entry.template}" + (f" by {entry.channel}" if entry.channel != "email" else "")
    elif entry.what == "deferred" and entry.until is not None:
        text = f"{reason} -> {stamp(entry.until, zone)}"
    elif entry.what == "branched":
        text = f"-> {entry.target}: {reason}"
    elif entry.what == "event" and entry.event is not None:
        text = " ".join([entry.event.type, *(f"{k}={v}" for k, v in entry.event.data.items())])
    elif entry.what == "goal":
        text = reason.removeprefix("goal reached: ") + " reached; the sequence ends"
    else:
        text = "" if entry.what == "completed" else reason
    return f"{text} ({'; '.join(entry.changes)})" if entry.changes else text


def _who(contact: SimContact) -> str:
    parts = [f"stage {contact.stage}"]
    if contact.tags:
        parts.append(f"tags {', '.join(sorted(contact.tags))}")
    if contact.score:
        parts.append(f"score {contact.score:g}")
    parts += [f"{key}={value}" for key, value in sorted(contact.fields.items())]
    if contact.phone:
        parts.append(f"phone {contact.phone} (texts {contact.sms_status})")
    if contact.email_status != "subscribed":
        parts.append(f"email {contact.email_status}")
    return ", ".join(parts)


def format_timeline(timeline: Timeline) -> list[str]:
    """Fixed-width lines: local time, UTC, step, what happened and why. The same input gives the same lines,
    so they can serve as a snapshot in tests."""
    zone, contact = timeline.contact.zone, timeline.contact
    local = [stamp(entry.at, zone) for entry in timeline.entries]
    utc = [entry.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ" if entry.at.second else "%Y-%m-%d %H:%MZ")
           for entry in timeline.entries]
    widths = [max(map(len, column), default=0) + 2 for column in (local, utc)]
    width = max([4, *(len(s.id) for s in timeline.sequence.steps)]) + 2
    lines = [f"{timeline.sequence.id}: a contact in {contact.timezone or 'UTC (no timezone)'} ({_who(contact)}), "
             f"entering {stamp(timeline.start, zone)}"]
    for entry, at, at_utc in zip(timeline.entries, local, utc, strict=True):
        lines.append(f"{at:<{widths[0]}}{at_utc:<{widths[1]}}{entry.step or '-':<{width}}{entry.what:<10}"
                     f"{describe(entry, zone)}".rstrip())
    return lines


def timeline_json(timeline: Timeline) -> dict:
    zone, contact = timeline.contact.zone, timeline.contact
    return {
        "sequence": timeline.sequence.id,
        "version": timeline.sequence.version,
        "contact": {"timezone": contact.timezone, "tags": sorted(contact.tags), "fields": dict(contact.fields),
                    "stage": contact.stage, "score": contact.score, "phone": contact.phone,
                    "email_status": contact.email_status, "sms_status": contact.sms_status},
        "start": iso_utc(timeline.start),
        "entries": [_entry_json(entry, zone) for entry in timeline.entries],
    }


def _entry_json(entry: Entry, zone: tzinfo) -> dict:
    data = {
        "at": iso_utc(entry.at), "local": entry.at.astimezone(zone).isoformat(), "what": entry.what,
        "step": entry.step, "reason": entry.reason, "until": iso_utc(entry.until) if entry.until else None,
        "target": entry.target, "channel": entry.channel, "kind": entry.kind, "template": entry.template,
        "event": {"type": entry.event.type, "data": dict(entry.event.data)} if entry.event else None,
        "changes": list(entry.changes) or None, "text": describe(entry, zone),
    }
    return {key: value for key, value in data.items() if value is not None}
