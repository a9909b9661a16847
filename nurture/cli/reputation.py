"""`nurture reputation` (the bounce and complaint rates the guard watches) and `nurture resume-sending`
(lift the guard's pause once you have looked)."""

from __future__ import annotations

import getpass

import click

from nurture.cli.common import with_runtime
from nurture.delivery import reputation
from nurture.rules.reputation import Rates, percent
from nurture.runtime import Runtime


def _line(name: str, rates: Rates) -> str:
    return (f"{name:<28} {rates.sends:>7} sends  {percent(rates.bounce_rate):>7} bounced ({rates.bounces})  "
            f"{percent(rates.complaint_rate):>7} complaints ({rates.complaints})")


@click.command("reputation")
@with_runtime
def reputation_command(rt: Runtime) -> None:
    """Bounce and complaint rates over the newest sends, overall and per sequence, and the guard's state."""
    standing = reputation.standing(rt)
    limits = standing.limits
    if standing.pause is not None:
        click.echo(f"PAUSED since {standing.pause.paused_at:%Y-%m-%d %H:%M} UTC: {standing.pause.reason}")
        click.echo("  marketing email waits; transactional goes on. After a look: nurture resume-sending")
    elif not rt.settings.deliverability.guard:
        click.echo("guard off (REPUTATION_GUARD=false)")
    else:
        click.echo("sending normally")
    since = " since the last resume" if standing.since_resume else ""
    click.echo(f"limits: {percent(limits.max_bounce_rate)} bounces, {percent(limits.max_complaint_rate)} complaints "
               f"over the last {standing.window} sends{since} (judged from {limits.min_sends} sends on)")
    click.echo(_line("all sequences", standing.overall))
    for sequence_id, rates in standing.by_sequence.items():
        click.echo(_line(f"  {sequence_id}", rates))


@click.command("resume-sending")
@click.option("--by", default=None, help="who resumes (default: the login name), kept with the pause")
@with_runtime
def resume_sending(rt: Runtime, by: str | None) -> None:
    """Lift the reputation guard's pause: marketing email goes again (within 15 minutes)."""
    lifted = reputation.resume(rt, by or getpass.getuser())
    if lifted is None:
        click.echo("sending was not paused")
        return
    click.echo(f"resumed: the pause of {lifted.paused_at:%Y-%m-%d %H:%M} UTC ({lifted.reason}) is lifted; "
               f"the guard now judges the sends from here on")
