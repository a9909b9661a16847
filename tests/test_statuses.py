"""Statuses are StrEnums stored as the same plain strings as before: old rows read, typos fail at the write."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import StatementError
from sqlmodel import Session, select

from nurture.runtime import Runtime
from nurture.store.models import Contact, Enrollment, EnrollmentStatus, Subscription
from tests.helpers import add_contact


def test_it_stores_the_plain_string_and_reads_back_the_member(make_runtime: Callable[..., Runtime],
                                                              database_url: str) -> None:
    rt = make_runtime(database_url)
    contact_id = add_contact(rt, "ada@example.com", "lead-nurture")
    with Session(rt.db) as session:
        raw = session.execute(text("SELECT email_status, sms_status FROM contact WHERE id = :id"),
                              {"id": contact_id}).one()
        assert tuple(raw) == ("subscribed", "none")
        contact = session.get(Contact, contact_id)
        assert contact is not None and contact.email_status is Subscription.SUBSCRIBED
        status = session.exec(select(Enrollment.status).where(Enrollment.contact_id == contact_id)).one()
        assert status is EnrollmentStatus.ACTIVE


def test_it_refuses_to_write_a_misspelt_status(make_runtime: Callable[..., Runtime], sqlite_url: str) -> None:
    rt = make_runtime(sqlite_url)
    contact_id = add_contact(rt, "ada@example.com")
    with Session(rt.db) as session, pytest.raises(StatementError, match="subscribd"):
        session.execute(update(Contact).where(Contact.id == contact_id).values(email_status="subscribd"))
