"""POST /api/events: something happened to a contact (a purchase, a webinar attended...)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from sqlmodel import Session

from nurture.people import automation
from nurture.people.automation import InvalidEvent
from nurture.people.contacts import InvalidContact, normalise_email
from nurture.store import contacts as store
from nurture.store.models import Contact
from nurture.web import runtime
from nurture.web.api import error, require_api_key
from nurture.web.inputs import MAX_ID, is_db_id

bp = Blueprint("events", __name__, url_prefix="/api")
bp.before_request(require_api_key)

EVENT_FIELDS = {"email", "contact_id", "type", "properties", "occurred_at", "idempotency_key"}


def _find_contact(session: Session, body: dict) -> Contact | None:
    """The contact the event is about, by id or email. Raises InvalidEvent/InvalidContact for a value that
    can name no contact (an id beyond the column's range would reach PostgreSQL as an error, not a miss)."""
    contact_id = body.get("contact_id")
    if contact_id is not None:
        if not is_db_id(contact_id):
            raise InvalidEvent("contact_id", f"a contact's id: a whole number from 1 to {MAX_ID}")
        return session.get(Contact, contact_id)
    return store.by_email(session, normalise_email(body.get("email") or ""))


@bp.post("/events")
def post_event() -> tuple[Response, int]:
    """201 with the event when recorded, 200 with the first one when its idempotency key was seen before."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error(400, "expected a JSON object body (Content-Type: application/json)")
    unknown = set(body) - EVENT_FIELDS
    if unknown:
        return error(400, f"unknown field (allowed: {', '.join(sorted(EVENT_FIELDS))})", sorted(unknown)[0])
    rt = runtime()
    with Session(rt.db) as session:
        try:
            given = automation.parse_event_input(body.get("type"), body.get("properties") or {},
                                                 body.get("occurred_at"), body.get("idempotency_key"))
            contact = _find_contact(session, body)
        except (InvalidEvent, InvalidContact) as exc:
            return error(400, exc.message, exc.field)
        if contact is None:
            return error(404, "no such contact (give email or contact_id of an existing contact)",
                         "contact_id" if body.get("contact_id") is not None else "email")
        event, created = automation.record(session, rt, contact, given.type, given.data,
                                           given.occurred_at or rt.clock(), given.key)
        session.commit()
        return jsonify(id=event.id, type=event.type, contact_id=contact.id, created=created,
                       occurred_at=event.occurred_at.isoformat()), 201 if created else 200
