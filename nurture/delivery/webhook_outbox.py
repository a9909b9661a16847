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

from sqlmodel import Session

from nurture.content.webhooks_file import parse_webhooks
from nurture.rules import webhooks as rules
from nurture.store import webhooks as store
from nurture.store.models import Contact, Event, WebhookMessage

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime

log = logging.getLogger(__name__)

FAN_OUT_LIMIT = 500  # events read per endpoint per run; the next run goes on from the cursor
# A PostgreSQL transaction may commit an event with a lower id after one with a higher id was read. The
# cursor stays behind events younger than this, so they are read again next time (the unique key
# endpoint × event makes the second read a no-op) and a late commit is not skipped.
SETTLE = timedelta(seconds=60)


def endpoints(rt: Runtime) -> list[rules.Endpoint]:
    """The endpoints in webhooks.yaml that have no problems (and whose secret is set); [] without a file."""
    path = rt.settings.webhooks_file
    if not path.is_file():
        return []
    found, problems = parse_webhooks(path.read_text(encoding="utf-8"), str(path), rt.settings.webhooks.secrets)
    for problem in problems:  # `nurture check` reports these too; the worker goes on with the good ones
        log.warning("webhooks: %s", problem)
    return found


def fan_out(session: Session, endpoint: rules.Endpoint, now: datetime) -> int:
    """Write a message for each new event `endpoint` wants; returns how many. Commits."""
    state = store.endpoint_state(session, endpoint.name, now)
    if state.disabled_at is not None:
        return 0  # the cursor waits: re-enabled, it goes on from where it stopped, nothing lost
    rows = store.events_after(session, state.cursor, rules.PUBLIC_NAMES, FAN_OUT_LIMIT)
    known = store.queued_event_ids(session, endpoint.name, [e.id for e, _ in rows if e.id is not None])
    cursor, settled, written = state.cursor, True, 0
    for event, contact in rows:
        settled = settled and event.created_at <= now - SETTLE
        cursor = event.id if settled and event.id else cursor
        public = rules.PUBLIC_NAMES[event.type]
        if event.id in known or not endpoint.wants(public):
            continue
        session.add(_message(endpoint.name, event, contact, public, now))
        written += 1
    store.move_cursor(session, endpoint.name, cursor, now)
    session.commit()
    return written


def _message(endpoint: str, event: Event, contact: Contact, public: str, now: datetime) -> WebhookMessage:
    data = {"contact": contact_view(contact), "event": {"id": event.id, "type": event.type}, "details": event.data}
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
