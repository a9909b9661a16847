"""The lifecycle map drawn as one SVG: the seven stages left to right, their sequences and steps under
them, and the gaps drawn as gaps (dashed, in red or amber). Server-side and self-contained — no script,
no web font, nothing fetched — so the page, `nurture map --svg` and the PDF are the same picture.

Text is placed by estimate (DejaVu Sans, the default sans-serif on Debian, is about 0.6 em a
character) and cut with an ellipsis where a column is too narrow; the page lists the same facts in
full under the picture.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from nurture.insight.lifecycle_map import Gap, LifecycleMap, SequenceView, StageView, StepView

WIDTH, MARGIN, GUTTER = 1180, 20, 14
COLUMN = (WIDTH - 2 * MARGIN - 6 * GUTTER) // 7
TOP, HEADER, STEP_ROW, CARD_GAP = 86, 118, 15, 12
FONT = "DejaVu Sans, Verdana, Arial, sans-serif"
INK, MUTED, RED, AMBER, LINE = "#222", "#666", "#b3261e", "#a35a00", "#d9d3cc"
STAGE_FILL = ("#eef3f8", "#e9f1ec", "#eef6e4", "#fbf3e2", "#f7ebe3", "#f2e9f3", "#e8f0f3")
GAP_LINES = 8  # gap notes listed under the picture; the page lists all of them


# Advance widths of DejaVu Sans in em, roughly, by kind of character: enough to fit text to a column
# without measuring glyphs (which would need the font file at hand, and the PDF and the browser may
# each pick another sans-serif anyway).
_NARROW, _SEMI, _WIDE = set("iljI.,:;'!|()[] "), set("ftr-/"), set("mwMW@%")


def text_width(text: str, size: float, bold: bool = False) -> float:
    em = sum(0.3 if c in _NARROW else 0.42 if c in _SEMI else 0.86 if c in _WIDE
             else 0.7 if c.isupper() else 0.62 for c in text)
    return em * size * (1.08 if bold else 1.0)


def fit(text: str, width: float, size: float, bold: bool = False) -> str:
    """`text`, cut with an ellipsis so that it takes at most about `width` pixels at font `size`."""
    if text_width(text, size, bold) <= width:
        return text
    while len(text) > 1 and text_width(text + "…", size, bold) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def wrap(text: str, width: float, size: float, bold: bool = False, lines: int = 2) -> list[str]:
    """`text` broken at spaces into at most `lines` lines of about `width` pixels (the last one cut)."""
    out: list[str] = []
    for word in text.split(" "):
        if out and text_width(f"{out[-1]} {word}", size, bold) <= width:
            out[-1] += " " + word
        else:
            out.append(word)
    if len(out) > lines:
        out = out[: lines - 1] + [" ".join(out[lines - 1:])]
    return [fit(part, width, size, bold) for part in out]


def lines_at(x: float, y: float, texts: list[str], size: float, step: float, **style: object) -> list[str]:
    return [label(x, y + n * step, text, size, **style) for n, text in enumerate(texts)]  # type: ignore[arg-type]


def label(x: float, y: float, text: str, size: float = 11, fill: str = INK, weight: str = "normal",
          anchor: str = "start", width: float | None = None, italic: bool = False) -> str:
    shown = fit(text, width, size, weight == "bold") if width else text
    style = ' font-style="italic"' if italic else ""
    return (f'<text x="{x:.0f}" y="{y:.0f}" font-size="{size}" fill="{fill}" font-weight="{weight}" '
            f'text-anchor="{anchor}"{style}>{escape(shown)}</text>')


def box(x: float, y: float, w: float, h: float, fill: str = "#fff", stroke: str = LINE, dashed: bool = False,
        radius: int = 6, width: float = 1) -> str:
    dash = ' stroke-dasharray="5 4"' if dashed else ""
    return (f'<rect x="{x:.0f}" y="{y:.0f}" width="{w:.0f}" height="{h:.0f}" rx="{radius}" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{width}"{dash}/>')


def stage_title(stage: str) -> str:
    return stage.replace("-", " ").capitalize()


def draw_header(x: float, index: int, view: StageView) -> list[str]:
    w = COLUMN
    title = wrap(stage_title(view.stage), w - 40, 13, bold=True)
    y = TOP + 21 + 16 * (len(title) - 1)
    parts = [box(x, TOP, w, HEADER, fill=STAGE_FILL[index], stroke="#c9c2b8"),
             f'<circle cx="{x + 16:.0f}" cy="{TOP + 17}" r="10" fill="#7a4b2a"/>',
             label(x + 16, TOP + 21, str(index + 1), 11, "#fff", "bold", "middle"),
             *lines_at(x + 32, TOP + 21, title, 13, 16, weight="bold"),
             label(x + 10, y + 17, ", ".join(view.contact_stages) or "no contact stage maps here", 10, MUTED,
                   width=w - 16, italic=not view.contact_stages)]
    digits = len(str(view.at_stage))
    parts += [label(x + 10, TOP + 78, str(view.at_stage), 22, INK, "bold"),
              label(x + 16 + 14 * digits, TOP + 78, "at this stage", 10, MUTED),
              label(x + 10, TOP + 95, f"{view.moved_on} moved on, 30 days", 10, INK, width=w - 16),
              label(x + 10, TOP + 110, f"{view.in_sequences} in its sequences", 10, INK, width=w - 16)]
    return parts


def draw_arrow(x: float) -> str:
    """A chevron in the gutter after the column starting at `x`: the way contacts go."""
    left, mid = x + COLUMN + 3, TOP + HEADER / 2
    return (f'<path d="M{left:.0f} {mid - 9:.0f} L{left + 8:.0f} {mid:.0f} L{left:.0f} {mid + 9:.0f}" '
            f'fill="none" stroke="#7a4b2a" stroke-width="2.5"/>')


def draw_step(x: float, y: float, step: StepView) -> tuple[list[str], float]:
    """Two lines a step (id and count; its wait), a third for a gap in it."""
    w = COLUMN - 12
    flagged = bool(step.parked) or not step.reachable
    h = STEP_ROW * (3 if flagged else 2) + 4
    parts = []
    if step.parked:
        parts.append(box(x, y, w, h - 3, fill="#fdf0dc", stroke=AMBER, radius=3))
    elif not step.reachable:
        parts.append(box(x, y, w, h - 3, fill="#fff", stroke=MUTED, dashed=True, radius=3))
    colour = MUTED if not step.reachable else INK
    parts += [label(x + 5, y + 13, step.id, 10.5, colour, "bold", width=w - 34),
              label(x + w - 5, y + 13, str(step.waiting), 10.5, colour, "bold", "end"),
              label(x + 5, y + 13 + STEP_ROW, step.wait, 9, MUTED, width=w - 10)]
    if step.parked:
        parts.append(label(x + 5, y + 13 + 2 * STEP_ROW, f"⚠ {step.parked} parked (wait + 1 d)", 9.5, AMBER,
                           "bold", width=w - 10))
    elif not step.reachable:
        parts.append(label(x + 5, y + 13 + 2 * STEP_ROW, "gap: no path reaches it", 9.5, RED, width=w - 10))
    return parts, h


def draw_sequence(x: float, y: float, view: SequenceView) -> tuple[list[str], float]:
    w = COLUMN
    no_way_in = not view.ways_in
    name = wrap(view.name, w - 44, 12, bold=True)
    entry = wrap("gap: no way in" if no_way_in else "in: " + "; ".join(view.ways_in), w - 16, 9.5, lines=3)
    head = [*lines_at(x + 8, y + 16, name, 12, 15, weight="bold"),
            label(x + w - 8, y + 16, str(view.in_sequence), 12, INK, "bold", "end")]
    cursor = y + 16 + 15 * (len(name) - 1)
    head += lines_at(x + 8, cursor + 14, entry, 9.5, 12, fill=RED if no_way_in else MUTED,
                     weight="bold" if no_way_in else "normal")
    cursor += 14 + 12 * (len(entry) - 1) + 8
    for step in view.steps:
        drawn, h = draw_step(x + 6, cursor, step)
        head += drawn
        cursor += h
    if view.on_retired_steps:
        note = wrap(f"{view.on_retired_steps} on steps of an older version", w - 16, 9.5)
        head += lines_at(x + 10, cursor + 12, note, 9.5, 12, fill=MUTED)
        cursor += 12 * len(note) + 6
    height = cursor - y + 4
    frame = box(x, y, w, height, stroke=RED if no_way_in else "#bdb5aa", dashed=no_way_in,
                width=1.5 if no_way_in else 1)
    return [frame, *head], height


def draw_column(x: float, view: StageView) -> tuple[list[str], float]:
    y = TOP + HEADER + 14
    if not view.sequences:
        return [box(x, y, COLUMN, 64, fill="#fdeceb", stroke=RED, dashed=True, width=1.5),
                label(x + COLUMN / 2, y + 27, "GAP", 14, RED, "bold", "middle"),
                *lines_at(x + COLUMN / 2, y + 44, wrap("no sequence serves this stage", COLUMN - 12, 9.5), 9.5, 12,
                          fill=RED, anchor="middle")], y + 64
    parts = []
    for sequence in view.sequences:
        drawn, h = draw_sequence(x, y, sequence)
        parts += drawn
        y += h + CARD_GAP
    return parts, y


def draw_legend(y: float, gaps: tuple[Gap, ...]) -> tuple[list[str], float]:
    x = MARGIN
    keys = [(box(x, y, 26, 14, fill="#fdeceb", stroke=RED, dashed=True, radius=3), "stage with no sequence"),
            (box(x, y, 26, 14, stroke=RED, dashed=True, radius=3), "sequence with no way in"),
            (box(x, y, 26, 14, stroke=MUTED, dashed=True, radius=3), "step no path reaches"),
            (box(x, y, 26, 14, fill="#fdf0dc", stroke=AMBER, radius=3), "contacts parked past a step's wait + 1 day")]
    parts, cursor = [], x
    for swatch, text in keys:
        parts.append(swatch.replace(f'x="{x:.0f}"', f'x="{cursor:.0f}"', 1))
        parts.append(label(cursor + 32, y + 11, text, 10.5, INK))
        cursor += 40 + len(text) * 6.3 + 24
    parts.append(label(MARGIN, y + 34, "Counts: a contact is counted at its stage (top) and in each sequence it is "
                       "in (cards) — a lead in Lead nurture appears under both.", 10.5, MUTED))
    y += 44
    if gaps:
        parts.append(label(MARGIN, y + 14, f"{len(gaps)} gap(s):", 11, RED, "bold"))
        for n, gap in enumerate(gaps[:GAP_LINES]):
            parts.append(label(MARGIN + 10 + (n % 2) * (WIDTH / 2 - 20), y + 32 + (n // 2) * 16, "• " + gap.text,
                               10.5, INK, width=WIDTH / 2 - 40))
        more = len(gaps) - GAP_LINES
        rows = (min(len(gaps), GAP_LINES) + 1) // 2
        if more > 0:
            parts.append(label(MARGIN + 10, y + 32 + rows * 16, f"… and {more} more (see the console)", 10.5, MUTED))
            rows += 1
        y += 26 + rows * 16
    else:
        parts.append(label(MARGIN, y + 14, "No gaps: every stage is served and every step can be reached.", 11, INK))
        y += 22
    return parts, y


def render_svg(lifecycle_map: LifecycleMap, brand: str) -> str:
    """The map as a standalone SVG document (scales to its container: viewBox, no fixed size)."""
    parts = [label(MARGIN, 34, f"{brand} — the customer lifecycle", 22, INK, "bold"),
             label(MARGIN, 58, subtitle(lifecycle_map), 12, MUTED)]
    bottom = 0.0
    for index, view in enumerate(lifecycle_map.stages):
        x = MARGIN + index * (COLUMN + GUTTER)
        parts += draw_header(x, index, view)
        if index < len(lifecycle_map.stages) - 1:
            parts.append(draw_arrow(x))
        drawn, end = draw_column(x, view)
        parts += drawn
        bottom = max(bottom, end)
    legend, height = draw_legend(bottom + 20, lifecycle_map.gaps)
    parts += legend
    height += MARGIN
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0f}" '
            f'font-family="{FONT}" role="img" aria-label="The customer lifecycle map">'
            f'<rect width="{WIDTH}" height="{height:.0f}" fill="#fff"/>' + "".join(parts) + "</svg>")


def subtitle(lifecycle_map: LifecycleMap) -> str:
    unmapped = sum(lifecycle_map.unmapped.values())
    extra = f" · {unmapped} at stages the lifecycle rules do not name" if unmapped else ""
    return (f"{lifecycle_map.contacts} contacts · {stamp(lifecycle_map.at)} · counts are now; "
            f"moved on: the last 30 days{extra}")


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def sized_for_paper(svg: str, paper: str) -> str:
    """The same picture with a page size (A4 or Letter, landscape) for the PDF: the viewBox keeps it whole
    and centred, as a browser's print does."""
    width, height = {"a4": ("297mm", "210mm"), "letter": ("11in", "8.5in")}[paper]
    return svg.replace("<svg ", f'<svg width="{width}" height="{height}" preserveAspectRatio="xMidYMid meet" ', 1)
