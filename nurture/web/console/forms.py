"""The console's Forms pages: every signup form with its sign-ups, confirmations and confirmation rate
over a period (/signup-forms), and one form with its embed snippets to copy (/signup-forms/<id>).

`/forms/<id>` is the public form itself, so the console's pages live under another name.
"""

from __future__ import annotations

from datetime import datetime

from flask import abort, render_template, request

from nurture.insight.form_stats import DEFAULT_PERIOD, PERIODS, FormStats, form_stats
from nurture.insight.funnel import percent
from nurture.web import runtime
from nurture.web.console import bp
from nurture.web.forms import registry, snippets_in_app


def _stats(period: str) -> tuple[str, datetime, list[FormStats]]:
    """A period the page does not offer (a hand-edited address) falls back to the default, not an error."""
    period = period if period in PERIODS else DEFAULT_PERIOD
    since, rows = form_stats(runtime(), registry().all(), period)
    return period, since, rows


@bp.get("/signup-forms")
def forms_list() -> str:
    period, since, rows = _stats(request.args.get("since", DEFAULT_PERIOD))
    return render_template("console/forms.html", rows=rows, since=since, period=period, periods=PERIODS,
                           percent=percent, base_url=runtime().settings.base_url)


@bp.get("/signup-forms/<form_id>")
def form_detail(form_id: str) -> str:
    form = registry().get(form_id)
    if form is None:
        abort(404)
    period, since, rows = _stats(request.args.get("since", DEFAULT_PERIOD))
    stats = next(row for row in rows if row.form_id == form.id)
    return render_template("console/form.html", form=form, stats=stats, since=since, period=period,
                           periods=PERIODS, percent=percent, snippets=snippets_in_app(runtime(), form))
