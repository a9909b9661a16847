"""`nurture simulate`: the timeline a contact would get from one sequence, worked out without a database and
without sending anything.

It holds only the made-up contact's state; every decision is the worker's own function, called in the
worker's order. When a step falls due: `engine.decide` (goals, wait-for steps, conditions, offers), then
`decisions.consent_block`, then `decisions.send_hold` (SMS quiet hours via `decisions.quiet_hours`, the
send window, the frequency cap), then `engine.next_due`; a sent step's `set_stage` goes through
`decisions.stage_change` (forward only). Events are applied as nurture.people.automation applies recorded
ones: `decisions.counts` (bots change nothing), stage, `decisions.score_change`, goals, `decisions.wakes`.

What it cannot know it leaves out: messages from other sequences (in real life they count toward the cap;
the timeline names the sequences an event would start), the few seconds a tick takes to notice a due step
(here everything happens at its due minute), the SMS sender's pace, and sending failures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo

from nurture.config import SmsSettings
from nurture.insight.simulate_input import SimulationInputError, parse_contact, parse_event, parse_instant
from nurture.insight.simulate_output import format_timeline, timeline_json
from nurture.insight.timeline import Entry, SimContact, Timeline
from nurture.rules import decisions, engine
from nurture.rules.conditions import EventFact, Facts
from nurture.rules.lifecycle import Lifecycle, stage_after_event
from nurture.rules.segments import Segment, explain, memberships, named_by
from nurture.rules.sequence import Sequence, Step

# The command's whole interface, in one place (the CLI and tests import these from here).
__all__ = ["Entry", "SimContact", "SimulationInputError", "Timeline", "format_timeline", "parse_contact",
           "parse_event", "parse_instant", "simulate", "timeline_json"]

# A goto loop would otherwise run forever; no real sequence comes near this many moves.
MAX_ENTRIES = 1000


@dataclass
class _Run:
    """The enrollment being simulated: where it is, when that is due, and what it has seen."""

    sequence: Sequence
    contact: SimContact
    start: datetime
    lifecycle: Lifecycle
    sms: SmsSettings
    others: tuple[Sequence, ...]
    segments: Mapping[str, Segment] = field(default_factory=dict)
    step_id: str | None = None
    due: datetime | None = None
    entered_at: datetime | None = None
    stage: str = "lead"
    score: float = 0.0
    score_at: datetime | None = None
    sent: list[datetime] = field(default_factory=list)
    seen: list[EventFact] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    template_of: Callable[[Step], str] | None = None  # the localized template a step would use, if any

    @property
    def zone(self) -> tzinfo:
        return self.contact.zone

    def facts(self, now: datetime) -> Facts:
        """What conditions see, built as the worker builds it (`decisions.facts_for`): events since the
        contact entered, and every product bought, ever (so a purchase given before the start counts)."""
        who = decisions.ContactFacts(self.contact.tags, self.contact.fields, self.stage, self.score, self.score_at)
        bought = decisions.products_bought(e.data for e in self.seen if e.type == "purchase")
        return decisions.facts_for(self.sequence.id, who, [e for e in self.seen if e.at >= self.start], bought,
                                   self.lifecycle.scoring, now, self.inside(now))

    def inside(self, now: datetime) -> frozenset[str]:
        """The segments the sequence asks about that the contact is in at `now`: judged as a segment
        judges, over all its events so far (those given before the start too)."""
        named = sorted(named_by(self.sequence) & set(self.segments))
        if not named:
            return frozenset()
        c = self.contact
        who = decisions.ContactFacts(c.tags, c.fields, self.stage, self.score, self.score_at,
                                     decisions.ContactFacts.channels(c.email_status, c.sms_status), self.start)
        facts = decisions.segment_facts(who, [e for e in self.seen if e.at <= now], self.lifecycle.scoring, now)
        return memberships(named, self.segments, facts, now)

    def notes(self) -> tuple[str, ...]:
        inside = self.inside(self.start)
        return tuple(explain(sid, self.segments, sid in inside if sid in self.segments else None) + " at the start"
                     for sid in sorted(named_by(self.sequence)))

    def add(self, entry: Entry) -> None:
        self.entries.append(replace(entry, stage=self.stage))


def simulate(sequence: Sequence, contact: SimContact, start: datetime, events: Iterable[EventFact] = (),
             lifecycle: Lifecycle | None = None, sms: SmsSettings | None = None,
             others: Iterable[Sequence] = (), segments: Mapping[str, Segment] | None = None,
             template_of: Callable[[Step], str] | None = None) -> Timeline:
    """The timeline `contact` would get from `sequence` if it entered at `start` and `events` happened.

    Deterministic: the same arguments give the same timeline. An event at the same minute as a due step is
    applied first. `others` (the other loaded sequences) only serve to name the sequences an event starts.
    `template_of(step)`: the template the contact's language gets there (`lead/edu-1.fr`); default: the step's.
    """
    run = _Run(sequence, contact, start, lifecycle or Lifecycle(), sms or SmsSettings(),
               tuple(s for s in others if s.id != sequence.id), dict(segments or {}), stage=contact.stage,
               score=contact.score,
               score_at=start if contact.score else None, entered_at=start, template_of=template_of)
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
    return Timeline(sequence, contact, start, tuple(run.entries), run.notes())


# --- Events, as nurture.people.automation.apply ----------------------------------------------------------------

def _on_event(run: _Run, event: EventFact) -> None:
    """Stage, score, goals, then waking a wait-for step. A bot's event is on the record and changes nothing."""
    if not decisions.counts(event):
        run.seen.append(event)
        run.add(Entry(event.at, "event", event=event))
        return
    changes = _apply_stage_and_score(run, event)
    run.seen.append(_recorded(run, event))
    run.add(Entry(event.at, "event", event=event, changes=changes))
    if event.at < run.start:  # before the contact entered: it changes the contact, not this enrollment
        return
    goal = engine.reached_goal(run.sequence, run.facts(event.at), event.at)
    if goal is not None:
        run.add(Entry(event.at, "goal", run.step_id, reason=f"goal reached: {goal}"))
        run.step_id = None
        return
    if decisions.wakes(run.sequence.step(run.step_id or ""), event.type):
        run.due = event.at


