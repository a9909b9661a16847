"""Referrals: every contact has a personal link /r/<code>; a sign-up through it is credited to the
referrer, who gets a `referral` event (to thank or reward them by a sequence step)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session

from nurture.people import automation
from nurture.people.contacts import record_event
from nurture.store import contacts as store
from nurture.store.models import Contact

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime


def credit(session: Session, rt: Runtime, friend: Contact, now: datetime) -> Contact | None:
    """Credit `friend`'s sign-up to whoever referred it (its first attribution's `ref` code), once.
    Returns the referrer, or None (no code, a bad code, a self-referral, or already credited)."""
    code = (friend.attribution or {}).get("ref")
    referrer_id = rt.signer.referrer(str(code)) if code else None
    if referrer_id is None or referrer_id == friend.id:
        return None
    referrer = session.get(Contact, referrer_id)
    key = f"referral:{friend.id}"
    if referrer is None or store.event_key_taken(session, key):
        return None
    record_event(session, friend.id, "referred", now, {"by": referrer.id, "code": code})
    event, created = automation.record(session, rt, referrer, "referral",
                                       {"friend": friend.id, "friend_email": friend.email}, now, key)
    return referrer if created else None


@dataclass(frozen=True)
class Referrer:
    contact_id: int
    email: str
    name: str
    referred: int


def top_referrers(session: Session, limit: int = 20) -> list[Referrer]:
    rows = store.top_referrers(session, limit)
    return [Referrer(cid, email, f"{first} {last}".strip(), n) for cid, email, first, last, n in rows]


