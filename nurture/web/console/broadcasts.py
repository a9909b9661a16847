"""Broadcasts in the console: /broadcasts lists them (files and console-made) and lets an owner make one;
/broadcasts/<key> shows its plan figures and progress, sends the test to the owner, starts it (after a
confirmation) and cancels it. Every write is the owner's, behind CSRF (auth.guard)."""

from __future__ import annotations

from pathlib import Path

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlmodel import Session
from werkzeug.wrappers import Response

from nurture.content.broadcasts_file import parse_send_at
from nurture.delivery import broadcasts
from nurture.insight.broadcast_plan import make_plan
from nurture.rules.broadcasts import TIMINGS, BroadcastError, BroadcastSpec
from nurture.rules.sequence import CHANNELS, Window, parse_hours
from nurture.runtime import Runtime
from nurture.store import broadcasts as store
from nurture.store.models import Broadcast
from nurture.web import runtime
from nurture.web.console import bp

FORM_KEYS = ("id", "name", "segment", "channel", "template", "subject", "send_at", "timing", "hours")


def _templates(rt: Runtime) -> list[str]:
    """The email and text templates a broadcast may name (layouts and the system's own left out)."""
    def names(directory: Path, suffix: str) -> list[str]:
        if not directory.is_dir():
            return []
        return sorted({p.relative_to(directory).with_suffix("").as_posix() for p in directory.rglob(f"*{suffix}")
                       if not p.name.startswith("_") and p.relative_to(directory).parts[0] != "system"})
    return names(rt.settings.templates_dir, ".html") + names(rt.settings.sms.templates_dir, ".txt")


def _list_page(rt: Runtime, session: Session, form: dict[str, str], problems: list[str], status: int = 200,
               ) -> tuple[str, int]:
    file_problems = broadcasts.read_files(rt, session, rt.clock())
    session.commit()
    rows = store.every(session)
    views = [(row, broadcasts.spec_of(row), store.progress(session, broadcasts.spec_of(row).sequence_id))
             for row in rows]
    return render_template("console/broadcasts.html", views=views, form=form, problems=problems,
                           file_problems=file_problems, segments=sorted(broadcasts.segments(rt)[0]),
                           templates=_templates(rt), channels=CHANNELS, timings=TIMINGS,
                           folder=rt.settings.broadcasts_dir.name), status


@bp.get("/broadcasts")
def broadcasts_page() -> tuple[str, int]:
    rt = runtime()
    with Session(rt.db, expire_on_commit=False) as session:
        return _list_page(rt, session, {"send_at": "now", "timing": "own-window", "hours": "09:00-17:00"}, [])


def _spec_from_form(form: dict[str, str]) -> BroadcastSpec:
    """The console's form -> a spec; BroadcastError names the field that is wrong."""
    if not form["id"] or not all(c.islower() or c.isdigit() or c == "-" for c in form["id"]) or len(form["id"]) > 54:
        raise BroadcastError("Id: lowercase letters, digits and dashes, at most 54 characters (like spring-sale).")
    if not form["name"]:
        raise BroadcastError("Name: required.")
    if form["channel"] not in CHANNELS:
        raise BroadcastError("Channel: email or sms.")
    if form["channel"] == "email" and not form["subject"]:
        raise BroadcastError("Subject: an email needs one.")
    if form["timing"] not in TIMINGS:
        raise BroadcastError("Timing: in each contact's own window, or at once.")
    try:
        send_at = parse_send_at(form["send_at"] or "now")
        window = Window(*parse_hours(form["hours"])) if form["timing"] == "own-window" else None
    except ValueError as exc:
        raise BroadcastError(str(exc)) from exc
    return BroadcastSpec(id=form["id"], name=form["name"], segment=form["segment"], channel=form["channel"],
                         template=form["template"], subject=form["subject"] if form["channel"] == "email" else "",
                         send_at=send_at, timing=form["timing"], window=window)


@bp.post("/broadcasts/new")
def broadcast_create() -> Response | tuple[str, int]:
    rt = runtime()
    form = {key: request.form.get(key, "").strip()[:500] for key in FORM_KEYS}
    with Session(rt.db, expire_on_commit=False) as session:
        try:
            broadcasts.create(rt, session, _spec_from_form(form), rt.clock())
        except BroadcastError as exc:
            session.rollback()
            return _list_page(rt, session, form, [str(exc)], 400)
        session.commit()
    flash(f"{form['name']} saved as a draft. Send yourself the test, then start it.", "ok")
    return redirect(url_for("console.broadcast_page", key=form["id"]))


def _row_or_404(rt: Runtime, session: Session, key: str) -> Broadcast:
    broadcasts.read_files(rt, session, rt.clock())
    session.commit()
    row = store.by_key(session, key)
    if row is None:
        abort(404)
    return row


@bp.get("/broadcasts/<key>")
def broadcast_page(key: str) -> str:
    rt = runtime()
    with Session(rt.db, expire_on_commit=False) as session:
        _row_or_404(rt, session, key)
        plan = make_plan(rt, session, key)
    owner = rt.sequences.lifecycle.owner_email or rt.settings.support_email
    return render_template("console/broadcast.html", plan=plan, row=plan.broadcast, spec=plan.spec,
                           tested=plan.broadcast.test_version == plan.broadcast.version,
                           owner=current_user.email or owner, draft=store.DRAFT, started=store.STARTED)


@bp.post("/broadcasts/<key>/test")
def broadcast_test(key: str) -> Response:
    rt = runtime()
    to = request.form.get("to", "").strip()[:320] or current_user.email
    with Session(rt.db, expire_on_commit=False) as session:
        _row_or_404(rt, session, key)
        try:
            broadcasts.test_send(rt, session, key, to, rt.clock())
            session.commit()
            flash(f"Test sent to {to}, marked [TEST]. Look at it, then start the broadcast.", "ok")
        except BroadcastError as exc:
            session.rollback()
            flash(str(exc), "error")
    return redirect(url_for("console.broadcast_page", key=key))


@bp.post("/broadcasts/<key>/start")
def broadcast_start(key: str) -> Response:
    rt = runtime()
    if request.form.get("confirm") != "yes":
        flash("Tick the box to confirm the figures first: a broadcast cannot be taken back once sent.", "error")
        return redirect(url_for("console.broadcast_page", key=key))
    with Session(rt.db, expire_on_commit=False) as session:
        _row_or_404(rt, session, key)
        try:
            started = broadcasts.start(rt, session, key, current_user.email, rt.clock())
            session.commit()
            flash("It was started already; nothing changed." if started.already else
                  f"Started: it goes from {started.broadcast.send_at:%Y-%m-%d %H:%M} UTC.", "ok")
        except BroadcastError as exc:
            session.rollback()
            flash(str(exc), "error")
    return redirect(url_for("console.broadcast_page", key=key))


@bp.post("/broadcasts/<key>/cancel")
def broadcast_cancel(key: str) -> Response:
    rt = runtime()
    with Session(rt.db, expire_on_commit=False) as session:
        _row_or_404(rt, session, key)
        stopped = broadcasts.cancel(rt, session, key, rt.clock())
        session.commit()
    flash(f"Cancelled: {stopped} contact(s) still waiting will not get it.", "ok")
    return redirect(url_for("console.broadcast_page", key=key))
