"""The counts the owner's overview shows: contacts by stage, waiting at and sent from each step."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlmodel import Session

from nurture.store.models import Contact, Delivery, DeliveryStatus, Enrollment, EnrollmentStatus


def contacts_by_stage(session: Session) -> dict[str, int]:
    return dict(session.execute(select(Contact.stage, func.count()).group_by(Contact.stage)).all())


def waiting_by_step(session: Session) -> dict[str, int]:
    """Active enrollments by "sequence:step" (the step each waits to be sent; "sequence:" for none)."""
    key = Enrollment.sequence_id + ":" + func.coalesce(Enrollment.step_id, "")
    return dict(session.execute(
        select(key, func.count()).where(Enrollment.status == EnrollmentStatus.ACTIVE)
        .group_by(Enrollment.sequence_id, Enrollment.step_id)
    ).all())


def sent_by_step(session: Session) -> dict[str, int]:
    """Sent deliveries by "sequence:step". A bounced message was sent too: the bounce came back after it
    (people.bounces)."""
    return dict(session.execute(
        select(Delivery.sequence_id + ":" + Delivery.step_id, func.count())
        .where(Delivery.status.in_((DeliveryStatus.SENT, DeliveryStatus.BOUNCED)))  # type: ignore[attr-defined]
        .group_by(Delivery.sequence_id, Delivery.step_id)
    ).all())


def contact_count(session: Session) -> int:
    return session.execute(select(func.count()).select_from(Contact)).scalar_one()
