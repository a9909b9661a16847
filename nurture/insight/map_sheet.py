"""The lifecycle map as the console and `nurture map` show it: measured in the store, built by the pure
nurture.insight.lifecycle_map, drawn by nurture.insight.map_svg, and printed to PDF by cairosvg.

cairosvg is pure Python over the system's cairo library (Debian's libcairo2, already there wherever
Chromium or any desktop is): no browser and no network for a PDF. It is imported only when a PDF is asked for.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlmodel import Session

from nurture.content.forms import FormRegistry
from nurture.insight.lifecycle_map import MOVED_ON_DAYS, Counts, LifecycleMap, build_map, parked_since
from nurture.insight.map_svg import render_svg, sized_for_paper  # noqa: F401  (render_svg: for callers)
from nurture.store.console import measure

if TYPE_CHECKING:
    from nurture.runtime import Runtime

PAPERS = ("a4", "letter")


class PdfUnavailable(RuntimeError):
    """cairosvg cannot find the cairo library on this machine."""


def current_map(rt: Runtime, now: datetime | None = None) -> LifecycleMap:
    now = now or rt.clock()
    sequences = rt.sequences.all()
    with Session(rt.db) as session:
        measured = measure(session, {s.id: s.stage for s in sequences}, now - timedelta(days=MOVED_ON_DAYS),
                           parked_since(now))
    counts = Counts(measured.by_contact_stage, measured.moved, measured.waiting, measured.parked,
                    measured.in_sequence, measured.in_stage_sequences)
    forms = FormRegistry(rt.settings.forms_dir).all()
    return build_map(sequences, rt.sequences.lifecycle, forms, counts, now)


def map_svg(rt: Runtime, now: datetime | None = None) -> str:
    return render_svg(current_map(rt, now), rt.settings.brand_name)


def svg_to_pdf(svg: str, paper: str = "a4") -> bytes:
    """One landscape page of `paper` (a4 or letter) with the picture fitted on it."""
    try:
        import cairosvg
    except OSError as exc:  # cairocffi raises OSError when libcairo is not installed
        raise PdfUnavailable(f"{exc}; install the cairo library (apt-get install -y libcairo2)") from exc
    return cairosvg.svg2pdf(bytestring=sized_for_paper(svg, paper).encode())
