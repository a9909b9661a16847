"""The console's Suppressions page: the list with search and pages, add an address, take one off.

Adding and removing go through nurture.people.suppression, the same door as `nurture suppress`; both
need an owner (the console's guard refuses a viewer's POST) and keep who did it and why.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlmodel import Session
from werkzeug.wrappers import Response

from nurture.people import suppression
from nurture.people.contacts import InvalidContact
from nurture.web import runtime
from nurture.web.console import bp

MAX_SEARCH = 320  # an address is never longer: a longer search would find nothing anyway


def _page_number(raw: str | None) -> int:
    """?page=… as typed by hand: anything that is not a small positive number is the first page."""
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 7 else 1


def _render(status: int = 200, error: str = "", typed: dict[str, str] | None = None) -> tuple[str, int]:
    search = request.args.get("q", "")[:MAX_SEARCH]
    with Session(runtime().db) as session:
        page = suppression.page(session, search, _page_number(request.args.get("page")))
        changes = suppression.recent_changes(session)
    return render_template("console/suppressions.html", page=page, search=search, changes=changes, error=error,
                           typed=typed or {}, may_write=current_user.may_write), status


@bp.get("/suppressions")
def suppressions() -> tuple[str, int]:
    return _render()


def _fields(*names: str) -> dict[str, str]:
    return {name: request.form.get(name, "").strip()[:MAX_SEARCH] for name in names}


@bp.post("/suppressions")
def suppress() -> tuple[str, int] | Response:
    typed = _fields("address", "reason")
    rt = runtime()
    with Session(rt.db) as session:
        try:
            address = suppression.add(session, typed["address"], typed["reason"] or "manual", rt.clock(),
                                      actor=current_user.email)
        except InvalidContact as exc:
            return _render(400, f"Not added: {exc.message}", typed)
        session.commit()
    flash(f"{address} is suppressed: nothing more is sent to it.")
    return redirect(url_for("console.suppressions", q=address), 303)


@bp.post("/suppressions/remove")
def unsuppress() -> tuple[str, int] | Response:
    typed = _fields("address", "reason")
    if not typed["reason"]:
        return _render(400, "Not removed: say why (it is kept with the change).", typed)
    rt = runtime()
    with Session(rt.db) as session:
        try:
            removed = suppression.remove(session, typed["address"], rt.clock(), typed["reason"],
                                         actor=current_user.email)
        except InvalidContact as exc:
            return _render(400, f"Not removed: {exc.message}", typed)
        session.commit()
    flash(f"{typed['address']} is no longer suppressed." if removed else f"{typed['address']} was not on the list.")
    return redirect(url_for("console.suppressions"), 303)
