"""/feedback/<token>?score=N: a one-click rating from a feedback email, then an optional comment.
/r/<code>: a contact's personal referral link, leading to the landing page with the code carried along."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Blueprint, redirect, render_template, request
from flask_babel import gettext
from sqlmodel import Session
from werkzeug.wrappers import Response

from nurture.people import feedback
from nurture.rules.links import looks_automated
from nurture.rules.tokens import BadToken
from nurture.web import runtime
from nurture.web.i18n import use_locale

bp = Blueprint("feedback", __name__)
MAX_COMMENT = 2000


def _score(raw: str | None) -> int | None:
    # isascii: "²" is a digit to str.isdigit() and no number to int(); the length keeps int() off 5000 digits
    if raw is None or not (raw.isascii() and raw.isdigit()) or len(raw) > 2:
        return None
    return int(raw) if int(raw) <= 10 else None


def _page(status: int = 200, **context: object) -> tuple[str, int]:
    return render_template("feedback.html", brand=runtime().settings.brand_name, **context), status


@bp.route("/feedback/<token>", methods=["GET", "POST"])
def rate(token: str) -> tuple[str, int]:
    """GET records the rating the link carries (one click, as promised in the email); a link scanner's
    fetch — within seconds of sending, or a scanner's user agent — is recorded as such and counts for
    nothing. POST adds the comment."""
    rt = runtime()
    try:
        delivery_id = rt.signer.feedback_delivery(token)
    except BadToken:
        return render_template("link_invalid.html", brand=rt.settings.brand_name, reason=None), 400
    score = _score(request.values.get("score"))
    if score is None:
        return _page(400, error=gettext("Pick a number from 0 to 10."), token=token, score=None, done=False)
    now = rt.clock()
    with Session(rt.db) as session:
        found = feedback.delivery_and_contact(session, delivery_id)
        if found is None:
            return render_template("link_invalid.html", brand=rt.settings.brand_name, reason=None), 404
        delivery, contact = found
        use_locale(contact.locale)
        if request.method == "POST":
            comment = (request.form.get("comment") or "").strip()[:MAX_COMMENT]
            if comment:
                feedback.record_comment(session, rt, delivery, contact, score, comment, now)
            session.commit()
            return _page(token=token, score=score, done=True)
        bot = looks_automated(request.headers.get("User-Agent"), delivery.sent_at, now)
        feedback.record_rating(session, rt, delivery, contact, score, bot, now)
        session.commit()
    return _page(token=token, score=score, done=False, category=feedback.category(score))


@bp.get("/r/<code>")
def referral(code: str) -> Response:
    """To the landing page with ?ref=<code>; the sign-up form keeps it as attribution and credits the
    referrer on confirmation. An unknown code still leads the friend to the page, just without credit."""
    rt = runtime()
    landing = rt.settings.referral_landing_url
    if rt.signer.referrer(code) is None:
        return redirect(landing, code=302)
    parts = urlsplit(landing)
    query = "&".join(q for q in (parts.query, urlencode({"ref": code.lower()})) if q)
    return redirect(urlunsplit(parts._replace(query=query)), code=302)
