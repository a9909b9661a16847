"""The `nurture` command. Domain errors become one clear line and an exit code, never a traceback."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from sqlmodel import Session, select

from nurture.config import ConfigError, Settings, startup_settings
from nurture.content.checker import CheckResult, SmsCheck, TemplateCheck, check_tree
from nurture.content.forms import FormRegistry
from nurture.delivery import alerts, dispatch, versions
from nurture.people import automation, signup, suppression
from nurture.people.contacts import ContactInput, InvalidContact, enroll, normalise_email, upsert_contact
from nurture.people.preferences import Origin, consent_history, set_sms
from nurture.runtime import Runtime, build_runtime
from nurture.store.db import upgrade
from nurture.store.models import Contact, Delivery, Event, Subscription


def fail(message: str, code: int = 1) -> None:
    click.echo(f"nurture: {message}", err=True)
    sys.exit(code)


def with_runtime(command: Callable[..., Any]) -> Callable[..., Any]:
    """Build the runtime (settings read once, strictly) and migrate the database before the command runs."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            rt = build_runtime(startup_settings())
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
        settings = startup_settings(root=root)
    except ConfigError as exc:
        fail(f"configuration error: {exc}", 2)
    result = check_project(settings, root)
    for problem in result.problems + result.warnings:  # warnings (what a text costs) never fail the check
        click.echo(str(problem))
    if result.problems:
        fail(f"{len(result.problems)} problem(s) found")
    click.echo(result.summary)


def check_project(settings: Settings, root: Path | None = None, shown_from: Path | None = None) -> CheckResult:
    """What `nurture check` finds: under `root` if given, else in the folders the settings name; paths are
    shown relative to `shown_from` (default: the root, else the current folder)."""
    base = shown_from or root or Path.cwd()
    sequences_dir = root / "sequences" if root else settings.sequences_dir
    templates_dir = root / "email_templates" if root else settings.templates_dir
    forms_dir = root / "forms" if root else settings.forms_dir
    sms = SmsCheck(root / "sms_templates" if root else settings.sms.templates_dir, settings.sms.max_segments,
                   settings.brand_name, settings.base_url)
    return check_tree(sequences_dir, templates_dir, base, forms_dir, sms)


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
@click.option("--sms-consent", "sms_consent", default=None, metavar="TEXT",
              help="the person agreed to marketing texts: records an SMS opt-in with TEXT, the words they agreed to")
@with_runtime
def contacts_add(rt: Runtime, email: str, sequence_id: str | None, name: str, first_name: str, last_name: str,
                 phone: str | None, timezone: str | None, tags: tuple[str, ...], sms_consent: str | None) -> None:
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
        if sms_consent is not None:
            if not set_sms(session, contact, True, Origin(method="cli", consent_text=sms_consent), now) \
                    and contact.sms_status != Subscription.SUBSCRIBED:
                fail("--sms-consent needs a phone number (--phone)")
            click.echo(f"texts on for {contact.phone}")
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


@contacts.command("consent")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="print the records as JSON")
@with_runtime
def contacts_consent(rt: Runtime, email: str, as_json: bool) -> None:
    """A contact's consent record: every opt-in, confirmation and opt-out, with when, which form or
    message, the exact consent text and its SHA-256, IP and user agent."""
    with Session(rt.db) as session:
        try:
            contact = session.exec(select(Contact).where(Contact.email == normalise_email(email))).first()
        except InvalidContact as exc:
            fail(str(exc))
        if contact is None:
            fail(f"no contact {email!r}")
        records = [signup.consent_json(c) for c in consent_history(session, contact.id)]
    if as_json:
        click.echo(json.dumps({"email": contact.email, "email_status": contact.email_status,
                               "sms_status": contact.sms_status, "consent": records}, indent=2))
        return
    click.echo(f"{contact.email}  email={contact.email_status}  sms={contact.sms_status}")
    if not records:
        click.echo("  no consent records")
    for r in records:
        source = f"form {r['form']}" if r["form"] else f"message {r['message']}" if r["message"] else r["method"]
        click.echo(f"  {r['at']}  {r['channel']} {r['action']} ({r['scope']}) via {r['method']}, {source}")
        click.echo(f"      ip {r['ip'] or '-'}  user agent {r['user_agent'] or '-'}")
        if r["consent_text"]:
            click.echo(f"      text sha256 {r['consent_sha256']}: {r['consent_text']!r}")


