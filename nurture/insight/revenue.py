"""Revenue per sequence step: the period's purchases, each credited by the pure rule
(nurture.rules.attribution) to the last touch inside its window, summed for one sequence.

Read at the time it is shown, not stored with the purchase: a change to the windows in integrations.yaml
applies to every purchase at once, and the touches are all on record anyway (deliveries, click events).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from nurture.rules.attribution import StepRevenue, credit, total
from nurture.rules.inbound import Attribution
from nurture.store.revenue import purchases_since, refunds_since, touches_of


def sequence_revenue(session: Session, sequence_id: str, since: datetime, attribution: Attribution,
                     until: datetime | None = None) -> dict[str, StepRevenue]:
    """Per step of `sequence_id`: the purchases from `since` credited to it, with their sum per currency
    less what was refunded of them (a `refund` naming the same payment_intent).
    A purchase is weighed against every sequence's touches: the last touch wins, whichever sequence it is."""
    purchases = purchases_since(session, since, until)
    if not purchases:
        return {}
    buyers = sorted({p.contact_id for p in purchases})
    earliest = since - max(attribution.click, attribution.send)
    return credit(purchases, touches_of(session, buyers, earliest), attribution, sequence_id,
                  refunds_since(session, since))


def whole(steps: dict[str, StepRevenue]) -> StepRevenue:
    return total(steps)
