"""Sending reputation: /reputation shows the bounce and complaint rates over the newest sends, overall and
per sequence, against the guard's thresholds, and whether marketing email is paused; an owner resumes it
here or with `nurture resume-sending`."""

from __future__ import annotations

from flask import redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from nurture.delivery import reputation
from nurture.rules.reputation import percent
from nurture.web import runtime
from nurture.web.console import bp


@bp.get("/reputation")
def reputation_page() -> str:
    rt = runtime()
    standing = reputation.standing(rt)
    return render_template("console/reputation.html", standing=standing, percent=percent,
                           guard=rt.settings.deliverability.guard, names={s.id: s.name for s in rt.sequences.all()})


@bp.post("/reputation/resume")
def resume_sending() -> Response:
    """An owner lifts the pause (the guard's CSRF and role checks ran before this)."""
    reputation.resume(runtime(), current_user.email)
    return redirect(url_for("console.reputation_page"))
