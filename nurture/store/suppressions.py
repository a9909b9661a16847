"""The suppression list's queries for people/suppression (adding is the send path's `claims.suppress`)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlmodel import Session

from nurture.store.models import Suppression


def unsuppress(session: Session, address: str) -> bool:
    """Take a normalised address off the list; False when it was not on it."""
    return session.execute(delete(Suppression).where(Suppression.address == address)).rowcount == 1


def listing(session: Session) -> list[Suppression]:
    """The whole list, oldest entry first."""
    return list(session.scalars(select(Suppression).order_by(Suppression.created_at, Suppression.id)))


def suppression_reasons(session: Session, addresses: Sequence[str]) -> dict[str, str]:
    """address -> reason, for those of `addresses` on the suppression list."""
    found: dict[str, str] = {}
    for start in range(0, len(addresses), 900):  # SQLite before 3.32: 999 parameters a statement
        part = addresses[start:start + 900]
        rows = session.execute(select(Suppression.address, Suppression.reason)
                               .where(Suppression.address.in_(part)))  # type: ignore[attr-defined]
        found.update((address, reason) for address, reason in rows)
    return found
