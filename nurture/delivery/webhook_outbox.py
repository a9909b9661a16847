"""Webhooks out, first half: which endpoints there are (webhooks.yaml), and the outbox written from the
append-only Event table by a cursor per endpoint.

Nothing on the send path knows about webhooks: it records events, as it always did. The worker reads them
here afterwards, so a slow or dead receiver can never hold up a send, and the outbox (in the database, not
Redis) survives a flushed Redis or a killed worker.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from nurture.content.webhooks_file import parse_webhooks
from nurture.rules import webhooks as rules
from nurture.store import webhooks as store
from nurture.store.models import Contact, Event, WebhookMessage

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime

log = logging.getLogger(__name__)

FAN_OUT_LIMIT = 1000  # messages written per endpoint per run; the next run goes on
# A PostgreSQL transaction may commit an event with a lower id after one with a higher id was read. The
# cursor stays this far behind the newest events, and the events after it that have no message yet are read
# again at each run, so a late commit is still picked up. A dispatch batch commits every 50 messages (a few
# seconds); a transaction open longer than this could still be missed.
SETTLE = timedelta(minutes=5)


def endpoints(rt: Runtime) -> list[rules.Endpoint]:
    """The endpoints in webhooks.yaml that have no problems (and whose secret is set), then those added in
    the console (a name in the file wins)."""
    path = rt.settings.webhooks_file
    found: list[rules.Endpoint] = []
    if path.is_file():
        found, problems = parse_webhooks(path.read_text(encoding="utf-8"), str(path), rt.settings.webhooks.secrets)
        for problem in problems:  # `nurture check` reports these too; the worker goes on with the good ones
            log.warning("webhooks: %s", problem)
    with Session(rt.db) as session:
        added = store.console_endpoints(session)
    named = {e.name for e in found}
    for row in added:
        endpoint = rules.Endpoint(row.name, row.url or "", row.secret_env or "", tuple(row.events))
        if row.name not in named and (row.secret_env or "") in rt.settings.webhooks.secrets:
            found.append(endpoint)
    return found


def fan_out(session: Session, endpoint: rules.Endpoint, now: datetime) -> int:
    """Write a message for each new event `endpoint` wants; returns how many. Commits."""
    state = store.endpoint_state(session, endpoint.name, now)
    if state.disabled_at is not None:
        return 0  # the cursor waits: re-enabled, it goes on from where it stopped, nothing lost
    wanted = [kind for kind, public in rules.PUBLIC_NAMES.items() if endpoint.wants(public)]
    rows = store.unqueued_events(session, endpoint.name, state.cursor, wanted, FAN_OUT_LIMIT)
    for event, contact in rows:
        session.add(_message(endpoint.name, event, contact, rules.PUBLIC_NAMES[event.type], now))
    # Never past what was read: with the limit reached, the rest is read next time.
    cursor = store.settled_cursor(session, state.cursor, now - SETTLE)
    if len(rows) == FAN_OUT_LIMIT:
        cursor = min(cursor, (rows[-1][0].id or 0))
    store.move_cursor(session, endpoint.name, cursor, now)
    try:
        session.commit()
    except IntegrityError:  # another worker wrote the same messages first: theirs stand
        session.rollback()
        return 0
    return len(rows)


def _message(endpoint: str, event: Event, contact: Contact, public: str, now: datetime) -> WebhookMessage:
    if event.type == rules.ERASED:  # the person is gone: nothing of them goes out, only the digest
        data = rules.erased_data(contact.id, event.data)
    else:
        data = {"contact": contact_view(contact), "event": {"id": event.id, "type": event.type},
                "details": event.data}
    body = rules.body_bytes(rules.payload(public, event.occurred_at, data)).decode()
    return WebhookMessage(endpoint=endpoint, message_id=f"msg_e{event.id}_{endpoint}"[:64], event_id=event.id,
                          event_type=public, body=body, next_attempt_at=now, created_at=now)


def contact_view(contact: Contact) -> dict:
    """What a receiver learns about the contact: enough to find it in its own system, no consent records."""
    return {"id": contact.id, "email": contact.email, "phone": contact.phone, "first_name": contact.first_name,
            "last_name": contact.last_name, "stage": contact.stage, "tags": list(contact.tags)}


def ping_message(endpoint: str, token: str, now: datetime) -> WebhookMessage:
    body = rules.body_bytes(rules.payload(rules.PING, now, {"endpoint": endpoint}))
    return WebhookMessage(endpoint=endpoint, message_id=f"msg_ping_{token}", event_type=rules.PING,
                          body=body.decode(), next_attempt_at=now, created_at=now)
