"""The second half of the send path: a chunk of messages that may go, written as `queued` delivery rows in
one statement, then sent one by one over the batch's connection, each outcome recorded as it comes.

`nurture.delivery.dispatch` decides what each enrollment of a chunk needs and hands the sends here. Per
message this costs two short transactions (docs/delivery.md, "What it costs"): one marks the row `sending`
behind the per-message fence before the transport is called, one records the outcome and moves the
enrollment on. Both are needed: a row must say `sending` on disk before its send (else a crash could not
be told from a step never tried), and its outcome must be on disk before the next message's clock reading
(a batch that stalls there must not hand over a step it has sent as if it had not).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from nurture.content.rendering import RenderError
from nurture.delivery import deliverability
from nurture.delivery.channels import Channel, Transport, channel_for
from nurture.delivery.transports import TransportError
from nurture.people import automation
from nurture.rules import engine
from nurture.rules.sequence import Sequence, Step
from nurture.store import claims as store
from nurture.store import sending
from nurture.store.models import Contact, DeliveryStatus, Enrollment, EnrollmentStatus

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime

log = logging.getLogger("nurture.delivery.dispatch")


@dataclass
class Batch:
    """One run of one claim: the session, the claim token, and a transport per channel used so far."""

    rt: Runtime
    session: Session
    token: str
    writes: sending.Writes  # the per-message transactions, on the driver of the session's connection
    transports: dict[str, Transport] = field(default_factory=dict)
    renew_at: datetime | None = None  # when the batch next extends the lease of the rows it holds
    # Marketing send times per contact for the frequency cap, read once for the batch and kept up to date
    # as it sends (a query a message saved). Another worker sending to the same contact in the same second
    # is not seen: the cap can be passed by one message in that race, never by more.
    sent: dict[int, list[datetime]] = field(default_factory=dict)
    consents: sending.Consents | None = None  # the current chunk's, read right after its fence
    paused: bool = False  # the reputation guard holds marketing email (read each chunk)
    backoffs: dict[str, datetime] = field(default_factory=dict)  # domain group -> backed off until
    leased_until: datetime | None = None  # the lease the batch last wrote on its rows (see lease_until)

    def transport(self, channel: Channel) -> Transport:
        if channel.name not in self.transports:
            self.transports[channel.name] = channel.open_transport(self.rt)
        return self.transports[channel.name]

    def close(self) -> None:
        for transport in self.transports.values():
            transport.close()
        self.writes.close()

    def lease_until(self, now: datetime) -> datetime:
        """The lease a fence or renewal at `now` writes. The batch's rows all carry the last one handed out
        (each chunk is fenced, the rest renewed, with it), so it is kept: a send must end before it."""
        self.leased_until = now + timedelta(seconds=self.rt.settings.claim_lease_seconds)
        return self.leased_until

    def time_left(self, now: datetime) -> float | None:
        """Seconds a send starting at `now` may take: up to the lease's end, less a tenth of the lease to
        record the outcome in. (None before the batch has fenced anything.)"""
        if self.leased_until is None:
            return None
        lease = self.rt.settings.claim_lease_seconds
        return (self.leased_until - now).total_seconds() - lease / 10


@dataclass
class Item:
    """The enrollment being worked on, with its contact, (loaded) sequence, and the one clock reading every
    record written for it carries."""

    enrollment: Enrollment
    contact: Contact
    sequence: Sequence
    now: datetime

    def about(self, step: Step, **extra: str) -> dict:
        variant = {"variant": step.variant} if step.variant else {}  # the experiment's arm it was sent
        return {"sequence": self.sequence.id, "version": self.sequence.version, "step": step.id,
                "kind": step.kind, **variant, **extra}


@dataclass(frozen=True)
class Row:
    """What the send path needs of a delivery row (building the ORM object cost ~0.2 ms a message)."""

    id: int
    recipient: str
    attempts: int


@dataclass
class Send:
    """A message the checks let through (consent, quiet hours, window, cap), waiting for its delivery row."""

    item: Item
    step: Step
    channel: Channel
    address: str
    delivery: Row | None = None

    def row(self, token: str) -> dict[str, Any]:
        enrollment, now = self.item.enrollment, self.item.now
        return dict(contact_id=enrollment.contact_id, enrollment_id=enrollment.id,
                    sequence_id=enrollment.sequence_id, sequence_version=enrollment.sequence_version,
                    step_id=self.step.id, channel=self.step.channel, kind=self.step.kind, recipient=self.address,
                    claim_token=token, attempts=0, created_at=now, updated_at=now, variant=self.step.variant)


def renew_every(rt: Runtime) -> timedelta:
    # A third of the lease: two renewals can be missed (a slow message, a slow commit) before it runs out.
    return timedelta(seconds=rt.settings.claim_lease_seconds / 3)


def heartbeat(batch: Batch, now: datetime) -> None:
    """Extend the lease of the rows the batch has not reached yet, every third of a lease: a batch slower
    than its lease keeps its rows instead of racing the worker that would claim them next. Commits."""
    if batch.renew_at is None or now < batch.renew_at:
        return
    lease = now + timedelta(seconds=batch.rt.settings.claim_lease_seconds)
    held = store.renew_claims(batch.session, batch.token, now, lease)
    batch.session.commit()
    batch.leased_until = lease  # once on disk: a send's lease check (_record_and_send) trusts it
    batch.renew_at = now + renew_every(batch.rt)
    log.debug("batch %s: lease renewed for %d enrollments", batch.token, held)


def send_chunk(batch: Batch, sends: list[Send]) -> list[str]:
    """Write the chunk's delivery rows, then send each message and record its outcome. One message's
    failure never stops the others."""
    if not sends:
        return []
    try:
        outcomes, ready = _open(batch, sends)
    except Exception:
        batch.session.rollback()
        log.exception("batch %s: unexpected error writing a chunk's deliveries; left for the next tick", batch.token)
        return ["error"] * len(sends)
    return outcomes + _send_all(batch, ready)


def _open(batch: Batch, sends: list[Send]) -> tuple[list[str], list[Send]]:
    """One INSERT for the chunk's `queued` rows; a step that already has a row is looked at one by one
    (done before a crash: move on; `retry`, or `sending` left by a dead worker: taken over). Commits."""
    session = batch.session
    written = sending.queue_deliveries(session, [send.row(batch.token) for send in sends])
    outcomes, ready = [], []
    for send in sends:
        item, step = send.item, send.step
        if item.enrollment.id in written:
            send.delivery = Row(written[item.enrollment.id], send.address, 0)
            ready.append(send)
            continue
        opened = store.open_delivery(session, item.enrollment, step.id, step.channel, step.kind, send.address,
                                     batch.token, item.now, status=sending.QUEUED, variant=step.variant)
        if not opened.send:
            advance(batch, item, step, item.now)  # done earlier (a crash between send and moving on); move on
            outcomes.append("already-done")
            continue
        if opened.interrupted:
            sending.record_event(session, item.contact.id, f"{step.channel}.interrupted", item.now, item.about(
                step, reason="an earlier attempt died mid-send; sending again with the same message id"),
                opened.delivery.id)
        send.delivery = Row(opened.delivery.id or 0, opened.delivery.recipient, opened.delivery.attempts)
        ready.append(send)
    session.commit()
    return outcomes, ready


@dataclass(frozen=True)
class Accepted:
    """A message the server accepted, its record bound and not yet written: it is written in the
    transaction that marks the next message `sending`, or on its own after the chunk's last message."""

    item: Item
    delivery: Row
    record: sending.SentRecord


