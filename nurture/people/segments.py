"""Segments for the console, the CLI and the tick: find one, count it now, show some members, and enter
contacts who came into a segment into the sequences it triggers.

The counting is SQL (nurture.store.segments); what membership means is nurture.rules.segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlmodel import Session

from nurture.rules.segments import Segment
from nurture.store import segments as store
from nurture.store.models import Contact

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime


class UnknownSegment(LookupError):
    def __init__(self, segment_id: str, known: list[str]) -> None:
        super().__init__(f"unknown segment {segment_id!r} (known: {', '.join(known) or 'none'})")


@dataclass(frozen=True)
class Counted:
    segment: Segment
    count: int


def find(rt: Runtime, segment_id: str) -> Segment:
    segments = rt.segments
    if segment_id not in segments:
        raise UnknownSegment(segment_id, sorted(segments))
    return segments[segment_id]


def count(session: Session, rt: Runtime, segment: Segment) -> int:
    """How many contacts are in `segment` now (the score decays by the lifecycle's rules)."""
    return store.count(session, segment, rt.clock(), rt.sequences.lifecycle.scoring)


def overview(session: Session, rt: Runtime) -> list[Counted]:
    """Every segment with its count now, by name."""
    return [Counted(s, count(session, rt, s)) for s in sorted(rt.segments.values(), key=lambda s: s.name.lower())]


def sample(session: Session, rt: Runtime, segment: Segment, limit: int = 20) -> list[Contact]:
    """The newest members."""
    return store.sample(session, segment, rt.clock(), limit, rt.sequences.lifecycle.scoring)


def of_contact(session: Session, rt: Runtime, contact_id: int) -> list[Segment]:
    """The segments the contact is in now, by name (the contact's console page lists them)."""
    everyone = sorted(rt.segments.values(), key=lambda s: s.name.lower())
    inside = store.segments_of(session, everyone, contact_id, rt.clock(), rt.sequences.lifecycle.scoring)
    return [s for s in everyone if s.id in inside]
