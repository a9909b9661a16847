"""The suppression list's queries for people/suppression (adding is the send path's `claims.suppress`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlmodel import Session

from nurture.store.models import Suppression, SuppressionChange


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


def _containing(search: str) -> list:
    """Entries whose address holds `search` (as typed: `%` and `_` match themselves, not any text)."""
    if not search:
        return []
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return [Suppression.address.like(f"%{escaped}%", escape="\\")]


def page(session: Session, search: str, offset: int, limit: int) -> tuple[list[Suppression], int]:
    """One page of the list, newest entry first, and how many entries match `search` in all."""
    where = _containing(search)
    total = session.execute(select(func.count()).select_from(Suppression).where(*where)).scalar_one()
    rows = session.scalars(select(Suppression).where(*where)
                           .order_by(Suppression.created_at.desc(), Suppression.id.desc())
                           .offset(offset).limit(limit))
    return list(rows), int(total)


def record_change(session: Session, address: str, channel: str, action: str, reason: str, actor: str,
                  now: datetime) -> None:
    session.add(SuppressionChange(address=address, channel=channel, action=action, reason=reason[:200],
                                  actor=actor[:320], created_at=now))


def recent_changes(session: Session, limit: int) -> list[SuppressionChange]:
    """The latest additions and removals, newest first."""
    return list(session.scalars(select(SuppressionChange)
                                .order_by(SuppressionChange.created_at.desc(), SuppressionChange.id.desc())
                                .limit(limit)))


def entry(session: Session, address: str) -> Suppression | None:
    return session.scalars(select(Suppression).where(Suppression.address == address)).first()
