"""`nurture contacts ...` (add, show, consent) and `nurture referrals`."""

from __future__ import annotations

import json

import click
from sqlmodel import Session

from nurture.cli import lines
from nurture.cli.common import fail, with_runtime
from nurture.people import signup
from nurture.people.contacts import ContactInput, InvalidContact, enroll, normalise_email, upsert
from nurture.people.preferences import Origin, consent_history, set_sms
from nurture.runtime import Runtime
from nurture.store import contacts as store
from nurture.store.models import Subscription


@click.group()
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
            found = upsert(session, data, now)
        except InvalidContact as exc:
            fail(str(exc))
        contact = found.contact
        click.echo(f"{'added' if found.created else 'updated'} contact {contact.id} <{contact.email}>")
        if found.merge and found.merge.kept:
            click.echo(f"kept what is on record for {', '.join(found.merge.kept)} (a second sign-up only fills "
                       f"empty fields)")
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
    """A contact's deliveries, timeline and consent records."""
    with Session(rt.db) as session:
        try:
            contact = store.by_email(session, normalise_email(email))
        except InvalidContact as exc:
            fail(str(exc))
        if contact is None:
            fail(f"no contact {email!r}")
        click.echo(lines.header(contact))
        deliveries = store.deliveries_of(session, contact.id)
        click.echo("deliveries:" if deliveries else "deliveries: none")
        click.echo("\n".join(lines.delivery_line(d) for d in deliveries), nl=bool(deliveries))
        click.echo("timeline:")
        click.echo("\n".join(lines.event_line(e) for e in store.events_of(session, contact.id)))
        records = consent_history(session, contact.id)
        click.echo("consent:" if records else "consent: no records")
        click.echo("\n".join(lines.consent_line(c) for c in records), nl=bool(records))


@contacts.command("consent")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="print the records as JSON")
@with_runtime
def contacts_consent(rt: Runtime, email: str, as_json: bool) -> None:
    """A contact's consent record: every opt-in, confirmation and opt-out, with when, which form or
    message, the exact consent text and its SHA-256, IP and user agent."""
    with Session(rt.db) as session:
        try:
            contact = store.by_email(session, normalise_email(email))
        except InvalidContact as exc:
            fail(str(exc))
        if contact is None:
            fail(f"no contact {email!r}")
        records = consent_history(session, contact.id)
    if as_json:
        click.echo(json.dumps({"email": contact.email, "email_status": contact.email_status,
                               "sms_status": contact.sms_status,
                               "consent": [signup.consent_json(c) for c in records]}, indent=2))
        return
    click.echo(f"{contact.email}  email={contact.email_status}  sms={contact.sms_status}  (times in UTC)")
    if not records:
        click.echo("  no consent records")
    for c in records:
        basis = f", basis {c.legal_basis}" if c.legal_basis else ""
        click.echo(f"  {lines.when(c.created_at)}  {c.channel} {c.action} ({c.scope}) "
                   f"{lines.consent_via(c.method, c.form_id, c.delivery_id)}{basis}")
        click.echo(f"      ip {c.ip or '-'}  user agent {c.user_agent or '-'}")
        if c.consent_text:
            click.echo(f"      text sha256 {c.consent_hash}: {c.consent_text!r}")


@click.command()
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
