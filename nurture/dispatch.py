"""The one place that wires store -> engine -> rendering -> transport.

`claim_batches` (run by the periodic tick) claims due enrollments in batches; `run_batch` (an RQ job) sends
what one batch holds over one transport connection, recording every outcome. Web views and CLI commands call
these; nothing else re-implements the send path.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote

from sqlmodel import Session

from nurture import engine, store
from nurture.contacts import record_event
from nurture.mail import Envelope, OutgoingEmail, build_email, dkim_sign
from nurture.models import Contact, Enrollment
from nurture.rendering import RenderError
from nurture.runtime import Runtime
from nurture.sequence import Sequence, Step
from nurture.transports import EmailTransport, TransportError

log = logging.getLogger(__name__)


@dataclass
class BatchReport:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1


def new_token() -> str:
    return secrets.token_hex(8)


def claim_batches(rt: Runtime, enqueue: Callable[[str], None], max_batches: int) -> int:
    """Claim up to `max_batches` batches of due enrollments and hand each claim token to `enqueue`.

    If `enqueue` fails (Redis down), the claim is left to expire and the rows are claimed again by a later
    tick: the database, not the queue, is the record of what is due.
    """
    claimed = 0
    for _ in range(max_batches):
        now = rt.clock()
        token = new_token()
        with Session(rt.db) as session:
            count = store.claim_due(session, now, token, now + timedelta(seconds=rt.settings.claim_lease_seconds),
                                    rt.settings.batch_size)
            session.commit()
        if count == 0:
            break
        enqueue(token)
        claimed += count
    return claimed


def run_batch(rt: Runtime, token: str) -> BatchReport:
    """Send everything claim `token` still holds. One contact's failure never stops the batch."""
    report = BatchReport()
    transport = rt.email_transport()
    try:
        with Session(rt.db, expire_on_commit=False) as session:
            rows = store.claimed(session, token, rt.clock())
            session.commit()
            for enrollment, contact in rows:
                try:
                    report.add(_process(rt, session, transport, token, enrollment, contact))
                except Exception:
                    # A bug, or the database going away. The claim expires and a later tick retries the row.
                    session.rollback()
                    log.exception("enrollment %s: unexpected error; left for the next tick", enrollment.id)
                    report.add("error")
    finally:
        transport.close()
    return report


def _process(rt: Runtime, session: Session, transport: EmailTransport, token: str,
             enrollment: Enrollment, contact: Contact) -> str:
    now = rt.clock()
    sequence = rt.sequences.get(enrollment.sequence_id)
    if sequence is None:
        # The file was removed or never loaded cleanly: keep the contact's place and look again later.
        store.move_enrollment(session, enrollment.id, token, now, step_id=enrollment.step_id,
                              due_at=now + timedelta(hours=1), status="active", attempts=enrollment.attempts)
        session.commit()
        log.warning("enrollment %s: sequence %r is not loaded; postponed", enrollment.id, enrollment.sequence_id)
        return "postponed"
    decision = engine.decide(sequence, enrollment.step_id, enrollment.due_at, now)
    if isinstance(decision, engine.NotYet):
        store.release(session, enrollment.id, token)
        session.commit()
        return "not-due"
    if isinstance(decision, engine.Finished):
        store.move_enrollment(session, enrollment.id, token, now, step_id=None, due_at=None, status="completed",
                              stop_reason=decision.reason)
        session.commit()
        return "completed"
    return _send_step(rt, session, transport, token, enrollment, contact, sequence, decision.step)


def _send_step(rt: Runtime, session: Session, transport: EmailTransport, token: str, enrollment: Enrollment,
               contact: Contact, sequence: Sequence, step: Step) -> str:
    now = rt.clock()
    blocked = store.blocked_reason(session, contact, enrollment, sequence.transactional)
    opened = store.open_delivery(session, enrollment, step.id, step.channel, step.kind, contact.email, token, now)
    delivery = opened.delivery
    if not opened.send:
        _advance(rt, session, token, enrollment, contact, sequence, step, now)  # done earlier; move on
        session.commit()
        return "already-done"
    if blocked:
        store.finish_delivery(session, delivery.id, now, status="skipped", error=blocked)
        store.move_enrollment(session, enrollment.id, token, now, step_id=step.id, due_at=None, status="stopped",
                              stop_reason=blocked)
        record_event(session, contact.id, "email.skipped", now, _about(sequence, step, reason=blocked), delivery.id)
        session.commit()
        return "skipped"
    if opened.interrupted:
        record_event(session, contact.id, "email.interrupted", now,
                     _about(sequence, step, reason="an earlier attempt died mid-send; sending again, same "
                                                   "Message-ID"), delivery.id)
    session.commit()  # "sending" is on disk before the transport is called
    try:
        message = compose_email(rt, contact, sequence, step, delivery.id, now)
    except RenderError as exc:
        return _failed(rt, session, token, enrollment, contact, sequence, step, delivery.id, str(exc))
    try:
        provider_id = transport.send(message)
    except TransportError as exc:
        return _transport_failed(rt, session, token, enrollment, contact, sequence, step, delivery, exc)
    now = rt.clock()
    store.finish_delivery(session, delivery.id, now, status="sent", provider_id=provider_id,
                          attempts=delivery.attempts + 1)
    record_event(session, contact.id, "email.sent", now, _about(sequence, step, message_id=message.message_id),
                 delivery.id)
    _advance(rt, session, token, enrollment, contact, sequence, step, now)
    session.commit()
    return "sent"


def _about(sequence: Sequence, step: Step, **extra: str) -> dict:
    return {"sequence": sequence.id, "version": sequence.version, "step": step.id, "kind": step.kind, **extra}


