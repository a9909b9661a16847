"""Queries for alerts to people at the business: pending ones, claimed one at a time, their outcome, and
the body of one still waiting rewritten (a detractor's comment goes out with its alert)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, select

from nurture.store.models import Alert, AlertStatus


def pending_alerts(session: Session, now: datetime, limit: int) -> list[Alert]:
    return list(session.exec(select(Alert).where(Alert.status == AlertStatus.PENDING, Alert.send_after <= now)
                             .order_by(Alert.id).limit(limit)).all())


def take_alert(session: Session, alert_id: int) -> bool:
    """Claim one alert for sending (a conditional UPDATE: two ticks never both get it)."""
    return session.execute(update(Alert).where(Alert.id == alert_id, Alert.status == AlertStatus.PENDING)
                           .values(status=AlertStatus.SENDING)).rowcount == 1


def alert_sent(session: Session, alert_id: int, now: datetime) -> None:
    session.execute(update(Alert).where(Alert.id == alert_id).values(status=AlertStatus.SENT, sent_at=now))


def alert_not_sent(session: Session, alert_id: int, error: str, permanent: bool) -> None:
    # Back to pending when it may work later: an alert is worth a retry at the next tick.
    session.execute(update(Alert).where(Alert.id == alert_id)
                    .values(status=AlertStatus.FAILED if permanent else AlertStatus.PENDING, error=error[:1000]))


def rewrite_pending(session: Session, kind: str, body: str) -> bool:
    """Replace the body of the alert of `kind` if it has not gone out yet; False when it has (or none is)."""
    return session.execute(update(Alert).where(Alert.kind == kind, Alert.status == AlertStatus.PENDING)
                           .values(body=body)).rowcount == 1
