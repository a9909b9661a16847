"""The send path's statements run on the DBAPI cursor (nurture/store/prepared.py) store exactly what
SQLAlchemy's own execute of the same statement stores: the same bytes in every column, on SQLite and
PostgreSQL (UTC datetimes, status enums, JSON, NULLs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlmodel import Session

from nurture.store import prepared, sending
from nurture.store.models import EnrollmentStatus, UTCDateTime
from tests.helpers import add_contact, enrollment

MOMENT = datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=UTC)  # microseconds, a DST night in Europe
ON_THE_SECOND = datetime(2026, 12, 6, 19, 0, tzinfo=UTC)  # no microseconds: formats differ if done by hand


def raw_rows(session: Session, table: str, columns: str, ids: list[int]) -> list[tuple]:
    """The stored values as the driver returns them (text(): no column types, no result processing)."""
    rows = session.execute(text(f"SELECT {columns} FROM {table} WHERE id IN ({', '.join(map(str, ids))}) "
                                "ORDER BY id"))
    return [tuple(row) for row in rows]


def test_it_records_an_event_exactly_as_sqlalchemy_does(make_runtime, database_url) -> None:  # noqa: ANN001
    rt = make_runtime(database_url)
    contact_id = add_contact(rt, "ann@example.com")
    data = {"sequence": "customer", "step": "thank-you", "message_id": "<nurture.1.ab@x>", "note": "Zoë ✓",
            "n": 3, "nested": {"ok": True, "none": None}}
    with Session(rt.db) as session:
        for moment in (MOMENT, ON_THE_SECOND):
            sending.record_event(session, contact_id, "email.sent", moment, data, None)
            session.connection().execute(sending._EVENT.statement, {
                "v_contact_id": contact_id, "v_type": "email.sent", "v_data": data, "v_delivery_id": None,
                "v_now": moment})
        session.commit()
        ids = list(session.execute(text("SELECT id FROM event WHERE type = 'email.sent' ORDER BY id")).scalars())
        rows = raw_rows(session, "event", "contact_id, type, data, idempotency_key, delivery_id, occurred_at, "
                        "created_at", ids)
    assert len(rows) == 4
    assert rows[0] == rows[1] and rows[2] == rows[3]
    assert rows[0] != rows[2]  # the two moments are stored apart


def test_it_moves_an_enrollment_on_exactly_as_sqlalchemy_does(make_runtime, database_url) -> None:  # noqa: ANN001
    rt = make_runtime(database_url)
    for email in ("a@example.com", "b@example.com"):
        add_contact(rt, email, "customer")
    ids = [enrollment(rt, email, "customer").id for email in ("a@example.com", "b@example.com")]
    with Session(rt.db) as session:
        session.execute(text("UPDATE enrollment SET claim_token = 'tok', claimed_until = NULL"))
        session.commit()
        params = dict(step_id="check-in", due_at=MOMENT + timedelta(days=2), status=EnrollmentStatus.ACTIVE,
                      version="v7", stop_reason=None)
        assert sending.advance(session, ids[0], "tok", MOMENT, **params)
        moved = session.connection().execute(sending._ADVANCE.statement, {
            "e_id": ids[1], "e_token": "tok", "e_now": MOMENT, "e_step_id": "check-in",
            "e_due_at": params["due_at"], "e_status": EnrollmentStatus.ACTIVE, "e_version": "v7",
            "e_stop_reason": None})
        assert moved.rowcount == 1
        # Not ours any more: nothing is touched, and the count says so.
        assert not sending.advance(session, ids[0], "tok", MOMENT, **params)
        session.commit()
        first, second = raw_rows(session, "enrollment", "step_id, due_at, status, stop_reason, sequence_version, "
                                 "attempts, claim_token, claimed_until, updated_at, step_entered_at", ids)
    assert first == second
    assert first[6] is None and first[7] is None  # the claim released


def test_an_instant_bound_again_is_processed_once_and_its_zone_is_kept_apart() -> None:
    """prepared._processed keeps the last instants' processed values (a message's statements carry one
    instant many times): the processor runs once per instant and zone, and an equal instant in another
    zone is not taken for it (a processor may keep the wall-clock time)."""
    calls: list[datetime] = []

    def wall_clock(value: datetime) -> str:
        calls.append(value)
        return value.strftime("%H:%M")

    paris = MOMENT.astimezone(timezone(timedelta(hours=2)))
    assert paris == MOMENT
    assert [prepared._processed(wall_clock, v) for v in (MOMENT, MOMENT, paris, paris)] == \
        ["01:30", "01:30", "03:30", "03:30"]
    assert calls == [MOMENT, paris]
    naive = UTCDateTime().process_bind_param
    with pytest.raises(ValueError, match="naive"):
        prepared._processed(lambda v: naive(v, None), MOMENT.replace(tzinfo=None))
    assert prepared._processed(str, 7) == "7"  # not a datetime: processed every time, nothing kept
