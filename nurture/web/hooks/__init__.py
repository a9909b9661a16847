"""Email providers' webhooks: /hooks/ses (Amazon SES through SNS), /hooks/postmark, /hooks/sendgrid and
/hooks/mailgun. What each says about a message we sent — delivered, opened, bounced, complained — is
applied by nurture.people.provider_events.

Each endpoint is off (404) until its secret is configured, and checks the provider's proof before it
reads anything else: a request that does not prove itself gets 403 and changes nothing. A proved body
that is not the provider's payload is a 400; the provider's own retry of an event changes nothing twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request
from sqlmodel import Session

from nurture.content.provider_events import (
    PayloadError,
    ProviderEvent,
    mailgun_event,
    postmark_event,
    sendgrid_events,
    ses_events,
)
from nurture.people.provider_events import apply_event
from nurture.store.provider_events import first_receipt
from nurture.web import runtime
from nurture.web.hooks import signatures, sns

log = logging.getLogger(__name__)
bp = Blueprint("hooks", __name__)

# SendGrid batches events and SNS messages reach 256 KB: more than the app's limit for a form or API call.
MAX_HOOK_BODY = 1024 * 1024


@bp.before_request
def _allow_bigger_bodies() -> None:
    request.max_content_length = MAX_HOOK_BODY


def _text(status: int, message: str) -> Response:
    return Response(message + "\n", status, mimetype="text/plain")


def _off() -> Response:
    return _text(404, "not found")


def _forbidden(provider: str, why: str) -> Response:
    log.warning("%s webhook refused: %s (from %s)", provider, why, request.remote_addr)
    return _text(403, f"forbidden: {why}")


def _json(data: bytes | str) -> Any:
    """The body as JSON; PayloadError when it is not (NaN and Infinity are no JSON either)."""
    try:
        return json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise PayloadError("the body is not JSON") from exc


def _no_constant(name: str) -> None:
    raise ValueError(name)


def _apply(parse: Callable[[], list[ProviderEvent]], receipt: str | None = None) -> Response:
    """Parse (the proof was checked), then apply every event in one transaction. `receipt`: a key that
    must not have been seen before (Mailgun's signing token), recorded in the same transaction."""
    try:
        events = parse()
    except PayloadError as exc:
        return _text(400, str(exc))
    rt = runtime()
    now = rt.clock()
    with Session(rt.db) as session:
        if receipt is not None and not first_receipt(session, receipt, now):
            return _forbidden(receipt.partition(":")[0], "this signed request was already used (a replay)")
        outcomes = [apply_event(session, rt, event, now).what for event in events]
        session.commit()
    log.info("provider webhook %s: %s", request.path, ", ".join(outcomes) or "no events")
    return _text(200, "ok")


@bp.post("/hooks/ses")
def ses() -> Response:
    settings = runtime().settings.providers
    if not settings.ses_topic_arns:
        return _off()
    try:
        body = _json(request.get_data())
    except PayloadError as exc:
        return _text(400, str(exc))
    try:
        message = sns.verify(settings, body, runtime().clock())
        if message.type == "SubscriptionConfirmation":
            sns.confirm(settings, message)
            return _text(200, "subscription confirmed")
    except sns.NotFromSns as exc:
        return _forbidden("ses", str(exc))
    if message.type != "Notification":
        return _text(200, "ok")
    return _apply(lambda: ses_events(_json(message.message), message.message_id))


@bp.post("/hooks/postmark")
def postmark() -> Response:
    settings = runtime().settings.providers
    if not settings.postmark_on:
        return _off()
    auth = request.authorization
    user, password = (auth.username, auth.password) if auth and auth.type == "basic" else (None, None)
    if not signatures.postmark_ok(user, password, settings.postmark_user or "", settings.postmark_password or ""):
        return _forbidden("postmark", "wrong or missing basic auth credentials")
    return _apply(lambda: [postmark_event(_json(request.get_data()))])


@bp.post("/hooks/sendgrid")
def sendgrid() -> Response:
    settings, rt = runtime().settings.providers, runtime()
    if not settings.sendgrid_public_key:
        return _off()
    signature = request.headers.get("X-Twilio-Email-Event-Webhook-Signature", "")
    timestamp = request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
    payload = request.get_data()
    if not signatures.sendgrid_ok(settings.sendgrid_public_key, signature, timestamp, payload):
        return _forbidden("sendgrid", "missing or wrong X-Twilio-Email-Event-Webhook-Signature")
    if not signatures.fresh(timestamp, rt.clock(), settings.max_age_seconds):
        return _forbidden("sendgrid", "the signed timestamp is too old (a replay?)")
    return _apply(lambda: sendgrid_events(_json(payload)))


@bp.post("/hooks/mailgun")
def mailgun() -> Response:
    settings, rt = runtime().settings.providers, runtime()
    if not settings.mailgun_signing_key:
        return _off()
    try:
        body = _json(request.get_data())
    except PayloadError as exc:
        return _text(400, str(exc))
    proof = body.get("signature") if isinstance(body, dict) else None
    proof = proof if isinstance(proof, dict) else {}
    timestamp, token, signature = (str(proof.get(name, "")) for name in ("timestamp", "token", "signature"))
    if not (token and signatures.mailgun_ok(settings.mailgun_signing_key, timestamp, token, signature)):
        return _forbidden("mailgun", "missing or wrong signature")
    if not signatures.fresh(timestamp, rt.clock(), settings.max_age_seconds):
        return _forbidden("mailgun", "the signed timestamp is too old (a replay?)")
    if not (token.isascii() and token.isprintable() and len(token) <= 150):  # Mailgun's are 50 hex digits
        return _text(400, "the signature's token is not one Mailgun makes")
    return _apply(lambda: [mailgun_event(body.get("event-data"))], receipt=f"mailgun:token:{token}")
