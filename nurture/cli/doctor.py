"""`nurture doctor`: is the From domain's DNS ready for the bulk-sender rules? (SPF, DKIM, DMARC,
one-click unsubscribe, reverse DNS; see nurture.insight.authentication.)"""

from __future__ import annotations

import click

from nurture.cli.common import fail
from nurture.config import ConfigError, startup_settings
from nurture.insight.authentication import MISSING, UNKNOWN, check_all
from nurture.insight.dns_records import CouldNotLook, Lookup, make_resolver

RULES = ("Gmail and Yahoo (over 5,000 messages a day) and Microsoft (from May 2025) ask for SPF, DKIM and "
         "DMARC aligned with the From domain, one-click unsubscribe, and reverse DNS for the sending IPs.")


@click.command("doctor")
@click.option("--nameserver", default=None, metavar="HOST[:PORT]",
              help="ask this DNS server instead of the system's resolver")
@click.option("--timeout", default=3.0, show_default=True, help="seconds to wait for each DNS answer")
def doctor_command(nameserver: str | None, timeout: float) -> None:
    """Check the From domain's mail authentication in DNS and say exactly what to add. Exits 1 when
    something is missing; when DNS cannot be reached it says so and exits 0."""
    try:
        settings = startup_settings()
    except ConfigError as exc:
        fail(f"configuration error: {exc}", 2)
    try:
        findings = check_all(settings, Lookup(make_resolver(nameserver, timeout)))
    except CouldNotLook as exc:
        click.echo(f"could not look up DNS: {exc}. Nothing was checked; run nurture doctor where DNS answers.")
        return
    click.echo(f"Mail authentication for {settings.mail_domain} (From: {settings.mail_from}; envelope sender at "
               f"{settings.bounce_address.rpartition('@')[2]})")
    width = max(len(f.rule) for f in findings)
    for finding in findings:
        click.echo(f"  {finding.state.upper():<14} {finding.rule:<{width}}  {finding.detail}")
        if finding.advice:
            click.echo(f"  {'':<14} {'':<{width}}  fix: {finding.advice}")
    click.echo(RULES)
    missing = [f.rule for f in findings if f.state == MISSING]
    if all(f.state == UNKNOWN for f in findings if f.rule != "one-click unsubscribe"):
        click.echo("DNS could not be reached (offline?): the records were not checked. This is not a failure.")
    if missing:
        fail(f"missing: {', '.join(missing)}")
    click.echo("nothing missing" if not any(f.state == UNKNOWN for f in findings) else "nothing missing of what "
               "could be looked up")
