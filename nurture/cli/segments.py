"""`nurture segments list` and `nurture segments count ID`: the segments of segments/*.yaml, counted now."""

from __future__ import annotations

import click
from sqlmodel import Session

from nurture.cli.common import fail, with_runtime
from nurture.people import segments
from nurture.rules.conditions import in_words
from nurture.runtime import Runtime


@click.group("segments")
def segments_group() -> None:
    """Segments (segments/*.yaml): list them, count one."""


@segments_group.command("list")
@with_runtime
def segments_list(rt: Runtime) -> None:
    """Every segment, how many contacts are in it now, and its condition in words."""
    with Session(rt.db) as session:
        counted = segments.overview(session, rt)
    if not counted:
        click.echo(f"no segments in {rt.settings.segments_dir}")
    for item in counted:
        click.echo(f"{item.segment.id}\t{item.count}\t{item.segment.name}\t{in_words(item.segment.condition)}")


@segments_group.command("count")
@click.argument("segment_id")
@with_runtime
def segments_count(rt: Runtime, segment_id: str) -> None:
    """How many contacts are in SEGMENT_ID now (one number)."""
    try:
        segment = segments.find(rt, segment_id)
    except segments.UnknownSegment as exc:
        fail(str(exc))
    with Session(rt.db) as session:
        click.echo(segments.count(session, rt, segment))
