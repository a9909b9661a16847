"""Contacts in the console: the list (/contacts: search, filters, pages by cursor), one contact's page
(its timeline as `nurture why` tells it, its consent, what owners did), and an owner's actions on it.

Every action goes through nurture.people (owner_actions, erasure): the same functions as the CLI and the
API, recorded on the timeline with the console account that did it. A refusal comes back as a note on the
contact's page, never a 500. The guard (nurture.web.auth) has already asked for a session, the CSRF token
of every POST, and the owner role for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlmodel import Session

from nurture.insight import why
from nurture.insight.times import stamp
from nurture.people import directory, erasure, owner_actions
from nurture.people.contacts import InvalidContact
from nurture.people.owner_actions import ActionRefused, Actor
from nurture.store.models import Contact, Subscription
from nurture.web import runtime
from nurture.web.console import bp
from nurture.web.console.contact_page import contact_page_data

MAX_ROW_ID = directory.MAX_ID  # a larger id is no row, and PostgreSQL would refuse it in the query


@bp.get("/contacts")
def contacts() -> tuple[str, int]:
    rt = runtime()
    error = None
    try:
        filters = directory.filters_from(request.args)
        cursor = directory.cursor_from(request.args.get("cursor"))
    except directory.BadFilter as exc:
        filters, cursor, error = directory.Filters(), None, f"{exc.field}: {exc.message}"
    with Session(rt.db) as session:
        page = directory.listing(session, filters, directory.DEFAULT_LIMIT, cursor)
    kept = {key: value for key, value in request.args.items() if key in directory.FILTER_KEYS and value}
    return render_template("console/contacts.html", page=page, filters=filters, args=kept, error=error,
                           first_page=cursor is None, sequences=sorted(s.id for s in rt.sequences.all()),
                           stages=list(rt.sequences.lifecycle.stages),
                           statuses=[s.value for s in Subscription]), 400 if error else 200


@bp.get("/contacts/<int:contact_id>")
def contact(contact_id: int) -> str:
    rt = runtime()
    with Session(rt.db) as session:
        found = _contact(session, contact_id)
        data = contact_page_data(session, rt, found)
        return render_template("console/contact.html", contact=found, **data, stamp=stamp,
                               describe=why.describe, next_text=why.next_text,
                               may_write=current_user.may_write, default_locale=rt.settings.default_locale)


def _contact(session: Session, contact_id: int) -> Contact:
    found = session.get(Contact, contact_id) if 0 < contact_id <= MAX_ROW_ID else None
    if found is None:
        abort(404)
    return found


def _actor() -> Actor:
    return Actor(current_user.email, "console")


def _act(contact_id: int, done: str, action: Callable[[Session, Contact], object]) -> Response:
    """Run one owner action on the contact, commit, and go back to its page with a note of what happened."""
    rt = runtime()
    with Session(rt.db) as session:
        found = _contact(session, contact_id)
        try:
            action(session, found)
            session.commit()
            flash(done, "done")
        except (ActionRefused, InvalidContact) as exc:
            session.rollback()
            flash(f"Not done: {exc}", "refused")
    return redirect(url_for("console.contact", contact_id=contact_id), code=303)


@bp.post("/contacts/<int:contact_id>/enroll")
def enroll(contact_id: int) -> Response:
    rt, sequence_id = runtime(), request.form.get("sequence", "")
    return _act(contact_id, f"Added to {sequence_id}.", lambda s, c: owner_actions.add_to_sequence(
        s, rt, c, sequence_id, _actor(), rt.clock()))


ENROLLMENT_ACTIONS = {"pause": (owner_actions.pause, "Paused."), "resume": (owner_actions.resume, "Resumed."),
                      "end": (owner_actions.end, "Ended.")}


@bp.post("/contacts/<int:contact_id>/enrollments/<int:enrollment_id>/<action>")
def enrollment_action(contact_id: int, enrollment_id: int, action: str) -> Response:
    if action not in ENROLLMENT_ACTIONS or enrollment_id > MAX_ROW_ID:
        abort(404)
    rt = runtime()
    act, done = ENROLLMENT_ACTIONS[action]
    return _act(contact_id, done, lambda s, c: act(s, c, enrollment_id, _actor(), rt.clock()))


@bp.post("/contacts/<int:contact_id>/tags")
def add_tag(contact_id: int) -> Response:
    rt, tag = runtime(), request.form.get("tag", "")
    return _act(contact_id, "Tag added.", lambda s, c: owner_actions.add_tag(s, rt, c, tag, _actor(), rt.clock()))


@bp.post("/contacts/<int:contact_id>/tags/remove")
def remove_tag(contact_id: int) -> Response:
    rt, tag = runtime(), request.form.get("tag", "")
    return _act(contact_id, f"Tag {tag!r} removed.",
                lambda s, c: owner_actions.remove_tag(s, c, tag, _actor(), rt.clock()))


@bp.post("/contacts/<int:contact_id>/locale")
def set_locale(contact_id: int) -> Response:
    rt, raw = runtime(), request.form.get("locale", "")
    return _act(contact_id, "Language set.",
                lambda s, c: owner_actions.set_locale(s, c, raw, _actor(), rt.clock()))


@bp.post("/contacts/<int:contact_id>/unsubscribe")
def unsubscribe(contact_id: int) -> Response:
    rt, channel = runtime(), request.form.get("channel", "email")
    return _act(contact_id, f"Unsubscribed from {channel} marketing; the consent record says by whom.",
                lambda s, c: owner_actions.unsubscribe(s, c, channel, _actor(), rt.clock()))


@bp.post("/contacts/<int:contact_id>/erase")
def erase(contact_id: int) -> Response:
    rt, typed = runtime(), request.form.get("confirm", "").strip().lower()

    def act(session: Session, found: Contact) -> None:
        if erasure.is_erased_contact(found):
            raise ActionRefused("this person was erased already")
        if typed != found.email:
            raise ActionRefused("type the contact's email address to confirm the erasure")
        erasure.erase(session, found, _actor(), rt.clock())

    return _act(contact_id, "Erased: the personal data is gone; the address is kept only as a digest, so it is "
                "never added again by mistake.", act)


@bp.post("/contacts/<int:contact_id>/export")
def export(contact_id: int) -> Response:
    """The person's data as JSON (GDPR access request), downloaded. A POST: it is recorded who took it."""
    rt = runtime()
    with Session(rt.db) as session:
        found = _contact(session, contact_id)
        data = erasure.export(session, found)
        owner_actions.record_export(session, found, _actor(), rt.clock())
        session.commit()
    body = json.dumps(data, indent=2, ensure_ascii=False)
    return Response(body, mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="contact-{contact_id}.json"'})
