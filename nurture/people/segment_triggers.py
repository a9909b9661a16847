"""`trigger: {segment: ID}`: a contact who comes into the segment enters the sequence (under its re-entry
policy). Run by the tick (nurture.delivery.versions.housekeeping).

Not a full scan each tick: each tick looks only at contacts whose facts changed since the last look (a new
event — opens, clicks, purchases, tags added, stage changes are all events — or a change to the contact
row: fields, tags, consent), by two cursors. What only time changes (`{inactive: 90d}` becomes true
while nothing happens; `{engaged: 30d}` runs out) is found by a sweep of the whole segment in SQL once an
hour, a page a tick. A contact inside is remembered (SegmentMember); seen outside, it is forgotten, so
coming back in is a new entry. Contacts already inside when a trigger first runs are entered by its first
sweep, as the `inactive` trigger enters everyone already quiet.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlmodel import Session

from nurture.people.contacts import enroll
from nurture.rules import decisions
from nurture.rules.segments import Segment
from nurture.rules.sequence import Sequence
from nurture.store import segment_entries as entries
from nurture.store import segments as store
from nurture.store.models import Contact, SegmentWatch

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime

SWEEP_EVERY = timedelta(hours=1)
PAGE = 1000  # contacts a tick reads per segment: changed ones, and a sweep's page


def enter(session: Session, rt: Runtime, now: datetime) -> int:
    """Look at every segment a sequence is triggered by; enroll who came in. Returns the enrollments made."""
    started = 0
    watched = sorted({t.value for s in rt.sequences.all() for t in s.triggers if t.kind == "segment"})
    segments = rt.segments if watched else {}
    for segment_id in watched:
        segment = segments.get(segment_id)
        if segment is not None:
            started += _watch(session, rt, segment, now)
    return started


def _watch(session: Session, rt: Runtime, segment: Segment, now: datetime) -> int:
    row = entries.watch(session, segment.id, now)
    changed = entries.changed_since(session, row, PAGE)
    started = _look(session, rt, segment, changed, now)
    if row.sweep_after is None and (row.swept_at is None or now - row.swept_at >= SWEEP_EVERY):
        row.sweep_after = 0
    if row.sweep_after is not None:
        started += _sweep_page(session, rt, segment, row, now)
    row.updated_at = now
    session.add(row)
    return started


def _look(session: Session, rt: Runtime, segment: Segment, contact_ids: set[int], now: datetime) -> int:
    """These contacts' facts changed: record who is in now, forget who left, enroll who came in."""
    if not contact_ids:
        return 0
    inside = store.members_among(session, segment, contact_ids, now, rt.sequences.lifecycle.scoring)
    before = entries.recorded(session, segment.id, contact_ids)
    entries.remove(session, segment.id, before - inside)
    return _came_in(session, rt, segment, inside - before, now)


def _sweep_page(session: Session, rt: Runtime, segment: Segment, row: SegmentWatch, now: datetime) -> int:
    after = row.sweep_after or 0
    page = store.member_ids(session, segment, now, after_id=after, limit=PAGE,
                            scoring=rt.sequences.lifecycle.scoring)
    upto = page[-1] if len(page) == PAGE else None  # a short page is the last: it reaches the end
    before = entries.recorded_between(session, segment.id, after, upto)
    entries.remove(session, segment.id, before - set(page))
    started = _came_in(session, rt, segment, set(page) - before, now)
    row.sweep_after = upto
    if upto is None:
        row.swept_at = now
    return started


def _came_in(session: Session, rt: Runtime, segment: Segment, contact_ids: Iterable[int], now: datetime) -> int:
    sequences: list[Sequence] = decisions.started_by(rt.sequences.all(), "segment", segment.id)
    started = 0
    for contact_id in sorted(contact_ids):
        contact = session.get(Contact, contact_id)
        if contact is None or not entries.add(session, segment.id, contact_id, now):
            continue
        for sequence in sequences:
            started += enroll(session, contact, sequence, now, by=f"segment {segment.id}")[1]
    return started
