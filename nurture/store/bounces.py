"""The queries that applying a bounce or a complaint needs (nurture.people.bounces decides what they mean)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from nurture.store.models import Delivery, DeliveryStatus, Event

EVENT = Event.__table__.c  # type: ignore[attr-defined]
DELIVERY = Delivery.__table__.c  # type: ignore[attr-defined]


def record_once(session: Session, key: str, contact_id: int, type_: str, data: dict, delivery_id: int,
                now: datetime) -> bool:
    """Append an event unless one with the same idempotency key is on record (a mailbox read twice, a
    relay that delivers the same bounce again). Returns whether this call recorded it."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    inserted = session.execute(
        insert(Event.__table__).values(contact_id=contact_id, type=type_, data=data, idempotency_key=key[:200],
                                       delivery_id=delivery_id, occurred_at=now, created_at=now)
        .on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(EVENT.id)
    ).scalar_one_or_none()
    return inserted is not None


def count_events_since(session: Session, contact_id: int, type_: str, since: datetime) -> int:
    return session.execute(select(func.count()).select_from(Event.__table__).where(
        EVENT.contact_id == contact_id, EVENT.type == type_, EVENT.occurred_at >= since)).scalar_one()


def mark_bounced(session: Session, delivery_id: int, reason: str, now: datetime) -> bool:
    """A sent message came back: the delivery becomes `bounced`. From `sent`, or from `sending`: a fast
    relay's bounce can be read before the send path records its outcome, which then keeps `bounced` (see
    store.sending.record_sent). Failed or skipped ones never went out."""
    return session.execute(
        update(Delivery.__table__).where(DELIVERY.id == delivery_id,
                                         DELIVERY.status.in_([DeliveryStatus.SENT, DeliveryStatus.SENDING]))
        .values(status=DeliveryStatus.BOUNCED, error=reason[:1000], updated_at=now)
    ).rowcount == 1
