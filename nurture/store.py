"""Queries the send path needs: claiming due work, the delivery row's life, moving enrollments on.

Every write that matters is conditional and its row count checked: a claim is an UPDATE ... WHERE the row
is still unclaimed; a delivery is an INSERT that the unique (enrollment, step, channel) key refuses the
second time; an enrollment moves on only WHERE the caller still holds its claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from nurture.models import Contact, Delivery, Enrollment, Suppression

# Delivery statuses after which the step is done with, whatever happened.
FINAL = ("sent", "failed", "skipped")


def _due_filter(now: datetime) -> tuple:
    return (
        Enrollment.status == "active",
        Enrollment.due_at <= now,
        or_(Enrollment.claimed_until.is_(None), Enrollment.claimed_until < now),
    )


def claim_due(session: Session, now: datetime, token: str, lease_until: datetime, limit: int) -> int:
    """Claim up to `limit` due, unclaimed enrollments for `token`. Returns how many this call got.

    Two statements in one transaction, not UPDATE ... WHERE id IN (SELECT ... LIMIT): PostgreSQL may run
    such a subquery more than once and claim past the limit. The SELECT locks its rows (SKIP LOCKED: a
    concurrent claimer takes other rows instead of waiting); SQLite's BEGIN IMMEDIATE serialises claimers.
    The UPDATE repeats the conditions, so a row claimed by someone else in between is not taken twice.
    """
    ids = session.execute(
        select(Enrollment.id).where(*_due_filter(now)).order_by(Enrollment.due_at).limit(limit)
        .with_for_update(skip_locked=True)
    ).scalars().all()
    if not ids:
        return 0
    result = session.execute(
        update(Enrollment).where(Enrollment.id.in_(ids), *_due_filter(now))
        .values(claim_token=token, claimed_until=lease_until)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def claimed(session: Session, token: str, now: datetime) -> list[tuple[Enrollment, Contact]]:
    """The enrollments `token` still holds (its lease not expired), with their contacts."""
    rows = session.execute(
        select(Enrollment, Contact)
        .join(Contact, Contact.id == Enrollment.contact_id)
        .where(Enrollment.claim_token == token, Enrollment.claimed_until >= now)
        .order_by(Enrollment.due_at)
    )
    return [(enrollment, contact) for enrollment, contact in rows]


def release(session: Session, enrollment_id: int, token: str) -> None:
    session.execute(
        update(Enrollment).where(Enrollment.id == enrollment_id, Enrollment.claim_token == token)
        .values(claim_token=None, claimed_until=None)
    )


def move_enrollment(session: Session, enrollment_id: int, token: str, now: datetime, *, step_id: str | None,
                    due_at: datetime | None, status: str, version: str | None = None,
                    stop_reason: str | None = None, attempts: int = 0) -> bool:
    """Set an enrollment's next step (or end it) and release the claim — only if `token` still holds it."""
    values = dict(step_id=step_id, due_at=due_at, status=status, attempts=attempts, stop_reason=stop_reason,
                  claim_token=None, claimed_until=None, updated_at=now)
    if version:
        values["sequence_version"] = version
    # status == active: an enrollment stopped meanwhile (the contact left the sequence) stays stopped.
    result = session.execute(
        update(Enrollment).where(Enrollment.id == enrollment_id, Enrollment.claim_token == token,
                                 Enrollment.status == "active").values(**values)
    )
    return result.rowcount == 1


@dataclass(frozen=True)
class Opened:
    """The delivery row for a step; `send` says whether the caller should call the transport now."""

    delivery: Delivery
    send: bool
    interrupted: bool = False  # an earlier attempt died between writing "sending" and recording the outcome


