"""`nurture plan`, `nurture simulate` and `nurture why`: read, explain, never send."""

from __future__ import annotations

import json
import sys

import click
from sqlmodel import Session

from nurture.cli.common import fail, with_runtime
from nurture.cli.ops import check_project
from nurture.config import ConfigError, startup_settings
from nurture.content.checker import TemplateCheck
from nurture.content.segments_file import SegmentFiles
from nurture.content.template_locales import localized_template
from nurture.people.contacts import InvalidContact
from nurture.rules.locales import lookup_chain
from nurture.rules.sequence import Step
from nurture.runtime import Runtime


@click.command()
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


@click.command("simulate")
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
    chain = lookup_chain(contact.locale, settings.default_locale)

    def template_of(step: Step) -> str:  # as the send path picks it for the contact's language
        folder, extension = (settings.sms.templates_dir, ".txt") if step.channel == "sms" \
            else (settings.templates_dir, ".html")
        return localized_template(folder, step.template, extension, chain)[0]

    timeline = simulate.simulate(sequence, contact, begin, events, registry.lifecycle, settings.sms, registry.all(),
                                 SegmentFiles(settings.segments_dir).get(), template_of)
    if as_json:
        click.echo(json.dumps(simulate.timeline_json(timeline), indent=2))
    else:
        click.echo("\n".join(simulate.format_timeline(timeline)))


@click.command("why")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="print the explanation as JSON")
@with_runtime
def why_command(rt: Runtime, email: str, as_json: bool) -> None:
    """Every message EMAIL was sent, skipped or deferred, when, and why; and what comes next."""
    from nurture.delivery.deliverability import current_backoffs
    from nurture.insight import why

    now = rt.clock()
    with Session(rt.db) as session:
        try:
            story = why.explain(session, email, rt.sequences, now, rt.settings.sms, current_backoffs(rt, now))
        except (why.UnknownContact, InvalidContact) as exc:
            fail(str(exc))
    if as_json:
        click.echo(json.dumps(why.story_json(story), indent=2))
    else:
        click.echo("\n".join(why.format_story(story)))
