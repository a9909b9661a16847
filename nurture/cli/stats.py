"""`nurture stats SEQUENCE`: the sequence as a funnel, step by step, as the console shows it."""

from __future__ import annotations

import json

import click

from nurture.cli.common import fail, with_runtime
from nurture.insight.experiments import format_results, results_json
from nurture.insight.funnel import BadPeriod, format_funnel, funnel_json
from nurture.insight.sequence_stats import DEFAULT_PERIOD, UnknownSequence, sequence_experiments, sequence_funnel
from nurture.runtime import Runtime


@click.command("stats")
@click.argument("sequence_id")
@click.option("--since", "period", default=DEFAULT_PERIOD, show_default=True, help="the period: 30d, 8w …")
@click.option("--version", default=None, help="one version of the sequence file (its content hash)")
@click.option("--json", "as_json", is_flag=True, help="print the funnel as JSON")
@with_runtime
def stats_command(rt: Runtime, sequence_id: str, period: str, version: str | None, as_json: bool) -> None:
    """Per step of SEQUENCE_ID: reached, sent, skipped (by reason), deferred, delivered, clicked (people,
    not bots), goal reached, unsubscribed, bounced — each with its rate. Then its experiments: each
    variant's rate with a 95% interval, and the holdout's lift, or how many more contacts they need."""
    try:
        funnel = sequence_funnel(rt, sequence_id, period, version)
        found = sequence_experiments(rt, sequence_id, period)
    except (UnknownSequence, BadPeriod) as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps({**funnel_json(funnel), "experiments": results_json(found)}, indent=2))
        return
    click.echo("\n".join(format_funnel(funnel)))
    if found:
        click.echo("experiments:")
        click.echo("\n".join(f"  {line}" for line in format_results(found)))
