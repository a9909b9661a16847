"""The business's lifecycle rules: contact stages and how events move contacts through them, lead scoring,
the frequency cap, and where alerts go.

The pure model and the rules that use it. `sequences/_lifecycle.yaml` is read by
nurture.content.lifecycle_file; the rules are applied by nurture.people.automation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Scoring:
    points: dict[str, float] = field(default_factory=dict)  # event type -> points
    decay_points: float = 0.0
    decay_every: timedelta | None = None
    threshold: float | None = None
    sequence: str | None = None  # entered when the score passes the threshold
    alert: bool = False  # email the sales contact when it does


@dataclass(frozen=True)
class Lifecycle:
    # Contact stages in order, each mapped to the lifecycle stage it belongs to.
    stages: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_STAGES))
    # Event type -> stages: the first occurrence moves the contact to the first, later ones to the last.
    events: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_EVENTS))
    scoring: Scoring = Scoring()
    per_day: int = 0  # marketing messages per contact per rolling day, 0 = no cap
    per_week: int = 0
    sales_email: str | None = None  # hot-lead alerts
    owner_email: str | None = None  # unhappy-customer alerts

    def rank(self, stage: str) -> int:
        order = list(self.stages)
        return order.index(stage) if stage in order else -1


DEFAULT_EVENTS = {"purchase": ("customer", "repeat-customer"), "referral": ("advocate",)}
DEFAULT_STAGES = {
    "lead": "capture-leads",
    "prospect": "nurture-prospects",
    "customer": "deliver-satisfy",
    "repeat-customer": "upsell-customers",
    "advocate": "get-referrals",
}


# --- pure rules --------------------------------------------------------------------------------------------

def stage_after_event(rules: Lifecycle, current: str, event_type: str, earlier_occurrences: int) -> str | None:
    """The stage an event moves a contact to, or None. Events only move contacts forward: a purchase makes
    a lead a customer, a later purchase a repeat customer, and never turns an advocate back into either."""
    targets = rules.events.get(event_type)
    if not targets:
        return None
    target = targets[0] if earlier_occurrences == 0 else targets[-1]
    return target if rules.rank(target) > rules.rank(current) else None


def decayed_score(score: float, since: datetime | None, now: datetime, scoring: Scoring) -> float:
    """`score` less the decay earned since `since` (never below zero)."""
    if since is None or not scoring.decay_every or not scoring.decay_points:
        return score
    periods = math.floor((now - since) / scoring.decay_every)
    return max(0.0, score - periods * scoring.decay_points)

