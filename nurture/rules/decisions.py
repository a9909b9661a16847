"""The worker's decisions besides what is due (that is `engine.decide`): what an event changes, whether a
message may go to this contact at all, and whether it must wait.

One set of pure functions, called by the worker (nurture.people.automation when an event is recorded,
nurture.delivery when a step falls due) and by `nurture simulate` and `nurture why`, so that what they
predict is what the worker does. No module keeps its own copy of "what would happen".

Pure: handed `now` and plain facts (statuses, addresses, events), never a database row or a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from nurture.rules import engine
from nurture.rules.conditions import ENGAGEMENT as ENGAGEMENT  # re-exported: callers have found it here
from nurture.rules.conditions import EventFact, Facts
from nurture.rules.lifecycle import Lifecycle, Scoring, decayed_score
from nurture.rules.sequence import Sequence, Step, Window
from nurture.rules.sms import next_allowed, regions_of, window_for, zones_of
from nurture.rules.statuses import EnrollmentStatus, Subscription

# ENGAGEMENT (opens and clicks): `{opened: step}`, `{clicked: step}` and `{engaged: 30d}` look at these.

Hold = tuple[datetime, str]  # (until, reason): the message waits, it is never dropped


# --- What an event changes ------------------------------------------------------------------------------------

def counts(event: EventFact) -> bool:
    """A link scanner's fetch (`bot`) is on the record and changes nothing: no stage, score or condition."""
    return not event.data.get("bot")


def stage_change(lifecycle: Lifecycle, current: str, target: str) -> str | None:
    """`target` when moving there is a move forward, else None. Stages never move backwards — not by an
    event, not by a step's `set_stage`: a hot-lead step that says "prospect" leaves a customer a customer."""
    if target == current or lifecycle.rank(target) <= lifecycle.rank(current):
        return None
    return target


@dataclass(frozen=True)
class ScoreChange:
    before: float  # decayed to the moment of the event
    after: float
    crossed: bool  # passed the threshold with this event: `score.hot`, the scoring sequence, the alert


def score_change(scoring: Scoring, score: float, score_at: datetime | None, event_type: str,
                 now: datetime) -> ScoreChange | None:
    """What an event of `event_type` does to the lead score at `now`; None when it scores nothing."""
    points = scoring.points.get(event_type)
    if not points:
        return None
    before = decayed_score(score, score_at, now, scoring)
    after = max(0.0, before + points)
    crossed = scoring.threshold is not None and before < scoring.threshold <= after
    return ScoreChange(before, after, crossed)


def started_by(sequences: Iterable[Sequence], kind: str, value: str) -> list[Sequence]:
    """The sequences a trigger of this kind and value starts (event, tag, stage, form)."""
    return [s for s in sequences if any(t.kind == kind and t.value == value for t in s.triggers)]


def wakes(step: Step | None, event_type: str) -> bool:
    """Whether an event makes a contact waiting at `step` due at once (a wait-for step waiting for it)."""
    return step is not None and step.wait_for is not None and step.wait_for.event == event_type


def products_bought(purchases: Iterable[Mapping]) -> frozenset[str]:
    """Every product in these purchase events' properties (an upsell offers what fits them)."""
    return frozenset(str(data["product"]) for data in purchases if isinstance(data, Mapping) and data.get("product"))


@dataclass(frozen=True)
class ContactFacts:
    """The contact as conditions see it, whatever it is stored in."""

    tags: frozenset[str] = frozenset()
    fields: Mapping[str, object] | None = None
    stage: str = "lead"
    score: float = 0.0
    score_at: datetime | None = None
    subscribed: frozenset[str] = frozenset()  # channels with consent: {consent: email} looks here
    created_at: datetime | None = None

    @staticmethod
    def channels(email_status: str, sms_status: str) -> frozenset[str]:
        """The channels a contact with these statuses is subscribed on."""
        pairs = (("email", email_status), ("sms", sms_status))
        return frozenset(channel for channel, status in pairs if status == Subscription.SUBSCRIBED)


def segment_facts(contact: ContactFacts, events: Iterable[EventFact], scoring: Scoring, now: datetime,
                  segments: frozenset[str] = frozenset()) -> Facts:
    """What a segment's condition looks at: all the contact's events that count (not link scanners'), its
    tags, fields, stage, consent, and the score decayed to `now`. No sequence: nothing opened or clicked
    "of this sequence"."""
    return Facts(
        tags=frozenset(contact.tags), fields=dict(contact.fields or {}), stage=contact.stage,
        score=decayed_score(contact.score, contact.score_at, now, scoring),
        events=tuple(e for e in events if counts(e)), subscribed=contact.subscribed, segments=segments,
        created_at=contact.created_at,
    )


def facts_for(sequence_id: str, contact: ContactFacts, events: Iterable[EventFact], purchased: frozenset[str],
              scoring: Scoring, now: datetime, segments: frozenset[str] = frozenset()) -> Facts:
    """What `sequence_id`'s conditions may look at: `events` since the contact entered it (bots' never),
    opens and clicks of this sequence's messages, the score decayed to `now`, and `purchased` (ever)."""
    seen = tuple(e for e in events if counts(e))
    mine = [e for e in seen if e.type in ENGAGEMENT and e.data.get("sequence") == sequence_id]
    return Facts(
        tags=frozenset(contact.tags), fields=dict(contact.fields or {}), stage=contact.stage,
        score=decayed_score(contact.score, contact.score_at, now, scoring), events=seen,
        opened=frozenset(e.data.get("step") for e in mine if e.type == "email.opened"),
        clicked=frozenset(e.data.get("step") for e in mine if e.type == "email.clicked"),
        purchased=purchased, subscribed=contact.subscribed, segments=segments, created_at=contact.created_at,
    )