@main.group("forms")
def forms_group() -> None:
    """Signup forms (forms/*.yaml): list them, print their embed snippets."""


@forms_group.command("list")
@with_runtime
def forms_list(rt: Runtime) -> None:
    """Every form, its sequence and its hosted page."""
    found = FormRegistry(rt.settings.forms_dir).all()
    if not found:
        click.echo(f"no forms in {rt.settings.forms_dir}")
    for form in found:
        opt_in = "double opt-in" if form.double_opt_in else "single opt-in"
        click.echo(f"{form.id}\t{form.name}\t-> {form.sequence} ({opt_in})\t{rt.settings.base_url}/forms/{form.id}")


@forms_group.command("snippet")
@click.argument("form_id")
@with_runtime
def forms_snippet(rt: Runtime, form_id: str) -> None:
    """Print the three ways to embed FORM_ID: plain HTML, one-line script, hosted page link."""
    from nurture.web.forms import snippets  # the web app's templates render the HTML snippet

    form = FormRegistry(rt.settings.forms_dir).get(form_id)
    if form is None:
        known = ", ".join(f.id for f in FormRegistry(rt.settings.forms_dir).all()) or "none"
        fail(f"unknown form {form_id!r} (known: {known})")
    for title, text in snippets(rt, form).items():
        click.echo(f"<!-- ===== {title} ===== -->\n{text.strip()}\n")


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


@main.group()
def events() -> None:
    """Record events (purchases, webinar visits...) that move contacts along."""


@events.command("send")
@click.argument("email")
@click.argument("event_type")
@click.option("--prop", "props", multiple=True, help="a property, key=value (repeatable)")
@click.option("--at", "occurred_at", default=None, help="when it happened, ISO 8601 (default: now)")
@click.option("--key", default=None, help="idempotency key: the same key twice records one event")
@with_runtime
def events_send(rt: Runtime, email: str, event_type: str, props: tuple[str, ...], occurred_at: str | None,
                key: str | None) -> None:
    """Record EVENT_TYPE for the contact EMAIL, as POST /api/events does."""
    data = dict(p.split("=", 1) for p in props if "=" in p)
    if len(data) != len(props):
        fail("--prop takes key=value")
    with Session(rt.db) as session:
        try:
            given = automation.parse_event_input(event_type, data, occurred_at, key)
            contact = session.exec(select(Contact).where(Contact.email == normalise_email(email))).first()
        except (automation.InvalidEvent, InvalidContact) as exc:
            fail(str(exc))
        if contact is None:
            fail(f"no contact {email!r}")
        event, created = automation.record(session, rt, contact, given.type, given.data,
                                           given.occurred_at or rt.clock(), given.key)
        session.commit()
        click.echo(f"recorded {event.type} for {contact.email} (event {event.id})" if created
                   else f"already recorded (event {event.id}, same idempotency key); nothing changed")


@main.command()
@with_runtime
def plan(rt: Runtime) -> None:
    """What the sequence files on disk would do to contacts in flight, before the worker picks them up.
    Exits 1 whenever `nurture check` would: a file it rejects is never picked up."""
    from nurture.insight.plan import make_plan

    with Session(rt.db) as session:
        plans = make_plan(session, rt.settings.sequences_dir, rt.sequences.check)
    for entry in plans:
        click.echo(entry.render())
    shown = {str(p) for entry in plans for p in entry.problems}
    others = [p for p in check_project(rt.settings, shown_from=rt.sequences.check.root).problems
              if str(p) not in shown]
    if others:
        click.echo("other problems (nurture check):")
        click.echo("\n".join(f"  {p}" for p in others))
    if others or any(entry.problems for entry in plans):
        sys.exit(1)


@main.command()
@click.option("--limit", default=20, show_default=True)
@with_runtime
def referrals(rt: Runtime, limit: int) -> None:
    """The contacts who brought the most friends."""
    from nurture.people.referrals import top_referrers

    with Session(rt.db) as session:
        rows = top_referrers(session, limit)
    if not rows:
        click.echo("no referrals yet")
    for row in rows:
        click.echo(f"{row.referred:>4}  {row.email}  {row.name}  {rt.settings.base_url}/r/"
                   f"{rt.signer.referral_code(row.contact_id)}")


