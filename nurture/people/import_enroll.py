"""An import's sequence and consent rows: enrolling a whole batch at once, by the same rules as `enroll`.

Only when the import names a sequence; then only contacts who may receive it (a marketing sequence needs
email or SMS consent; nobody unsubscribed is enrolled), and the sequence's re-entry policy (`may_reenter`)
decides for contacts who were in it before.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from nurture.people.contacts import may_reenter
from nurture.rules import engine
from nurture.store import importing as store
from nurture.store.models import ConsentAction, EnrollmentStatus, Subscription

if TYPE_CHECKING:
    from nurture.people.importing import ImportOptions


@dataclass(frozen=True)
class Target:
    """A row's contact, to be enrolled: `contact` is the known contact (None for a new one)."""

    line: int
    contact_id: int | None  # None in a preview, for a contact not created yet
    email: str
    timezone: str | None
    contact: SimpleNamespace | None  # store.importing's plain row


def enroll_all(session: Session, targets: list[Target], opts: ImportOptions, consented: set[str], now: datetime,
               write: bool) -> tuple[dict[int, list[str]], int]:
    """Enroll the targets in the import's sequence. Returns (line -> notes, how many were enrolled)."""
    sequence = opts.sequence
    if sequence is None:
        return {}, 0
    notes: dict[int, list[str]] = {}
    latest = store.latest_enrollments(session, [t.contact_id for t in targets if t.contact is not None],
                                      sequence.id)
    rows, events = [], []
    for target in targets:
        refusal = _refusal(target, opts, consented)
        before = latest.get(target.contact_id) if target.contact_id is not None else None
        if refusal is None and not may_reenter(sequence, before, now):  # type: ignore[arg-type]  # a plain row
            refusal = f"already in {sequence.id}" if before and before.status == EnrollmentStatus.ACTIVE \
                else f"was in {sequence.id} before (its re-entry policy: {sequence.reentry.policy})"
        if refusal is not None:
            notes[target.line] = [f"not enrolled: {refusal}"]
            continue
        notes[target.line] = [f"enrolled in {sequence.id}"]
        if write:
            assert target.contact_id is not None
            row = _enrollment(target, before.entry + 1 if before else 1, opts, now)
            rows.append(row)
            events.append({"contact_id": target.contact_id, "type": "sequence.enrolled", "idempotency_key": None,
                           "delivery_id": None, "occurred_at": now, "created_at": now,
                           "data": {"sequence": sequence.id, "version": sequence.version,
                                    "first_step": row["step_id"], "entry": row["entry"], "via": "import"}})
    store.insert_enrollments(session, rows)
    store.insert_events(session, events)
    return notes, sum(1 for n in notes.values() if n[0].startswith("enrolled"))


def _refusal(target: Target, opts: ImportOptions, consented: set[str]) -> str | None:
    """Why this contact may not enter the sequence, or None."""
    assert opts.sequence is not None
    contact = target.contact
    email = Subscription.SUBSCRIBED if target.email in consented else (
        contact.email_status if contact is not None else Subscription.NONE)
    if email == Subscription.UNSUBSCRIBED:
        return "unsubscribed"
    sms = contact.sms_status if contact is not None else Subscription.NONE
    if not opts.sequence.transactional and Subscription.SUBSCRIBED not in (email, sms):
        return f"no marketing consent (email {email})"
    return None


def _enrollment(target: Target, entry: int, opts: ImportOptions, now: datetime) -> dict[str, Any]:
    sequence = opts.sequence
    assert sequence is not None
    due = engine.first_due(sequence, now, engine.contact_zone(target.timezone))
    return {"contact_id": target.contact_id, "sequence_id": sequence.id, "sequence_version": sequence.version,
            "entry": entry, "step_id": due.step_id if due else None, "due_at": due.at if due else None,
            "status": EnrollmentStatus.ACTIVE if due else EnrollmentStatus.COMPLETED, "step_entered_at": now,
            "stop_reason": None, "attempts": 0, "claim_token": None, "claimed_until": None,
            "created_at": now, "updated_at": now}


def consent_row(contact_id: int, opts: ImportOptions, now: datetime) -> dict[str, Any]:
    """The consent record of a contact subscribed by an import: the text, its hash and the legal basis."""
    text = opts.consent_text or ""
    return {"contact_id": contact_id, "channel": "email", "action": ConsentAction.OPT_IN, "method": "import",
            "scope": "all", "form_id": None, "delivery_id": None, "consent_text": text,
            "consent_hash": hashlib.sha256(text.encode()).hexdigest(), "ip": None, "user_agent": None,
            "legal_basis": opts.legal_basis, "created_at": now}
