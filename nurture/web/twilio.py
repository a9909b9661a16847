"""Twilio's webhooks: /twilio/inbound (texts people send to our number) and /twilio/status (what became of
the texts we sent).

Every request must carry a valid X-Twilio-Signature (HMAC-SHA1 of the URL and the POSTed fields, keyed
with TWILIO_AUTH_TOKEN); anything else gets 403 and changes nothing. The URL is rebuilt from BASE_URL, not
from the request, because behind a proxy or TLS terminator the app sees http://127.0.0.1:8000/... while
Twilio signed https://public.example/....
"""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Blueprint, Response, request
from sqlmodel import Session
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from nurture.config import Settings
from nurture.content.app_words import translate
from nurture.delivery.transports.twilio import INVALID_NUMBERS, OPTED_OUT
from nurture.people import preferences
from nurture.people.contacts import record_event
from nurture.people.preferences import Origin
from nurture.rules.sms import keyword, keyword_locale
from nurture.store import claims as store
from nurture.store import consent as consent_store
from nurture.store import contacts as contacts_store
from nurture.store.models import Contact, Delivery
from nurture.web import runtime

log = logging.getLogger(__name__)
bp = Blueprint("twilio", __name__)

MAX_BODY = 1600  # Twilio's own limit on a message body


def signed_url() -> str:
    """The URL Twilio requested, as Twilio saw it: BASE_URL + path (+ query)."""
    query = request.query_string.decode("utf-8", "replace")
    return runtime().settings.base_url + request.path + (f"?{query}" if query else "")


def is_signed() -> bool:
    twilio = runtime().settings.sms.twilio
    signature = request.headers.get("X-Twilio-Signature", "")
    if twilio is None or not signature:
        return False
    return RequestValidator(twilio.auth_token).validate(signed_url(), request.form, signature)


def _forbidden() -> Response:
    log.warning("twilio webhook %s: missing or wrong X-Twilio-Signature (from %s)", request.path,
                request.remote_addr)
    return Response("invalid or missing X-Twilio-Signature\n", 403, mimetype="text/plain")


def _twiml(reply: str | None) -> Response:
    twiml = MessagingResponse()
    if reply:
        twiml.message(reply)
    return Response(str(twiml), 200, mimetype="text/xml")


def _error_code(raw: str) -> bool:
    """Twilio's codes are five digits. isascii: "²" is a digit to isdigit() and no number to int(); the
    length keeps the value inside the INTEGER column (PostgreSQL refuses more than 2**31 - 1)."""
    return raw.isascii() and raw.isdigit() and len(raw) <= 9


def _malformed() -> Response | None:
    """Twilio never sends a NUL, and PostgreSQL refuses one in any text it is compared with or stored in."""
    if any("\x00" in value for value in request.form.values()):
        return Response("a field contains a NUL character\n", 400, mimetype="text/plain")
    return None


@bp.post("/twilio/inbound")
def inbound() -> Response:
    if not is_signed():
        return _forbidden()
    if (refused := _malformed()) is not None:
        return refused
    rt = runtime()
    phone = request.form.get("From", "").strip()
    body = request.form.get("Body", "")[:MAX_BODY]
    with Session(rt.db) as session:
        reply = handle_reply(session, rt.settings, phone, body, request.form.get("MessageSid", ""), rt.clock())
        session.commit()
    return _twiml(reply)


@bp.post("/twilio/status")
def status() -> Response:
    if not is_signed():
        return _forbidden()
    if (refused := _malformed()) is not None:
        return refused
    rt = runtime()
    sid = request.form.get("MessageSid", "").strip()
    state = request.form.get("MessageStatus", "").strip().lower()
    raw_code = request.form.get("ErrorCode", "").strip()
    if not sid or state not in store.PROVIDER_STATUS_RANK or (raw_code and not _error_code(raw_code)):
        return Response("expected MessageSid, a known MessageStatus and a numeric ErrorCode\n", 400,
                        mimetype="text/plain")
    with Session(rt.db) as session:
        record_status(session, sid, state, int(raw_code) if raw_code else None, rt.clock())
        session.commit()
    return Response("", 200, mimetype="text/plain")


