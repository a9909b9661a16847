"""Queries the send path needs: claiming due work, the delivery row's life, moving enrollments on.

Every write that matters is conditional and its row count checked: a claim is an UPDATE ... WHERE the row
is still unclaimed; a delivery is an INSERT that the unique (enrollment, step, channel) key refuses the
second time; an enrollment moves on only WHERE the caller still holds its claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from nurture.rules.decisions import consent_block
from nurture.store.models import (
    Consent,
    ConsentAction,
    Contact,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    Event,
    Subscription,
    Suppression,
)

# The send path writes through the tables' Core columns, not the ORM classes. ORM-enabled DML coerces
# every value and, by default, evaluates each UPDATE's WHERE against every object of that class in the
# session (the ~200 enrollments a batch holds): measured here, that was most of the 7 ms a message cost.
ENROLLMENT = Enrollment.__table__.c  # type: ignore[attr-defined]
DELIVERY = Delivery.__table__.c  # type: ignore[attr-defined]
CONTACT = Contact.__table__.c  # type: ignore[attr-defined]
SUPPRESSION = Suppression.__table__.c  # type: ignore[attr-defined]
NO_SYNC = {"synchronize_session": False}  # for the few ORM-entity UPDATEs left (not on the send path)

# Delivery statuses after which the step is done with, whatever happened.
# A row in one of these is done: never taken over and sent again (a bounced one was sent, then bounced).
FINAL = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED, DeliveryStatus.BOUNCED)


def _due_filter(now: datetime, columns=Enrollment) -> tuple:  # type: ignore[no-untyped-def]
    return (
        columns.status == EnrollmentStatus.ACTIVE,
        columns.due_at <= now,
        or_(columns.claimed_until.is_(None), columns.claimed_until < now),
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
        update(Enrollment.__table__).where(ENROLLMENT.id.in_(ids), *_due_filter(now, ENROLLMENT))
        .values(claim_token=token, claimed_until=lease_until)
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


def hold_claim(session: Session, enrollment_id: int, token: str, now: datetime, lease_until: datetime) -> bool:
    """The fence before any write for one enrollment: extend its lease to `lease_until` only while `token`
    still holds it unexpired. False means another worker has it now: touch nothing of it.

    A conditional UPDATE, not a read: on PostgreSQL it locks the row until the caller commits, so a claimer
    racing it waits and then finds the row leased; SQLite's BEGIN IMMEDIATE serialises the two anyway.
    The lease it writes covers the send that follows the commit.
    """
    held = session.execute(
        update(Enrollment.__table__)
        .where(ENROLLMENT.id == enrollment_id, ENROLLMENT.claim_token == token, ENROLLMENT.claimed_until >= now)
        .values(claimed_until=lease_until)
    ).rowcount
    return held == 1


def renew_claims(session: Session, token: str, now: datetime, lease_until: datetime) -> int:
    """Extend the lease of every enrollment `token` still holds (a batch's heartbeat, so a live worker
    never loses the rows it has not reached yet). Returns how many it still holds."""
    return session.execute(
        update(Enrollment.__table__).where(ENROLLMENT.claim_token == token, ENROLLMENT.claimed_until >= now)
        .values(claimed_until=lease_until)
    ).rowcount


def release(session: Session, enrollment_id: int, token: str) -> None:
    session.execute(
        update(Enrollment.__table__).where(ENROLLMENT.id == enrollment_id, ENROLLMENT.claim_token == token)
        .values(claim_token=None, claimed_until=None)
    )


def move_enrollment(session: Session, enrollment_id: int, token: str, now: datetime, *, step_id: str | None,
                    due_at: datetime | None, status: EnrollmentStatus, version: str | None = None,
                    stop_reason: str | None = None, attempts: int = 0, new_step: bool = False) -> bool:
    """Set an enrollment's next step (or end it) and release the claim — only if `token` still holds it.
    `new_step` marks the moment it reached the step (wait-for steps count from it)."""
    values = dict(step_id=step_id, due_at=due_at, status=status, attempts=attempts, stop_reason=stop_reason,
                  claim_token=None, claimed_until=None, updated_at=now)
    if version:
        values["sequence_version"] = version
    if new_step:
        values["step_entered_at"] = now
    # status == active: an enrollment stopped meanwhile (the contact left the sequence) stays stopped.
    result = session.execute(
        update(Enrollment.__table__).where(ENROLLMENT.id == enrollment_id, ENROLLMENT.claim_token == token,
                                           ENROLLMENT.status == EnrollmentStatus.ACTIVE).values(**values)
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
                  recipient: str, token: str, now: datetime,
                  status: DeliveryStatus = DeliveryStatus.SENDING, variant: str | None = None) -> Opened:
    """Write the delivery row with status "sending" (or `status`: "queued" when the send path writes a
    chunk ahead) before anything is sent.

    A row that already exists decides instead: a final one means the step is done (never send twice); a
    "retry" or "queued" one (never handed to the server) is taken over by a conditional UPDATE; a
    "sending" one was left by a worker that died mid-send, and is sent again with the same Message-ID (see
    docs/delivery.md for that window).
    """
    values = dict(contact_id=enrollment.contact_id, enrollment_id=enrollment.id,
                  sequence_id=enrollment.sequence_id, sequence_version=enrollment.sequence_version,
                  step_id=step_id, channel=channel, kind=kind, recipient=recipient,
                  claim_token=token, attempts=0, created_at=now, updated_at=now, status=status, variant=variant)
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT DO NOTHING.
    inserted = session.execute(
        _insert(session)(Delivery.__table__).values(**values)
        .on_conflict_do_nothing(index_elements=["enrollment_id", "step_id", "channel"])
        .returning(DELIVERY.id)
    ).scalar_one_or_none()
    if inserted is not None:  # ours: the row is what we just wrote (no need to read it back)
        return Opened(Delivery(id=inserted, **values), send=True)
    delivery = session.execute(
        select(Delivery).where(Delivery.enrollment_id == enrollment.id, Delivery.step_id == step_id,
                               Delivery.channel == channel)
    ).scalar_one()
    if delivery.status in FINAL:
        return Opened(delivery, send=False)
    previous = delivery.status  # "retry" or "queued", or "sending" left behind by a dead worker
    taken = session.execute(
        update(Delivery.__table__).where(DELIVERY.id == delivery.id, DELIVERY.status == previous,
                                         DELIVERY.updated_at == delivery.updated_at)
        # The variant is what this attempt sends: the same, unless the step's weights were edited meanwhile.
        .values(status=status, claim_token=token, updated_at=now, variant=variant)
    ).rowcount
    if taken:
        session.refresh(delivery)
    return Opened(delivery, send=bool(taken), interrupted=bool(taken) and previous == DeliveryStatus.SENDING)


def handed_over_before(session: Session, delivery: Delivery) -> bool:
    """Whether an earlier attempt at `delivery` was handed to the provider whole and broke off with no answer
    (TransportError.handed_over: its `<channel>.interrupted` event is on the contact's record)."""
    return session.execute(
        select(Event.id).where(Event.contact_id == delivery.contact_id, Event.delivery_id == delivery.id,
                               Event.type == f"{delivery.channel}.interrupted").limit(1)
    ).first() is not None


def provider_id_taken(session: Session, channel: str, provider_id: str, delivery_id: int) -> bool:
    """Whether another delivery has `provider_id` on record: a provider's message that is not this one's."""
    return session.execute(
        select(Delivery.id).where(Delivery.channel == channel, Delivery.provider_id == provider_id,
                                  Delivery.id != delivery_id).limit(1)
    ).first() is not None


def finish_delivery(session: Session, delivery_id: int, token: str, now: datetime, *, status: DeliveryStatus,
                    provider_id: str | None = None, error: str | None = None, attempts: int | None = None) -> bool:
    """Record a delivery's outcome, only while claim `token` still owns the row (open_delivery wrote it).
    False: a worker that took the step over after this one's lease ran out owns it now, and its record
    stands. A bounce read meanwhile (the relay had the message after all) stays, with its reason."""
    bounced = DELIVERY.status == DeliveryStatus.BOUNCED
    values: dict = dict(status=case((bounced, DELIVERY.status), else_=status), updated_at=now,
                        error=case((bounced, DELIVERY.error), else_=error[:1000] if error else None))
    if provider_id is not None:
        values["provider_id"] = provider_id
    if status == DeliveryStatus.SENT:
        values["sent_at"] = now
    if attempts is not None:
        values["attempts"] = attempts
    return session.execute(
        update(Delivery.__table__).where(DELIVERY.id == delivery_id, DELIVERY.claim_token == token).values(**values)
    ).rowcount == 1


def blocked_reason(session: Session, contact: Contact, enrollment: Enrollment, status_field: str,
                   address: str | None, transactional: bool = False) -> str | None:
    """Why this contact must not get this message right now, read fresh at send time — after the batch
    claimed it, so an unsubscribe that landed meanwhile still wins.

    `status_field` is the channel's consent column on Contact ("subscribed" means yes). A transactional
    message (one the contact asked for, like the opt-in confirmation) ignores it, never suppression.
    """
    # One query for all three facts: it runs before every message.
    enrollment_status, stop_reason, status, suppressed = session.execute(
        select(ENROLLMENT.status, ENROLLMENT.stop_reason, CONTACT[status_field], SUPPRESSION.reason)
        .select_from(Enrollment.__table__.join(Contact.__table__, CONTACT.id == ENROLLMENT.contact_id)
                     .outerjoin(Suppression.__table__, SUPPRESSION.address == (address or "")))
        .where(ENROLLMENT.id == enrollment.id)
    ).one()
    return consent_block(status_field.removesuffix("_status"), address, status, suppressed, transactional,
                         enrollment_status, stop_reason)


def suppress(session: Session, address: str, channel: str, reason: str, now: datetime) -> None:
    session.execute(
        _insert(session)(Suppression).values(address=address, channel=channel, reason=reason[:200], created_at=now)
        .on_conflict_do_nothing(index_elements=["address"])
    )


def due_count(session: Session, now: datetime) -> int:
    return session.execute(select(func.count()).select_from(Enrollment).where(*_due_filter(now))).scalar_one()


def sent_times(session: Session, contact_ids: list[int], since: datetime,
               excluded_sequences: set[str]) -> dict[int, list[datetime]]:
    """When marketing messages were sent to each of these contacts since `since` (for the frequency cap):
    one query for a whole batch."""
    rows = session.execute(
        select(DELIVERY.contact_id, DELIVERY.sent_at, DELIVERY.sequence_id)
        .where(DELIVERY.contact_id.in_(contact_ids), DELIVERY.status == DeliveryStatus.SENT, DELIVERY.sent_at >= since)
    ).all()
    times: dict[int, list[datetime]] = {contact_id: [] for contact_id in contact_ids}
    for contact_id, sent_at, sequence_id in rows:
        if sequence_id not in excluded_sequences:
            times[contact_id].append(sent_at.replace(tzinfo=UTC) if sent_at.tzinfo is None else sent_at)
    return times


def sent_to(session: Session, channel: str, recipient: str) -> bool:
    """Whether anything has been sent on `channel` to `recipient` (whichever contact holds the address)."""
    return session.execute(
        select(DELIVERY.id).where(DELIVERY.channel == channel, DELIVERY.recipient == recipient,
                                  DELIVERY.status == DeliveryStatus.SENT).limit(1)
    ).first() is not None


def opt_out_at_provider(session: Session, contact_id: int, channel: str, status_field: str, delivery_id: int,
                        reason: str, now: datetime) -> bool:
    """The provider says the recipient opted out (Twilio 21610: they replied STOP to this sender). The
    contact's consent column for `channel` becomes "unsubscribed", on the record like any opt-out. The
    address is not suppressed: the recipient may opt back in (START). Returns whether anything changed."""
    changed = session.execute(
        update(Contact).where(Contact.id == contact_id, getattr(Contact, status_field) != Subscription.UNSUBSCRIBED)
        .values({status_field: Subscription.UNSUBSCRIBED, "updated_at": now})
    ).rowcount == 1
    if changed:
        session.add(Consent(contact_id=contact_id, channel=channel, action=ConsentAction.OPT_OUT,
                            method="carrier-opt-out", delivery_id=delivery_id, consent_text=reason[:2000],
                            created_at=now))
        session.add(Event(contact_id=contact_id, type=f"{channel}.unsubscribed", delivery_id=delivery_id,
                          data={"via": "carrier-opt-out", "reason": reason}, occurred_at=now, created_at=now))
    return changed


# A provider's message states in the order they happen. The final ones share a rank, so whichever final
# report is recorded first stands; "read" (RCS/WhatsApp) can only follow "delivered".
PROVIDER_STATUS_RANK = {"accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3, "delivered": 4,
                        "undelivered": 4, "failed": 4, "canceled": 4, "read": 5}


def record_provider_status(session: Session, channel: str, provider_id: str, status: str, error_code: int | None,
                           now: datetime) -> Delivery | None:
    """Record what the provider reports about a message, unless it is older news than what is on record:
    status callbacks arrive out of order, and a late "sent" must not undo "delivered". One conditional
    UPDATE, so two callbacks racing each other cannot both win. Returns the delivery when this report was
    recorded, else None (stale, or no such message)."""
    rank = PROVIDER_STATUS_RANK[status]
    recorded = case(PROVIDER_STATUS_RANK, value=Delivery.provider_status, else_=-1)
    moved = session.execute(
        update(Delivery).where(Delivery.channel == channel, Delivery.provider_id == provider_id, recorded < rank)
        .values(provider_status=status, provider_error_code=error_code, updated_at=now), execution_options=NO_SYNC
    ).rowcount
    if not moved:
        return None
    return session.execute(
        select(Delivery).where(Delivery.channel == channel, Delivery.provider_id == provider_id)
    ).scalars().first()
