"""A batch of the send path and what it records: the batch (its session, claim, lease and transports), the
message being worked on, and the outcomes written through the session — moving an enrollment on, a
failure, a retry, a "slow down", a send that also sets the contact's stage.

`nurture.delivery.dispatch` decides what each enrollment of a chunk needs; `nurture.delivery.chunks` sends
a chunk's messages and writes a plain `sent` on the driver, one transaction a message (docs/delivery.md,
"What it costs").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

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
    # Set when an earlier attempt may have reached the provider (it died mid-send, or was handed over with
    # no answer back): the moment the row was first written, from which the provider is asked (chunks).
    maybe_sent_since: datetime | None = None

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
    batch.leased_until = lease  # once on disk: a send's lease check (chunks) trusts it
    batch.renew_at = now + renew_every(batch.rt)
    log.debug("batch %s: lease renewed for %d enrollments", batch.token, held)


def sent_through_session(batch: Batch, item: Item, step: Step, delivery: Row, provider_id: str,
                         extra: dict[str, str]) -> str:
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


def moved_on(item: Item, step: Step, done_at: datetime, skipped: bool = False,
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
    params, completed = moved_on(item, step, done_at, skipped, target)
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


def transport_failed(batch: Batch, item: Item, step: Step, delivery: Row, exc: TransportError) -> str:
    """Temporary -> retried after the backoff; permanent -> failed; a refused recipient is suppressed."""
    session, now = batch.session, item.now
    if exc.throttle:  # the receiving side asked to slow down: not this message's fault, no retry used
        return wait(batch, item, step, delivery, *deliverability.throttled(batch, delivery.recipient, now))
    attempts = delivery.attempts + 1
    if exc.handed_over:  # the provider may have it: the next attempt may be a second copy, so it is on record
        sending.record_event(session, item.contact.id, f"{step.channel}.interrupted", now, item.about(
            step, reason=f"{exc}; if it arrived, the next attempt repeats it"), delivery.id)
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
