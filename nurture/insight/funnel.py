"""A sequence as a funnel: per step, how many contacts reached it and what became of them, each with its
rate against the stage before it in the funnel; and the same for the whole sequence.

Pure: handed the sequence and the counts nurture.store.funnel measured. `nurture stats` prints it; the
console draws it as a table at /sequences/<id>.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from nurture.rules.attribution import StepRevenue, money, total
from nurture.rules.sequence import Sequence

# Each metric and what its rate is taken against ("reached" against the step before's "reached").
METRICS = ("reached", "sent", "skipped", "deferred", "delivered", "clicked", "goal", "unsubscribed", "bounced")
RATE_OF = {"reached": "previous step", "sent": "reached", "skipped": "reached", "deferred": "reached",
           "delivered": "sent", "clicked": "delivered", "goal": "sent", "unsubscribed": "delivered",
           "bounced": "sent"}
PERIOD = re.compile(r"^(\d+)([dw])$")


class BadPeriod(ValueError):
    pass


def parse_since(text: str, now: datetime) -> datetime:
    """'30d' or '8w' -> that long before `now`."""
    match = PERIOD.match(text.strip())
    if not match:
        raise BadPeriod(f"bad period {text!r}: use days or weeks, like 30d or 8w")
    days = int(match[1]) * (7 if match[2] == "w" else 1)
    return now - timedelta(days=days)


@dataclass(frozen=True)
class FunnelRow:
    step: str
    label: str  # kind and channel, or "waits for rating"
    counts: Mapping[str, int]
    rates: Mapping[str, float | None]
    skip_reasons: Mapping[str, int]


@dataclass(frozen=True)
class Funnel:
    sequence_id: str
    name: str
    since: datetime
    version: str | None
    rows: tuple[FunnelRow, ...]
    total: Mapping[str, int]
    # Purchases credited to each step (nurture.insight.revenue): conversions and revenue per currency.
    revenue: Mapping[str, StepRevenue] = field(default_factory=dict)

    def step_revenue(self, step: str) -> StepRevenue:
        return self.revenue.get(step) or StepRevenue()

    @property
    def total_revenue(self) -> StepRevenue:
        return total(self.revenue)


def rate(part: int, whole: int | None) -> float | None:
    return None if not whole else part / whole


def row_rates(counts: Mapping[str, int], previous_reached: int | None) -> dict[str, float | None]:
    rates: dict[str, float | None] = {}
    for metric, base in RATE_OF.items():
        whole = previous_reached if base == "previous step" else counts.get(base, 0)
        rates[metric] = rate(counts.get(metric, 0), whole)
    return rates


def step_label(sequence: Sequence, step_id: str) -> str:
    step = sequence.step(step_id)
    if step is None:
        return "a step this version no longer has"
    if step.wait_for is not None:
        return f"waits for {step.wait_for.event}"
    label = f"{step.kind or 'message'} · {step.channel}"
    if step.offers:  # one product may be offered to several kinds of buyer: name it once
        products = dict.fromkeys(offer.product for offer in step.offers)
        label += " · offers: " + ", ".join(products)
    return label


PerStep = Mapping[str, Mapping[str, int]]  # step id -> metric (or skip reason) -> contacts


def build_funnel(sequence: Sequence, steps: PerStep, skip_reasons: PerStep, total: Mapping[str, int],
                 since: datetime, version: str | None) -> Funnel:
    """Rows in the file's order, then any step the counts name that the file no longer has."""
    order = [step.id for step in sequence.steps] + sorted(set(steps) - {step.id for step in sequence.steps})
    rows, previous = [], None
    for step_id in order:
        counts = {metric: max(steps.get(step_id, {}).get(metric, 0), 0) for metric in METRICS}
        rows.append(FunnelRow(step_id, step_label(sequence, step_id), counts, row_rates(counts, previous),
                              dict(skip_reasons.get(step_id, {}))))
        previous = counts["reached"]
    whole = {metric: sum(row.counts[metric] for row in rows) for metric in METRICS if metric != "reached"}
    whole.update(entered=total.get("entered", 0), goal=total.get("goal", 0))
    return Funnel(sequence.id, sequence.name, since, version, tuple(rows), whole)


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def format_funnel(funnel: Funnel) -> list[str]:
    """The table `nurture stats` prints: each count with its rate beside it."""
    head = f"{funnel.name} ({funnel.sequence_id}) since {funnel.since:%Y-%m-%d %H:%M} UTC"
    lines = [head + (f", version {funnel.version}" if funnel.version else ", all versions"), ""]
    lines.append(f"{'step':<22}" + "".join(f"{metric:>15}" for metric in METRICS))
    for row in funnel.rows:
        cells = "".join(f"{row.counts[m]:>9} {percent(row.rates[m]):>5}" for m in METRICS)
        lines.append(f"{row.step[:21]:<22}{cells}")
        for reason, n in sorted(row.skip_reasons.items(), key=lambda item: -item[1]):
            lines.append(f"{'':<24}skipped {n}: {reason}")
    total = funnel.total
    lines += ["", f"whole sequence: {total['entered']} entered, {total['sent']} sent, {total['clicked']} clicked, "
              f"{total['goal']} reached the goal ({percent(rate(total['goal'], total['entered']))} of those who "
              f"entered), {total['unsubscribed']} unsubscribed, {total['bounced']} bounced",
              "rates: reached against the step before; sent, skipped, deferred against reached; delivered and "
              "bounced and goal against sent; clicked and unsubscribed against delivered"]
    return lines + format_revenue(funnel)


def format_revenue(funnel: Funnel) -> list[str]:
    """Conversions and revenue per step: purchases credited to the step's last touch (docs/integrations.md)."""
    lines = ["", f"{'step':<22}{'conversions':>12}{'of sent':>9}  revenue"]
    for row in funnel.rows:
        credited = funnel.step_revenue(row.step)
        share = percent(rate(credited.conversions, row.counts["sent"]))
        lines.append(f"{row.step[:21]:<22}{credited.conversions:>12}{share:>9}  {money(credited.revenue)}")
    whole = funnel.total_revenue
    plural = "" if whole.conversions == 1 else "s"
    lines.append(f"whole sequence: {whole.conversions} conversion{plural}, {money(whole.revenue)}")
    return lines


def funnel_json(funnel: Funnel) -> dict:
    return {"sequence": funnel.sequence_id, "name": funnel.name, "since": funnel.since.isoformat(),
            "version": funnel.version, "rate_of": RATE_OF, "total": dict(funnel.total),
            "steps": [{"step": row.step, "label": row.label, "counts": dict(row.counts), "rates": dict(row.rates),
                       "skipped_by_reason": dict(row.skip_reasons), **_revenue_json(funnel.step_revenue(row.step))}
                      for row in funnel.rows],
            "revenue": _revenue_json(funnel.total_revenue)}


def _revenue_json(credited: StepRevenue) -> dict:
    return {"conversions": credited.conversions,
            "revenue": {currency: str(amount) for currency, amount in sorted(credited.revenue.items())}}
