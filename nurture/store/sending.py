"""The send path's hot statements, written for a chunk of a batch at a time (see docs/delivery.md).

Each statement here is built once, at import, with bind parameters: building a Core statement anew on
every call (`.values(...)`, coercing every value, generating its cache key) cost more than SQLite
running it — ~0.2-0.3 ms against ~0.005 ms — and the send path runs a handful per message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Executable, bindparam, case, exists, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlmodel import Session

from nurture.rules.decisions import consent_block
from nurture.store.models import Contact, Delivery, DeliveryStatus, Enrollment, EnrollmentStatus, Event, Suppression
from nurture.store.prepared import Bound, DriverTransactions, Prepared

ENROLLMENT = Enrollment.__table__.c  # type: ignore[attr-defined]
DELIVERY = Delivery.__table__.c  # type: ignore[attr-defined]
CONTACT = Contact.__table__.c  # type: ignore[attr-defined]
SUPPRESSION = Suppression.__table__.c  # type: ignore[attr-defined]

# A delivery row written with its chunk, before its turn to be sent. It becomes "sending" in the same
# transaction that records the message before it, so at most one row per worker is "sending" and not yet
# recorded: the one whose fate a crash leaves unknown (docs/delivery.md, "the one window").
QUEUED = DeliveryStatus.QUEUED

_START = Prepared(
    update(Delivery.__table__)
    .where(DELIVERY.id == bindparam("d_id"), DELIVERY.claim_token == bindparam("d_token"), DELIVERY.status == QUEUED,
           exists().where(ENROLLMENT.id == bindparam("e_id"), ENROLLMENT.claim_token == bindparam("d_token"),
                          ENROLLMENT.claimed_until >= bindparam("d_now")))
    .values(status=DeliveryStatus.SENDING, updated_at=bindparam("d_now"))
)

# A bounce read while the row was still `sending` (a fast relay) has made it `bounced` already: that stays,
# with its reason (a conditional value, not a WHERE: the row is still ours, and the send is recorded).
_BOUNCED_FIRST = DELIVERY.status == DeliveryStatus.BOUNCED
_SENT = Prepared(
    update(Delivery.__table__)
    .where(DELIVERY.id == bindparam("d_id"), DELIVERY.claim_token == bindparam("d_token"))
    .values(status=case((_BOUNCED_FIRST, DELIVERY.status), else_=DeliveryStatus.SENT),
            provider_id=bindparam("d_provider_id"), sent_at=bindparam("d_now"), updated_at=bindparam("d_now"),
            error=case((_BOUNCED_FIRST, DELIVERY.error), else_=None), attempts=DELIVERY.attempts + 1)
)

_ADVANCE = Prepared(
    update(Enrollment.__table__)
    # status == active: an enrollment stopped meanwhile (the contact left the sequence) stays stopped.
    .where(ENROLLMENT.id == bindparam("e_id"), ENROLLMENT.claim_token == bindparam("e_token"),
           ENROLLMENT.status == EnrollmentStatus.ACTIVE)
    .values(step_id=bindparam("e_step_id"), due_at=bindparam("e_due_at"), status=bindparam("e_status"),
            stop_reason=bindparam("e_stop_reason"), sequence_version=bindparam("e_version"), attempts=0,
            claim_token=None, claimed_until=None, updated_at=bindparam("e_now"), step_entered_at=bindparam("e_now"))
)

_EVENT = Prepared(insert(Event.__table__).values(  # type: ignore[attr-defined]
    contact_id=bindparam("v_contact_id"), type=bindparam("v_type"), data=bindparam("v_data"),
    delivery_id=bindparam("v_delivery_id"), occurred_at=bindparam("v_now"), created_at=bindparam("v_now")))

# Executed with a list of rows: SQLAlchemy's "insertmanyvalues" sends them as multi-row INSERTs with
# RETURNING, compiled once (a `.values([...])` of 50 rows was compiled anew every chunk: ~1 ms a message).
# RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT DO NOTHING; and the rows come
# back in no promised order, so each says which enrollment it belongs to.
_QUEUE = {
    dialect: insert_(Delivery.__table__).on_conflict_do_nothing(index_elements=["enrollment_id", "step_id", "channel"])
    .returning(DELIVERY.enrollment_id, DELIVERY.id)
    for dialect, insert_ in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


def _run(session: Session, statement: Executable, params: Any) -> Any:
    """Through the session's Core connection: the ORM's execute adds ~30% to a statement this small."""
    return session.connection().execute(statement, params)


def fence(session: Session, enrollment_ids: list[int], token: str, now: datetime, lease_until: datetime) -> set[int]:
    """The chunk's fence: extend the lease of those of `enrollment_ids` that `token` still holds unexpired,
    and return them. One statement for the chunk instead of one a message."""
    rows = session.execute(
        update(Enrollment.__table__)
        .where(ENROLLMENT.id.in_(enrollment_ids), ENROLLMENT.claim_token == token, ENROLLMENT.claimed_until >= now)
        .values(claimed_until=lease_until).returning(ENROLLMENT.id)
    ).scalars().all()
    return set(rows)


def queue_deliveries(session: Session, rows: list[dict]) -> dict[int, int]:
    """Insert the chunk's delivery rows (status `queued`) in one statement. Returns enrollment id -> delivery
    id for the rows written; a step that already has its row is left out (the caller looks at that row)."""
    if not rows:
        return {}
    statement = _QUEUE[session.get_bind().dialect.name]
    written = _run(session, statement, [{**row, "status": QUEUED} for row in rows]).all()
    return {enrollment_id: delivery_id for enrollment_id, delivery_id in written}


def start_sending(session: Session, delivery_id: int, enrollment_id: int, token: str, now: datetime) -> bool:
    """Mark a queued delivery `sending`, the moment before its transport call — only while `token` still
    holds the enrollment with an unexpired lease (the per-message fence). False: touch nothing of it."""
    return _START.rowcount(session, {"d_id": delivery_id, "e_id": enrollment_id, "d_token": token,
                                     "d_now": now}) == 1


def record_sent(session: Session, delivery_id: int, token: str, now: datetime, provider_id: str) -> bool:
    """`sent`, with the provider's id, only while `token` still owns the row (see claims.finish_delivery)."""
    return _SENT.rowcount(session, {"d_id": delivery_id, "d_token": token, "d_now": now,
                                    "d_provider_id": provider_id}) == 1


