"""The queries the email providers' webhooks need (nurture.people.provider_events decides what they mean)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from nurture.store.claims import NO_SYNC, PROVIDER_STATUS_RANK
from nurture.store.models import Delivery, ProviderReceipt

RECEIPT = ProviderReceipt.__table__  # type: ignore[attr-defined]
# An email provider's news in the order it happens: "opened" can only follow "delivered" (a late delivery
# report after the open changes nothing). Bounces and complaints are not statuses here: they go through
# nurture.people.bounces, which moves the delivery itself to `bounced`.
EMAIL_STATUS_RANK = {**PROVIDER_STATUS_RANK, "opened": 5}


def first_receipt(session: Session, key: str, now: datetime) -> bool:
    """Record that this event (or signing token) was taken in; False when it was before (a retry or a
    replay). The unique key decides, so two copies racing each other cannot both pass."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    return session.execute(
        insert(RECEIPT).values(key=key[:200], received_at=now)
        .on_conflict_do_nothing(index_elements=["key"]).returning(RECEIPT.c.id)
    ).scalar_one_or_none() is not None


def email_by_provider_id(session: Session, provider_ids: list[str]) -> int | None:
    """The email delivery whose recorded provider id (the Message-ID, or the relay's id) is one of these."""
    if not provider_ids:
        return None
    return session.execute(
        select(Delivery.id).where(Delivery.channel == "email", Delivery.provider_id.in_(provider_ids)).limit(1)
    ).scalar_one_or_none()


def record_email_status(session: Session, delivery_id: int, status: str, now: datetime) -> bool:
    """Record the provider's news of an email unless it is older than what is on record (webhooks arrive
    out of order and are retried). One conditional UPDATE; returns whether it was recorded."""
    recorded = case(EMAIL_STATUS_RANK, value=Delivery.provider_status, else_=-1)
    return session.execute(
        update(Delivery).where(Delivery.id == delivery_id, recorded < EMAIL_STATUS_RANK[status])
        .values(provider_status=status, updated_at=now), execution_options=NO_SYNC
    ).rowcount == 1
