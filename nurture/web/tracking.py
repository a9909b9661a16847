"""/c/<token>: a tracked click (redirects only to the URL that was in that message); /o/<token>.gif: the
open pixel (only in messages sent with TRACK_OPENS on)."""

from __future__ import annotations

import base64

from flask import Blueprint, Response, redirect, render_template, request
from sqlmodel import Session

from nurture.people import automation
from nurture.rules.links import looks_automated, with_utm
from nurture.rules.tokens import BadToken
from nurture.store import contacts as store
from nurture.store.models import Contact, Delivery
from nurture.web import runtime

bp = Blueprint("tracking", __name__)
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _record(delivery: Delivery, contact: Contact, type_: str, data: dict) -> None:
    rt = runtime()
    now = rt.clock()
    bot = looks_automated(request.headers.get("User-Agent"), delivery.sent_at, now)
    data = {"sequence": delivery.sequence_id, "step": delivery.step_id, "bot": bot, **data}
    with Session(rt.db) as session:
        contact = session.get(Contact, contact.id)
        automation.record(session, rt, contact, type_, data, now)  # a bot's event scores nothing
        session.commit()


@bp.get("/c/<token>")
def click(token: str) -> Response | tuple[str, int]:
    rt = runtime()
    try:
        delivery_id, url = rt.signer.clicked(token)
    except BadToken:
        return render_template("link_invalid.html", brand=rt.settings.brand_name, reason=None), 400
    with Session(rt.db) as session:
        found = store.delivery_with_contact(session, delivery_id)
    if found is None:
        return redirect(url, code=302)  # the link is ours and intact; the record of it is gone
    delivery, contact = found
    _record(delivery, contact, "email.clicked", {"url": url})
    sequence = rt.sequences.get(delivery.sequence_id)
    tags = {"source": "nurture", "medium": delivery.channel, "campaign": delivery.sequence_id,
            "content": delivery.step_id, **(sequence.utm if sequence else {})}
    return redirect(with_utm(url, tags), code=302)


@bp.get("/o/<token>.gif")
def opened(token: str) -> Response:
    rt = runtime()
    try:
        delivery_id = rt.signer.delivery_id(token)
        with Session(rt.db) as session:
            found = store.delivery_with_contact(session, delivery_id)
        if found is not None:
            _record(*found, "email.opened", {})
    except BadToken:
        pass  # a pixel never shows an error
    return Response(PIXEL, mimetype="image/gif", headers={"Cache-Control": "no-store"})


