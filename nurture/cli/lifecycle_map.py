"""`nurture map`: the console's lifecycle map as a file: a one-page PDF (A4 or Letter) or the SVG."""

from __future__ import annotations

from pathlib import Path

import click

from nurture.cli.common import fail, with_runtime
from nurture.insight import map_sheet
from nurture.runtime import Runtime


@click.command("map")
@click.option("--pdf", "pdf_path", type=click.Path(dir_okay=False, path_type=Path), help="write a one-page PDF")
@click.option("--svg", "svg_path", type=click.Path(dir_okay=False, path_type=Path), help="write the SVG")
@click.option("--paper", type=click.Choice(map_sheet.PAPERS), default="a4", show_default=True,
              help="the PDF's page (landscape)")
@with_runtime
def map_command(rt: Runtime, pdf_path: Path | None, svg_path: Path | None, paper: str) -> None:
    """Write the lifecycle map — stages, counts, sequences and gaps — as the console draws it."""
    if not pdf_path and not svg_path:
        fail("give --pdf OUT.pdf and/or --svg OUT.svg")
    lifecycle_map = map_sheet.current_map(rt)
    svg = map_sheet.render_svg(lifecycle_map, rt.settings.brand_name)
    if svg_path:
        svg_path.write_text(svg, encoding="utf-8")
        click.echo(f"wrote {svg_path}")
    if pdf_path:
        try:
            pdf_path.write_bytes(map_sheet.svg_to_pdf(svg, paper))
        except map_sheet.PdfUnavailable as exc:
            fail(f"cannot write a PDF here: {exc}")
        click.echo(f"wrote {pdf_path} ({paper}, landscape)")
    click.echo(f"{lifecycle_map.contacts} contacts, {len(lifecycle_map.gaps)} gap(s)")
    for gap in lifecycle_map.gaps:
        click.echo(f"  gap: {gap.text}")
