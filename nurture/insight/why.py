"""`nurture why EMAIL`: every message a contact was sent, skipped or deferred, when, and the reason.

Read-only. The timeline (`Event`) is the record: the send path writes an event for every outcome with the
reason in the worker's own words ("outside the send window", "condition false: tag vip", "contact is
unsubscribed for email"). Delivery rows fill in what has no event (a message still in flight), and each
enrollment says what comes next — decided by the worker's own functions (`decisions.outlook`), so a
message that will be skipped (unsubscribed, suppressed, no consent, goal reached) is said to be.

Events carry no enrollment id, so a sequence entered twice gets each event by time: it belongs to the
latest entry made before it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from sqlmodel import Session

from nurture.config import SmsSettings
from nurture.content.registry import SequenceRegistry
from nurture.delivery.channels import channel_for
from nurture.insight.times import iso_utc, stamp
from nurture.people.contacts import normalise_email
from nurture.rules import decisions, engine, pacing
from nurture.rules.segments import Segment
from nurture.rules.segments import explain as explain_segment
from nurture.rules.sequence import CHANNELS, Sequence
from nurture.store import claims, history
from nurture.store import deliverability as deliverability_store
from nurture.store import events as event_store
from nurture.store.models import Contact, Delivery, DeliveryStatus, Enrollment, EnrollmentStatus, Event, Suppression

if TYPE_CHECKING:  # the pause is only handed through
    from nurture.store.models import SendingPause

# "<channel>.<outcome>" events about one message (sms delivered/undelivered come from Twilio's reports;
# email bounced, soft_bounce, complained also from bounces and feedback reports: nurture.people.bounces).
MESSAGE_OUTCOMES = ("sent", "skipped", "deferred", "retry", "failed", "bounced", "interrupted", "delivered",
                    "undelivered", "soft_bounce", "complained")
# A delivery's status, and the events that already tell it (a soft bounce is the delivery's `bounced`).
COVERS = {"bounced": ("bounced", "soft_bounce")}
STEP_OUTCOMES = {"step.skipped": "skipped", "step.branched": "branched", "sequence.goal": "goal",
                 "sequence.completed": "completed"}
CONSENT_CHANGES = ("email.unsubscribed", "email.resubscribed", "sms.subscribed", "sms.unsubscribed")


class UnknownContact(LookupError):
    pass


@dataclass(frozen=True)
class Line:
    """One outcome. `what`: sent | skipped | deferred | retry | failed | bounced | soft_bounce | complained |
    interrupted | delivered | undelivered | sending | branched | goal | completed | unsubscribed |
    resubscribed | subscribed."""

    at: datetime
    what: str
    step: str | None = None
    channel: str | None = None
    reason: str | None = None
    until: datetime | None = None  # deferred: due again then; retry: the next attempt
    message_id: str | None = None
    target: str | None = None  # branched: where it went on
    kind: str | None = None
    variant: str | None = None  # the variant of the step's experiment that was sent
    locale: str | None = None  # sent from a localized template (its language); None: the default one


@dataclass(frozen=True)
class Run:
    """One entry of the contact into one sequence, and what became of each step."""

    sequence_id: str
    entry: int
    entered_at: datetime
    status: str  # active | completed | stopped
    stop_reason: str | None
    next_step: str | None
    due_at: datetime | None
    waiting_for: str | None  # the event a wait-for step is waiting for
    lines: tuple[Line, ...]
    # What the worker will do with the next step as things stand (its own decision functions): a message
    # to an unsubscribed or suppressed contact is skipped, a goal already reached ends the sequence.
    outlook: decisions.Outlook | None = None
    # Held back by the deliverability checks the send path makes after these (deliverability.hold_email):
    # the reputation guard's pause, or the contact's domain group backed off by pacing. Said as it is.
    held: str | None = None


@dataclass(frozen=True)
class Story:
    contact: Contact
    runs: tuple[Run, ...]
    consent: tuple[Line, ...]  # unsubscribes and opt-ins that are not about one sequence
    suppressed: tuple[Suppression, ...]
    now: datetime

    @property
    def zone(self) -> tzinfo:
        return engine.contact_zone(self.contact.timezone)


def explain(session: Session, email: str, sequences: SequenceRegistry, now: datetime,
            sms: SmsSettings | None = None, backoffs: Mapping[str, datetime] | None = None) -> Story:
    """Everything on record about what this contact was (or was not) sent. Raises UnknownContact. With
    `sms` (the settings' quiet hours) the next text's quiet-hours wait is foretold too; with `backoffs`
    (pacing: domain group -> backed off until) an email held by one is said to be."""
    contact = history.contact_by_email(session, normalise_email(email))
    if contact is None:
        raise UnknownContact(f"no contact {email!r}")
    return story_of(session, contact, sequences, now, sms, backoffs)


def story_of(session: Session, contact: Contact, sequences: SequenceRegistry, now: datetime,
             sms: SmsSettings | None = None, backoffs: Mapping[str, datetime] | None = None) -> Story:
    """`explain` for a contact already found (the console finds it by id)."""
    contact_id = contact.id or 0
    enrollments = history.enrollments_of(session, contact_id)
    lines: dict[int | None, list[Line]] = {e.id: [] for e in enrollments}
    consent: list[Line] = []
    for event in history.events_of(session, contact_id):
        line = _line(event)
        owner = _owner(enrollments, event) if line else None
        if line is not None and line.reason and "segment " in line.reason:
            line = replace(line, reason=with_segments(line.reason, sequences.segments()))
        if line is not None and owner is not None:
            lines[owner.id].append(line)
        elif line is not None and event.type in CONSENT_CHANGES:
            consent.append(line)
    for delivery in history.deliveries_of(session, contact_id):
        _fill_in(lines[delivery.enrollment_id], delivery)
    suppressed = history.suppressions_of(session, (contact.email, contact.phone or ""))
    runs = []
    pause = deliverability_store.open_pause(session)
    for enrollment in enrollments:
        sequence = sequences.get(enrollment.sequence_id)
        ahead = _outlook(session, contact, enrollment, sequence, suppressed, sequences, now, sms) \
            if sequence else None
        held = _held(contact, enrollment, sequence, ahead, pause, backoffs or {}, now) if sequence else None
        runs.append(_run(enrollment, lines[enrollment.id], sequence, ahead, held))
    return Story(contact, tuple(runs), tuple(consent), tuple(suppressed), now)


def _held(contact: Contact, enrollment: Enrollment, sequence: Sequence, ahead: decisions.Outlook | None,
          pause: SendingPause | None, backoffs: Mapping[str, datetime], now: datetime) -> str | None:
    """What holds the next email after the checks `ahead` made, in the send path's order
    (deliverability.hold_email): the guard's pause (marketing only), then a backed-off domain group."""
    step = sequence.step(enrollment.step_id) if enrollment.step_id else None
    if ahead is None or ahead.what not in ("send", "defer") or step is None or step.channel != "email":
        return None
    zone = engine.contact_zone(contact.timezone)
    if pause is not None and not sequence.transactional:
        return (f"held: sending paused by the reputation guard since {stamp(pause.paused_at, zone)} "
                f"({pause.reason}); `nurture resume-sending` lifts it")
    group = pacing.domain_group(contact.email)
    until = backoffs.get(group)
    if until is not None and until > max(now, enrollment.due_at or now):
        return (f"held: the relay asked to slow down for {group}; pacing backs it off until "
                f"{stamp(until, zone)}")
    return None


def _outlook(session: Session, contact: Contact, enrollment: Enrollment, sequence: Sequence,
             suppressed: list[Suppression], sequences: SequenceRegistry, now: datetime,
             sms: SmsSettings | None) -> decisions.Outlook | None:
    """The worker's decision for the enrollment's next step, were it due now (or at its due time, if
    later) with what is on record today: `engine.decide`, then `decisions.consent_block`, then
    `decisions.send_hold`, per channel."""
    step_id = enrollment.step_id
    if enrollment.status != EnrollmentStatus.ACTIVE or not step_id or sequence.step(step_id) is None:
        return None  # ended, or at a step removed by an edit (the worker relocates it first)
    at = max(now, enrollment.due_at or now)
    facts = event_store.load_facts(session, contact, enrollment, sequence, sequences.lifecycle.scoring, at,
                                   sequences.segments())
    blocked = _blocked(contact, suppressed, sequence.transactional)
    holds = _holds(session, contact, sequence, sequences, at, sms)
    ahead = decisions.outlook(sequence, step_id, at, facts, enrollment.step_entered_at, blocked, holds,
                              contact.id)
    if ahead.reason and ahead.what in ("skip", "end"):
        ahead = replace(ahead, reason=with_segments(ahead.reason, sequences.segments(), facts.segments))
    return ahead


_SEGMENT_NAMED = re.compile(r"\bsegment ([a-z0-9][a-z0-9-]*)")


def with_segments(reason: str, segments: Mapping[str, Segment], inside: frozenset[str] | None = None) -> str:
    """`reason` (a condition false, a goal reached) with each segment it names explained: what the segment
    means, and — when `inside` is known — whether the contact is in it."""
    named = list(dict.fromkeys(_SEGMENT_NAMED.findall(reason)))
    notes = [explain_segment(sid, segments, None if inside is None else sid in inside) for sid in named]
    return "; ".join([reason, *notes])


def _holds(session: Session, contact: Contact, sequence: Sequence, sequences: SequenceRegistry, at: datetime,
           sms: SmsSettings | None) -> dict[str, decisions.Hold | None]:
    """decisions.send_hold at `at` for every channel, as the send path asks it (dispatch._hold): texts'
    quiet hours, then the send window and the cap over the marketing messages on record. Messages other
    sequences will send meanwhile are not known yet."""
    transactional = {s.id for s in sequences.all() if s.transactional}
    contact_id = contact.id or 0
    sent = claims.sent_times(session, [contact_id], at - timedelta(days=7), transactional)[contact_id]
    quiet = decisions.quiet_hours(at, contact.phone, contact.timezone, sms.hours, sms.hours_by_region) \
        if sms is not None else None
    lifecycle, zone = sequences.lifecycle, engine.contact_zone(contact.timezone)
    return {name: decisions.send_hold(at, quiet if name == "sms" else None, sequence.transactional,
                                      sequence.window, zone, sent, lifecycle.per_day, lifecycle.per_week)
            for name in CHANNELS}


def _blocked(contact: Contact, suppressed: list[Suppression], transactional: bool) -> dict[str, str | None]:
    """decisions.consent_block for every channel, with the channel's own address and consent column, as
    the send path reads them (store.claims.blocked_reason)."""
    reasons = {s.address: s.reason for s in suppressed}
    blocked = {}
    for name in CHANNELS:
        channel = channel_for(name)
        address = channel.address(contact)
        blocked[name] = decisions.consent_block(name, address, getattr(contact, channel.status_field),
                                                reasons.get(address or ""), transactional)
    return blocked


def _line(event: Event) -> Line | None:
    """The outcome an event records, or None for events that are not about messages."""
    data, at = event.data, event.occurred_at
    channel, _, outcome = event.type.partition(".")
    if event.type in CONSENT_CHANGES:
        scope = data.get("scope", "all")
        reason = f"via {data.get('via', 'unknown')}" + ("" if scope == "all" else " (this sequence only)")
        return Line(at, outcome, channel=channel, reason=reason)
    if event.type in STEP_OUTCOMES:
        # "sequence complete" is the enrollment's stop reason too; its event carries none
        reason = data.get("reason") or ("sequence complete" if event.type == "sequence.completed" else None)
        return Line(at, STEP_OUTCOMES[event.type], data.get("step"), reason=reason, target=data.get("target") or None)
    if channel not in CHANNELS or outcome not in MESSAGE_OUTCOMES or "step" not in data:
        return None
    reason = data.get("reason") or (f"carrier error {data['error_code']}" if data.get("error_code") else None)
    until = data.get("until") or data.get("retry_at")
    return Line(at, outcome, data["step"], channel, reason, datetime.fromisoformat(until) if until else None,
                data.get("message_id"), kind=data.get("kind"), variant=data.get("variant"),
                locale=data.get("locale"))


def _owner(enrollments: list[Enrollment], event: Event) -> Enrollment | None:
    """The entry into the event's sequence that the event belongs to: the latest one made before it.
    An unsubscribe from one sequence names it as its scope."""
    sequence_id = event.data.get("sequence") or event.data.get("scope")
    candidates = [e for e in enrollments if e.sequence_id == sequence_id]
    earlier = [e for e in candidates if e.created_at <= event.occurred_at]
    return (earlier or candidates[:1] or [None])[-1]


def _fill_in(lines: list[Line], delivery: Delivery) -> None:
    """A delivery whose outcome has no event of its own: one in flight right now (or left by a worker that
    died mid-send), or an outcome recorded before it had an event."""
    if delivery.status == DeliveryStatus.SENDING:
        reason = "in flight (if its worker died, it is sent again with the same message id)"
    elif any(line.step == delivery.step_id and line.channel == delivery.channel
             and line.what in COVERS.get(delivery.status, (delivery.status,)) for line in lines):
        return
    else:
        reason = delivery.error
    lines.append(Line(delivery.sent_at or delivery.updated_at, delivery.status, delivery.step_id, delivery.channel,
                      reason, kind=delivery.kind, variant=delivery.variant))
    lines.sort(key=lambda line: line.at)


def _run(enrollment: Enrollment, lines: list[Line], sequence: Sequence | None,
         outlook: decisions.Outlook | None, held: str | None = None) -> Run:
    step = sequence.step(enrollment.step_id) if sequence and enrollment.step_id else None
    waiting = step.wait_for.event if step is not None and step.wait_for is not None else None
    active = enrollment.status == EnrollmentStatus.ACTIVE
    return Run(enrollment.sequence_id, enrollment.entry, enrollment.created_at, enrollment.status,
               enrollment.stop_reason, enrollment.step_id if active else None,
               enrollment.due_at if active else None, waiting if active else None, tuple(lines), outlook,
               held if active else None)


# --- Showing it ----------------------------------------------------------------------------------------------

def describe(line: Line, zone: tzinfo) -> str:
    """What happened, and why, after the `what` column."""
    reason = line.reason or ""
    if line.what == "sent":
        variant = f", variant {line.variant}" if line.variant else ""
        language = f" in {line.locale} (its {line.locale} template)" if line.locale else ""
        return f"{line.kind or 'message'} by {line.channel}{language}, message {line.message_id or '(no id)'}{variant}"
    if line.what == "deferred" and line.until:
        return f"{reason}; due again {stamp(line.until, zone)}"
    if line.what == "retry" and line.until:
        return f"{reason}; next attempt {stamp(line.until, zone)}"
    if line.what == "branched":
        return f"-> {line.target or 'the next step'}: {reason}"
    if line.what == "goal":
        return reason.removeprefix("goal reached: ") + " reached; the sequence ends"
    return "" if line.what == "completed" else reason


def next_text(run: Run, now: datetime, zone: tzinfo) -> str | None:
    """The enrollment's own state: what comes next, or why nothing does."""
    if run.status != EnrollmentStatus.ACTIVE:
        return f"{run.status}: {run.stop_reason or 'no reason recorded'}"
    if run.next_step is None or run.due_at is None:
        return None
    when = stamp(run.due_at, zone)
    ahead = run.outlook
    if ahead is not None and ahead.what == "end":
        return f"next: nothing; {run.next_step} is not sent, the sequence ends ({ahead.reason})"
    if ahead is not None and ahead.what == "skip":
        then = "the sequence stops there" if ahead.stops else "then the contact moves on"
        return f"next: {run.next_step} due {when} will be skipped: {ahead.reason}; {then}"
    if run.held:
        return f"next: {run.next_step} due {when}, {run.held}"
    if ahead is not None and ahead.what == "defer" and ahead.until is not None:
        return f"next: {run.next_step} due {when}, {ahead.reason}: it goes {stamp(ahead.until, zone)}"
    if run.waiting_for:
        return f"next: {run.next_step} waits for {run.waiting_for} until {when}"
    step = f"{run.next_step} (variant {ahead.variant})" if ahead is not None and ahead.variant else run.next_step
    if run.due_at > now:
        return f"next: {step} not yet due, due {when}"
    return f"next: {step} due since {when} (the worker takes it at its next tick)"


def format_story(story: Story) -> list[str]:
    zone, contact = story.zone, story.contact
    name = f"{contact.first_name} {contact.last_name}".strip()
    lines = [f"{contact.email}{f' ({name})' if name else ''}: timezone {contact.timezone or 'UTC (none set)'}, "
             f"stage {contact.stage}, email {contact.email_status}, texts {contact.sms_status}"]
    every = [line for run in story.runs for line in run.lines]
    when = max([len(stamp(line.at, zone)) for line in every], default=0) + 2
    width = max([4, *(len(line.step or "") for line in every)]) + 2
    for run in story.runs:
        lines.append(f"{run.sequence_id} (entry {run.entry}, entered {stamp(run.entered_at, zone)})")
        lines += [f"  {stamp(line.at, zone):<{when}}{line.step or '-':<{width}}{line.what:<12}{describe(line, zone)}"
                  .rstrip() for line in run.lines]
        state = next_text(run, story.now, zone)
        lines += [f"  {state}"] if state else []
    lines += [f"{line.channel} {line.what} {stamp(line.at, zone)} {line.reason}" for line in story.consent]
    lines += [f"suppressed: {s.address} since {stamp(s.created_at, zone)}: {s.reason}" for s in story.suppressed]
    if not story.runs:
        lines.append("never entered a sequence")
    return lines


def story_json(story: Story) -> dict:
    contact, zone = story.contact, story.zone
    return {
        "email": contact.email, "timezone": contact.timezone, "stage": contact.stage,
        "email_status": contact.email_status, "sms_status": contact.sms_status,
        "sequences": [{
            "sequence": run.sequence_id, "entry": run.entry, "entered_at": iso_utc(run.entered_at),
            "status": run.status, "stop_reason": run.stop_reason,
            "next": _next_json(run) if run.next_step and run.due_at else None,
            "lines": [_line_json(line, zone) for line in run.lines],
        } for run in story.runs],
        "consent": [_line_json(line, zone) for line in story.consent],
        "suppressed": [{"address": s.address, "reason": s.reason, "since": iso_utc(s.created_at)}
                       for s in story.suppressed],
    }


def _next_json(run: Run) -> dict:
    data: dict = {"step": run.next_step, "due_at": iso_utc(run.due_at) if run.due_at else None,
                  "waiting_for": run.waiting_for}
    ahead = run.outlook
    if run.held:
        data["held"] = run.held
    if ahead is not None and ahead.what in ("skip", "end", "defer"):  # not sent when due: say so, and why
        data["outlook"] = {"what": ahead.what, "reason": ahead.reason, "stops": ahead.stops,
                           "until": iso_utc(ahead.until) if ahead.until else None}
    if ahead is not None and ahead.variant:
        data["variant"] = ahead.variant
    return data


def _line_json(line: Line, zone: tzinfo) -> dict:
    data = {"at": iso_utc(line.at), "local": line.at.astimezone(zone).isoformat(), "what": line.what,
            "step": line.step, "channel": line.channel, "reason": line.reason,
            "until": iso_utc(line.until) if line.until else None, "message_id": line.message_id,
            "target": line.target, "kind": line.kind, "variant": line.variant, "locale": line.locale,
            "text": describe(line, zone)}
    return {key: value for key, value in data.items() if value is not None}
