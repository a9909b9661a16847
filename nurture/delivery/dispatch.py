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

from nurture.delivery import broadcasts, deliverability, reputation, versions
from nurture.delivery.channels import Channel, all_channels, channel_for
from nurture.delivery.chunks import send_chunk
from nurture.delivery.outcomes import Batch, Item, Send, advance, heartbeat
from nurture.people import automation
from nurture.people.contacts import record_event
from nurture.rules import decisions, engine
from nurture.rules.sequence import Step
from nurture.store import claims as store
from nurture.store import sending
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


# Messages per chunk: the chunk's fence and its delivery rows are one statement each, and its consent
# checks are read together. Its rows are fenced when the chunk starts (and again one by one before each
# send), so a chunk is kept short: at ~5 ms a message it takes a quarter of a second.
CHUNK_SIZE = 50


def run_batch(rt: Runtime, token: str) -> BatchReport:
    """Send everything claim `token` still holds, a chunk at a time. One contact's failure never stops the
    batch."""
    report = BatchReport()
    # One connection for the whole batch: a session on the engine checks a connection out of the pool and
    # hands it back (with a reset) at every commit, two of them a message (~0.1 ms each); bound to a
    # connection it begins and commits its transactions on that one (BEGIN IMMEDIATE on SQLite, as ever).
    with rt.db.connect() as connection, Session(bind=connection, expire_on_commit=False) as session:
        batch = Batch(rt, session, token, sending.Writes(connection))
        try:
            now = rt.clock()
            rows = store.claimed(session, token, now)
            lifecycle = rt.sequences.lifecycle
            if rows and (lifecycle.per_day or lifecycle.per_week):
                transactional = {s.id for s in rt.sequences.all() if s.transactional}
                batch.sent = store.sent_times(session, [c.id for _, c in rows], now - timedelta(days=7),
                                              transactional)
            session.commit()
            reputation.check(rt, now)  # bounces that came back since the last batch may pause marketing
            # The first chunk renews: the batch may have waited in the queue for most of its lease.
            batch.renew_at = now
            for start in range(0, len(rows), CHUNK_SIZE):
                for outcome in _run_chunk(batch, rows[start:start + CHUNK_SIZE]):
                    report.add(outcome)
        finally:
            batch.close()
    return report


def compile_statements(rt: Runtime) -> None:
    """Compile the send path's statements in the worker, before RQ forks a work horse for each batch job:
    SQLAlchemy caches a compiled statement on the engine, and what a horse caches dies with it, so every
    batch compiled them all again (claimed()'s ORM select alone: 3.5% of a worker's CPU, bench/README.md).
    Compiled here once, every horse inherits them. They run against no row, in a transaction rolled back."""
    channels = all_channels()
    with Session(rt.db) as session:
        now = rt.clock()
        store.claimed(session, "", now)
        sending.fence(session, [0], "", now, now)
        sending.consents(session, [0], [c.status_field for c in channels], {""})
        session.rollback()
    sending.compile_all(rt.db.dialect)


def _run_chunk(batch: Batch, rows: list[tuple[Enrollment, Contact]]) -> list[str]:
    """Fence the chunk (one UPDATE: nothing is written or sent for a row this batch no longer holds),
    decide each enrollment, then send what may go (chunks.send_chunk)."""
    session, now = batch.session, batch.rt.clock()  # the clock reading for the chunk's decisions
    try:
        heartbeat(batch, now)
        held = sending.fence(session, [e.id for e, _ in rows], batch.token, now, batch.lease_until(now))
        batch.consents = _read_consents(session, rows)
        deliverability.read_chunk_state(batch, now)
        # Committed, not held through the chunk's decisions: on SQLite every transaction holds the one
        # write lock, and the other worker needs it for each message it sends.
        session.commit()
    except Exception:
        session.rollback()
        log.exception("batch %s: unexpected error fencing a chunk; left for the next tick", batch.token)
        return ["error"] * len(rows)
    results, sends = [], []
    for enrollment, contact in rows:
        result = _run_item(batch, enrollment, contact, now) if enrollment.id in held else "claim-lost"
        if result == "claim-lost":
            log.warning("enrollment %s: claim %s was taken over; left to its new holder", enrollment.id, batch.token)
        if isinstance(result, Send):
            sends.append(result)
        else:
            results.append(result)
    return results + send_chunk(batch, sends)


