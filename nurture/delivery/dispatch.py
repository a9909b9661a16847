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
from typing import TYPE_CHECKING

from sqlmodel import Session

from nurture.content.rendering import RenderError
from nurture.delivery import versions
from nurture.delivery.channels import Channel, Transport, channel_for
from nurture.delivery.transports import TransportError
from nurture.people import automation
from nurture.people.contacts import record_event
from nurture.rules import decisions, engine
from nurture.rules.sequence import Sequence, Step
from nurture.store import claims as store
from nurture.store.models import Contact, Delivery, DeliveryStatus, Enrollment, EnrollmentStatus

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime

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
    renew_at: datetime | None = None  # when the batch next extends the lease of the rows it holds
    # Marketing send times per contact for the frequency cap, read once for the batch and kept up to date
    # as it sends (a query a message saved). Another worker sending to the same contact in the same second
    # is not seen: the cap can be passed by one message in that race, never by more.
    sent: dict[int, list[datetime]] = field(default_factory=dict)

    def transport(self, channel: Channel) -> Transport:
        if channel.name not in self.transports:
            self.transports[channel.name] = channel.open_transport(self.rt)
        return self.transports[channel.name]

    def close(self) -> None:
        for transport in self.transports.values():
            transport.close()

    def lease_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.rt.settings.claim_lease_seconds)


@dataclass
class _Item:
    """The enrollment being worked on, with its contact, (loaded) sequence, and the one clock reading every
    record written for it carries."""

    enrollment: Enrollment
    contact: Contact
    sequence: Sequence
    now: datetime

    def about(self, step: Step, **extra: str) -> dict:
        return {"sequence": self.sequence.id, "version": self.sequence.version, "step": step.id,
                "kind": step.kind, **extra}


def run_batch(rt: Runtime, token: str) -> BatchReport:
    """Send everything claim `token` still holds. One contact's failure never stops the batch."""
    report = BatchReport()
    with Session(rt.db, expire_on_commit=False) as session:
        batch = _Batch(rt, session, token)
        try:
            now = rt.clock()
            rows = store.claimed(session, token, now)
            lifecycle = rt.sequences.lifecycle
            if rows and (lifecycle.per_day or lifecycle.per_week):
                transactional = {s.id for s in rt.sequences.all() if s.transactional}
                batch.sent = store.sent_times(session, [c.id for _, c in rows], now - timedelta(days=7),
                                              transactional)
            session.commit()
            # The first item renews: the batch may have waited in the queue for most of its lease.
            batch.renew_at = now
            for enrollment, contact in rows:
                report.add(_run_item(batch, enrollment, contact))
        finally:
            batch.close()
    return report


def _renew_every(rt: Runtime) -> timedelta:
    # A third of the lease: two renewals can be missed (a slow message, a slow commit) before it runs out.
    return timedelta(seconds=rt.settings.claim_lease_seconds / 3)


def _run_item(batch: _Batch, enrollment: Enrollment, contact: Contact) -> str:
    """One enrollment of the batch, fenced by the claim: nothing is written or sent for it unless this
    batch still holds it. One contact's failure never stops the batch."""
    session, now = batch.session, batch.rt.clock()  # the one clock reading for this item
    try:
        _heartbeat(batch, now)
        if not store.hold_claim(session, enrollment.id, batch.token, now, batch.lease_until(now)):
            session.rollback()
            log.warning("enrollment %s: claim %s was taken over; left to its new holder", enrollment.id, batch.token)
            return "claim-lost"
        return _process(batch, enrollment, contact, now)
    except Exception:
        # A bug, or the database going away. The claim expires and a later tick retries the row.
        session.rollback()
        log.exception("enrollment %s: unexpected error; left for the next tick", enrollment.id)
        return "error"


