"""A sequence as a funnel: /sequences/<id>?since=30d&version=…"""

from __future__ import annotations

from flask import abort, render_template, request

from nurture.insight.experiments import arm_shares, pct, scale_of, share_text
from nurture.insight.funnel import METRICS, RATE_OF, BadPeriod, percent
from nurture.insight.sequence_stats import (
    DEFAULT_PERIOD,
    UnknownSequence,
    sequence_experiments,
    sequence_funnel,
    sequence_versions,
)
from nurture.rules.attribution import money
from nurture.web import runtime
from nurture.web.console import bp

PERIODS = ("7d", "30d", "90d", "365d")


@bp.get("/sequences/<sequence_id>")
def funnel(sequence_id: str) -> str:
    rt = runtime()
    period = request.args.get("since", DEFAULT_PERIOD)
    version = request.args.get("version") or None
    try:
        result = sequence_funnel(rt, sequence_id, period, version)
    except UnknownSequence:
        abort(404)
    except BadPeriod:
        period = DEFAULT_PERIOD
        result = sequence_funnel(rt, sequence_id, period, version)
    widest = max([row.counts["reached"] for row in result.rows] + [1])
    return render_template("console/funnel.html", funnel=result, metrics=METRICS, rate_of=RATE_OF,
                           percent=percent, widest=widest, period=period, periods=PERIODS,
                           versions=sequence_versions(rt, sequence_id), money=money,
                           attribution=rt.integrations.attribution,
                           experiments=sequence_experiments(rt, sequence_id, period), arm_shares=arm_shares,
                           pct=pct, share_text=share_text, scale_of=scale_of)
