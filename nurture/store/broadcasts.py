"""Broadcasts' SQL: their rows, writing their enrollments a page at a time, cancelling, and the figures
`plan` and the progress line need (docs/broadcasts.md).

Exactly once is not decided here but where it always is: an enrollment is unique per contact × sequence ×
entry (so writing a page twice, or from two workers, adds nothing), and a delivery per enrollment × step ×
channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ARRAY, Integer, any_, cast, exists, func, literal, select, text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from nurture.store.models import (
    Broadcast,
    Contact,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    Suppression,
)

BROADCAST = Broadcast.__table__.c  # type: ignore[attr-defined]
ENROLLMENT = Enrollment.__table__.c  # type: ignore[attr-defined]
DELIVERY = Delivery.__table__.c  # type: ignore[attr-defined]
CONTACT = Contact.__table__.c  # type: ignore[attr-defined]
SUPPRESSION = Suppression.__table__.c  # type: ignore[attr-defined]

DRAFT, STARTED, CANCELLED = "draft", "started", "cancelled"


def by_key(session: Session, key: str) -> Broadcast | None:
    return session.execute(select(Broadcast).where(BROADCAST.key == key)).scalar_one_or_none()


def every(session: Session) -> list[Broadcast]:
    return list(session.execute(select(Broadcast).order_by(BROADCAST.created_at.desc(), BROADCAST.id.desc()))
                .scalars())


def start(session: Session, broadcast_id: int, version: str, send_at: datetime, by: str, now: datetime) -> bool:
    """Draft -> started, only from draft and only for the version the caller checked (a test send was made
    for it): two starts at once, or a start racing an edit, make one start. False: nothing changed."""
    return session.execute(
        update(Broadcast.__table__).where(BROADCAST.id == broadcast_id, BROADCAST.status == DRAFT,
                                          BROADCAST.version == version)
        .values(status=STARTED, send_at=send_at, started_at=now, started_by=by, updated_at=now)
    ).rowcount == 1


def to_materialise(session: Session, now: datetime) -> list[Broadcast]:
    """Started broadcasts whose time has come and whose enrollments are not all written yet."""
    return list(session.execute(
        select(Broadcast).where(BROADCAST.status == STARTED, BROADCAST.materialised_at.is_(None),
                                BROADCAST.send_at <= now).order_by(BROADCAST.send_at)
    ).scalars())


# Executed with a list of rows (SQLAlchemy's "insertmanyvalues": multi-row INSERTs, compiled once): a
# `.values([...])` of a thousand rows was compiled anew for every page, most of a page's CPU time.
_WRITE = {
    dialect: insert_(Enrollment.__table__)
    .on_conflict_do_nothing(index_elements=["contact_id", "sequence_id", "entry"]).returning(ENROLLMENT.id)
    for dialect, insert_ in (("sqlite", sqlite_insert),)
}


def timezones(session: Session, contact_ids: list[int]) -> dict[int, str | None]:
    return dict(session.execute(select(CONTACT.id, CONTACT.timezone).where(CONTACT.id.in_(contact_ids))).all())


def write_enrollments(session: Session, sequence_id: str, version: str, due: dict[int, datetime],
                      now: datetime) -> int:
    """One enrollment per contact in `due` (contact id -> when it falls due), at the broadcast's one step:
    one statement; a contact already enrolled (a page written before, by this start or another) is left
    as it is. Returns how many were new."""
    if not due:
        return 0
    rows = [dict(contact_id=cid, sequence_id=sequence_id, sequence_version=version, entry=1, step_id="send",
                 due_at=at, status=EnrollmentStatus.ACTIVE, step_entered_at=now, attempts=0,
                 created_at=now, updated_at=now) for cid, at in due.items()]
    if session.get_bind().dialect.name == "postgresql":
        return _write_postgresql(session, sequence_id, version, due, now)
    return len(session.connection().execute(_WRITE["sqlite"], rows).all())


# PostgreSQL: the page as two arrays, one short statement. The multi-row INSERT above, a thousand rows of
# twelve parameters, is a statement psycopg parses anew for every page (too long for its cache): measured,
# that was 0.28 s of client CPU a page, three quarters of writing one.
_WRITE_PG = text(
    "INSERT INTO enrollment (contact_id, sequence_id, sequence_version, entry, step_id, due_at, status,"
    " step_entered_at, attempts, created_at, updated_at)"
    " SELECT c, :sequence_id, :version, 1, 'send', d, 'active', :now, 0, :now, :now"
    " FROM unnest(CAST(:ids AS integer[]), CAST(:dues AS timestamp[])) AS page(c, d)"
    " ON CONFLICT (contact_id, sequence_id, entry) DO NOTHING RETURNING id")


def _write_postgresql(session: Session, sequence_id: str, version: str, due: dict[int, datetime],
                      now: datetime) -> int:
    naive = [at.astimezone(UTC).replace(tzinfo=None) for at in due.values()]  # as UTCDateTime stores them
    return len(session.execute(_WRITE_PG, {"ids": list(due), "dues": naive, "sequence_id": sequence_id,
                                           "version": version, "now": now.astimezone(UTC).replace(tzinfo=None)}
                               ).all())


def move_cursor(session: Session, broadcast_id: int, to: int, now: datetime) -> None:
    """Record that members up to contact id `to` are written; never moves back (two writers may race)."""
    session.execute(update(Broadcast.__table__)
                    .where(BROADCAST.id == broadcast_id, BROADCAST.materialised_to < to)
                    .values(materialised_to=to, updated_at=now))


def finish_materialising(session: Session, broadcast_id: int, now: datetime) -> None:
    session.execute(update(Broadcast.__table__)
                    .where(BROADCAST.id == broadcast_id, BROADCAST.materialised_at.is_(None))
                    .values(materialised_at=now, updated_at=now))


def cancel(session: Session, broadcast_id: int, sequence_id: str, now: datetime) -> int:
    """Cancel: the row says so, and every enrollment still waiting stops (a batch holding one skips it at
    its consent check, which reads the enrollment's status). Returns how many enrollments stopped."""
    session.execute(update(Broadcast.__table__)
                    .where(BROADCAST.id == broadcast_id, BROADCAST.status.in_((DRAFT, STARTED)))
                    .values(status=CANCELLED, cancelled_at=now, updated_at=now))
    return session.execute(
        update(Enrollment.__table__)
        .where(ENROLLMENT.sequence_id == sequence_id, ENROLLMENT.status == EnrollmentStatus.ACTIVE)
        .values(status=EnrollmentStatus.STOPPED, stop_reason="broadcast cancelled", due_at=None, updated_at=now)
    ).rowcount


@dataclass(frozen=True)
class Progress:
    """Where a started broadcast stands: its deliveries by status, and its enrollments still waiting
    (deferred by window, quiet hours or cap, or not reached yet)."""

    written: int = 0
    deliveries: dict[str, int] | None = None
    waiting: int = 0

    def count(self, status: str) -> int:
        return (self.deliveries or {}).get(status, 0)


def progress(session: Session, sequence_id: str) -> Progress:
    by_status = dict(session.execute(
        select(DELIVERY.status, func.count()).where(DELIVERY.sequence_id == sequence_id).group_by(DELIVERY.status)
    ).all())
    enrollments = dict(session.execute(
        select(ENROLLMENT.status, func.count()).where(ENROLLMENT.sequence_id == sequence_id)
        .group_by(ENROLLMENT.status)
    ).all())
    return Progress(written=sum(enrollments.values()), deliveries={str(k): v for k, v in by_status.items()},
                    waiting=enrollments.get(EnrollmentStatus.ACTIVE, 0))


# --- plan ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Member:
    """What the worker's decisions look at for one member, read a page at a time: its address, zone and
    consent, the suppression of its address on the broadcast's channel, whether it was sent already."""

    id: int
    email: str
    phone: str | None
    timezone: str | None
    statuses: dict[str, str]  # consent column -> status
    suppressed: str | None = None  # the reason its address (on the broadcast's channel) is suppressed
    done: bool = False  # this broadcast was sent to it (or is being sent right now)


def _among(session: Session, column: ColumnElement, ids: list[int]) -> ColumnElement:
    """`column` is one of `ids`. On PostgreSQL one array parameter (= ANY): an IN list of a thousand is
    rendered and parsed anew for every page (measured: most of plan's client CPU there)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(cast(literal(ids, ARRAY(Integer)), ARRAY(Integer)))
    return column.in_(ids)


def members(session: Session, contact_ids: list[int], channel: str, sequence_id: str) -> list[Member]:
    """The page's members, each with what plan decides on: one query."""
    address = CONTACT.phone if channel == "sms" else CONTACT.email
    done = exists().where(DELIVERY.contact_id == CONTACT.id, DELIVERY.sequence_id == sequence_id,
                          DELIVERY.status.in_((DeliveryStatus.SENT, DeliveryStatus.SENDING)))
    rows = session.execute(
        select(CONTACT.id, CONTACT.email, CONTACT.phone, CONTACT.timezone, CONTACT.email_status, CONTACT.sms_status,
               SUPPRESSION.reason, done)
        .select_from(Contact.__table__.outerjoin(Suppression.__table__, SUPPRESSION.address == address))
        .where(_among(session, CONTACT.id, contact_ids)).order_by(CONTACT.id)
    ).all()
    return [Member(r[0], r[1], r[2], r[3], {"email_status": str(r[4]), "sms_status": str(r[5])}, r[6], bool(r[7]))
            for r in rows]


def sent_times(session: Session, contact_ids: list[int], since: datetime,
               excluded_sequences: set[str]) -> dict[int, list[datetime]]:
    """claims.sent_times (the frequency cap's input), with the page's ids as one parameter on PostgreSQL."""
    rows = session.execute(
        select(DELIVERY.contact_id, DELIVERY.sent_at, DELIVERY.sequence_id)
        .where(_among(session, DELIVERY.contact_id, contact_ids), DELIVERY.status == DeliveryStatus.SENT,
               DELIVERY.sent_at >= since)
    ).all()
    times: dict[int, list[datetime]] = {contact_id: [] for contact_id in contact_ids}
    for contact_id, sent_at, sequence_id in rows:
        if sequence_id not in excluded_sequences:
            times[contact_id].append(aware(sent_at))  # type: ignore[arg-type]
    return times


def aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value
