"""Which sequence step a purchase is credited to: the last touch before it that is still inside its window
(an email click within `click`, default 5 days; a message sent within `send`, default 7 days). Ties go to
the click: a person acted on it. No qualifying touch: the purchase is credited to no sequence.

Pure: handed the purchases, the touches and the windows; `nurture.insight.revenue` loads them and sums.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from nurture.rules.inbound import THREE_DECIMAL, ZERO_DECIMAL, Attribution


@dataclass(frozen=True)
class Touch:
    contact_id: int
    sequence: str
    step: str
    kind: str  # "click" | "send"
    at: datetime


@dataclass(frozen=True)
class Purchase:
    event_id: int
    contact_id: int
    at: datetime
    amount: Decimal | None
    currency: str  # ISO code, upper case; "" when the event named none
    reference: str = ""  # the payment (Stripe's payment_intent) a later refund names


@dataclass
class StepRevenue:
    conversions: int = 0  # purchases credited to the step
    revenue: dict[str, Decimal] = field(default_factory=dict)  # currency -> sum (amounts without one: "")

    def add(self, purchase: Purchase, refunded: Decimal = Decimal(0)) -> None:
        """Count the purchase; its amount less what was refunded of it (never below nothing)."""
        self.conversions += 1
        if purchase.amount is not None:
            kept = purchase.amount - min(max(refunded, Decimal(0)), purchase.amount)
            self.revenue[purchase.currency] = self.revenue.get(purchase.currency, Decimal(0)) + kept


def window(attribution: Attribution, kind: str) -> timedelta:
    return attribution.click if kind == "click" else attribution.send


def credited_touch(purchase: Purchase, touches: Iterable[Touch], attribution: Attribution) -> Touch | None:
    """The last touch of the purchase's contact before it, inside its kind's window. Strictly before: the
    thank-you a purchase itself sets off goes out the same instant, and must not take its credit."""
    qualifying = [t for t in touches if t.contact_id == purchase.contact_id and t.at < purchase.at
                  and purchase.at - t.at <= window(attribution, t.kind)]
    return max(qualifying, key=lambda t: (t.at, t.kind == "click"), default=None)


def credit(purchases: Iterable[Purchase], touches: Iterable[Touch], attribution: Attribution,
           sequence: str, refunds: Mapping[str, Decimal] | None = None) -> dict[str, StepRevenue]:
    """Per step of `sequence`: the purchases credited to it, and their sum per currency, net of `refunds`
    (amount refunded per payment reference). A refunded purchase still converted: it stays counted."""
    by_contact: dict[int, list[Touch]] = {}
    for touch in touches:
        by_contact.setdefault(touch.contact_id, []).append(touch)
    steps: dict[str, StepRevenue] = {}
    for purchase in purchases:
        touch = credited_touch(purchase, by_contact.get(purchase.contact_id, ()), attribution)
        if touch is not None and touch.sequence == sequence:
            refunded = (refunds or {}).get(purchase.reference, Decimal(0)) if purchase.reference else Decimal(0)
            steps.setdefault(touch.step, StepRevenue()).add(purchase, refunded)
    return steps


def total(steps: Mapping[str, StepRevenue]) -> StepRevenue:
    whole = StepRevenue()
    for step in steps.values():
        whole.conversions += step.conversions
        for currency, amount in step.revenue.items():
            whole.revenue[currency] = whole.revenue.get(currency, Decimal(0)) + amount
    return whole


def amount_of(value: object) -> Decimal | None:
    """A purchase event's `amount` (a number, or a text like "199.65") as a Decimal; None when absent or odd."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def money(revenue: Mapping[str, Decimal]) -> str:
    """'USD 240.00 + EUR 35.50', each in its currency's own decimals; '—' for none."""
    parts = []
    for currency, amount in sorted(revenue.items()):
        places = 0 if currency.lower() in ZERO_DECIMAL else 3 if currency.lower() in THREE_DECIMAL else 2
        try:
            shown = f"{amount.quantize(Decimal(1).scaleb(-places)):,}"
        except InvalidOperation:  # beyond Decimal's 28 digits: an API caller's 1e300 is shown as it came
            shown = str(amount)
        parts.append(f"{currency} {shown}".strip())
    return " + ".join(parts) or "—"
