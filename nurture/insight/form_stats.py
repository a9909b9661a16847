"""How each signup form is doing: its sign-ups in a period, how many of them confirmed, and the rate.

The console's Forms pages show it; the counts come from the consent records (nurture.store.form_signups).
A form that no longer has a file but took sign-ups in the period is listed too: its numbers stay true.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session

from nurture.content.forms import Form
from nurture.insight.funnel import parse_since, rate
from nurture.store.form_signups import FormCounts, form_counts

if TYPE_CHECKING:
    from nurture.runtime import Runtime

PERIODS = ("7d", "30d", "90d", "365d")
DEFAULT_PERIOD = "30d"


@dataclass(frozen=True)
class FormStats:
    form_id: str
    form: Form | None  # None: the file is gone, the sign-ups it took are not
    signups: int
    confirmed: int

    @property
    def double_opt_in(self) -> bool:
        return self.form is None or self.form.double_opt_in

    @property
    def confirmation_rate(self) -> float | None:
        """None where there is nothing to confirm: no sign-ups, or a single opt-in form (no link to click)."""
        return rate(self.confirmed, self.signups) if self.double_opt_in else None


def stats_for(forms: list[Form], counts: dict[str, FormCounts]) -> list[FormStats]:
    """Every form in `forms` (file order), then the ids that only the records still name."""
    known = {form.id for form in forms}
    rows = [FormStats(form.id, form, *_pair(counts.get(form.id))) for form in forms]
    rows += [FormStats(form_id, None, *_pair(counts[form_id])) for form_id in sorted(set(counts) - known)]
    return rows


def _pair(counts: FormCounts | None) -> tuple[int, int]:
    return (counts.signups, counts.confirmed) if counts else (0, 0)


def form_stats(rt: Runtime, forms: list[Form], period: str = DEFAULT_PERIOD) -> tuple[datetime, list[FormStats]]:
    """(since, the stats). Raises nurture.insight.funnel.BadPeriod for a period like '30x'."""
    since = parse_since(period, rt.clock())
    with Session(rt.db) as session:
        counts = form_counts(session, since)
    return since, stats_for(forms, counts)
