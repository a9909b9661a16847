"""`nurture suppress`: the global suppression list."""

from __future__ import annotations

from pathlib import Path

import click
from sqlmodel import Session

from nurture.cli.common import fail, with_runtime
from nurture.people import suppression
from nurture.people.contacts import InvalidContact
from nurture.runtime import Runtime


@click.command()
@click.argument("address", required=False)
@click.option("--import", "import_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV file: one address per row in the first column, optional reason in the second")
@click.option("--list", "show_list", is_flag=True, help="print the suppression list")
@click.option("--remove", is_flag=True, help="take ADDRESS off the list")
@click.option("--reason", default="manual", show_default=True)
@with_runtime
def suppress(rt: Runtime, address: str | None, import_file: Path | None, show_list: bool, remove: bool,
             reason: str) -> None:
    """Add to, import into, list or remove from the global suppression list."""
    now = rt.clock()
    with Session(rt.db) as session:
        if show_list:
            for entry in suppression.listing(session):
                click.echo(f"{entry.address}\t{entry.created_at:%Y-%m-%d %H:%M}\t{entry.reason}")
        elif import_file:
            report = suppression.import_csv(session, import_file, now)
            session.commit()
            for line, value, why in report.invalid:
                click.echo(f"{import_file}:{line}: skipped {value!r}: {why}", err=True)
            click.echo(f"suppressed {report.added} address(es)"
                       f"{f', {len(report.invalid)} invalid row(s) skipped' if report.invalid else ''}")
        elif address and remove:
            try:
                removed = suppression.remove(session, address, now, reason, actor="cli")
            except InvalidContact as exc:
                fail(str(exc))
            session.commit()
            click.echo(f"removed {address}" if removed else f"{address} was not suppressed")
        elif address:
            try:
                normalised = suppression.add(session, address, reason, now, actor="cli")
            except InvalidContact as exc:
                fail(str(exc))
            session.commit()
            click.echo(f"suppressed {normalised}")
        else:
            fail("give an ADDRESS, --import FILE.csv or --list")
