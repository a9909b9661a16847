"""The second half of the send path: a chunk of messages that may go, written as `queued` delivery rows in
one statement, then sent one by one over the batch's connection, each outcome recorded as it comes.

`nurture.delivery.dispatch` decides what each enrollment of a chunk needs and hands the sends here. A row
must say `sending` on disk before its send (else a crash could not be told from a step never tried), and
a message's outcome must be on disk before the next message's clock reading (a batch that stalls there
must not hand over a step it has sent as if it had not). Both are kept in one transaction a message: a
sent message's record is committed with the next message's `sending` mark (docs/delivery.md, "One
message" and "What it costs"), on the DBAPI connection, its parameters bound before the lock is taken.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import Any, Protocol, runtime_checkable

from sqlmodel import Session

from nurture.content.rendering import RenderError
from nurture.delivery import deliverability
from nurture.delivery.outcomes import (
    Batch,
    Item,
    Row,
    Send,
    advance,
    fail,
    heartbeat,
    moved_on,
    sent_through_session,
    transport_failed,
    wait,
)
from nurture.delivery.transports import TransportError
from nurture.rules.sequence import Step
from nurture.store import claims as store
from nurture.store import sending

log = logging.getLogger("nurture.delivery.dispatch")


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
        if opened.interrupted or (opened.delivery.attempts and store.handed_over_before(session, opened.delivery)):
            send.maybe_sent_since = opened.delivery.created_at
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
    ahead: Ahead | None = None  # the next message, composed while the server took this one in


@dataclass(frozen=True)
class Ahead:
    """A message composed before its turn, for the delivery `delivery_id` (see _compose_ahead)."""

    delivery_id: int
    message: Any


@runtime_checkable
class Overlapping(Protocol):
    """A transport whose send comes in two parts (SMTP): `start` hands the message over, `finish` waits for
    the answer. Between them the send path composes the next message, instead of idling while the server
    takes this one in. Once the answer is in, `announce` gives the server the next message's envelope to
    read while the send path writes this one's record and the next one's `sending` mark; the message
    itself still goes only in its own `start`, after its mark (docs/delivery.md, step 5)."""

    def start(self, message: Any, time_left: float | None = None) -> None: ...

    def finish(self) -> str: ...

    def announce(self, message: Any, time_left: float | None = None) -> None: ...


@cache
def _overlaps(kind: type) -> bool:
    """Whether a transport class is Overlapping, asked once per class: isinstance against a runtime-checkable
    Protocol looks its methods up on every call (~2% of a worker's CPU, bench/README.md, P1)."""
    return issubclass(kind, Overlapping)


def _send_all(batch: Batch, ready: list[Send]) -> list[str]:
    """Send the chunk's messages in turn. A message's record and the next one's `sending` mark share a
    transaction (_record_and_send), so a message costs one transaction, not two; the record is still on
    disk before the next clock reading. Where they cannot share one (the next message is held back; the
    outcome was not a plain `sent`), each is written alone, as before."""
    outcomes: list[str] = []
    accepted: Accepted | None = None
    for place, send in enumerate(ready):
        upcoming = ready[place + 1] if place + 1 < len(ready) else None
        if accepted is not None and deliverability.held_back(batch, send, accepted.item.now) is None:
            previous, result = _record_and_send(batch, accepted, send, upcoming)
        else:
            previous = [] if accepted is None else [_record_alone(batch, accepted)]
            result = _send_one(batch, send, upcoming)
        outcomes += previous
        accepted = result if isinstance(result, Accepted) else None
        if isinstance(result, str):
            outcomes.append(result)
    if accepted is not None:
        outcomes.append(_record_alone(batch, accepted))
    return outcomes


def _send_one(batch: Batch, send: Send, upcoming: Send | None = None) -> str | Accepted:
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
        return _deliver(batch, item, send, delivery, upcoming)  # "sending" is on disk before the transport is called
    except Exception:
        # A bug, or the database going away. The claim expires and a later tick retries the row.
        session.rollback()
        log.exception("enrollment %s: unexpected error; left for the next tick", item.enrollment.id)
        return "error"


def _record_and_send(batch: Batch, accepted: Accepted, send: Send,
                     upcoming: Send | None = None) -> tuple[list[str], str | Accepted]:
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
        ahead = accepted.ahead
        composed = ahead.message if ahead is not None and ahead.delivery_id == delivery.id else None
        return previous, _deliver(batch, item, send, delivery, upcoming, composed)
    except Exception:
        batch.session.rollback()
        log.exception("enrollment %s: unexpected error; left for the next tick", item.enrollment.id)
        return previous, "error"


def _claim_lost(batch: Batch, item: Item) -> str:
    log.warning("enrollment %s: claim %s was taken over; left to its new holder", item.enrollment.id, batch.token)
    return "claim-lost"


def _deliver(batch: Batch, item: Item, send: Send, delivery: Row, upcoming: Send | None = None,
             composed: Any = None) -> str | Accepted:
    """Compose (unless `composed` already) and send. An accepted message comes back with its record bound,
    to be written with the next message's mark, and with `upcoming` composed while the server took this
    one in; any other outcome is written (and committed) here."""
    session = batch.session
    try:
        message = composed if composed is not None else \
            send.channel.compose(batch.rt, item.contact, item.sequence, send.step, delivery.id, item.now)
    except RenderError as exc:
        outcome = fail(batch, item, send.step, delivery.id, str(exc))
        session.commit()
        return outcome
    transport, ahead = batch.transport(send.channel), None
    found = _found_at_provider(batch, send, delivery, transport, message)
    time_left = batch.time_left(batch.rt.clock())  # (after the question to the provider, if one was asked)
    try:
        if found is not None:  # the earlier attempt's message arrived: it is recorded, not sent again
            provider_id = found
        elif upcoming is not None and upcoming.channel is send.channel and _overlaps(type(transport)):
            transport.start(message, time_left)
            ahead = _compose_ahead(batch, upcoming, item.now)
            provider_id = transport.finish()
            if ahead is not None:
                transport.announce(ahead.message, time_left)
        else:
            provider_id = transport.send(message, time_left)
    except TransportError as exc:
        outcome = transport_failed(batch, item, send.step, delivery, exc)
        session.commit()
        return outcome
    # `locale`: only when a localized template was used, so `why` can say which language went out.
    extra: dict[str, Any] = {"message_id": message.message_id, **({"locale": message.locale} if message.locale else {})}
    if found is not None:
        extra["found"] = "the provider had the earlier attempt's message: recorded, not sent again"
    if send.step.set_stage:  # the stage change runs through the session (its events, its triggers)
        outcome = sent_through_session(batch, item, send.step, delivery, provider_id, extra)
        session.commit()
        return outcome
    return Accepted(item, delivery, _sent_record(batch, item, send.step, delivery, provider_id, extra), ahead)


def _found_at_provider(batch: Batch, send: Send, delivery: Row, transport: Any, message: Any) -> str | None:
    """For a message an earlier attempt may have delivered (Send.maybe_sent_since): the provider's id of
    that message, when the transport can look it up (SmsTransport.find_sent; email has no such lookup,
    its repeat carries the same Message-ID) and finds one no other delivery has on record. None sends it
    again, as when the lookup fails: nothing due is dropped for a question the provider did not answer."""
    find = getattr(transport, "find_sent", None)
    if send.maybe_sent_since is None or find is None:
        return None
    try:
        found = find(message, send.maybe_sent_since, batch.time_left(batch.rt.clock()))
    except TransportError as exc:
        log.warning("delivery %s: %s; sending it again", delivery.id, exc)
        return None
    if found is None:
        return None
    with Session(batch.rt.db) as session:  # a read of its own: the batch's session holds no transaction here
        if store.provider_id_taken(session, send.step.channel, found, delivery.id):
            return None
    log.info("delivery %s: the earlier attempt's message arrived (%s); recorded, not sent again", delivery.id, found)
    return found


def _compose_ahead(batch: Batch, upcoming: Send, now: datetime) -> Ahead | None:
    """The next message of the chunk, composed while the server takes this one in (the worker would only
    wait; bench/README.md, P1). Composing reads and writes nothing: it is the same message it would be in
    its turn, but for its Date header, which says `now`, this message's instant, a few milliseconds before
    its own clock reading (its records keep their own). Its `sending` mark and fence still come first: if
    the lease has run out by then, or it is held back, this is thrown away. Any error is left for its turn,
    where it is recorded as it always is."""
    if upcoming.delivery is None or upcoming.delivery.id is None:
        return None
    item = upcoming.item
    try:
        message = upcoming.channel.compose(batch.rt, item.contact, item.sequence, upcoming.step,
                                           upcoming.delivery.id, now)
    except Exception:  # noqa: BLE001 (composed again in its turn, which records what is wrong)
        return None
    return Ahead(upcoming.delivery.id, message)


def _sent_record(batch: Batch, item: Item, step: Step, delivery: Row, provider_id: str,
                 extra: dict[str, str]) -> sending.SentRecord:
    """Everything a plain `sent` writes, computed and bound now, before its transaction takes the lock:
    the event's JSON, the next step (engine.next_due), every parameter through its bind processor."""
    params, completed = moved_on(item, step, item.now)
    event = sending.event_params(item.contact.id, f"{step.channel}.sent", item.about(step, **extra))
    done = sending.event_params(item.contact.id, "sequence.completed", {"sequence": item.sequence.id})
    return batch.writes.sent_record(delivery.id, batch.token, item.now, provider_id, event, params,
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
