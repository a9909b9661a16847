"""What the segment trigger (nurture.people.segment_triggers) reads and writes: whose facts changed since
its last look, who was seen inside a segment, and how far a sweep has come."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from nurture.store.models import Contact, Event, SegmentMember, SegmentWatch


def watch(session: Session, segment_id: str, now: datetime) -> SegmentWatch:
    """The segment's watch row; a new one starts after everything on record and with a sweep to do (the
    contacts already inside are entered by it, a page a tick)."""
    row = session.exec(select(SegmentWatch).where(SegmentWatch.segment_id == segment_id)).first()
    if row is not None:
        return row
    last_event = session.exec(select(func.max(Event.id))).one() or 0
    last_change = session.exec(select(func.max(Contact.updated_at))).one()
    row = SegmentWatch(segment_id=segment_id, event_cursor=last_event, contact_cursor=last_change, sweep_after=0,
                       updated_at=now)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # another process's tick made it a moment ago (`nurture send-due` beside the worker)
        return session.exec(select(SegmentWatch).where(SegmentWatch.segment_id == segment_id)).one()
    return row


def changed_since(session: Session, row: SegmentWatch, limit: int) -> set[int]:
    """Contacts with an event after the watch's event cursor or a change (tags, fields, consent, stage) after
    its contact cursor, at most about `limit` of each; moves both cursors past what it read."""
    events = session.exec(select(Event.id, Event.contact_id).where(Event.id > row.event_cursor)
                          .order_by(Event.id).limit(limit)).all()
    changed_query = select(Contact.id, Contact.updated_at).order_by(Contact.updated_at, Contact.id).limit(limit)
    if row.contact_cursor is not None:
        changed_query = changed_query.where(Contact.updated_at > row.contact_cursor)
    changes = session.exec(changed_query).all()
    if events:
        row.event_cursor = events[-1][0]
    if changes:
        row.contact_cursor = _resume_point(changes, limit)
    session.add(row)
    return {cid for _, cid in events} | {cid for cid, _ in changes}


def _resume_point(changes: list, limit: int) -> datetime:
    """Where the next look at contact changes starts. A full page may end inside one timestamp: the next
    look starts before that timestamp (reading its first rows again is harmless), unless the whole page
    is one timestamp, which then only the sweep finishes."""
    last = changes[-1][1]
    if len(changes) < limit:
        return last
    earlier = [at for _, at in changes if at < last]
    return earlier[-1] if earlier else last


def recorded(session: Session, segment_id: str, contact_ids: Iterable[int]) -> set[int]:
    """Which of these contacts were last seen inside the segment."""
    ids = sorted(set(contact_ids))
    if not ids:
        return set()
    rows = session.exec(select(SegmentMember.contact_id).where(SegmentMember.segment_id == segment_id,
                                                               SegmentMember.contact_id.in_(ids)))  # type: ignore[attr-defined]
    return set(rows.all())


def recorded_between(session: Session, segment_id: str, after: int, upto: int | None) -> set[int]:
    """Contacts seen inside the segment with an id in (after, upto] (upto None: no end)."""
    query = select(SegmentMember.contact_id).where(SegmentMember.segment_id == segment_id,
                                                   SegmentMember.contact_id > after)
    if upto is not None:
        query = query.where(SegmentMember.contact_id <= upto)
    return set(session.exec(query).all())


def add(session: Session, segment_id: str, contact_id: int, now: datetime) -> bool:
    """Record the contact as inside; False when another tick recorded it first (it enrolls, not this one)."""
    try:
        with session.begin_nested():
            session.add(SegmentMember(segment_id=segment_id, contact_id=contact_id, entered_at=now))
            session.flush()
    except IntegrityError:
        return False
    return True


def remove(session: Session, segment_id: str, contact_ids: Iterable[int]) -> None:
    """The contacts were seen outside the segment: coming back in is an entry again."""
    ids = sorted(set(contact_ids))
    if ids:
        session.execute(delete(SegmentMember).where(SegmentMember.segment_id == segment_id,
                                                    SegmentMember.contact_id.in_(ids)))  # type: ignore[attr-defined]