@main.command("send-due")
@with_runtime
def send_due(rt: Runtime) -> None:
    """Send everything due now, in this process, without Redis (handy for a cron job or a quick look)."""
    total: dict[str, int] = {}

    def run_now(token: str) -> None:
        for outcome, n in dispatch.run_batch(rt, token).counts.items():
            total[outcome] = total.get(outcome, 0) + n

    versions.housekeeping(rt)
    alerts.send_alerts(rt)
    dispatch.claim_batches(rt, run_now, max_batches=10_000)
    click.echo(", ".join(f"{n} {k}" for k, n in sorted(total.items())) or "nothing due")


@main.command()
@click.option("--port", default=8000, show_default=True)
def dev(port: int) -> None:
    """Run web, worker and tick together on embedded defaults (what `make run` does)."""
    from nurture.cli.devserver import run

    sys.exit(run(port))


@main.command("simulate")
@click.argument("sequence_id")
@click.option("--contact", "contact_spec", default="", metavar="FIELDS",
              help="the made-up contact, e.g. timezone=America/New_York,tags=vip;beta,stage=lead,plan=pro")
@click.option("--event", "event_specs", multiple=True, metavar="TYPE@WHEN",
              help="an event: purchase@3d (3 days after the start), rating@5d score=9, purchase@ISO (repeatable)")
@click.option("--start", default=None, metavar="ISO", help="when the contact enters (default: now)")
@click.option("--json", "as_json", is_flag=True, help="print the timeline as JSON")
def simulate_command(sequence_id: str, contact_spec: str, event_specs: tuple[str, ...], start: str | None,
                     as_json: bool) -> None:
    """Print the timeline a contact would get from SEQUENCE_ID, without sending anything or opening the
    database: the worker's own decisions on windows, quiet hours, caps, goals and branches."""
    from nurture.content.registry import SequenceRegistry
    from nurture.insight import simulate  # this command and `why` import their modules only when they run
    from nurture.runtime import utc_now

    try:
        settings = startup_settings()
    except ConfigError as exc:
        fail(f"configuration error: {exc}", 2)
    registry = SequenceRegistry(settings.sequences_dir, TemplateCheck.for_settings(settings))
    registry.refresh()
    sequence = registry.get(sequence_id)
    refused = next((r for r in registry.refused().values() if r.sequence_id == sequence_id), None)
    if refused is not None:  # what the worker runs is the last good version, which only the database knows
        fail(f"{refused.path} has {len(refused.problems)} problem(s), so the worker keeps running the last version "
             "that passed; there is nothing new to simulate until nurture check passes")
    if sequence is None:
        known = ", ".join(s.id for s in registry.all()) or "none loaded"
        broken = f"; {len(registry.problems)} problem(s) in the files: run nurture check" if registry.problems else ""
        fail(f"unknown sequence {sequence_id!r} (known: {known}){broken}")
    try:
        contact = simulate.parse_contact(contact_spec, registry.lifecycle)
        # Seconds are noise in a preview: without --start it begins at the current minute.
        begin = simulate.parse_instant(start, "--start") if start else utc_now().replace(second=0, microsecond=0)
        events = [simulate.parse_event(spec, begin, contact.zone) for spec in event_specs]
    except simulate.SimulationInputError as exc:
        fail(str(exc), 2)
    timeline = simulate.simulate(sequence, contact, begin, events, registry.lifecycle, settings.sms, registry.all())
    if as_json:
        click.echo(json.dumps(simulate.timeline_json(timeline), indent=2))
    else:
        click.echo("\n".join(simulate.format_timeline(timeline)))


@main.command("why")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="print the explanation as JSON")
@with_runtime
def why_command(rt: Runtime, email: str, as_json: bool) -> None:
    """Every message EMAIL was sent, skipped or deferred, when, and why; and what comes next."""
    from nurture.insight import why

    with Session(rt.db) as session:
        try:
            story = why.explain(session, email, rt.sequences, rt.clock(), rt.settings.sms)
        except (why.UnknownContact, InvalidContact) as exc:
            fail(str(exc))
    if as_json:
        click.echo(json.dumps(why.story_json(story), indent=2))
    else:
        click.echo("\n".join(why.format_story(story)))


from nurture.cli import bounces  # noqa: E402,F401  (registers `nurture bounces` on main)

if __name__ == "__main__":
    main()
