"""The queries of a GDPR erasure and access request (people.erasure): the digest list, everything on
record about one contact, and the UPDATEs that take the personal data out of the rows kept for counts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from nurture.store.models import (
    Alert,
    Consent,
    Delivery,
    ErasedAddress,
    Event,
    Suppression,
    SuppressionChange,
    WebhookMessage,
    WebhookStatus,
)


def is_erased(session: Session, digest: str) -> bool:
    return session.scalars(select(ErasedAddress.id).where(ErasedAddress.digest == digest)).first() is not None


def erased_among(session: Session, digests: list[str]) -> set[str]:
    """Which of these digests are on the erased list (an import batch's addresses, in one query)."""
    if not digests:
        return set()
    return set(session.scalars(select(ErasedAddress.digest).where(ErasedAddress.digest.in_(digests))))  # type: ignore[attr-defined]


def add_erased(session: Session, digest: str, now: datetime) -> None:
    """Keep the digest (once: erasing the same address twice keeps one row)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(ErasedAddress).values(digest=digest, created_at=now)
                    .on_conflict_do_nothing(index_elements=["digest"]))


def lift_erased(session: Session, digest: str) -> bool:
    """The person came back and asked to be added again: False when the digest was not on the list."""
    return session.execute(delete(ErasedAddress).where(ErasedAddress.digest == digest)).rowcount == 1


def deliveries_of(session: Session, contact_id: int) -> list[Delivery]:
    return list(session.scalars(select(Delivery).where(Delivery.contact_id == contact_id).order_by(Delivery.id)))


def alerts_about(session: Session, contact_id: int) -> list[Alert]:
    return list(session.scalars(select(Alert).where(Alert.contact_id == contact_id).order_by(Alert.id)))


def suppressions_of(session: Session, addresses: Iterable[str]) -> list[Suppression]:
    wanted = [a for a in addresses if a]
    return list(session.scalars(select(Suppression).where(Suppression.address.in_(wanted)))) if wanted else []  # type: ignore[attr-defined]


def events_of(session: Session, contact_id: int) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.contact_id == contact_id).order_by(Event.id)))


def scrub_event(session: Session, event_id: int, data: dict) -> None:
    """Replace an event's data (the caller keeps what is no one's personal data) and drop its idempotency
    key, which the caller of POST /api/events chose and may have built from an address or an order."""
    session.execute(update(Event).where(Event.id == event_id).values(data=data, idempotency_key=None))


def scrub_rows(session: Session, contact_id: int, addresses: Iterable[str]) -> None:
    """Take the person out of the rows kept for counts: a delivery's recipient and provider error (which
    quotes the address), a consent record's IP and user agent, an alert's text; their addresses off the
    suppression list (the digest takes its place)."""
    session.execute(update(Delivery).where(Delivery.contact_id == contact_id).values(recipient="", error=None))
    session.execute(update(Consent).where(Consent.contact_id == contact_id).values(ip=None, user_agent=None))
    session.execute(update(Alert).where(Alert.contact_id == contact_id)
                    .values(subject="(erased)", body="(erased at the person's request)"))
    wanted = [a for a in addresses if a]
    if wanted:
        session.execute(delete(Suppression).where(Suppression.address.in_(wanted)))  # type: ignore[attr-defined]
        # The list's history keeps who added or removed an entry and why; the address itself goes.
        session.execute(update(SuppressionChange).where(SuppressionChange.address.in_(wanted))  # type: ignore[attr-defined]
                        .values(address=ERASED_ADDRESS_TEXT))
    _scrub_webhook_messages(session, contact_id)


ERASED_ADDRESS_TEXT = "(erased)"


ERASED_BODY = '{"erased": true}'


def _scrub_webhook_messages(session: Session, contact_id: int) -> None:
    """Webhooks out keep each message's body as it was written, with the contact's address and names in it:
    the body goes, and a message still waiting is never sent (failed, saying why). The row and its attempts
    stay for the endpoint's log."""
    pending = WebhookMessage.status == WebhookStatus.PENDING
    session.execute(
        update(WebhookMessage)
        .where(WebhookMessage.event_id.in_(select(Event.id).where(Event.contact_id == contact_id)))  # type: ignore[union-attr]
        .values(body=ERASED_BODY,
                status=case((pending, WebhookStatus.FAILED), else_=WebhookMessage.status),
                last_error=case((pending, "not sent: the person was erased"), else_=WebhookMessage.last_error),
                next_attempt_at=case((pending, None), else_=WebhookMessage.next_attempt_at)))
