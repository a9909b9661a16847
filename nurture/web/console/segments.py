"""The console's Segments pages: every segment of segments/*.yaml counted now (/segments), and one segment
in plain words with its count and its newest members, each a link to the contact's page (/segments/<id>)."""

from __future__ import annotations

from flask import abort, render_template
from sqlmodel import Session

from nurture.people import segments
from nurture.rules.conditions import in_words
from nurture.web import runtime
from nurture.web.console import bp

SAMPLE = 25


@bp.get("/segments")
def segments_page() -> str:
    rt = runtime()
    with Session(rt.db) as session:
        counted = segments.overview(session, rt)
    problems = rt.sequences.segment_files.problems
    return render_template("console/segments.html", counted=counted, in_words=in_words, problems=problems,
                           now=rt.clock())


@bp.get("/segments/<segment_id>")
def segment_page(segment_id: str) -> str:
    rt = runtime()
    try:
        segment = segments.find(rt, segment_id)
    except segments.UnknownSegment:
        abort(404)
    with Session(rt.db) as session:
        count = segments.count(session, rt, segment)
        members = segments.sample(session, rt, segment, SAMPLE)
    used_by = [s for s in rt.sequences.all() if any(t.kind == "segment" and t.value == segment.id for t in s.triggers)]
    return render_template("console/segment.html", segment=segment, count=count, members=members,
                           words=in_words(segment.condition), in_words=in_words, used_by=used_by, sample=SAMPLE,
                           now=rt.clock())
