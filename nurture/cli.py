"""The `nurture` command. Domain errors become one clear line and an exit code, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from sqlmodel import Session, select

from nurture import dispatch, suppression
from nurture.checker import check_tree
from nurture.config import ConfigError, load_settings
from nurture.contacts import ContactInput, InvalidContact, enroll, upsert_contact
from nurture.db import upgrade
from nurture.models import Contact, Delivery, Event
from nurture.preferences import consent_history
from nurture.runtime import Runtime, build_runtime


def fail(message: str, code: int = 1) -> None:
    click.echo(f"nurture: {message}", err=True)
    sys.exit(code)


def with_runtime(command: Callable[..., Any]) -> Callable[..., Any]:
    """Build the runtime (settings read once, strictly) and migrate the database before the command runs."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            rt = build_runtime(load_settings())
        except ConfigError as exc:
            fail(f"configuration error: {exc}", 2)
        upgrade(rt.db)
        return command(rt, *args, **kwargs)

    return wrapper


@click.group()
def main() -> None:
    """nurture: email/SMS nurture sequences from files."""


@main.command()
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="project folder holding sequences/ and email_templates/ (default: from settings)")
def check(root: Path | None) -> None:
    """Validate every sequence file and template; print each problem as path:line: message."""
    try:
        settings = load_settings(root=root)
    except ConfigError as exc:
        fail(f"configuration error: {exc}", 2)
    base = root or Path.cwd()
    sequences_dir = root / "sequences" if root else settings.sequences_dir
    templates_dir = root / "email_templates" if root else settings.templates_dir
    result = check_tree(sequences_dir, templates_dir, base)
    for problem in result.problems:
        click.echo(str(problem))
    if result.problems:
        fail(f"{len(result.problems)} problem(s) found")
    click.echo(result.summary)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@with_runtime
def db_upgrade(rt: Runtime) -> None:
    """Create or migrate the database to the newest schema."""
    click.echo(f"database ready: {rt.db.url.render_as_string(hide_password=True)}")


@main.group()
def contacts() -> None:
    """Add and inspect contacts."""


@contacts.command("add")
@click.argument("email")
@click.option("--sequence", "sequence_id", help="enroll the contact in this sequence")
@click.option("--name", default="", help='full name, e.g. "Ann Lee" (split at the first space)')
@click.option("--first-name", default="")
@click.option("--last-name", default="")
@click.option("--phone", default=None)
@click.option("--timezone", default=None, help="IANA name, e.g. Europe/Paris")
@click.option("--tag", "tags", multiple=True)
@with_runtime
def contacts_add(rt: Runtime, email: str, sequence_id: str | None, name: str, first_name: str, last_name: str,
                 phone: str | None, timezone: str | None, tags: tuple[str, ...]) -> None:
    """Add (or update) a contact, optionally enrolling it in a sequence."""
    if name and not first_name:
        first_name, _, last_name = name.partition(" ")
    sequence = rt.sequences.get(sequence_id) if sequence_id else None
    if sequence_id and sequence is None:
        known = ", ".join(s.id for s in rt.sequences.all()) or "none loaded"
        fail(f"unknown sequence {sequence_id!r} (known: {known})")
    now = rt.clock()
    data = ContactInput(email=email, first_name=first_name, last_name=last_name, phone=phone, timezone=timezone,
                        tags=tags, source="cli")
    with Session(rt.db) as session:
        try:
            contact, created = upsert_contact(session, data, now)
        except InvalidContact as exc:
            fail(str(exc))
        click.echo(f"{'added' if created else 'updated'} contact {contact.id} <{contact.email}>")
        if sequence is not None:
            enrollment, new = enroll(session, contact, sequence, now)
            if new:
                click.echo(f"enrolled in {sequence.id}: first step {enrollment.step_id} due "
                           f"{enrollment.due_at:%Y-%m-%d %H:%M:%S} UTC")
            else:
                click.echo(f"already in {sequence.id} (status {enrollment.status}); not enrolled again")
        session.commit()


@contacts.command("show")
@click.argument("email")
@with_runtime
def contacts_show(rt: Runtime, email: str) -> None:
    """A contact's deliveries and timeline."""
    with Session(rt.db) as session:
        contact = session.exec(select(Contact).where(Contact.email == email.strip().lower())).first()
        if contact is None:
            fail(f"no contact {email!r}")
        click.echo(f"{contact.email}  {contact.first_name} {contact.last_name}  stage={contact.stage} "
                   f"email={contact.email_status}")
        for d in session.exec(select(Delivery).where(Delivery.contact_id == contact.id).order_by(Delivery.id)):
            click.echo(f"  delivery {d.id}: {d.sequence_id}/{d.step_id} {d.channel} {d.status}"
                       f"{' at ' + d.sent_at.isoformat() if d.sent_at else ''}{'  ' + d.error if d.error else ''}")
        for e in session.exec(select(Event).where(Event.contact_id == contact.id).order_by(Event.id)):
            click.echo(f"  {e.occurred_at:%Y-%m-%d %H:%M:%S}  {e.type}  {e.data}")
        _print_consent(session, contact.id)


def _print_consent(session: Session, contact_id: int) -> None:
    records = consent_history(session, contact_id)
    click.echo("  consent:" if records else "  consent: no records")
    for c in records:
        source = c.form_id and f"form {c.form_id}" or c.delivery_id and f"message {c.delivery_id}" or c.method
        click.echo(f"  {c.created_at:%Y-%m-%d %H:%M:%S}  {c.channel} {c.action} ({c.scope}) via {c.method}"
                   f" from {source}  ip={c.ip or '-'}  ua={c.user_agent or '-'}"
                   f"{'  text#' + c.consent_hash[:12] if c.consent_hash else ''}")


@main.command()
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
            removed = suppression.remove(session, address)
            session.commit()
            click.echo(f"removed {address}" if removed else f"{address} was not suppressed")
        elif address:
            try:
                normalised = suppression.add(session, address, reason, now)
            except InvalidContact as exc:
                fail(str(exc))
            session.commit()
            click.echo(f"suppressed {normalised}")
        else:
            fail("give an ADDRESS, --import FILE.csv or --list")


@main.command("send-due")
@with_runtime
def send_due(rt: Runtime) -> None:
    """Send everything due now, in this process, without Redis (handy for a cron job or a quick look)."""
    total: dict[str, int] = {}

    def run_now(token: str) -> None:
        for outcome, n in dispatch.run_batch(rt, token).counts.items():
            total[outcome] = total.get(outcome, 0) + n

    dispatch.claim_batches(rt, run_now, max_batches=10_000)
    click.echo(", ".join(f"{n} {k}" for k, n in sorted(total.items())) or "nothing due")


@main.command()
@click.option("--port", default=8000, show_default=True)
def dev(port: int) -> None:
    """Run web, worker and tick together on embedded defaults (what `make run` does)."""
    from nurture.devserver import run

    sys.exit(run(port))


if __name__ == "__main__":
    main()
