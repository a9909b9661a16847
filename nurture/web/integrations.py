"""Webhooks in from the business's other systems: POST /integrations/stripe and /integrations/hooks/<name>.

Each verifies its signature before anything else is read into the database (a forged request is a 400 and
records nothing), then hands a pure mapping's result (nurture.rules.inbound) to nurture.people.inbound.
A well-signed payload we do not record (an unknown Stripe event type, a cancellation, an erased person's
address) is acknowledged with 200 and `ignored`, so the sender does not retry it for days.
"""

from __future__ import annotations

from typing import Any

import stripe
from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from nurture.people.contacts import ErasedAddress, InvalidContact
from nurture.people.inbound import record_inbound
from nurture.rules import inbound_signatures
from nurture.rules.inbound import Inbound, NotForUs, hook_inbound, stripe_inbound
from nurture.web import runtime
from nurture.web.api import error

bp = Blueprint("integrations", __name__, url_prefix="/integrations")
STRIPE_SECRET = "STRIPE_WEBHOOK_SECRET"


def _json(body: bytes) -> Any:
    """The parsed body, or ValueError (not JSON, NaN, nested too deep: the app's strict parser)."""
    return current_app.json.loads(body)


def _record(inbound: Inbound) -> tuple[Response, int]:
    rt = runtime()
    with Session(rt.db) as session:
        try:
            event, created = record_inbound(session, rt, inbound)
            session.commit()
        except ErasedAddress:
            # The person asked to be forgotten. Acknowledged, not refused: a 4xx has the sender retry for
            # days. Nothing is written (the transaction is dropped): not the event, not the address.
            session.rollback()
            return jsonify(recorded=False, ignored="erased"), 200
        except InvalidContact as exc:
            return error(400, exc.message, exc.field)
        except IntegrityError:
            # A concurrent delivery of the same event created its new contact first. Not a 2xx: the sender
            # retries, and the retry finds the event recorded once.
            session.rollback()
            return error(409, "this event is being recorded by another request; try again")
        return jsonify(recorded=created, id=event.id, type=event.type, contact_id=event.contact_id), 200


@bp.post("/stripe")
def stripe_webhook() -> tuple[Response, int]:
    """Stripe's events, verified by the stripe package with STRIPE_WEBHOOK_SECRET."""
    rt = runtime()
    secret = rt.settings.stripe_webhook_secret
    if not secret:
        return error(404, f"Stripe is not set up here ({STRIPE_SECRET} is not set)")
    body = request.get_data()
    try:
        parsed = _json(body)
        if not isinstance(parsed, dict):
            raise ValueError("not a JSON object")
        stripe.Webhook.construct_event(body, request.headers.get("Stripe-Signature"), secret)
    except stripe.SignatureVerificationError:
        return error(400, "bad or missing Stripe-Signature: not signed with this endpoint's secret")
    except ValueError:  # UnicodeDecodeError is one too
        return error(400, "expected a Stripe event: a JSON object")
    try:
        inbound = stripe_inbound(parsed, rt.integrations.stripe_products, rt.clock())
    except NotForUs as exc:
        return jsonify(recorded=False, ignored=str(exc)), 200
    return _record(inbound)


@bp.post("/hooks/<name>")
def generic_hook(name: str) -> tuple[Response, int]:
    """A hook named in integrations.yaml: its signature style and secret, then its field mapping."""
    rt = runtime()
    hook = rt.integrations.hooks.get(name)
    if hook is None:
        return error(404, "no such hook (hooks are named in integrations.yaml)")
    secret = rt.settings.webhook_secrets.get(hook.secret_env)
    if not secret:
        return error(404, f"hook {name} is not set up here ({hook.secret_env} is not set)")
    body = request.get_data()
    header = request.headers.get(inbound_signatures.HEADERS[hook.signature])
    if not inbound_signatures.verify(hook.signature, body, header, secret, rt.clock()):
        return error(400, f"bad or missing {inbound_signatures.HEADERS[hook.signature]}: not signed with "
                          f"this hook's secret")
    try:
        payload = _json(body)
    except ValueError:
        return error(400, "expected a JSON body")
    try:
        inbound = hook_inbound(hook, payload)
    except NotForUs as exc:
        return jsonify(recorded=False, ignored=str(exc)), 200
    return _record(inbound)


@bp.errorhandler(413)
def too_large(_exc: Exception) -> tuple[Response, int]:
    return error(413, "request body too large")
