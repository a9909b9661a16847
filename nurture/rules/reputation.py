"""The reputation guard's verdict, without I/O: given bounce and complaint counts over the newest sends,
is either rate over its threshold? Mailbox providers judge a sender by these two numbers (Gmail: under
0.1% complaints, never 0.3%; Amazon SES reviews an account over 5% bounces or 0.1% complaints), so the
guard stops marketing mail before they do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    max_bounce_rate: float  # a share: 0.05 is 5%
    max_complaint_rate: float
    min_sends: int  # fewer sends than this: no verdict yet


@dataclass(frozen=True)
class Rates:
    sends: int
    bounces: int
    complaints: int

    @property
    def bounce_rate(self) -> float:
        return self.bounces / self.sends if self.sends else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sends if self.sends else 0.0


def verdict(rates: Rates, limits: Thresholds) -> str | None:
    """Why marketing email must pause, or None. "Above" the threshold: exactly 5% does not pause."""
    if rates.sends < limits.min_sends:
        return None
    over = []
    if rates.bounce_rate > limits.max_bounce_rate:
        over.append(f"bounce rate {percent(rates.bounce_rate)} over {percent(limits.max_bounce_rate)}")
    if rates.complaint_rate > limits.max_complaint_rate:
        over.append(f"complaint rate {percent(rates.complaint_rate)} over {percent(limits.max_complaint_rate)}")
    if not over:
        return None
    return f"{' and '.join(over)} in the last {rates.sends} sends"


def percent(share: float) -> str:
    """0.05 -> '5%', 0.001 -> '0.1%', 0.0123 -> '1.23%'."""
    return f"{share * 100:.2f}".rstrip("0").rstrip(".") + "%"
