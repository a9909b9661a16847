"""Queries for webhooks out: the endpoints' state, the outbox (written from the Event table by a cursor),
claiming a message for one attempt by a conditional UPDATE, its outcome, and the log of attempts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from nurture.store.models import Contact, Event, WebhookAttempt, WebhookEndpoint, WebhookMessage, WebhookStatus


def _run(session: Session, statement: Any) -> Any:
    """An UPDATE without the ORM matching it against every object the session holds: a run holds a few
    hundred messages, and that evaluation made each UPDATE cost ~10 ms (measured: bench/webhooks_out.py)."""
    return session.execute(statement, execution_options={"synchronize_session": False})


def endpoint_state(session: Session, name: str, now: datetime) -> WebhookEndpoint:
    """The state row of endpoint `name`, made on first sight with its cursor at the newest event: a new
    endpoint receives what happens from now on, not the whole history."""
    found = session.exec(select(WebhookEndpoint).where(WebhookEndpoint.name == name)).first()
    if found is not None:
        return found
    newest = session.exec(select(func.max(Event.id))).one() or 0
    try:
        with session.begin_nested():  # two workers seeing a new endpoint at once: the second reads the first's
            session.add(WebhookEndpoint(name=name, cursor=newest, created_at=now, updated_at=now))
    except IntegrityError:
        pass
    return session.exec(select(WebhookEndpoint).where(WebhookEndpoint.name == name)).one()


def add_endpoint(session: Session, name: str, url: str, events: list[str], secret_env: str, now: datetime) -> bool:
    """An endpoint added in the console, starting from the newest event. False when the name is taken."""
    newest = session.exec(select(func.max(Event.id))).one() or 0
    try:
        with session.begin_nested():
            session.add(WebhookEndpoint(name=name, url=url, events=events, secret_env=secret_env, cursor=newest,
                                        created_at=now, updated_at=now))
    except IntegrityError:
        return False
    return True


def console_endpoints(session: Session) -> list[WebhookEndpoint]:
    return list(session.exec(select(WebhookEndpoint).where(col(WebhookEndpoint.url).is_not(None))
                             .order_by(WebhookEndpoint.id)).all())


def remove_endpoint(session: Session, name: str) -> bool:
    """Forget an endpoint added in the console; its waiting messages are given up on (the log stays)."""
    gone = _run(session, delete(WebhookEndpoint).where(WebhookEndpoint.name == name,
                                                       col(WebhookEndpoint.url).is_not(None)))
    if gone.rowcount != 1:
        return False
    _run(session, update(WebhookMessage).where(WebhookMessage.endpoint == name,
                                               WebhookMessage.status == WebhookStatus.PENDING)
         .values(status=WebhookStatus.FAILED, last_error="endpoint removed in the console", next_attempt_at=None))
    return True


def endpoint_states(session: Session) -> dict[str, WebhookEndpoint]:
    return {e.name: e for e in session.exec(select(WebhookEndpoint)).all()}


def unqueued_events(session: Session, endpoint: str, cursor: int, types: Iterable[str], limit: int,
                    ) -> list[tuple[Event, Contact]]:
    """Events after `cursor` (an event id) of the given internal types that have no message for `endpoint`
    yet, oldest first, with their contact. The anti-join keeps a re-read of the unsettled tail cheap."""
    queued = select(WebhookMessage.id).where(WebhookMessage.endpoint == endpoint,
                                             WebhookMessage.event_id == Event.id).exists()
    return list(session.exec(select(Event, Contact).join(Contact, col(Contact.id) == Event.contact_id)
                             .where(Event.id > cursor, col(Event.type).in_(list(types)), ~queued)
                             .order_by(Event.id).limit(limit)).all())


def settled_cursor(session: Session, cursor: int, settled_before: datetime) -> int:
    """How far a cursor may move: to the last event there is before the first one recorded after
    `settled_before` (an id below that one whose row is not there yet may still be committed), or to the
    newest event when all are older."""
    first_young = session.exec(select(func.min(Event.id)).where(Event.id > cursor,
                                                                Event.created_at > settled_before)).one()
    older = select(func.max(Event.id)).where(Event.id > cursor)
    if first_young is not None:
        older = older.where(Event.id < first_young)
    return session.exec(older).one() or cursor


def move_cursor(session: Session, name: str, cursor: int, now: datetime) -> None:
    """Forward only: a slower fan-out that read less never moves it back."""
    _run(session, update(WebhookEndpoint).where(WebhookEndpoint.name == name, WebhookEndpoint.cursor < cursor)
                    .values(cursor=cursor, updated_at=now))


def due_messages(session: Session, now: datetime, endpoints: list[str], limit: int) -> list[WebhookMessage]:
    """Pending messages of the given (enabled) endpoints whose next attempt is due and that no live claim holds."""
    if not endpoints:
        return []
    return list(session.exec(select(WebhookMessage).where(*_due(now), col(WebhookMessage.endpoint).in_(endpoints))
                             .order_by(WebhookMessage.next_attempt_at, WebhookMessage.id).limit(limit)).all())


def _due(now: datetime) -> tuple:
    return (WebhookMessage.status == WebhookStatus.PENDING, col(WebhookMessage.next_attempt_at) <= now,
            or_(col(WebhookMessage.claim_token).is_(None), col(WebhookMessage.claimed_until) < now))


def take_message(session: Session, message_id: int, token: str, now: datetime, lease: timedelta) -> bool:
    """Claim one message for one attempt (a conditional UPDATE, row count checked): two workers never POST
    the same message at once; a worker that dies mid-attempt loses the claim when the lease runs out."""
    return _run(session, update(WebhookMessage).where(WebhookMessage.id == message_id, *_due(now))
                           .values(claim_token=token, claimed_until=now + lease)).rowcount == 1


def record_attempt(session: Session, message: WebhookMessage, now: datetime, *, ok: bool, status_code: int | None,
                   error: str | None, duration_ms: int) -> None:
    session.add(WebhookAttempt(message_id=message.id or 0, endpoint=message.endpoint, attempted_at=now, ok=ok,
                               status_code=status_code, error=(error or None) and error[:500],
                               duration_ms=duration_ms))


def finish_message(session: Session, message_id: int, token: str, *, status: WebhookStatus, attempts: int,
                   next_attempt_at: datetime | None, error: str | None, delivered_at: datetime | None) -> bool:
    """The outcome of an attempt, only while `token` still holds the message; releases the claim."""
    return _run(session, update(WebhookMessage).where(WebhookMessage.id == message_id,
                                                        WebhookMessage.claim_token == token)
                           .values(status=status, attempts=attempts, next_attempt_at=next_attempt_at,
                                   last_error=(error or None) and error[:500], delivered_at=delivered_at,
                                   claim_token=None, claimed_until=None)).rowcount == 1


def mark_failing(session: Session, name: str, now: datetime) -> None:
    _run(session, update(WebhookEndpoint).where(WebhookEndpoint.name == name,
                                                  col(WebhookEndpoint.failing_since).is_(None))
                    .values(failing_since=now, updated_at=now))


def mark_healthy(session: Session, name: str, now: datetime) -> None:
    _run(session, update(WebhookEndpoint).where(WebhookEndpoint.name == name,
                                                  col(WebhookEndpoint.failing_since).is_not(None))
                    .values(failing_since=None, updated_at=now))


def disable(session: Session, name: str, now: datetime) -> bool:
    """Switch an endpoint off; True only for the call that did it (so the owner is told once)."""
    return _run(session, update(WebhookEndpoint).where(WebhookEndpoint.name == name,
                                                         col(WebhookEndpoint.disabled_at).is_(None))
                           .values(disabled_at=now, updated_at=now)).rowcount == 1


def enable(session: Session, name: str, now: datetime) -> bool:
    """Switch it back on, its failing day forgotten; its waiting messages are due at once, each with its
    retry schedule started over (the attempt log keeps the earlier attempts)."""
    done = _run(session, update(WebhookEndpoint).where(WebhookEndpoint.name == name)
                           .values(disabled_at=None, failing_since=None, owner_told_at=None, updated_at=now))
    _run(session, update(WebhookMessage).where(WebhookMessage.endpoint == name,
                                                 WebhookMessage.status == WebhookStatus.PENDING)
                    .values(next_attempt_at=now, attempts=0))
    return done.rowcount == 1


def owner_told(session: Session, name: str, now: datetime) -> None:
    _run(session, update(WebhookEndpoint).where(WebhookEndpoint.name == name).values(owner_told_at=now))


def untold_disabled(session: Session) -> list[WebhookEndpoint]:
    return list(session.exec(select(WebhookEndpoint).where(col(WebhookEndpoint.disabled_at).is_not(None),
                                                           col(WebhookEndpoint.owner_told_at).is_(None))).all())


@dataclass(frozen=True)
class LoggedAttempt:
    attempt: WebhookAttempt
    message_id: str  # the webhook-id
    event_type: str


def attempt_log(session: Session, endpoint: str | None, limit: int) -> list[LoggedAttempt]:
    """The newest attempts first, of one endpoint or of all."""
    query = (select(WebhookAttempt, WebhookMessage.message_id, WebhookMessage.event_type)
             .join(WebhookMessage, col(WebhookMessage.id) == WebhookAttempt.message_id))
    if endpoint is not None:
        query = query.where(WebhookAttempt.endpoint == endpoint)
    rows = session.exec(query.order_by(col(WebhookAttempt.attempted_at).desc(), col(WebhookAttempt.id).desc())
                        .limit(limit)).all()
    return [LoggedAttempt(a, m, t) for a, m, t in rows]


def message_counts(session: Session) -> dict[tuple[str, str], int]:
    """How many messages each endpoint has in each status."""
    rows = session.exec(select(WebhookMessage.endpoint, WebhookMessage.status, func.count())
                        .group_by(WebhookMessage.endpoint, WebhookMessage.status)).all()
    return {(endpoint, str(status)): n for endpoint, status, n in rows}

