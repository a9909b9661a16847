"""The home page: the lifecycle map, drawn on the server; the same picture as SVG and as a one-page PDF."""

from __future__ import annotations

from flask import Response, render_template, request

from nurture.insight import map_sheet
from nurture.insight.map_svg import render_svg
from nurture.web import runtime
from nurture.web.console import bp


@bp.get("/")
def home() -> str:
    rt = runtime()
    lifecycle_map = map_sheet.current_map(rt)
    return render_template("console/map.html", map=lifecycle_map, svg=render_svg(lifecycle_map, rt.settings.brand_name),
                           settings=rt.settings)


@bp.get("/map.svg")
def map_svg() -> Response:
    return Response(map_sheet.map_svg(runtime()), mimetype="image/svg+xml",
                    headers={"Content-Disposition": 'inline; filename="lifecycle-map.svg"'})


@bp.get("/map.pdf")
def map_pdf() -> Response:
    paper = request.args.get("paper", "a4")
    if paper not in map_sheet.PAPERS:
        paper = "a4"
    pdf = map_sheet.svg_to_pdf(map_sheet.map_svg(runtime()), paper)
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="lifecycle-map-{paper}.pdf"'})