def _send_all(batch: Batch, ready: list[Send]) -> list[str]:
    """Send the chunk's messages in turn. A message's record and the next one's `sending` mark share a
    transaction (_record_and_send), so a message costs one transaction, not two; the record is still on
    disk before the next clock reading. Where they cannot share one (the next message is held back; the
    outcome was not a plain `sent`), each is written alone, as before."""
    outcomes: list[str] = []
    accepted: Accepted | None = None
    for send in ready:
        if accepted is not None and deliverability.held_back(batch, send, accepted.item.now) is None:
            previous, result = _record_and_send(batch, accepted, send)
        else:
            previous = [] if accepted is None else [_record_alone(batch, accepted)]
            result = _send_one(batch, send)
        outcomes += previous
        accepted = result if isinstance(result, Accepted) else None
        if isinstance(result, str):
            outcomes.append(result)
    if accepted is not None:
        outcomes.append(_record_alone(batch, accepted))
    return outcomes


def _send_one(batch: Batch, send: Send) -> str | Accepted:
    """Read the clock; fence and mark `sending` in a transaction of its own; compose and send."""
    rt, session = batch.rt, batch.session
    item = replace(send.item, now=rt.clock())  # the one clock reading for the records of this message
    delivery, now = send.delivery, item.now
    assert delivery is not None and delivery.id is not None
    try:
        heartbeat(batch, now)
        held = deliverability.held_back(batch, send, now)
        if held is not None:
            outcome = wait(batch, item, send.step, delivery, *held)
            session.commit()
            return outcome
        if not batch.writes.start(batch.writes.bind_start(delivery.id, item.enrollment.id, batch.token, now)):
            return _claim_lost(batch, item)
        return _deliver(batch, item, send, delivery)  # "sending" is on disk before the transport is called
    except Exception:
        # A bug, or the database going away. The claim expires and a later tick retries the row.
        session.rollback()
        log.exception("enrollment %s: unexpected error; left for the next tick", item.enrollment.id)
        return "error"