def _insert(session: Session):  # type: ignore[no-untyped-def]
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def open_delivery(session: Session, enrollment: Enrollment, step_id: str, channel: str, kind: str,
                  recipient: str, token: str, now: datetime) -> Opened:
    """Write the delivery row with status "sending" before anything is sent.

    A row that already exists decides instead: a final one means the step is done (never send twice); a
    "retry" one is taken over by a conditional UPDATE; a "sending" one was left by a worker that died
    mid-send, and is sent again with the same Message-ID (see docs/delivery.md for that window).
    """
    values = dict(contact_id=enrollment.contact_id, enrollment_id=enrollment.id,
                  sequence_id=enrollment.sequence_id, sequence_version=enrollment.sequence_version,
                  step_id=step_id, channel=channel, kind=kind, recipient=recipient, status="sending",
                  claim_token=token, attempts=0, created_at=now, updated_at=now)
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT DO NOTHING.
    inserted = session.execute(
        _insert(session)(Delivery).values(**values)
        .on_conflict_do_nothing(index_elements=["enrollment_id", "step_id", "channel"])
        .returning(Delivery.id)
    ).scalar_one_or_none()
    delivery = session.execute(
        select(Delivery).where(Delivery.enrollment_id == enrollment.id, Delivery.step_id == step_id,
                               Delivery.channel == channel)
    ).scalar_one()
    if inserted is not None:
        return Opened(delivery, send=True)
    if delivery.status in FINAL:
        return Opened(delivery, send=False)
    previous = delivery.status  # "retry", or "sending" left behind by a dead worker
    taken = session.execute(
        update(Delivery).where(Delivery.id == delivery.id, Delivery.status == previous,
                               Delivery.updated_at == delivery.updated_at)
        .values(status="sending", claim_token=token, updated_at=now)
    ).rowcount
    if taken:
        session.refresh(delivery)
    return Opened(delivery, send=bool(taken), interrupted=bool(taken) and previous == "sending")


def finish_delivery(session: Session, delivery_id: int, now: datetime, *, status: str,
                    provider_id: str | None = None, error: str | None = None, attempts: int | None = None) -> None:
    values: dict = dict(status=status, updated_at=now, error=error[:1000] if error else None)
    if provider_id is not None:
        values["provider_id"] = provider_id
    if status == "sent":
        values["sent_at"] = now
    if attempts is not None:
        values["attempts"] = attempts
    session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


def blocked_reason(session: Session, contact: Contact, enrollment: Enrollment, status_field: str,
                   address: str | None, transactional: bool = False) -> str | None:
    """Why this contact must not get this message right now, read fresh at send time — after the batch
    claimed it, so an unsubscribe that landed meanwhile still wins.

    `status_field` is the channel's consent column on Contact ("subscribed" means yes). A transactional
    message (one the contact asked for, like the opt-in confirmation) ignores it, never suppression.
    """
    enrollment_status, stop_reason = session.execute(
        select(Enrollment.status, Enrollment.stop_reason).where(Enrollment.id == enrollment.id)).one()
    if enrollment_status != "active":
        return stop_reason or f"enrollment {enrollment_status}"
    if not address:
        return f"no address for this channel ({status_field.removesuffix('_status')})"
    status = session.execute(select(getattr(Contact, status_field)).where(Contact.id == contact.id)).scalar_one()
    if status != "subscribed" and not transactional:
        channel = status_field.removesuffix("_status")
        return f"contact is {status} for {channel}" if status != "none" else f"no {channel} consent"
    suppressed = session.execute(select(Suppression.reason).where(Suppression.address == address)).scalar_one_or_none()
    return f"address suppressed: {suppressed}" if suppressed else None


def suppress(session: Session, address: str, channel: str, reason: str, now: datetime) -> None:
    session.execute(
        _insert(session)(Suppression).values(address=address, channel=channel, reason=reason[:200], created_at=now)
        .on_conflict_do_nothing(index_elements=["address"])
    )


def due_count(session: Session, now: datetime) -> int:
    return session.execute(select(func.count()).select_from(Enrollment).where(*_due_filter(now))).scalar_one()