# --- May this message go to this contact? -------------------------------------------------------------------

def consent_block(channel: str, address: str | None, consent: str, suppressed: str | None, transactional: bool,
                  enrollment_status: str = EnrollmentStatus.ACTIVE, stop_reason: str | None = None) -> str | None:
    """Why this contact must not get a message on `channel`, or None. In this order: the enrollment was
    ended meanwhile; no address; no consent (`consent` is the contact's status for the channel, and a
    transactional message — one the contact asked for — ignores it); the address is suppressed (always)."""
    if enrollment_status != EnrollmentStatus.ACTIVE:
        return stop_reason or f"enrollment {enrollment_status}"
    if not address:
        return f"no address for this channel ({channel})"
    if consent != Subscription.SUBSCRIBED and not transactional:
        return f"contact is {consent} for {channel}" if consent != Subscription.NONE else f"no {channel} consent"
    return f"address suppressed: {suppressed}" if suppressed else None


def stops_after_block(sequence: Sequence, step: Step) -> bool:
    """A blocked message ends the enrollment unless a later step uses another channel (a text after
    emails): creeping through steps that would all be skipped too helps nobody."""
    return not sequence.other_channel_ahead(step)


# --- Must it wait? -------------------------------------------------------------------------------------------

def recipient_zones(phone: str | None, timezone: str | None) -> tuple[tzinfo, ...]:
    """The contact's own timezone when it has a valid one, else the zones its number's prefix implies."""
    if timezone and (zone := engine.contact_zone(timezone)) is not UTC:
        return (zone,)
    return (zones_of(phone) if phone else ()) or (UTC,)


def quiet_until(now: datetime, phone: str | None, timezone: str | None, hours: Window,
                by_region: Mapping[str, Window]) -> datetime:
    """`now` when a text may go now, else the next allowed minute in the recipient's local time (the
    window of the number's region when one is configured, else `hours`)."""
    window = window_for(regions_of(phone or ""), hours, by_region)
    return next_allowed(now, window, recipient_zones(phone, timezone))


def quiet_hours(now: datetime, phone: str | None, timezone: str | None, hours: Window,
                by_region: Mapping[str, Window]) -> Hold | None:
    """SMS quiet hours: (until, reason) when a text to this number may not go at `now`."""
    if not phone:
        return None
    opening = quiet_until(now, phone, timezone, hours, by_region)
    if opening > now:
        return opening, f"quiet hours (texts {hours.start:%H:%M}-{hours.end:%H:%M} local time)"
    return None


def send_hold(now: datetime, channel_hold: Hold | None, transactional: bool, window: Window | None, tz: tzinfo,
              sent: Seq[datetime], per_day: int, per_week: int) -> Hold | None:
    """Why a message that may go must wait: the channel's own hold first (SMS quiet hours), then — for
    marketing only — the sequence's send window and the frequency cap (`sent`: the contact's marketing
    sends of the last 7 days). Transactional messages (the opt-in confirmation) ignore window and cap."""
    if channel_hold is not None or transactional:
        return channel_hold
    return engine.hold_reason(now, window, tz, sent, per_day, per_week)


# --- What will really happen next (for `nurture why`) ---------------------------------------------------------

@dataclass(frozen=True)
class Outlook:
    """What the worker will do when the step falls due, as things stand. `what`: send | skip | defer | end
    | wait."""

    what: str
    reason: str | None = None
    stops: bool = False  # skip: the enrollment stops there (no later step on another channel)
    until: datetime | None = None  # defer: when it will go instead
    variant: str | None = None  # the variant of the step's experiment the contact gets


def outlook(sequence: Sequence, step_id: str, at: datetime, facts: Facts, entered_at: datetime | None,
            blocked: Mapping[str, str | None], holds: Mapping[str, Hold | None] | None = None,
            contact_id: int | None = None) -> Outlook:
    """The worker's own decision for `step_id` if it fell due at `at` with today's `facts`: `blocked` is
    `consent_block` per channel for this contact, `holds` is `send_hold` per channel at `at`. A wait-for
    step is `wait`: its outcome depends on an event yet to come."""
    step = sequence.step(step_id)
    if step is not None and step.wait_for is not None:
        return Outlook("wait")
    decision = engine.decide(sequence, step_id, None, at, facts, entered_at, contact_id)
    if isinstance(decision, engine.Finished):
        return Outlook("end", decision.reason)
    if isinstance(decision, engine.Skip):
        return Outlook("skip", decision.reason)
    assert isinstance(decision, engine.Send)  # not a wait-for step, and due: the only decisions left
    channel = decision.step.channel
    if reason := blocked.get(channel):
        return Outlook("skip", reason, stops_after_block(sequence, decision.step))
    variant = decision.step.variant
    if hold := (holds or {}).get(channel):
        return Outlook("defer", hold[1], until=hold[0], variant=variant)
    return Outlook("send", variant=variant)
