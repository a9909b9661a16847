"""`nurture contacts import FILE.csv` and `nurture contacts export`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from nurture.cli.common import fail, with_runtime
from nurture.cli.contacts import contacts
from nurture.people import export, importing
from nurture.people.import_file import UnreadableFile, read_csv
from nurture.rules import import_mapping
from nurture.runtime import Runtime


@contacts.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--map", "maps", multiple=True, metavar="COLUMN=TARGET[,...]",
              help="where a column goes: email, phone, first_name, last_name, timezone, tags, stage, fields.NAME "
                   "or ignore. Columns not named are guessed from their header.")
@click.option("--no-guess", is_flag=True, help="use only the columns named by --map")
@click.option("--sequence", "sequence_id", help="enroll the imported contacts who may receive it in this sequence")
@click.option("--consent", "consent_text", metavar="TEXT", help="the words these people agreed to (recorded)")
@click.option("--consent-basis", "legal_basis", type=click.Choice(importing.LEGAL_BASES),
              help="the legal basis for emailing them; required with --consent")
@click.option("--dry-run", is_flag=True, help="say what each row would do; write nothing")
@with_runtime
def contacts_import(rt: Runtime, file: Path, maps: tuple[str, ...], no_guess: bool, sequence_id: str | None,
                    consent_text: str | None, legal_basis: str | None, dry_run: bool) -> None:
    """Add or update contacts from a CSV file (UTF-8; comma, semicolon or tab). Each bad row is reported as
    FILE:line: reason and skipped; the rest are imported. Without --consent and --consent-basis, new contacts
    get no marketing email (email status `none`). A suppressed address is never added, and nobody
    unsubscribed is subscribed again."""
    sequence = rt.sequences.get(sequence_id) if sequence_id else None
    if sequence_id and sequence is None:
        fail(f"unknown sequence {sequence_id!r} (known: {', '.join(s.id for s in rt.sequences.all()) or 'none'})")
    try:
        csv_file = read_csv(file, str(file))
        mapping = import_mapping.build(csv_file.headers, import_mapping.parse_pairs(maps), guessed=not no_guess)
        opts = importing.options(file.name, sequence, consent_text, legal_basis, rt.sequences.lifecycle.stages)
    except (UnreadableFile, import_mapping.BadMapping, importing.ImportRefused) as exc:
        fail(str(exc))
    click.echo("columns: " + ", ".join(f"{csv_file.headers[i]} -> {t}" for i, t in mapping.targets.items()), err=True)
    with click.progressbar(length=csv_file.lines - 1, label="importing" if not dry_run else "checking",
                           file=sys.stderr) as bar:
        reached = [0]

        def progress(done: int, total: int) -> None:
            bar.length = total  # the rows counted, not the lines guessed: a quoted cell may span lines
            bar.update(done - reached[0])
            reached[0] = done

        report = importing.run(rt.db, csv_file, mapping, opts, rt.clock(), write=not dry_run, progress=progress)
    for problem in report.problem_lines():
        click.echo(problem, err=True)
    click.echo(summary(report, sequence_id))


def summary(report: importing.Report, sequence_id: str | None) -> str:
    counts = report.counts
    said = "would be" if not report.written else ""
    parts = [f"{counts[o]} {o}" for o in importing.Outcome]
    line = f"{report.file_name}: {report.rows} rows: {', '.join(parts)}"
    if report.consented:
        line += f"; {report.consented} {said} subscribed under the consent given".replace("  ", " ")
    if sequence_id:
        line += f"; {report.enrolled} {said} enrolled in {sequence_id}".replace("  ", " ")
    return line + ("  (dry run: nothing written)" if not report.written else "")


@contacts.command("export")
@click.argument("table", type=click.Choice(tuple(export.TABLES)), default="contacts")
@click.option("--csv", "output", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), default=Path("-"),
              show_default=True, help="the file to write (- for standard output)")
@with_runtime
def contacts_export(rt: Runtime, table: str, output: Path) -> None:
    """Contacts, deliveries or consent records as CSV (UTF-8, one header row). Personal data: keep the
    file as safe as the database."""
    lines = export.csv_lines(rt.db, table)
    if str(output) == "-":
        for line in lines:
            click.echo(line, nl=False)
        return
    written = 0
    with output.open("w", encoding="utf-8", newline="") as handle:
        for line in lines:
            handle.write(line)
            written += 1
    click.echo(f"wrote {written - 1} {table} rows to {output}", err=True)