def _record_and_send(batch: Batch, accepted: Accepted, send: Send) -> tuple[list[str], str | Accepted]:
    """The previous message's record and this message's fence and `sending` mark, in one transaction;
    then this message's clock reading, and its send.

    The fence runs at the previous message's instant (the clock is read only after the commit, so that a
    batch stalling there has its record on disk and holds no lock). It proves the claim is still ours; that
    the lease has not run out by the time this message's clock is read is checked against the lease the
    batch wrote (`leased_until`): the same condition the fence's `claimed_until >= now` tests. If it has
    run out, the row goes back to `queued` — never handed to the server, it must not look interrupted."""
    delivery = send.delivery
    assert delivery is not None and delivery.id is not None
    start = batch.writes.bind_start(delivery.id, send.item.enrollment.id, batch.token, accepted.item.now)
    try:
        written = batch.writes.record(accepted.record, start)
    except Exception:
        batch.session.rollback()
        log.exception("enrollment %s: unexpected error recording a send; left for the next tick",
                      accepted.item.enrollment.id)
        return ["error"], "error"
    previous = [_recorded(batch, accepted, written)]
    if not written.started:
        return previous, _claim_lost(batch, send.item)
    item = replace(send.item, now=batch.rt.clock())  # the one clock reading for the records of this message
    try:
        if batch.leased_until is None or item.now > batch.leased_until:
            batch.writes.unstart(delivery.id, batch.token, item.now)
            return previous, _claim_lost(batch, item)
        heartbeat(batch, item.now)
        return previous, _deliver(batch, item, send, delivery)
    except Exception:
        batch.session.rollback()
        log.exception("enrollment %s: unexpected error; left for the next tick", item.enrollment.id)
        return previous, "error"


def _claim_lost(batch: Batch, item: Item) -> str:
    log.warning("enrollment %s: claim %s was taken over; left to its new holder", item.enrollment.id, batch.token)
    return "claim-lost"