def _read_consents(session: Session, rows: list[tuple[Enrollment, Contact]]) -> sending.Consents:
    channels = all_channels()
    addresses = {address for _, contact in rows for c in channels if (address := c.address(contact))}
    return sending.consents(session, [e.id for e, _ in rows], [c.status_field for c in channels], addresses)


def _run_item(batch: Batch, enrollment: Enrollment, contact: Contact, now: datetime) -> str | Send:
    """What one enrollment of the chunk needs: an outcome written now, or a message to send."""
    try:
        return _process(batch, enrollment, contact, now)
    except Exception:
        # A bug, or the database going away. The claim expires and a later tick retries the row.
        batch.session.rollback()
        log.exception("enrollment %s: unexpected error; left for the next tick", enrollment.id)
        return "error"


def _process(batch: Batch, enrollment: Enrollment, contact: Contact, now: datetime) -> str | Send:
    rt, session = batch.rt, batch.session
    sequence = rt.sequences.get(enrollment.sequence_id) or broadcasts.sequence_for(session, enrollment.sequence_id)
    if sequence is None:
        # The file was removed or never loaded cleanly: keep the contact's place and look again later.
        store.move_enrollment(session, enrollment.id, batch.token, now, step_id=enrollment.step_id,
                              due_at=now + timedelta(hours=1), status=EnrollmentStatus.ACTIVE,
                              attempts=enrollment.attempts)
        session.commit()
        log.warning("enrollment %s: sequence %r is not loaded; postponed", enrollment.id, enrollment.sequence_id)
        return "postponed"
    if enrollment.step_id and sequence.step(enrollment.step_id) is None:
        return _relocate(batch, Item(enrollment, contact, sequence, now))
    needed = sequence.needs_facts(enrollment.step_id)
    facts = automation.facts(session, rt, contact, enrollment, sequence, now) if needed else None
    decision = engine.decide(sequence, enrollment.step_id, enrollment.due_at, now, facts, enrollment.step_entered_at,
                             contact.id)
    item = Item(enrollment, contact, sequence, now)
    if isinstance(decision, engine.NotYet):
        store.release(session, enrollment.id, batch.token)
        session.commit()
        return "not-due"
    if isinstance(decision, engine.Finished):
        return _finish(batch, item, decision.reason)
    if isinstance(decision, engine.Skip):
        # A held-out contact goes on as if sent (by the step's goto): its goals are measured on the same path.
        return _move_on(batch, item, decision.step, "step.skipped", decision.reason, skipped=not decision.held_out)
    if isinstance(decision, engine.Branch):
        return _move_on(batch, item, decision.step, "step.branched", decision.reason, target=decision.target)
    return _send(batch, item, decision.step)


def _relocate(batch: Batch, item: Item) -> str:
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


def _finish(batch: Batch, item: Item, reason: str) -> str:
    now = item.now
    store.move_enrollment(batch.session, item.enrollment.id, batch.token, now, step_id=None, due_at=None,
                          status=EnrollmentStatus.COMPLETED, stop_reason=reason)
    if reason.startswith("goal reached"):
        record_event(batch.session, item.contact.id, "sequence.goal", now,
                     {"sequence": item.sequence.id, "reason": reason})
    batch.session.commit()
    return "completed"


def _move_on(batch: Batch, item: Item, step: Step, event: str, reason: str, skipped: bool = False,
             target: str | None = None) -> str:
    """A step that sends nothing this time (condition false, or a wait-for step resolved): on the record,
    and the contact moves on — to `target` when a branch chose one."""
    now = item.now
    record_event(batch.session, item.contact.id, event, now, item.about(step, reason=reason, target=target or ""))
    advance(batch, item, step, now, skipped=skipped, target=target)
    batch.session.commit()
    return "skipped-step" if event == "step.skipped" else "branched"