# --- what a reply does -------------------------------------------------------------------------------------

def help_reply(settings: Settings, locale: str | None = None) -> str:
    return translate(locale, "%(brand)s: for help, email %(support)s. Msg&data rates may apply. "
                             "Reply STOP to opt out.", brand=settings.brand_name, support=settings.support_email)


def opt_out_reply(settings: Settings, word: str, locale: str | None) -> str:
    """nurture's own answer to STOP and START (SMS_OPT_OUT_REPLIES=nurture), in the contact's language."""
    if word == "stop":
        return translate(locale, "%(brand)s: you are unsubscribed and will get no more texts from us. "
                                 "Reply START to subscribe again.", brand=settings.brand_name)
    return translate(locale, "%(brand)s: you are subscribed to our texts again. Msg&data rates may apply. "
                             "Reply HELP for help, STOP to opt out.", brand=settings.brand_name)


def reply_locale(settings: Settings, contacts: list[Contact], body: str) -> str:
    """The language to answer `body` in: the contact's own; else the keyword's (ARRET is French); else the
    default."""
    own = next((contact.locale for contact in contacts if contact.locale), None)
    return own or keyword_locale(body) or settings.default_locale


def contacts_with_phone(session: Session, phone: str) -> list[Contact]:
    if not phone:
        return []
    return contacts_store.by_phone(session, phone)


def had_sms_consent(session: Session, contact: Contact) -> bool:
    return consent_store.ever_opted_in(session, contact.id, "sms")


def handle_reply(session: Session, settings: Settings, phone: str, body: str, message_sid: str,
                 now: datetime) -> str | None:
    """What a text from `phone` does; returns the reply to send back, if any.

    A keyword acts on every contact holding the number: it is the number that asked. By default STOP and
    START get no reply from nurture: Twilio's Advanced Opt-Out confirms them itself (and after STOP it would
    refuse ours with 21610). With SMS_OPT_OUT_REPLIES=nurture, nurture answers them, in the contact's
    language (a START that opted nobody back in gets no answer: it changed nothing).
    """
    contacts = contacts_with_phone(session, phone)
    word = keyword(body)
    origin = Origin(method="sms-keyword", consent_text=body.strip() or None)
    if word in ("stop", "start"):
        changed = False
        for contact in contacts:
            # START undoes a STOP: it opts back in those who had agreed to texts before, and is no first
            # opt-in for a contact that never did (SMS consent is given on a form, with its own text).
            if word == "stop" or had_sms_consent(session, contact):
                preferences.set_sms(session, contact, word == "start", origin, now)
                changed = True
        if settings.sms.opt_out_replies != "nurture" or (word == "start" and not changed):
            return None
        return opt_out_reply(settings, word, reply_locale(settings, contacts, body))
    about = {"body": body, "from": phone, "message_sid": message_sid}
    for contact in contacts:
        record_event(session, contact.id, "sms.help" if word == "help" else "sms.received", now, about)
    if not contacts:
        log.info("text from %s matches no contact (%s)", phone, word or "a reply")
    return help_reply(settings, reply_locale(settings, contacts, body)) if word == "help" else None


def record_status(session: Session, message_sid: str, state: str, error_code: int | None, now: datetime) -> None:
    """Twilio's report on a text we sent. Stale reports change nothing; final ones go on the timeline."""
    delivery: Delivery | None = store.record_provider_status(session, "sms", message_sid, state, error_code, now)
    if delivery is None:
        return
    if state in ("delivered", "undelivered", "failed"):
        record_event(session, delivery.contact_id, f"sms.{state}", now,
                     {"message_sid": message_sid, "error_code": error_code, "sequence": delivery.sequence_id,
                      "step": delivery.step_id}, delivery.id)
    reason = f"Twilio error {error_code} on {message_sid}"
    if error_code == OPTED_OUT:
        store.opt_out_at_provider(session, delivery.contact_id, "sms", "sms_status", delivery.id, reason, now)
    elif error_code in INVALID_NUMBERS:
        store.suppress(session, delivery.recipient, "sms", f"rejected: {reason}", now)
