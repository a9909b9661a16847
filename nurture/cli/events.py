"""`nurture events send`: record what happened to a contact, as POST /api/events does."""

from __future__ import annotations

import click
from sqlmodel import Session

from nurture.cli.common import fail, with_runtime
from nurture.people import automation
from nurture.people.contacts import InvalidContact, normalise_email
from nurture.runtime import Runtime
from nurture.store import contacts as store


@click.group()
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
            contact = store.by_email(session, normalise_email(email))
        except (automation.InvalidEvent, InvalidContact) as exc:
            fail(str(exc))
        if contact is None:
            fail(f"no contact {email!r}")
        event, created = automation.record(session, rt, contact, given.type, given.data,
                                           given.occurred_at or rt.clock(), given.key)
        session.commit()
        click.echo(f"recorded {event.type} for {contact.email} (event {event.id})" if created
                   else f"already recorded (event {event.id}, same idempotency key); nothing changed")
