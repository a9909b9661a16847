"""Small helpers the behaviour tests share."""

from __future__ import annotations

from sqlmodel import Session, select

from nurture.delivery import alerts, dispatch, versions
from nurture.people.contacts import ContactInput, enroll, upsert_contact
from nurture.runtime import Runtime
from nurture.store.models import Contact, Delivery, Enrollment


def add_contact(rt: Runtime, email: str, sequence_id: str | None = None, **fields: object) -> int:
    """Create a contact (and enroll it) the way the API and CLI do. Returns the contact id."""
    with Session(rt.db) as session:
        contact, _ = upsert_contact(session, ContactInput(email=email, **fields), rt.clock())  # type: ignore[arg-type]
        if sequence_id:
            sequence = rt.sequences.get(sequence_id)
            assert sequence is not None, f"sequence {sequence_id} not loaded"
            enroll(session, contact, sequence, rt.clock())
        session.commit()
        return contact.id  # type: ignore[return-value]


def send_due(rt: Runtime) -> dict[str, int]:
    """Claim everything due and run the batches in this process (what the worker does via RQ)."""
    total: dict[str, int] = {}

    def run(token: str) -> None:
        for outcome, n in dispatch.run_batch(rt, token).counts.items():
            total[outcome] = total.get(outcome, 0) + n

    versions.housekeeping(rt)  # as the tick does
    alerts.send_alerts(rt)
    dispatch.claim_batches(rt, run, max_batches=1000)
    return total


def deliveries(rt: Runtime, email: str | None = None) -> list[Delivery]:
    with Session(rt.db) as session:
        query = select(Delivery).order_by(Delivery.id)
        if email:
            query = query.join(Contact, Contact.id == Delivery.contact_id).where(Contact.email == email)
        return list(session.exec(query))


def enrollment(rt: Runtime, email: str, sequence_id: str) -> Enrollment:
    with Session(rt.db) as session:
        return session.exec(
            select(Enrollment).join(Contact, Contact.id == Enrollment.contact_id)
            .where(Contact.email == email, Enrollment.sequence_id == sequence_id)
        ).one()
