"""Broadcasts: a one-off message to a segment, as a one-step sequence the ordinary send path runs.

A broadcast is not a second send path. `as_sequence` turns its definition into a marketing `Sequence` of one
step whose id is `broadcast:ID` (a colon no sequence file's id may hold); starting it writes one enrollment
per segment member, due at `send_at`; the tick, the claim, consent, suppression, the frequency cap, quiet
hours, the send window, pacing and the reputation guard then treat it like any sequence's step.

Pure: the model, the sequence it becomes, and how a decision's reason is tallied in `plan` — the reasons
come from `decisions.consent_block` and `decisions.send_hold`, the worker's own functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from nurture.rules.engine import contact_zone, next_in_window
from nurture.rules.sequence import Sequence, Step, Window

SEQUENCE_PREFIX = "broadcast:"
STEP_ID = "send"
KIND = "broadcast"
TIMINGS = ("own-window", "at-once")
# A broadcast sent in each contact's own window, when its file names none: office hours, every day.
DEFAULT_WINDOW = Window(datetime.strptime("09:00", "%H:%M").time(), datetime.strptime("17:00", "%H:%M").time())


class BroadcastError(Exception):
    """Something about a broadcast the owner must fix or do first (one clear line)."""


@dataclass(frozen=True)
class BroadcastSpec:
    """What a broadcast says: whom (segment), what (channel, template, subject), when (`send_at`, None for
    "now": the moment it is started) and how (`timing`: in each contact's own `window`, or at once)."""

    id: str
    name: str
    segment: str
    channel: str
    template: str
    subject: str = ""
    send_at: datetime | None = None
    timing: str = "own-window"
    window: Window | None = None  # own-window only; None: DEFAULT_WINDOW
    utm_campaign: str = ""

    @property
    def sequence_id(self) -> str:
        return sequence_id(self.id)

    @property
    def send_window(self) -> Window | None:
        """The window the send path holds each contact to: theirs, local time, or none (at once)."""
        if self.timing == "at-once":
            return None
        return self.window or DEFAULT_WINDOW


def sequence_id(broadcast_id: str) -> str:
    return f"{SEQUENCE_PREFIX}{broadcast_id}"


def broadcast_id_of(sequence_id_: str) -> str | None:
    """The broadcast an enrollment or delivery belongs to, or None for a sequence's."""
    return sequence_id_.removeprefix(SEQUENCE_PREFIX) if sequence_id_.startswith(SEQUENCE_PREFIX) else None


def as_sequence(spec: BroadcastSpec, version: str, subject_prefix: str = "") -> Sequence:
    """The one-step marketing sequence the send path runs for `spec` (its `version`: the content hash)."""
    step = Step(id=STEP_ID, kind=KIND, channel=spec.channel, template=spec.template,
                subject=f"{subject_prefix}{spec.subject}" if spec.subject else "")
    utm = {"campaign": spec.utm_campaign or spec.id}
    return Sequence(id=spec.sequence_id, name=spec.name, stage="", steps=(step,), transactional=False,
                    window=spec.send_window, utm=utm, version=version, path="")


def due_at(spec: BroadcastSpec, started_at: datetime) -> datetime:
    """When the enrollments fall due: `send_at`, or the start for "now" (and for a time already past)."""
    return max(spec.send_at, started_at) if spec.send_at is not None else started_at


def due_for(spec: BroadcastSpec, going: datetime, timezone: str | None) -> datetime:
    """When one member's enrollment falls due, written as the broadcast goes (`going`): at once, or — in
    its own window — the window's next opening in the contact's zone. The send path checks the window
    again when it is claimed; placing it here saves a claim and a deferral per member outside it."""
    window = spec.send_window
    return going if window is None else next_in_window(going, window, contact_zone(timezone))


# --- plan: the worker's reasons, tallied -------------------------------------------------------------------

HELD_BACK = ("suppressed", "no consent", "no address", "erased", "cap reached", "window or quiet hours",
             "already sent")


def held_back_as(reason: str) -> str:
    """Which line of `plan` a reason from consent_block or send_hold counts in."""
    if reason.startswith("address suppressed"):
        return "suppressed"
    if reason.startswith("no address"):
        return "no address"
    if reason.startswith("contact is erased"):
        return "erased"
    if reason.startswith("frequency cap"):
        return "cap reached"
    if reason.startswith(("outside the send window", "quiet hours")):
        return "window or quiet hours"
    return "no consent"  # "no email consent", "contact is unsubscribed for email", a stopped enrollment ...


@dataclass
class Tally:
    """`plan`'s figures: segment members, how many will get the broadcast when it goes, and why the rest
    will not (or not then: cap, window and quiet hours defer, never drop)."""

    members: int = 0
    will_get: int = 0
    held: dict[str, int] | None = None

    def __post_init__(self) -> None:
        if self.held is None:
            self.held = dict.fromkeys(HELD_BACK, 0)

    @property
    def held_back(self) -> int:
        """Members who will not get it when it goes (those it was sent to already are not held back)."""
        return self.members - self.will_get - (self.held or {}).get("already sent", 0)

    def add(self, reason: str | None) -> None:
        self.members += 1
        if reason is None:
            self.will_get += 1
        else:
            assert self.held is not None
            key = reason if reason in self.held else held_back_as(reason)
            self.held[key] += 1