def advance(session: Session, enrollment_id: int, token: str, now: datetime, *, step_id: str | None,
            due_at: datetime | None, status: str, version: str, stop_reason: str | None) -> bool:
    """claims.move_enrollment for the common case (on to a new step, or completed), as one prepared
    statement."""
    return advance_by(session, token, now, advance_params(enrollment_id, step_id=step_id, due_at=due_at,
                                                          status=status, version=version, stop_reason=stop_reason))


def advance_by(session: Session, token: str, now: datetime, params: dict[str, Any]) -> bool:
    """advance, its parameters made by advance_params."""
    return _ADVANCE.rowcount(session, {"e_token": token, "e_now": now, **params}) == 1


def record_event(session: Session, contact_id: int, type_: str, now: datetime, data: dict,
                 delivery_id: int | None = None) -> None:
    """people.contacts.record_event as one prepared statement (the send path records one a message)."""
    _EVENT.execute(session, {"v_contact_id": contact_id, "v_type": type_, "v_data": data,
                             "v_delivery_id": delivery_id, "v_now": now}).close()



# Back to `queued`: a row marked `sending` with the outcome before it whose send did not start after all
# (the batch's lease ran out in between). Only while it is still ours and still `sending`.
_UNSTART = Prepared(
    update(Delivery.__table__)
    .where(DELIVERY.id == bindparam("d_id"), DELIVERY.claim_token == bindparam("d_token"),
           DELIVERY.status == DeliveryStatus.SENDING)
    .values(status=QUEUED, updated_at=bindparam("d_now"))
)


def compile_all(dialect: Dialect) -> None:
    """Compile the prepared statements for `dialect` now (see dispatch.compile_statements)."""
    for statement in (_START, _SENT, _ADVANCE, _EVENT, _UNSTART):
        statement.compile_for(dialect)


@dataclass(frozen=True)
class SentRecord:
    """What a sent message writes, bound before its transaction: the delivery `sent`, the event, the
    enrollment moved on, and `sequence.completed` when that was its last step."""

    sent: Bound
    event: Bound
    advance: Bound
    completed: Bound | None


@dataclass(frozen=True)
class Written:
    recorded: bool  # the delivery row was still ours and is `sent`
    moved: bool  # the enrollment moved on (claim held, enrollment still active)
    started: bool | None  # the next message's row is `sending` (None: none was asked for)


