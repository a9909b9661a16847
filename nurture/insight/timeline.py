"""What `nurture simulate` works with and produces: the made-up contact, and the timeline of what would
happen to it, one entry per thing that happens."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from nurture.rules import engine
from nurture.rules.conditions import EventFact
from nurture.rules.sequence import Sequence
from nurture.rules.statuses import Subscription


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
    email_status: str = Subscription.SUBSCRIBED
    sms_status: str = Subscription.NONE
    id: int | None = None  # a real contact's id: picks its variants and holdout as the worker does
    locale: str | None = None  # its language: which localized template each message would use

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
    variant: str | None = None  # sent: the variant of the step's experiment
    event: EventFact | None = None
    changes: tuple[str, ...] = ()  # what an event or a sent step changed: stage, score, sequences started
    stage: str | None = None  # the contact's stage once this happened


@dataclass(frozen=True)
class Timeline:
    sequence: Sequence
    contact: SimContact
    start: datetime
    entries: tuple[Entry, ...]
    notes: tuple[str, ...] = ()  # the segments the sequence asks about: what each means, in it or not