def _advance(rt: Runtime, session: Session, token: str, enrollment: Enrollment, contact: Contact,
             sequence: Sequence, step: Step, done_at: datetime) -> None:
    due = engine.next_due(sequence, step.id, done_at, engine.contact_zone(contact.timezone))
    moved = store.move_enrollment(
        session, enrollment.id, token, done_at, step_id=due.step_id if due else None,
        due_at=due.at if due else None, status="active" if due else "completed", version=sequence.version,
        stop_reason=None if due else "sequence complete",
    )
    if not moved:
        log.warning("enrollment %s: claim %s lost before moving on; the next claim will see the delivery row",
                    enrollment.id, token)
    elif due is None:
        record_event(session, contact.id, "sequence.completed", done_at, {"sequence": sequence.id})


def _failed(rt: Runtime, session: Session, token: str, enrollment: Enrollment, contact: Contact,
            sequence: Sequence, step: Step, delivery_id: int, reason: str, attempts: int | None = None) -> str:
    """A permanent failure of this one message: recorded with its reason; the contact moves on."""
    now = rt.clock()
    store.finish_delivery(session, delivery_id, now, status="failed", error=reason, attempts=attempts)
    record_event(session, contact.id, "email.failed", now, _about(sequence, step, reason=reason), delivery_id)
    _advance(rt, session, token, enrollment, contact, sequence, step, now)
    session.commit()
    log.warning("delivery %s (%s, %s/%s) failed: %s", delivery_id, contact.email, sequence.id, step.id, reason)
    return "failed"


def _transport_failed(rt: Runtime, session: Session, token: str, enrollment: Enrollment, contact: Contact,
                      sequence: Sequence, step: Step, delivery, exc: TransportError) -> str:  # type: ignore[no-untyped-def]
    now = rt.clock()
    attempts = delivery.attempts + 1
    if exc.recipient_rejected:
        store.suppress(session, contact.email, "email", f"hard bounce: {exc}", now)
        record_event(session, contact.id, "email.bounced", now, _about(sequence, step, reason=str(exc)), delivery.id)
    retry = None if exc.permanent else engine.retry_at(attempts, now, rt.settings.retry_backoff_seconds)
    if retry is None:
        reason = str(exc) if exc.permanent else f"gave up after {attempts} attempts: {exc}"
        return _failed(rt, session, token, enrollment, contact, sequence, step, delivery.id, reason, attempts)
    store.finish_delivery(session, delivery.id, now, status="retry", error=str(exc), attempts=attempts)
    store.move_enrollment(session, enrollment.id, token, now, step_id=step.id, due_at=retry, status="active",
                          attempts=attempts)
    record_event(session, contact.id, "email.deferred", now,
                 _about(sequence, step, reason=str(exc), retry_at=retry.isoformat()), delivery.id)
    session.commit()
    return "retry"


def message_id(rt: Runtime, delivery_id: int) -> str:
    """Deterministic per delivery, so a send repeated after a crash carries the same Message-ID and the
    receiving side can fold the two into one."""
    tag = hmac.new(rt.settings.secret_key.encode(), str(delivery_id).encode(), hashlib.sha256).hexdigest()[:10]
    return f"<nurture.{delivery_id}.{tag}@{rt.settings.mail_domain}>"


def template_context(rt: Runtime, contact: Contact, sequence: Sequence, step: Step, token: str) -> dict:
    settings = rt.settings
    return {
        "contact": ContactView.of(contact),
        "brand": BrandView(settings.brand_name, settings.support_email, settings.base_url),
        "postal_address": settings.postal_address,
        "unsubscribe_url": f"{settings.base_url}/u/{token}",
        "preferences_url": f"{settings.base_url}/u/{token}",
        "confirm_url": f"{settings.base_url}/confirm/{rt.signer.confirm_token(contact.id)}",
        "sequence": SequenceView(sequence.id, sequence.name),
        "step": StepView(step.id, step.kind),
    }


def compose_email(rt: Runtime, contact: Contact, sequence: Sequence, step: Step, delivery_id: int,
                  now: datetime) -> OutgoingEmail:
    """Render and build one email. Raises RenderError when the template cannot be rendered for this contact."""
    token = rt.signer.unsubscribe_token(delivery_id)
    context = template_context(rt, contact, sequence, step, token)
    content = rt.catalog.render_email(step.template, step.subject, context)
    settings = rt.settings
    envelope = Envelope(
        mail_from=settings.mail_from,
        to_address=contact.email,
        to_name=f"{contact.first_name} {contact.last_name}".strip(),
        message_id=message_id(rt, delivery_id),
        date=now,
        list_id=f"{sequence.name} <{sequence.id}.{settings.mail_domain}>",
        unsubscribe_url=context["unsubscribe_url"],
        unsubscribe_mailto=f"mailto:{settings.support_email}?subject={quote('unsubscribe ' + token)}",
    )
    message = build_email(envelope, content)
    return dkim_sign(message, settings.dkim) if settings.dkim else message


@dataclass(frozen=True)
class ContactView:
    """What templates see of a contact: a snapshot, never the ORM row (no lazy loads mid-render)."""

    first_name: str
    last_name: str
    email: str
    phone: str | None
    timezone: str | None
    stage: str
    tags: tuple[str, ...]
    fields: dict

    @classmethod
    def of(cls, contact: Contact) -> ContactView:
        return cls(contact.first_name, contact.last_name, contact.email, contact.phone, contact.timezone,
                   contact.stage, tuple(contact.tags), dict(contact.fields))


@dataclass(frozen=True)
class BrandView:
    name: str
    support_email: str
    base_url: str


@dataclass(frozen=True)
class SequenceView:
    id: str
    name: str


@dataclass(frozen=True)
class StepView:
    id: str
    kind: str