def _hold(batch: Batch, item: Item, channel: Channel, now: datetime) -> tuple[datetime, str] | None:
    """Why not now: the channel's quiet hours, the sequence's send window, the frequency cap."""
    lifecycle = batch.rt.sequences.lifecycle
    return decisions.send_hold(now, channel.hold(batch.rt, item.contact, now), item.sequence.transactional,
                               item.sequence.window, engine.contact_zone(item.contact.timezone),
                               batch.sent.get(item.contact.id, []), lifecycle.per_day, lifecycle.per_week)


def _send(batch: Batch, item: Item, step: Step) -> str | Send:
    """A step that sends: checked now (consent, quiet hours, window, cap), sent with its chunk."""
    session, now = batch.session, item.now
    channel = channel_for(step.channel)
    address = channel.address(item.contact)
    assert batch.consents is not None  # read by _run_chunk, after the fence
    blocked = batch.consents.blocked(item.enrollment.id, channel.status_field, address, item.sequence.transactional)
    # A message that may not go at all is skipped now, not deferred for quiet hours first.
    hold = None if blocked else _hold(batch, item, channel, now)
    if hold is None and not blocked and channel.name == "email":  # the guard, the pace, the warm-up
        hold = deliverability.hold_email(batch, item, address or "", now)
    if hold is not None:
        return _defer(batch, item, step, *hold)
    if blocked:
        opened = store.open_delivery(session, item.enrollment, step.id, step.channel, step.kind, address or "",
                                     batch.token, now, variant=step.variant)
        if not opened.send:
            advance(batch, item, step, now)  # done earlier (a crash between send and moving on); move on
            session.commit()
            return "already-done"
        return _skip(batch, item, step, opened.delivery, blocked)
    if not item.sequence.transactional:
        # Counted for the cap now, so that a second message to this contact later in the chunk sees it; a
        # send that then fails still counts, for the rest of this batch only (the cautious side).
        batch.sent.setdefault(item.contact.id, []).append(now)
    return Send(item, step, channel, address or "")


def _skip(batch: Batch, item: Item, step: Step, delivery: Delivery, reason: str) -> str:
    """The contact may not get this (unsubscribed, suppressed, no consent for the channel, left the
    sequence): recorded. When later steps use another channel (a text after emails, say), the contact goes
    on to them; otherwise the enrollment stops rather than creep through steps that would be skipped too.
    (Moving on never revives an enrollment that was stopped: see store.move_enrollment.)"""
    now = item.now
    store.finish_delivery(batch.session, delivery.id, batch.token, now, status=DeliveryStatus.SKIPPED, error=reason)
    if not decisions.stops_after_block(item.sequence, step):
        advance(batch, item, step, now, skipped=True)
    else:
        store.move_enrollment(batch.session, item.enrollment.id, batch.token, now, step_id=step.id, due_at=None,
                              status=EnrollmentStatus.STOPPED, stop_reason=reason)
    record_event(batch.session, item.contact.id, f"{step.channel}.skipped", now, item.about(step, reason=reason),
                 delivery.id)
    batch.session.commit()
    return "skipped"


def _defer(batch: Batch, item: Item, step: Step, until: datetime, reason: str) -> str:
    """Not now (quiet hours, send window, frequency cap): wait for `until`, never dropped; reason recorded."""
    now = item.now
    store.move_enrollment(batch.session, item.enrollment.id, batch.token, now, step_id=step.id, due_at=until,
                          status=EnrollmentStatus.ACTIVE, attempts=item.enrollment.attempts)
    record_event(batch.session, item.contact.id, f"{step.channel}.deferred", now,
                 item.about(step, reason=reason, until=until.isoformat()))
    batch.session.commit()
    return "deferred"
