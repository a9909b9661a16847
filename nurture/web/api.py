"""JSON API under /api, behind `Authorization: Bearer $API_KEY`."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from nurture.people import directory, erasure
from nurture.people.contacts import ContactInput, InvalidContact, enroll, normalise_email, upsert_contact
from nurture.people.owner_actions import Actor
from nurture.people.preferences import consent_history
from nurture.people.signup import consent_json
from nurture.store import contacts as store
from nurture.store.models import Consent, Contact, Enrollment
from nurture.web import runtime

bp = Blueprint("api", __name__, url_prefix="/api")

API_ACTOR = Actor("api", "api")
CONTACT_FIELDS = {"email", "first_name", "last_name", "phone", "timezone", "fields", "tags", "sequence", "source",
                  "locale"}


def error(status: int, message: str, field: str | None = None) -> tuple[Response, int]:
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    return jsonify(body), status


@bp.before_request
def require_api_key() -> tuple[Response, int] | None:
    expected = runtime().settings.api_key
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        return error(401, "missing or wrong API key: send Authorization: Bearer <API_KEY>")
    return None


@bp.errorhandler(413)
def too_large(_exc: Exception) -> tuple[Response, int]:
    return error(413, "request body too large")


def contact_json(contact: Contact, enrollments: list[Enrollment],
                 consent: list[Consent] | None = None) -> dict[str, Any]:
    return {
        "id": contact.id,
        "email": contact.email,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "phone": contact.phone,
        "timezone": contact.timezone,
        "locale": contact.locale,
        "fields": contact.fields,
        "tags": contact.tags,
        "stage": contact.stage,
        "email_status": contact.email_status,
        "sms_status": contact.sms_status,
        "attribution": contact.attribution,
        "created_at": contact.created_at.isoformat(),
        "consent": [consent_json(c) for c in consent or []],  # GDPR Art. 7: the proof, with the contact
        "enrollments": [
            {"sequence": e.sequence_id, "status": e.status, "next_step": e.step_id,
             "due_at": e.due_at.isoformat() if e.due_at else None}
            for e in enrollments
        ],
    }


def _input(body: dict[str, Any]) -> ContactInput:
    unknown = set(body) - CONTACT_FIELDS
    if unknown:
        raise InvalidContact(sorted(unknown)[0], f"unknown field (allowed: {', '.join(sorted(CONTACT_FIELDS))})")
    fields, tags = body.get("fields") or {}, body.get("tags") or []
    if not isinstance(fields, dict):
        raise InvalidContact("fields", "must be an object")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InvalidContact("tags", "must be a list of strings")
    for key in ("email", "first_name", "last_name", "phone", "timezone", "source", "sequence", "locale"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise InvalidContact(key, "must be a string")
    # Lengths, control characters and lone surrogates are checked by contacts.validated, for the CLI too.
    return ContactInput(email=body.get("email") or "", first_name=body.get("first_name") or "",
                        last_name=body.get("last_name") or "", phone=body.get("phone"),
                        timezone=body.get("timezone"), fields=fields, tags=tuple(tags),
                        source=body.get("source") or "api", locale=body.get("locale"))


@bp.post("/contacts")
def add_contact() -> tuple[Response, int]:
    """Create or update a contact and optionally enroll it: 201 when created, 200 when it existed."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error(400, "expected a JSON object body (Content-Type: application/json)")
    rt = runtime()
    try:
        given = _input(body)
    except InvalidContact as exc:
        return error(400, exc.message, exc.field)
    sequence_id = body.get("sequence")
    sequence = rt.sequences.get(sequence_id) if sequence_id is not None else None
    if sequence_id is not None and sequence is None:
        return error(400, f"unknown sequence {sequence_id!r}", "sequence")
    now = rt.clock()
    with Session(rt.db) as session:
        try:
            contact, created = upsert_contact(session, given, now)
            if sequence is not None:
                enroll(session, contact, sequence, now)
            session.commit()
        except InvalidContact as exc:
            return error(400, exc.message, exc.field)
        except IntegrityError:
            session.rollback()  # a concurrent request created the same contact first: the same answer as a repeat
            return error(409, "this contact is being created by another request; try again")
        enrollments = store.enrollments_of(session, contact.id)
        consent = consent_history(session, contact.id)
        return jsonify(contact_json(contact, enrollments, consent)), 201 if created else 200


@bp.get("/contacts/<path:email>")
def get_contact(email: str) -> tuple[Response, int]:
    rt = runtime()
    try:
        address = normalise_email(email)
    except InvalidContact as exc:
        return error(400, exc.message, "email")
    with Session(rt.db) as session:
        contact = store.by_email(session, address)
        if contact is None:
            return error(404, "no such contact")
        enrollments = store.enrollments_of(session, contact.id)
        return jsonify(contact_json(contact, enrollments, consent_history(session, contact.id))), 200


@bp.get("/contacts")
def list_contacts() -> tuple[Response, int]:
    """A page of contacts, newest first: ?q= (address or name), stage, tag, sequence, email_status,
    sms_status, limit (1-200), cursor (the `next_cursor` of the page before; null on the last page)."""
    try:
        filters = directory.filters_from(request.args)
        limit = directory.limit_from(request.args.get("limit"))
        cursor = directory.cursor_from(request.args.get("cursor"))
    except directory.BadFilter as exc:
        return error(400, exc.message, exc.field)
    with Session(runtime().db) as session:
        page = directory.listing(session, filters, limit, cursor)
    return jsonify({"contacts": [_summary(row) for row in page.rows], "next_cursor": page.next_cursor}), 200


def _summary(row: directory.Row) -> dict[str, Any]:
    contact = row.contact
    return {"id": contact.id, "email": contact.email, "first_name": contact.first_name,
            "last_name": contact.last_name, "stage": contact.stage, "tags": contact.tags,
            "email_status": contact.email_status, "sms_status": contact.sms_status,
            "sequences": [{"sequence": s, "status": status} for s, status in row.sequences],
            "created_at": contact.created_at.isoformat()}


@bp.delete("/contacts/<path:email>")
def erase_contact(email: str) -> tuple[Response, int]:
    """GDPR erasure (docs/compliance.md): the person's data removed, the address kept only as a digest."""
    rt = runtime()
    try:
        address = normalise_email(email)
    except InvalidContact as exc:
        return error(400, exc.message, "email")
    with Session(rt.db) as session:
        contact = store.by_email(session, address)
        if contact is None:
            return error(404, "no such contact", "email")
        erasure.erase(session, contact, API_ACTOR, rt.clock())
        session.commit()
        return jsonify({"erased": True, "id": contact.id}), 200