def _deliver(batch: Batch, item: Item, send: Send, delivery: Row) -> str | Accepted:
    """Compose and send. An accepted message comes back with its record bound, to be written with the
    next message's mark; any other outcome is written (and committed) here."""
    session = batch.session
    try:
        message = send.channel.compose(batch.rt, item.contact, item.sequence, send.step, delivery.id, item.now)
    except RenderError as exc:
        outcome = fail(batch, item, send.step, delivery.id, str(exc))
        session.commit()
        return outcome
    try:
        provider_id = batch.transport(send.channel).send(message, batch.time_left(batch.rt.clock()))
    except TransportError as exc:
        outcome = _transport_failed(batch, item, send.step, delivery, exc)
        session.commit()
        return outcome
    # `locale`: only when a localized template was used, so `why` can say which language went out.
    extra = {"message_id": message.message_id, **({"locale": message.locale} if message.locale else {})}
    if send.step.set_stage:  # the stage change runs through the session (its events, its triggers)
        outcome = _sent(batch, item, send.step, delivery, provider_id, extra)
        session.commit()
        return outcome
    return Accepted(item, delivery, _sent_record(batch, item, send.step, delivery, provider_id, extra))


def _sent_record(batch: Batch, item: Item, step: Step, delivery: Row, provider_id: str,
                 extra: dict[str, str]) -> sending.SentRecord:
    """Everything a plain `sent` writes, computed and bound now, before its transaction takes the lock:
    the event's JSON, the next step (engine.next_due), every parameter through its bind processor."""
    moved_on, completed = _moved_on(item, step, item.now)
    event = sending.event_params(item.contact.id, f"{step.channel}.sent", item.about(step, **extra))
    done = sending.event_params(item.contact.id, "sequence.completed", {"sequence": item.sequence.id})
    return batch.writes.sent_record(delivery.id, batch.token, item.now, provider_id, event, moved_on,
                                    done if completed else None)


def _recorded(batch: Batch, accepted: Accepted, written: sending.Written) -> str:
    if not written.recorded:
        # This send outlived the lease the fence gave it, and another worker took the step over: its record
        # stands; ours is only the event, so that a second copy is on the timeline, not silent.
        log.warning("delivery %s: sent after its claim %s was taken over", accepted.delivery.id, batch.token)
        return "sent-late"
    if not written.moved:
        log.warning("enrollment %s: claim %s lost (or enrollment stopped) before moving on",
                    accepted.item.enrollment.id, batch.token)
    return "sent"


def _record_alone(batch: Batch, accepted: Accepted) -> str:
    try:
        written = batch.writes.record(accepted.record)
    except Exception:
        batch.session.rollback()
        log.exception("enrollment %s: unexpected error recording a send; left for the next tick",
                      accepted.item.enrollment.id)
        return "error"
    return _recorded(batch, accepted, written)


def _sent(batch: Batch, item: Item, step: Step, delivery: Row, provider_id: str, extra: dict[str, str]) -> str:
    """A send recorded through the session (a step that also sets the contact's stage). The caller commits."""
    now, session = item.now, batch.session
    recorded = sending.record_sent(session, delivery.id, batch.token, now, provider_id)
    sending.record_event(session, item.contact.id, f"{step.channel}.sent", now, item.about(step, **extra),
                         delivery.id)
    if not recorded:
        log.warning("delivery %s: sent after its claim %s was taken over", delivery.id, batch.token)
        return "sent-late"
    # (The frequency cap already counted this message when the chunk let it through.)
    if step.set_stage:
        automation.set_stage(session, batch.rt, item.contact, step.set_stage, f"step {step.id}", now)
    advance(batch, item, step, now)
    return "sent"


def _moved_on(item: Item, step: Step, done_at: datetime, skipped: bool = False,
              target: str | None = None) -> tuple[dict[str, Any], bool]:
    """advance's parameters past `step` (to its goto, the next step, or `target`), timed from `done_at`,
    and whether that completes the sequence."""
    tz = engine.contact_zone(item.contact.timezone)
    due = engine.next_due(item.sequence, step.id, done_at, tz, skipped=skipped, target=target)
    params = sending.advance_params(item.enrollment.id, step_id=due.step_id if due else None,
                                    due_at=due.at if due else None,
                                    status=EnrollmentStatus.ACTIVE if due else EnrollmentStatus.COMPLETED,
                                    version=item.sequence.version, stop_reason=None if due else "sequence complete")
    return params, due is None