def _heartbeat(batch: _Batch, now: datetime) -> None:
    """Extend the lease of the rows the batch has not reached yet, every third of a lease: a batch slower
    than its lease keeps its rows instead of racing the worker that would claim them next."""
    if batch.renew_at is None or now < batch.renew_at:
        return
    held = store.renew_claims(batch.session, batch.token, now, batch.lease_until(now))
    batch.session.commit()
    batch.renew_at = now + _renew_every(batch.rt)
    log.debug("batch %s: lease renewed for %d enrollments", batch.token, held)


def _process(batch: _Batch, enrollment: Enrollment, contact: Contact, now: datetime) -> str:
    rt, session = batch.rt, batch.session
    sequence = rt.sequences.get(enrollment.sequence_id)
    if sequence is None:
        # The file was removed or never loaded cleanly: keep the contact's place and look again later.
        store.move_enrollment(session, enrollment.id, batch.token, now, step_id=enrollment.step_id,
                              due_at=now + timedelta(hours=1), status=EnrollmentStatus.ACTIVE,
                              attempts=enrollment.attempts)
        session.commit()
        log.warning("enrollment %s: sequence %r is not loaded; postponed", enrollment.id, enrollment.sequence_id)
        return "postponed"
    if enrollment.step_id and sequence.step(enrollment.step_id) is None:
        return _relocate(batch, _Item(enrollment, contact, sequence, now))
    needed = sequence.needs_facts(enrollment.step_id)
    facts = automation.facts(session, rt, contact, enrollment, sequence, now) if needed else None
    decision = engine.decide(sequence, enrollment.step_id, enrollment.due_at, now, facts, enrollment.step_entered_at)
    item = _Item(enrollment, contact, sequence, now)
    if isinstance(decision, engine.NotYet):
        store.release(session, enrollment.id, batch.token)
        session.commit()
        return "not-due"
    if isinstance(decision, engine.Finished):
        return _finish(batch, item, decision.reason)
    if isinstance(decision, engine.Skip):
        return _move_on(batch, item, decision.step, "step.skipped", decision.reason, skipped=True)
    if isinstance(decision, engine.Branch):
        return _move_on(batch, item, decision.step, "step.branched", decision.reason, target=decision.target)
    return _send(batch, item, decision.step)


def _relocate(batch: _Batch, item: _Item) -> str:
    """The new version of the sequence removed the step this contact waits at: move it by step id (see
    engine.relocate), keeping the time it was due, and say so on its timeline."""
    session, now, enrollment = batch.session, item.now, item.enrollment
    old_order = versions.order_of(session, item.sequence.id, enrollment.sequence_version)
    if old_order is None:
        return _finish(batch, item, f"step {enrollment.step_id!r} was removed and version "
                                    f"{enrollment.sequence_version} is unknown; cannot place the contact")
    target = engine.relocate(old_order, [s.id for s in item.sequence.steps], enrollment.step_id or "",
                             versions.done_steps(session, enrollment.id))
    record_event(session, item.contact.id, "sequence.version_moved", now, {
        "sequence": item.sequence.id, "from": enrollment.step_id, "to": target,
        "old_version": enrollment.sequence_version, "new_version": item.sequence.version})
    if target is None:
        return _finish(batch, item, f"step {enrollment.step_id!r} was removed and no later step is left")
    store.move_enrollment(session, enrollment.id, batch.token, now, step_id=target,
                          due_at=max(enrollment.due_at or now, now), status=EnrollmentStatus.ACTIVE,
                          version=item.sequence.version, new_step=True)
    session.commit()
    return "moved"


def _finish(batch: _Batch, item: _Item, reason: str) -> str:
    now = item.now
    store.move_enrollment(batch.session, item.enrollment.id, batch.token, now, step_id=None, due_at=None,
                          status=EnrollmentStatus.COMPLETED, stop_reason=reason)
    if reason.startswith("goal reached"):
        record_event(batch.session, item.contact.id, "sequence.goal", now,
                     {"sequence": item.sequence.id, "reason": reason})
    batch.session.commit()
    return "completed"


