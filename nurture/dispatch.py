"""The one place that wires store -> engine -> rendering -> transport.

`claim_batches` (run by the periodic tick) claims due enrollments in batches; `run_batch` (an RQ job) sends
what one batch holds, one transport connection per channel, recording every outcome. Web views and CLI
commands call these; nothing else re-implements the send path. See docs/delivery.md.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session

from nurture import engine, store
from nurture.channels import Channel, Transport, channel_for
from nurture.contacts import record_event
from nurture.models import Contact, Delivery, Enrollment
from nurture.rendering import RenderError
from nurture.runtime import Runtime
from nurture.sequence import Sequence, Step
from nurture.transports import TransportError

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


@dataclass
class _Batch:
    """One run of one claim: the session, the claim token, and a transport per channel used so far."""

    rt: Runtime
    session: Session
    token: str
    transports: dict[str, Transport] = field(default_factory=dict)

    def transport(self, channel: Channel) -> Transport:
        if channel.name not in self.transports:
            self.transports[channel.name] = channel.open_transport(self.rt)
        return self.transports[channel.name]

    def close(self) -> None:
        for transport in self.transports.values():
            transport.close()


@dataclass
class _Item:
    """The enrollment being worked on, with its contact and (loaded) sequence."""

    enrollment: Enrollment
    contact: Contact
    sequence: Sequence

    def about(self, step: Step, **extra: str) -> dict:
        return {"sequence": self.sequence.id, "version": self.sequence.version, "step": step.id,
                "kind": step.kind, **extra}


def run_batch(rt: Runtime, token: str) -> BatchReport:
    """Send everything claim `token` still holds. One contact's failure never stops the batch."""
    report = BatchReport()
    with Session(rt.db, expire_on_commit=False) as session:
        batch = _Batch(rt, session, token)
        try:
            rows = store.claimed(session, token, rt.clock())
            session.commit()
            for enrollment, contact in rows:
                try:
                    report.add(_process(batch, enrollment, contact))
                except Exception:
                    # A bug, or the database going away. The claim expires and a later tick retries the row.
                    session.rollback()
                    log.exception("enrollment %s: unexpected error; left for the next tick", enrollment.id)
                    report.add("error")
        finally:
            batch.close()
    return report


def _process(batch: _Batch, enrollment: Enrollment, contact: Contact) -> str:
    rt, session, now = batch.rt, batch.session, batch.rt.clock()
    sequence = rt.sequences.get(enrollment.sequence_id)
    if sequence is None:
        # The file was removed or never loaded cleanly: keep the contact's place and look again later.
        store.move_enrollment(session, enrollment.id, batch.token, now, step_id=enrollment.step_id,
                              due_at=now + timedelta(hours=1), status="active", attempts=enrollment.attempts)
        session.commit()
        log.warning("enrollment %s: sequence %r is not loaded; postponed", enrollment.id, enrollment.sequence_id)
        return "postponed"
    decision = engine.decide(sequence, enrollment.step_id, enrollment.due_at, now)
    if isinstance(decision, engine.NotYet):
        store.release(session, enrollment.id, batch.token)
        session.commit()
        return "not-due"
    if isinstance(decision, engine.Finished):
        store.move_enrollment(session, enrollment.id, batch.token, now, step_id=None, due_at=None,
                              status="completed", stop_reason=decision.reason)
        session.commit()
        return "completed"
    return _send(batch, _Item(enrollment, contact, sequence), decision.step)


def _send(batch: _Batch, item: _Item, step: Step) -> str:
    rt, session, now = batch.rt, batch.session, batch.rt.clock()
    channel = channel_for(step.channel)
    hold = channel.hold(rt, item.contact, now)
    if hold is not None:
        return _defer(batch, item, step, *hold)
    address = channel.address(item.contact)
    blocked = store.blocked_reason(session, item.contact, item.enrollment, channel.status_field, address,
                                   item.sequence.transactional)
    opened = store.open_delivery(session, item.enrollment, step.id, step.channel, step.kind, address or "",
                                 batch.token, now)
    delivery = opened.delivery
    if not opened.send:
        _advance(batch, item, step, now)  # done earlier (a crash between send and moving on); move on
        session.commit()
        return "already-done"
    if blocked:
        return _skip(batch, item, step, delivery, blocked)
    if opened.interrupted:
        record_event(session, item.contact.id, f"{step.channel}.interrupted", now, item.about(
            step, reason="an earlier attempt died mid-send; sending again with the same message id"), delivery.id)
    session.commit()  # "sending" is on disk before the transport is called
    try:
        message = channel.compose(rt, item.contact, item.sequence, step, delivery.id, now)
    except RenderError as exc:
        return _fail(batch, item, step, delivery.id, str(exc))
    try:
        provider_id = batch.transport(channel).send(message)
    except TransportError as exc:
        return _transport_failed(batch, item, step, delivery, exc)
    return _sent(batch, item, step, delivery, provider_id, message.message_id)