class Writes:
    """The send path's per-message transactions, on the batch connection's driver (store.prepared): every
    parameter bound before BEGIN, then the statements, then COMMIT."""

    def __init__(self, connection: Connection) -> None:
        self.tx = DriverTransactions(connection)

    def bind_start(self, delivery_id: int, enrollment_id: int, token: str, now: datetime) -> Bound:
        """start_sending's statement: `sending`, behind the per-message fence (claim held unexpired at `now`)."""
        return _START.bind(self.tx.dialect, {"d_id": delivery_id, "e_id": enrollment_id, "d_token": token,
                                             "d_now": now})

    def start(self, start: Bound) -> bool:
        """start_sending in a transaction of its own. False: the claim is gone; nothing was written."""
        with self.tx.transaction() as run:
            return run(start) == 1

    def unstart(self, delivery_id: int, token: str, now: datetime) -> bool:
        bound = _UNSTART.bind(self.tx.dialect, {"d_id": delivery_id, "d_token": token, "d_now": now})
        with self.tx.transaction() as run:
            return run(bound) == 1

    def sent_record(self, delivery_id: int, token: str, now: datetime, provider_id: str, event: dict[str, Any],
                    moved_on: dict[str, Any], completed: dict[str, Any] | None) -> SentRecord:
        """Bind record_sent, record_event and advance (`moved_on`: advance's keywords) for one message."""
        dialect = self.tx.dialect
        return SentRecord(
            _SENT.bind(dialect, {"d_id": delivery_id, "d_token": token, "d_now": now, "d_provider_id": provider_id}),
            _EVENT.bind(dialect, {**event, "v_delivery_id": delivery_id, "v_now": now}),
            _ADVANCE.bind(dialect, {"e_token": token, "e_now": now, **moved_on}),
            None if completed is None else _EVENT.bind(dialect, {**completed, "v_delivery_id": None, "v_now": now}))

    def record(self, record: SentRecord, start: Bound | None = None) -> Written:
        """Write a sent message's record and, in the same transaction, mark the next message `sending`
        (`start`). One commit a message instead of two (docs/delivery.md, "What it costs")."""
        with self.tx.transaction() as run:
            recorded = run(record.sent) == 1
            run(record.event)
            moved = recorded and run(record.advance) == 1
            if moved and record.completed is not None:
                run(record.completed)
            started = None if start is None else run(start) == 1
        return Written(recorded, moved, started)


def event_params(contact_id: int, type_: str, data: dict) -> dict[str, Any]:
    """An event's parameters for Writes.sent_record (its instant and delivery are the record's)."""
    return {"v_contact_id": contact_id, "v_type": type_, "v_data": data}


def advance_params(enrollment_id: int, *, step_id: str | None, due_at: datetime | None, status: str,
                   version: str, stop_reason: str | None) -> dict[str, Any]:
    """advance's parameters for Writes.sent_record (its token and instant are the record's)."""
    return {"e_id": enrollment_id, "e_step_id": step_id, "e_due_at": due_at, "e_status": status,
            "e_version": version, "e_stop_reason": stop_reason}


@dataclass(frozen=True)
class Consents:
    """What claims.blocked_reason reads for one message, read for a whole chunk in two queries: each
    enrollment's status and its contact's consent per channel, and which of the addresses are suppressed."""

    enrollments: dict[int, tuple[str, str | None, dict[str, str]]]  # id -> (status, stop reason, consents)
    suppressed: dict[str, str]  # address -> reason

    def blocked(self, enrollment_id: int, status_field: str, address: str | None, transactional: bool) -> str | None:
        """claims.blocked_reason, from what was read."""
        status, stop_reason, consents = self.enrollments[enrollment_id]
        return consent_block(status_field.removesuffix("_status"), address, consents[status_field],
                             self.suppressed.get(address or ""), transactional, status, stop_reason)


def consents(session: Session, enrollment_ids: list[int], status_fields: list[str], addresses: set[str]) -> Consents:
    """Read fresh after the chunk's fence, so an unsubscribe that landed after the claim still wins."""
    rows = session.execute(
        select(ENROLLMENT.id, ENROLLMENT.status, ENROLLMENT.stop_reason, *(CONTACT[f] for f in status_fields))
        .select_from(Enrollment.__table__.join(Contact.__table__, CONTACT.id == ENROLLMENT.contact_id))
        .where(ENROLLMENT.id.in_(enrollment_ids))
    ).all()
    suppressed = session.execute(
        select(SUPPRESSION.address, SUPPRESSION.reason).where(SUPPRESSION.address.in_(addresses))
    ).all() if addresses else []
    return Consents({row[0]: (row[1], row[2], dict(zip(status_fields, row[3:], strict=True))) for row in rows},
                    {address: reason for address, reason in suppressed})
