"""The queries deliverability needs: today's sends (the warm-up's count when Redis lost it), bounce and
complaint counts over the newest sends (the reputation guard), and the guard's pause rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from nurture.store.models import AlertStatus, Delivery, DeliveryStatus, Event, SendingPause

DELIVERY = Delivery.__table__.c  # type: ignore[attr-defined]
EVENT = Event.__table__.c  # type: ignore[attr-defined]
PAUSE = SendingPause.__table__.c  # type: ignore[attr-defined]
OPEN = "open"

# A send, for the guard: an email handed to the relay at least once — accepted (sent, later perhaps
# bounced) or refused at RCPT (failed, with attempts). A message that failed to render never left.
_HANDED_OVER = and_(DELIVERY.channel == "email",
                    or_(DELIVERY.sent_at.is_not(None),
                        and_(DELIVERY.status == DeliveryStatus.FAILED, DELIVERY.attempts > 0)))


@dataclass(frozen=True)
class Counts:
    """Over the newest `sends` sends (of one sequence, or all): how many bounced hard, how many complained."""

    sends: int
    bounces: int
    complaints: int


def email_sent_since(session: Session, since: datetime) -> int:
    return session.execute(select(func.count()).select_from(Delivery.__table__).where(
        DELIVERY.channel == "email", DELIVERY.sent_at >= since)).scalar_one()


def email_sends_total(session: Session) -> int:
    return session.execute(select(func.count()).select_from(Delivery.__table__).where(_HANDED_OVER)).scalar_one()


def _flags() -> object:
    """Per delivery: whether it bounced hard, whether its recipient complained (events, counted once)."""
    return (select(EVENT.delivery_id,
                   func.max(case((EVENT.type == "email.bounced", 1), else_=0)).label("bounced"),
                   func.max(case((EVENT.type == "email.complained", 1), else_=0)).label("complained"))
            .where(EVENT.type.in_(("email.bounced", "email.complained")), EVENT.delivery_id.is_not(None))
            .group_by(EVENT.delivery_id).subquery())


def judged_from(session: Session) -> int:
    """Sends after this delivery id count: those since the last resume (0: all)."""
    return session.execute(select(func.max(PAUSE.resumed_after))).scalar_one() or 0


def overall_counts(session: Session, window: int, after: int = 0) -> Counts:
    """Over the newest `window` sends after delivery id `after`. Newest by id: the primary key's index
    reads them without a sort."""
    recent = (select(DELIVERY.id).where(_HANDED_OVER, DELIVERY.id > after).order_by(DELIVERY.id.desc())
              .limit(window).subquery())
    flags = _flags()
    row = session.execute(
        select(func.count(), func.coalesce(func.sum(flags.c.bounced), 0),  # type: ignore[attr-defined]
               func.coalesce(func.sum(flags.c.complained), 0))  # type: ignore[attr-defined]
        .select_from(recent.outerjoin(flags, flags.c.delivery_id == recent.c.id))  # type: ignore[attr-defined]
    ).one()
    return Counts(int(row[0]), int(row[1]), int(row[2]))


def counts_by_sequence(session: Session, window: int, after: int = 0) -> dict[str, Counts]:
    """Each sequence over its own newest `window` sends after `after` (a window function: one pass)."""
    ranked = select(DELIVERY.id, DELIVERY.sequence_id, func.row_number().over(
        partition_by=DELIVERY.sequence_id, order_by=DELIVERY.id.desc()).label("n")).where(
        _HANDED_OVER, DELIVERY.id > after).subquery()
    flags = _flags()
    rows = session.execute(
        select(ranked.c.sequence_id, func.count(), func.coalesce(func.sum(flags.c.bounced), 0),  # type: ignore[attr-defined]
               func.coalesce(func.sum(flags.c.complained), 0))  # type: ignore[attr-defined]
        .select_from(ranked.outerjoin(flags, flags.c.delivery_id == ranked.c.id))  # type: ignore[attr-defined]
        .where(ranked.c.n <= window).group_by(ranked.c.sequence_id).order_by(ranked.c.sequence_id)
    ).all()
    return {row[0]: Counts(int(row[1]), int(row[2]), int(row[3])) for row in rows}


def open_pause(session: Session) -> SendingPause | None:
    return session.execute(select(SendingPause).where(PAUSE.open_key == OPEN)).scalar_one_or_none()


def is_paused(session: Session) -> bool:
    return session.execute(select(PAUSE.id).where(PAUSE.open_key == OPEN)).first() is not None


def pause(session: Session, values: dict) -> bool:
    """Open a pause unless one is open (the unique key decides a race). Returns whether this call did."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    return session.execute(
        insert(SendingPause.__table__).values(open_key=OPEN, **values)
        .on_conflict_do_nothing(index_elements=["open_key"]).returning(PAUSE.id)
    ).scalar_one_or_none() is not None


def resume(session: Session, now: datetime, by: str) -> SendingPause | None:
    """Close the open pause; the row stays as history. None when nothing was paused."""
    paused = open_pause(session)
    if paused is None:
        return None
    newest = session.execute(select(func.max(DELIVERY.id))).scalar_one() or 0
    session.execute(update(SendingPause.__table__).where(PAUSE.id == paused.id, PAUSE.open_key == OPEN)
                    .values(open_key=None, resumed_at=now, resumed_by=by[:320], resumed_after=newest))
    return paused


def recent_pauses(session: Session, limit: int = 10) -> list[SendingPause]:
    return list(session.execute(select(SendingPause).order_by(PAUSE.id.desc()).limit(limit)).scalars())


def pending_pause_alerts(session: Session) -> list[SendingPause]:
    return list(session.execute(select(SendingPause).where(PAUSE.alert_status == AlertStatus.PENDING)
                                .order_by(PAUSE.id)).scalars())


def take_pause_alert(session: Session, pause_id: int) -> bool:
    """Claim the alert of one pause (conditional UPDATE: one owner email per pause, whoever sends it)."""
    return session.execute(update(SendingPause.__table__).where(
        PAUSE.id == pause_id, PAUSE.alert_status == AlertStatus.PENDING)
        .values(alert_status=AlertStatus.SENDING)).rowcount == 1


def pause_alert_done(session: Session, pause_id: int, status: AlertStatus, error: str | None = None) -> None:
    session.execute(update(SendingPause.__table__).where(PAUSE.id == pause_id)
                    .values(alert_status=status, alert_error=error[:1000] if error else None))
