"""`nurture stats SEQUENCE`: the sequence as a funnel, step by step, as the console shows it; `nurture funnel
rebuild | status`: the rollup the funnel is read from (docs/console.md)."""

from __future__ import annotations

import json

import click

from nurture.cli.common import fail, with_runtime
from nurture.insight.funnel import BadPeriod, format_funnel, funnel_json
from nurture.insight.sequence_stats import (
    DEFAULT_PERIOD,
    UnknownSequence,
    catch_up,
    rebuild,
    rollup_backlog,
    sequence_funnel,
)
from nurture.runtime import Runtime


@click.command("stats")
@click.argument("sequence_id")
@click.option("--since", "period", default=DEFAULT_PERIOD, show_default=True, help="the period: 30d, 8w …")
@click.option("--version", default=None, help="one version of the sequence file (its content hash)")
@click.option("--json", "as_json", is_flag=True, help="print the funnel as JSON")
@with_runtime
def stats_command(rt: Runtime, sequence_id: str, period: str, version: str | None, as_json: bool) -> None:
    """Per step of SEQUENCE_ID: reached, sent, skipped (by reason), deferred, delivered, clicked (people,
    not bots), goal reached, unsubscribed, bounced — each with its rate."""
    try:
        funnel = sequence_funnel(rt, sequence_id, period, version)
    except (UnknownSequence, BadPeriod) as exc:
        fail(str(exc))
    click.echo(json.dumps(funnel_json(funnel), indent=2) if as_json else "\n".join(format_funnel(funnel)))


@click.group("funnel")
def funnel_group() -> None:
    """The funnel's rollup: kept up by the worker's tick; rebuilt from the rows here."""


@funnel_group.command("rebuild")
@with_runtime
def rebuild_command(rt: Runtime) -> None:
    """Forget the rollup and work it out again from every delivery and event. The funnel stays exact while
    it runs (it reads the raw rows until the rollup has caught up)."""
    marked = rebuild(rt, lambda done, total: click.echo(f"folded {done} of {total}", err=True))
    click.echo(f"rebuilt: {marked} contacts' places in their sequences' funnels; {rollup_backlog(rt)} dirty left")


@funnel_group.command("status")
@with_runtime
def status_command(rt: Runtime) -> None:
    """How many changes wait to be folded into the rollup."""
    click.echo(f"{rollup_backlog(rt)} changes waiting to be folded")


@funnel_group.command("catch-up")
@with_runtime
def catch_up_command(rt: Runtime) -> None:
    """Fold every change waiting now, without starting again (what the worker does a little at a time)."""
    click.echo(f"folded {catch_up(rt, rounds=10**9)} changes")
