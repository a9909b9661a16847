"""Webhooks out, second half: each due message POSTed once per attempt, signed (Standard Webhooks),
retried on a schedule of hours, its endpoint switched off after failing for a day (and the owner told).

Run by the worker (`nurture.jobs.deliver_webhooks`, queued by the tick), never on the send path. A message
is claimed by a conditional UPDATE before its POST, so two workers never send it at once; its `webhook-id`
stays the same on every attempt, so a receiver that got a retry of something it had (its 2xx lost on the
way) can tell. See docs/webhooks.md.
"""

from __future__ import annotations

import html
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlmodel import Session

from nurture.content.mail import Envelope, build_email
from nurture.content.rendering import RenderedEmail
from nurture.content.webhooks_file import check_endpoint
from nurture.delivery import webhook_outbox as outbox
from nurture.delivery.transports import TransportError
from nurture.delivery.transports.webhook import WebhookTransport
from nurture.rules import webhooks as rules
from nurture.rules.webhooks import WebhookStatus
from nurture.store import webhooks as store
from nurture.store.models import WebhookMessage

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime

log = logging.getLogger(__name__)

RUN_LIMIT = 200  # messages tried per run; the next run (next tick) takes the rest
# A run stops starting new attempts after this long (wall time): slow receivers cannot keep one run going
# past RQ's job timeout, and the next tick's run goes on where it stopped.
RUN_SECONDS = 60.0


class UnknownEndpoint(LookupError):
    """No endpoint of that name in webhooks.yaml (or its secret is not set)."""


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int = 0


def deliver_due(rt: Runtime, limit: int = RUN_LIMIT) -> dict[str, int]:
    """Fan new events out to the endpoints' outboxes, then try every due message once. Returns counts."""
    counts = {"queued": 0, "delivered": 0, "failed": 0}
    configured = outbox.endpoints(rt)
    with Session(rt.db, expire_on_commit=False) as session:
        for endpoint in configured:
            counts["queued"] += outbox.fan_out(session, endpoint, rt.clock())
        states = store.endpoint_states(session)
        enabled = {e.name: e for e in configured if e.name in states and states[e.name].disabled_at is None}
        failing: set[str] = set()  # a receiver that just failed is not tried again in this run
        started = time.monotonic()
        for message in store.due_messages(session, rt.clock(), list(enabled), limit):
            if time.monotonic() - started > RUN_SECONDS:
                break
            if message.endpoint in failing:
                continue
            outcome = _attempt(rt, session, enabled[message.endpoint], message)
            if outcome is not None:
                counts["delivered" if outcome.ok else "failed"] += 1
                failing |= set() if outcome.ok else {message.endpoint}
        tell_owner(rt, session)
    return counts


def has_endpoints(rt: Runtime) -> bool:
    """Whether there may be anything to send: a webhooks.yaml, or an endpoint added in the console."""
    if rt.settings.webhooks_file.is_file():
        return True
    with Session(rt.db) as session:
        return bool(store.console_endpoints(session))


def add_endpoint(rt: Runtime, name: str, url: str, events: list[str], secret_env: str) -> list[str]:
    """Add an endpoint from the console, checked like the file's; returns the problems ([] when added)."""
    endpoint, problems = check_endpoint(name, url, events, secret_env, rt.settings.webhooks.secrets)
    if endpoint is None:
        return problems
    if any(e.name == name for e in outbox.endpoints(rt)):
        return [f"there is already an endpoint named {name!r}"]
    with Session(rt.db) as session:
        added = store.add_endpoint(session, name, endpoint.url, list(endpoint.events), secret_env, rt.clock())
        session.commit()
    return [] if added else [f"the name {name!r} was used before; choose another"]


def remove_endpoint(rt: Runtime, name: str) -> bool:
    """Remove an endpoint added in the console (one in webhooks.yaml is removed from the file)."""
    with Session(rt.db) as session:
        gone = store.remove_endpoint(session, name)
        session.commit()
    return gone


def _lease(rt: Runtime) -> timedelta:
    return timedelta(seconds=rt.settings.webhooks.timeout_seconds * 3 + 30)  # connect + read, and slack


def _attempt(rt: Runtime, session: Session, endpoint: rules.Endpoint, message: WebhookMessage) -> Outcome | None:
    """Claim `message`, POST it, record the attempt and its consequences. None when another worker has it."""
    token = secrets.token_hex(8)
    taken = store.take_message(session, message.id or 0, token, rt.clock(), _lease(rt))
    session.commit()
    if not taken:
        return None
    outcome = post(rt, endpoint, message)
    now = rt.clock()
    attempts = message.attempts + 1
    store.record_attempt(session, message, now, ok=outcome.ok, status_code=outcome.status_code,
                         error=outcome.error, duration_ms=outcome.duration_ms)
    if outcome.ok:
        store.finish_message(session, message.id or 0, token, status=WebhookStatus.DELIVERED, attempts=attempts,
                             next_attempt_at=None, error=None, delivered_at=now)
        store.mark_healthy(session, endpoint.name, now)
    else:
        switched_off = _failed(session, endpoint.name, now)
        # A message whose schedule is spent because its endpoint was down all along waits for the endpoint
        # to be switched back on, rather than being given up on: nothing is lost to an outage.
        again = rules.retry_at(attempts, now) or (now if switched_off else None)
        store.finish_message(session, message.id or 0, token, attempts=attempts, next_attempt_at=again,
                             status=WebhookStatus.PENDING if again else WebhookStatus.FAILED,
                             error=outcome.error, delivered_at=None)
    session.commit()
    return outcome