def _sent(batch: _Batch, item: _Item, step: Step, delivery: Delivery, provider_id: str, message_id: str) -> str:
    now = batch.rt.clock()
    store.finish_delivery(batch.session, delivery.id, now, status="sent", provider_id=provider_id,
                          attempts=delivery.attempts + 1)
    record_event(batch.session, item.contact.id, f"{step.channel}.sent", now,
                 item.about(step, message_id=message_id), delivery.id)
    _advance(batch, item, step, now)
    batch.session.commit()
    return "sent"


def _skip(batch: _Batch, item: _Item, step: Step, delivery: Delivery, reason: str) -> str:
    """The contact may not get this (unsubscribed, suppressed, left the sequence): recorded, and the
    enrollment stops — it does not creep on through later steps that would be skipped too."""
    now = batch.rt.clock()
    store.finish_delivery(batch.session, delivery.id, now, status="skipped", error=reason)
    store.move_enrollment(batch.session, item.enrollment.id, batch.token, now, step_id=step.id, due_at=None,
                          status="stopped", stop_reason=reason)
    record_event(batch.session, item.contact.id, f"{step.channel}.skipped", now, item.about(step, reason=reason),
                 delivery.id)
    batch.session.commit()
    return "skipped"


def _defer(batch: _Batch, item: _Item, step: Step, until: datetime, reason: str) -> str:
    """Not now (quiet hours, send window, frequency cap): wait for `until`, never dropped; reason recorded."""
    now = batch.rt.clock()
    store.move_enrollment(batch.session, item.enrollment.id, batch.token, now, step_id=step.id, due_at=until,
                          status="active", attempts=item.enrollment.attempts)
    record_event(batch.session, item.contact.id, f"{step.channel}.deferred", now,
                 item.about(step, reason=reason, until=until.isoformat()))
    batch.session.commit()
    return "deferred"


def _advance(batch: _Batch, item: _Item, step: Step, done_at: datetime) -> None:
    due = engine.next_due(item.sequence, step.id, done_at, engine.contact_zone(item.contact.timezone))
    moved = store.move_enrollment(
        batch.session, item.enrollment.id, batch.token, done_at, step_id=due.step_id if due else None,
        due_at=due.at if due else None, status="active" if due else "completed", version=item.sequence.version,
        stop_reason=None if due else "sequence complete",
    )
    if not moved:
        log.warning("enrollment %s: claim %s lost (or enrollment stopped) before moving on",
                    item.enrollment.id, batch.token)
    elif due is None:
        record_event(batch.session, item.contact.id, "sequence.completed", done_at, {"sequence": item.sequence.id})


def _fail(batch: _Batch, item: _Item, step: Step, delivery_id: int, reason: str, attempts: int | None = None) -> str:
    """A permanent failure of this one message: recorded with its reason; the contact moves on."""
    now = batch.rt.clock()
    store.finish_delivery(batch.session, delivery_id, now, status="failed", error=reason, attempts=attempts)
    record_event(batch.session, item.contact.id, f"{step.channel}.failed", now, item.about(step, reason=reason),
                 delivery_id)
    _advance(batch, item, step, now)
    batch.session.commit()
    log.warning("delivery %s (%s, %s/%s) failed: %s", delivery_id, item.contact.email, item.sequence.id, step.id,
                reason)
    return "failed"


def _transport_failed(batch: _Batch, item: _Item, step: Step, delivery: Delivery, exc: TransportError) -> str:
    """Temporary -> retried after the backoff; permanent -> failed; a refused recipient is suppressed."""
    session, now = batch.session, batch.rt.clock()
    attempts = delivery.attempts + 1
    if exc.recipient_rejected:
        store.suppress(session, delivery.recipient, step.channel, f"rejected: {exc}", now)
        record_event(session, item.contact.id, f"{step.channel}.bounced", now, item.about(step, reason=str(exc)),
                     delivery.id)
    retry = None if exc.permanent else engine.retry_at(attempts, now, batch.rt.settings.retry_backoff_seconds)
    if retry is None:
        reason = str(exc) if exc.permanent else f"gave up after {attempts} attempts: {exc}"
        return _fail(batch, item, step, delivery.id, reason, attempts)
    store.finish_delivery(session, delivery.id, now, status="retry", error=str(exc), attempts=attempts)
    store.move_enrollment(session, item.enrollment.id, batch.token, now, step_id=step.id, due_at=retry,
                          status="active", attempts=attempts)
    record_event(session, item.contact.id, f"{step.channel}.retry", now,
                 item.about(step, reason=str(exc), retry_at=retry.isoformat()), delivery.id)
    session.commit()
    return "retry"