def _recorded(run: _Run, event: EventFact) -> EventFact:
    """An open or click given as `email.clicked@1d step=offer` is about this sequence's message, as the
    tracking links record it."""
    if event.type in decisions.ENGAGEMENT and "sequence" not in event.data:
        return replace(event, data={**event.data, "sequence": run.sequence.id})
    return event


def _apply_stage_and_score(run: _Run, event: EventFact) -> tuple[str, ...]:
    changes: list[str] = []
    earlier = sum(1 for e in run.seen if e.type == event.type)
    stage = stage_after_event(run.lifecycle, run.stage, event.type, earlier)
    if stage:
        changes += _set_stage(run, stage)
    scoring = run.lifecycle.scoring
    change = decisions.score_change(scoring, run.score, run.score_at, event.type, event.at)
    if change is not None:
        run.score, run.score_at = change.after, event.at
        changes.append(f"score {change.before:g} -> {change.after:g}")
        if change.crossed and scoring.sequence:
            changes.append(f"starts {scoring.sequence}")
    changes += [f"starts {s.id}" for s in decisions.started_by(run.others, "event", event.type)]
    return tuple(changes)


def _set_stage(run: _Run, stage: str) -> list[str]:
    """As automation.set_stage: forward only, and the sequences the new stage starts."""
    target = decisions.stage_change(run.lifecycle, run.stage, stage)
    if target is None:
        return []
    change = [f"stage {run.stage} -> {target}"]
    run.stage = target
    return change + [f"starts {s.id}" for s in decisions.started_by(run.others, "stage", target)]


# --- A due step, as nurture.delivery.dispatch._process ---------------------------------------------------------

def _on_due(run: _Run, now: datetime) -> None:
    decision = engine.decide(run.sequence, run.step_id, run.due, now, run.facts(now), run.entered_at,
                             run.contact.id)
    if isinstance(decision, engine.NotYet):
        run.due = decision.until
    elif isinstance(decision, engine.Finished):
        goal = decision.reason.startswith("goal reached")
        run.add(Entry(now, "goal" if goal else "stopped", run.step_id, reason=decision.reason))
        run.step_id = None
    elif isinstance(decision, engine.Skip):
        run.add(Entry(now, "skipped", decision.step.id, reason=decision.reason))
        _advance(run, decision.step, now, skipped=not decision.held_out)
    elif isinstance(decision, engine.Branch):
        target = _next(run, decision.step, now, target=decision.target)
        run.add(Entry(now, "branched", decision.step.id, reason=decision.reason, target=target))
        _completed_if_over(run, now)
    else:
        _send(run, decision.step, now)


def _send(run: _Run, step: Step, now: datetime) -> None:
    """dispatch._send without the sending: consent, then hold, then the message and moving on."""
    blocked = _blocked(run, step)
    if blocked is not None:
        run.add(Entry(now, "skipped", step.id, reason=blocked, channel=step.channel))
        if decisions.stops_after_block(run.sequence, step):
            run.add(Entry(now, "stopped", step.id, reason=blocked))
            run.step_id = None
        else:
            _advance(run, step, now, skipped=True)
        return
    hold = _hold(run, step, now)
    if hold is not None:
        run.add(Entry(now, "deferred", step.id, reason=hold[1], until=hold[0], channel=step.channel))
        run.due = hold[0]  # the same step, not a new one: a wait-for clock would keep running
        return
    changes = tuple(_set_stage(run, step.set_stage)) if step.set_stage else ()
    template = run.template_of(step) if run.template_of else step.template
    run.add(Entry(now, "sent", step.id, channel=step.channel, kind=step.kind, template=template,
                  variant=step.variant, changes=changes))
    if not run.sequence.transactional:
        run.sent.append(now)
    _advance(run, step, now)


def _blocked(run: _Run, step: Step) -> str | None:
    """decisions.consent_block for the made-up contact: it has an email address, a phone only if given,
    and no address of its is suppressed."""
    contact = run.contact
    address, consent = (contact.phone, contact.sms_status) if step.channel == "sms" else \
        ("simulated", contact.email_status)
    return decisions.consent_block(step.channel, address, consent, None, run.sequence.transactional)


def _hold(run: _Run, step: Step, now: datetime) -> decisions.Hold | None:
    """dispatch._hold: the channel's quiet hours, then (marketing only) the send window and the cap. The
    SMS sender's pace is a matter of seconds, and not simulated."""
    sms, contact = run.sms, run.contact
    quiet = decisions.quiet_hours(now, contact.phone, contact.timezone, sms.hours, sms.hours_by_region) \
        if step.channel == "sms" else None
    week = [t for t in run.sent if t >= now - timedelta(days=7)]
    return decisions.send_hold(now, quiet, run.sequence.transactional, run.sequence.window, run.zone, week,
                               run.lifecycle.per_day, run.lifecycle.per_week)


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