def _move_on(batch: _Batch, item: _Item, step: Step, event: str, reason: str, skipped: bool = False,
             target: str | None = None) -> str:
    """A step that sends nothing this time (condition false, or a wait-for step resolved): on the record,
    and the contact moves on — to `target` when a branch chose one."""
    now = item.now
    record_event(batch.session, item.contact.id, event, now, item.about(step, reason=reason, target=target or ""))
    _advance(batch, item, step, now, skipped=skipped, target=target)
    batch.session.commit()
    return "skipped-step" if skipped else "branched"


def _hold(batch: _Batch, item: _Item, channel: Channel, now: datetime) -> tuple[datetime, str] | None:
    """Why not now: the channel's quiet hours, the sequence's send window, the frequency cap."""
    lifecycle = batch.rt.sequences.lifecycle
    return decisions.send_hold(now, channel.hold(batch.rt, item.contact, now), item.sequence.transactional,
                               item.sequence.window, engine.contact_zone(item.contact.timezone),
                               batch.sent.get(item.contact.id, []), lifecycle.per_day, lifecycle.per_week)


def _send(batch: _Batch, item: _Item, step: Step) -> str:
    rt, session, now = batch.rt, batch.session, item.now
    channel = channel_for(step.channel)
    address = channel.address(item.contact)
    blocked = store.blocked_reason(session, item.contact, item.enrollment, channel.status_field, address,
                                   item.sequence.transactional)
    # A message that may not go at all is skipped now, not deferred for quiet hours first.
    hold = None if blocked else _hold(batch, item, channel, now)
    if hold is not None:
        return _defer(batch, item, step, *hold)
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
    now = item.now
    recorded = store.finish_delivery(batch.session, delivery.id, batch.token, now, status=DeliveryStatus.SENT,
                                     provider_id=provider_id, attempts=delivery.attempts + 1)
    record_event(batch.session, item.contact.id, f"{step.channel}.sent", now,
                 item.about(step, message_id=message_id), delivery.id)
    if not recorded:
        # This send outlived the lease the fence gave it, and another worker took the step over: its record
        # stands; ours is only the event above, so that a second copy is on the timeline, not silent.
        batch.session.commit()
        log.warning("delivery %s: sent after its claim %s was taken over", delivery.id, batch.token)
        return "sent-late"
    if not item.sequence.transactional:
        batch.sent.setdefault(item.contact.id, []).append(now)
    if step.set_stage:
        automation.set_stage(batch.session, batch.rt, item.contact, step.set_stage, f"step {step.id}", now)
    _advance(batch, item, step, now)
    batch.session.commit()
    return "sent"


def _skip(batch: _Batch, item: _Item, step: Step, delivery: Delivery, reason: str) -> str:
    """The contact may not get this (unsubscribed, suppressed, no consent for the channel, left the
    sequence): recorded. When later steps use another channel (a text after emails, say), the contact goes
    on to them; otherwise the enrollment stops rather than creep through steps that would be skipped too.
    (Moving on never revives an enrollment that was stopped: see store.move_enrollment.)"""
    now = item.now
    store.finish_delivery(batch.session, delivery.id, batch.token, now, status=DeliveryStatus.SKIPPED, error=reason)
    if not decisions.stops_after_block(item.sequence, step):
        _advance(batch, item, step, now, skipped=True)
    else:
        store.move_enrollment(batch.session, item.enrollment.id, batch.token, now, step_id=step.id, due_at=None,
                              status=EnrollmentStatus.STOPPED, stop_reason=reason)
    record_event(batch.session, item.contact.id, f"{step.channel}.skipped", now, item.about(step, reason=reason),
                 delivery.id)
    batch.session.commit()
    return "skipped"


