"""Segments: a named condition over every contact (segments/*.yaml), counted, listed, used as a sequence's
trigger and in `if:`.

Pure: the model, what a segment refers to, cycles, and the definition of membership — `holds` over a
contact's facts, where event conditions see *all* the contact's (human) events, not only those since
entering a sequence. The store counts the same condition in SQL (nurture.store.segments); tests hold the
two to the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from nurture.rules.conditions import Condition, Facts, in_words, segments_named
from nurture.rules.sequence import Sequence


@dataclass(frozen=True)
class Segment:
    id: str
    name: str
    condition: Condition
    description: str = ""
    path: str = ""
    line: int = 1
    source: str = field(default="", compare=False, repr=False)
    # Every segment this one names, directly or through others, by id (set by `resolve`): what counting it
    # needs, so a caller holding one segment holds all it takes.
    needs: Mapping[str, Segment] = field(default_factory=dict, compare=False, repr=False)

    @property
    def refers_to(self) -> frozenset[str]:
        """The segments this one's condition names with {segment: ID}."""
        return segments_named(self.condition)


class SegmentError(Exception):
    """A segment names one that does not exist, or names itself through others (a cycle)."""


def closure(segment_id: str, segments: Mapping[str, Segment]) -> list[str]:
    """`segment_id` and every segment it depends on, dependencies first. Raises SegmentError on an unknown id
    or a cycle."""
    order: list[str] = []
    _visit(segment_id, segments, (), order)
    return order


def _visit(segment_id: str, segments: Mapping[str, Segment], path: tuple[str, ...], order: list[str]) -> None:
    if segment_id in path:
        raise SegmentError("segments refer to each other in a circle: " + " -> ".join((*path, segment_id)))
    if segment_id in order:
        return
    segment = segments.get(segment_id)
    if segment is None:
        raise SegmentError(f"unknown segment {segment_id!r}" + (f" (named by {path[-1]!r})" if path else ""))
    for other in sorted(segment.refers_to):
        _visit(other, segments, (*path, segment_id), order)
    order.append(segment_id)


def cycles(segments: Mapping[str, Segment]) -> list[tuple[str, str]]:
    """(segment id, message) for each segment caught in a cycle or naming an unknown segment."""
    found = []
    for segment_id in sorted(segments):
        try:
            closure(segment_id, segments)
        except SegmentError as exc:
            found.append((segment_id, str(exc)))
    return found


def resolve(segments: Mapping[str, Segment]) -> dict[str, Segment]:
    """The segments, each with `needs` filled in. Raises SegmentError on an unknown id or a cycle."""
    return {sid: replace(segment, needs={other: segments[other] for other in closure(sid, segments)[:-1]})
            for sid, segment in segments.items()}


def memberships(ids: Iterable[str], segments: Mapping[str, Segment], facts: Facts, now: datetime) -> frozenset[str]:
    """Which of `ids` (and the segments they depend on) the contact with these facts is in. `facts.events`
    must be all the contact's events that count (people's, not link scanners')."""
    order: list[str] = []
    for segment_id in ids:
        order += [s for s in closure(segment_id, segments) if s not in order]
    inside: set[str] = set(facts.segments) - set(order)
    for segment_id in order:
        if segments[segment_id].condition.holds(replace(facts, segments=frozenset(inside)), now):
            inside.add(segment_id)
    return frozenset(inside)


def holds(segment: Segment, facts: Facts, now: datetime, erased: bool = False) -> bool:
    """Whether the contact with these facts (all its counted events) is in `segment`: the definition. An
    erased person (GDPR erasure: the row stays for the counts, naming no one) is in no segment."""
    return not erased and segment.id in memberships([segment.id], {**segment.needs, segment.id: segment}, facts, now)


def named_by(sequence: Sequence) -> set[str]:
    """The segments a sequence's goals and steps' `if` ask about (triggers aside)."""
    return {sid for c in [*sequence.goals, *(s.condition for s in sequence.steps if s.condition)]
            for sid in segments_named(c)}


def explain(segment_id: str, segments: Mapping[str, Segment], inside: bool | None) -> str:
    """One line for `simulate` and `why`: what the segment means, and whether the contact is in it."""
    segment = segments.get(segment_id)
    if segment is None:
        return f"segment {segment_id}: no such segment (nurture check reports it), so never in it"
    where = "" if inside is None else f" — {'in it' if inside else 'not in it'}"
    return f"segment {segment_id} ({segment.name}): {in_words(segment.condition)}{where}"