def advance(batch: Batch, item: Item, step: Step, done_at: datetime, skipped: bool = False,
            target: str | None = None) -> None:
    """Move the enrollment past `step` (to its goto, the next step, or `target`), timed from `done_at`."""
    params, completed = _moved_on(item, step, done_at, skipped, target)
    moved = sending.advance_by(batch.session, batch.token, done_at, params)
    if not moved:
        log.warning("enrollment %s: claim %s lost (or enrollment stopped) before moving on",
                    item.enrollment.id, batch.token)
    elif completed:
        sending.record_event(batch.session, item.contact.id, "sequence.completed", done_at,
                             {"sequence": item.sequence.id})


def fail(batch: Batch, item: Item, step: Step, delivery_id: int, reason: str, attempts: int | None = None) -> str:
    """A permanent failure of this one message: recorded with its reason; the contact moves on. The caller
    commits."""
    now = item.now
    store.finish_delivery(batch.session, delivery_id, batch.token, now, status=DeliveryStatus.FAILED, error=reason,
                          attempts=attempts)
    sending.record_event(batch.session, item.contact.id, f"{step.channel}.failed", now,
                         item.about(step, reason=reason), delivery_id)
    advance(batch, item, step, now)
    log.warning("delivery %s (%s, %s/%s) failed: %s", delivery_id, item.contact.email, item.sequence.id, step.id,
                reason)
    return "failed"


def _transport_failed(batch: Batch, item: Item, step: Step, delivery: Row, exc: TransportError) -> str:
    """Temporary -> retried after the backoff; permanent -> failed; a refused recipient is suppressed."""
    session, now = batch.session, item.now
    if exc.throttle:  # the receiving side asked to slow down: not this message's fault, no retry used
        return wait(batch, item, step, delivery, *deliverability.throttled(batch, delivery.recipient, now))
    attempts = delivery.attempts + 1
    if exc.recipient_rejected:
        store.suppress(session, delivery.recipient, step.channel, f"rejected: {exc}", now)
        sending.record_event(session, item.contact.id, f"{step.channel}.bounced", now,
                             item.about(step, reason=str(exc)), delivery.id)
    if exc.opted_out:  # the recipient told the provider to stop: opted out of this channel, on the record
        store.opt_out_at_provider(session, item.contact.id, step.channel, channel_for(step.channel).status_field,
                                  delivery.id, str(exc), now)
    retry = None if exc.permanent else engine.retry_at(attempts, now, batch.rt.settings.retry_backoff_seconds)
    if retry is None:
        reason = str(exc) if exc.permanent else f"gave up after {attempts} attempts: {exc}"
        return fail(batch, item, step, delivery.id, reason, attempts)
    store.finish_delivery(session, delivery.id, batch.token, now, status=DeliveryStatus.RETRY, error=str(exc),
                          attempts=attempts)
    store.move_enrollment(session, item.enrollment.id, batch.token, now, step_id=step.id, due_at=retry,
                          status=EnrollmentStatus.ACTIVE, attempts=attempts)
    sending.record_event(session, item.contact.id, f"{step.channel}.retry", now,
                         item.about(step, reason=str(exc), retry_at=retry.isoformat()), delivery.id)
    return "retry"


def wait(batch: Batch, item: Item, step: Step, delivery: Row, until: datetime, reason: str) -> str:
    """A message whose domain group must slow down: its row back to `retry` and the enrollment due at
    `until`, both with their attempts as they were (a throttle is not a failed try). The caller commits."""
    now = item.now
    store.finish_delivery(batch.session, delivery.id, batch.token, now, status=DeliveryStatus.RETRY, error=reason,
                          attempts=delivery.attempts)
    store.move_enrollment(batch.session, item.enrollment.id, batch.token, now, step_id=step.id, due_at=until,
                          status=EnrollmentStatus.ACTIVE, attempts=item.enrollment.attempts)
    sending.record_event(batch.session, item.contact.id, f"{step.channel}.deferred", now,
                         item.about(step, reason=reason, until=until.isoformat()), delivery.id)
    return "throttled"
