"""Pages anyone can reach: the overview and the health check."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template
from sqlalchemy import func, text
from sqlmodel import Session, select

from nurture.models import Contact, Delivery, Enrollment
from nurture.web import runtime

bp = Blueprint("public", __name__)


@bp.get("/")
def overview() -> str:
    """The whole map at once: each sequence's contacts by step and what has been sent."""
    rt = runtime()
    with Session(rt.db) as session:
        waiting = dict(session.execute(
            select(Enrollment.sequence_id + ":" + func.coalesce(Enrollment.step_id, ""), func.count())
            .where(Enrollment.status == "active").group_by(Enrollment.sequence_id, Enrollment.step_id)
        ).all())
        sent = dict(session.execute(
            select(Delivery.sequence_id + ":" + Delivery.step_id, func.count())
            .where(Delivery.status == "sent").group_by(Delivery.sequence_id, Delivery.step_id)
        ).all())
        contacts = session.execute(select(func.count()).select_from(Contact)).scalar_one()
    return render_template("overview.html", sequences=rt.sequences.all(), waiting=waiting, sent=sent,
                           contacts=contacts, settings=rt.settings)


@bp.get("/healthz")
def health() -> tuple[Response, int]:
    rt = runtime()
    checks = {}
    try:
        with Session(rt.db) as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # report, don't crash: this is what a load balancer polls
        checks["database"] = f"error: {exc}"
    ok = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if ok else "error", **checks), 200 if ok else 503