def _failed(session: Session, name: str, now: datetime) -> bool:
    """Note the endpoint failing; switch it off once it has failed for a day. Returns whether it is off."""
    store.mark_failing(session, name, now)
    state = store.endpoint_state(session, name, now)
    session.refresh(state)
    if state.disabled_at is not None:
        return True
    if rules.should_disable(state.failing_since, now) and store.disable(session, name, now):
        log.warning("webhooks: endpoint %s failed for %s; disabled", name, rules.DISABLE_AFTER)
        return True
    return False


def post(rt: Runtime, endpoint: rules.Endpoint, message: WebhookMessage) -> Outcome:
    """One signed POST of `message` (signed now: the timestamp is the attempt's). Never raises."""
    body = message.body.encode()
    transport = WebhookTransport(rt.settings.webhooks.timeout_seconds, rt.settings.webhooks.allow_private)
    started = time.monotonic()  # how long the receiver took, for the log (wall time, not the clock's)

    def took() -> int:
        return round((time.monotonic() - started) * 1000)

    try:
        secret = rt.settings.webhooks.secrets[endpoint.secret_env]
        status = transport.send(endpoint.url, body, rules.headers(secret, message.message_id, rt.clock(), body))
    except TransportError as exc:
        return Outcome(False, exc.code, str(exc), took())
    except (KeyError, rules.BadSecret):
        return Outcome(False, None, f"{endpoint.secret_env} is not set or not a whsec_ secret", took())
    return Outcome(True, status, None, took())


def send_ping(rt: Runtime, name: str) -> Outcome:
    """Send a `webhook.ping` to endpoint `name` now, whether or not it is switched off (the owner checks it
    before switching it back on); the attempt is logged like any other. Raises UnknownEndpoint."""
    endpoint = next((e for e in outbox.endpoints(rt) if e.name == name), None)
    if endpoint is None:
        raise UnknownEndpoint(name)
    with Session(rt.db, expire_on_commit=False) as session:
        store.endpoint_state(session, name, rt.clock())
        message = outbox.ping_message(name, secrets.token_hex(8), rt.clock())
        session.add(message)
        session.commit()
        outcome = _attempt(rt, session, endpoint, message)
    assert outcome is not None  # nobody else could have claimed a message made a moment ago
    return outcome


def enable(rt: Runtime, name: str) -> bool:
    """Switch endpoint `name` back on; its waiting messages are due at once. False if it has no state yet."""
    with Session(rt.db) as session:
        done = store.enable(session, name, rt.clock())
        session.commit()
    return done


def tell_owner(rt: Runtime, session: Session) -> int:
    """Email the owner about each endpoint switched off and not yet reported. A failed email is tried again
    at the next run (the endpoint stays unreported)."""
    told = 0
    for state in store.untold_disabled(session):
        try:
            _owner_email(rt, state.name, state.failing_since)
        except TransportError as exc:
            log.warning("webhooks: could not tell the owner about %s: %s", state.name, exc)
            continue
        store.owner_told(session, state.name, rt.clock())
        session.commit()
        told += 1
    return told


def owner_address(rt: Runtime) -> str:
    """The lifecycle file's `alerts.owner`, else SUPPORT_EMAIL."""
    return rt.sequences.lifecycle.owner_email or rt.settings.support_email


def _owner_email(rt: Runtime, name: str, since: datetime | None) -> None:
    now = rt.clock()
    text = (f"The webhook endpoint {name!r} has failed every attempt since {since or now:%Y-%m-%d %H:%M} UTC, so "
            f"nurture has stopped sending to it. Nothing is lost: the events wait.\n\n"
            f"Check the receiver, then switch it back on in the console (Webhooks) or with "
            f"`nurture webhooks enable {name}`. `nurture webhooks log {name}` shows what it answered.")
    envelope = Envelope(mail_from=rt.settings.mail_from, to_address=owner_address(rt), to_name="",
                        message_id=f"<nurture.webhook.{name}.{int(now.timestamp())}@{rt.settings.mail_domain}>",
                        date=now, list_id=f"nurture alerts <alerts.{rt.settings.mail_domain}>")
    content = RenderedEmail(subject=f"Webhook endpoint {name} switched off after failing for a day", text=text,
                            html=f"<pre style=\"font: 14px/1.5 sans-serif; white-space: pre-wrap\">"
                                 f"{html.escape(text)}</pre>")
    transport = rt.email_transport()
    try:
        transport.send(build_email(envelope, content))
    finally:
        transport.close()
