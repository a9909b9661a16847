"""The suppression list's queries for people/suppression (adding is the send path's `claims.suppress`)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlmodel import Session

from nurture.store.models import Suppression


def unsuppress(session: Session, address: str) -> bool:
    """Take a normalised address off the list; False when it was not on it."""
    return session.execute(delete(Suppression).where(Suppression.address == address)).rowcount == 1


def listing(session: Session) -> list[Suppression]:
    """The whole list, oldest entry first."""
    return list(session.scalars(select(Suppression).order_by(Suppression.created_at, Suppression.id)))