def _defer(batch: _Batch, item: _Item, step: Step, until: datetime, reason: str) -> str:
    """Not now (quiet hours, send window, frequency cap): wait for `until`, never dropped; reason recorded."""
    now = item.now
    store.move_enrollment(batch.session, item.enrollment.id, batch.token, now, step_id=step.id, due_at=until,
                          status=EnrollmentStatus.ACTIVE, attempts=item.enrollment.attempts)
    record_event(batch.session, item.contact.id, f"{step.channel}.deferred", now,
                 item.about(step, reason=reason, until=until.isoformat()))
    batch.session.commit()
    return "deferred"


def _advance(batch: _Batch, item: _Item, step: Step, done_at: datetime, skipped: bool = False,
             target: str | None = None) -> None:
    """Move the enrollment past `step` (to its goto, the next step, or `target`), timed from `done_at`."""
    tz = engine.contact_zone(item.contact.timezone)
    due = engine.next_due(item.sequence, step.id, done_at, tz, skipped=skipped, target=target)
    moved = store.move_enrollment(
        batch.session, item.enrollment.id, batch.token, done_at, step_id=due.step_id if due else None,
        due_at=due.at if due else None, status=EnrollmentStatus.ACTIVE if due else EnrollmentStatus.COMPLETED,
        version=item.sequence.version,
        stop_reason=None if due else "sequence complete", new_step=True,
    )
    if not moved:
        log.warning("enrollment %s: claim %s lost (or enrollment stopped) before moving on",
                    item.enrollment.id, batch.token)
    elif due is None:
        record_event(batch.session, item.contact.id, "sequence.completed", done_at, {"sequence": item.sequence.id})


def _fail(batch: _Batch, item: _Item, step: Step, delivery_id: int, reason: str, attempts: int | None = None) -> str:
    """A permanent failure of this one message: recorded with its reason; the contact moves on."""
    now = item.now
    store.finish_delivery(batch.session, delivery_id, batch.token, now, status=DeliveryStatus.FAILED, error=reason,
                          attempts=attempts)
    record_event(batch.session, item.contact.id, f"{step.channel}.failed", now, item.about(step, reason=reason),
                 delivery_id)
    _advance(batch, item, step, now)
    batch.session.commit()
    log.warning("delivery %s (%s, %s/%s) failed: %s", delivery_id, item.contact.email, item.sequence.id, step.id,
                reason)
    return "failed"


def _transport_failed(batch: _Batch, item: _Item, step: Step, delivery: Delivery, exc: TransportError) -> str:
    """Temporary -> retried after the backoff; permanent -> failed; a refused recipient is suppressed."""
    session, now = batch.session, item.now
    attempts = delivery.attempts + 1
    if exc.recipient_rejected:
        store.suppress(session, delivery.recipient, step.channel, f"rejected: {exc}", now)
        record_event(session, item.contact.id, f"{step.channel}.bounced", now, item.about(step, reason=str(exc)),
                     delivery.id)
    if exc.opted_out:  # the recipient told the provider to stop: opted out of this channel, on the record
        store.opt_out_at_provider(session, item.contact.id, step.channel, channel_for(step.channel).status_field,
                                  delivery.id, str(exc), now)
    retry = None if exc.permanent else engine.retry_at(attempts, now, batch.rt.settings.retry_backoff_seconds)
    if retry is None:
        reason = str(exc) if exc.permanent else f"gave up after {attempts} attempts: {exc}"
        return _fail(batch, item, step, delivery.id, reason, attempts)
    store.finish_delivery(session, delivery.id, batch.token, now, status=DeliveryStatus.RETRY, error=str(exc),
                          attempts=attempts)
    store.move_enrollment(session, item.enrollment.id, batch.token, now, step_id=step.id, due_at=retry,
                          status=EnrollmentStatus.ACTIVE, attempts=attempts)
    record_event(session, item.contact.id, f"{step.channel}.retry", now,
                 item.about(step, reason=str(exc), retry_at=retry.isoformat()), delivery.id)
    session.commit()
    return "retry"
