"""What an email provider's webhook says, in one shape: parsed JSON in, `ProviderEvent`s out, no I/O.

Each provider names the same few things its own way. What nurture needs from each event: what happened
(`kind`), how to find our delivery (`traces`: the ids and addresses the provider echoes, most direct
first), and an id that is the same when the provider sends the event again (`key`). Signatures are
checked before any of this runs (nurture.web.hooks).

    kind        SES (SNS)             Postmark                       SendGrid               Mailgun
    delivered   Delivery              Delivery                       delivered              delivered
    opened      Open                  Open                           open                   opened
    hard        Bounce Permanent      HardBounce, BadEmailAddress    bounce (5.x.x)         failed permanent
    soft        Bounce Transient      SoftBounce, Transient,         bounce (4.x.x),        failed permanent,
                                      DnsError, Blocked              blocked                reason "old"
    complaint   Complaint             SpamComplaint                  spamreport             complained
    ignored     anything else: a delay the provider is still retrying, a click, an auto-responder
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nurture.content.reports import Report

KINDS = ("delivered", "opened", "hard", "soft", "complaint", "ignored")
_STATUS = re.compile(r"\b([45])\.\d{1,3}\.\d{1,3}\b")


class PayloadError(ValueError):
    """The body is not the provider's webhook payload (it verified, but has not the fields it must)."""


@dataclass(frozen=True)
class ProviderEvent:
    provider: str  # ses | postmark | sendgrid | mailgun
    kind: str  # one of KINDS
    key: str  # the same event sent again has the same key
    traces: tuple[str, ...]  # provider message ids, our Message-ID or return path as echoed
    recipient: str = ""
    status: str | None = None  # an enhanced status code, 5.1.1
    diagnostic: str | None = None  # the receiving server's words, or the provider's

    def as_report(self) -> Report:
        """A bounce or complaint, in the shape nurture.people.bounces applies (the same as by email)."""
        return Report(kind=self.kind, traces=self.traces, fingerprint=self.key, status=self.status,
                      diagnostic=(self.diagnostic or "")[:150] or None, recipient=self.recipient or None,
                      reporter=self.provider)


def _text(value: Any) -> str:
    """A field as text fit to store: JSON may spell a NUL or a lone surrogate (\\u0000, \\ud800), which
    PostgreSQL refuses in text and in jsonb alike."""
    text = value if isinstance(value, str) else str(value) if isinstance(value, int | float) else ""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8").strip()


def _traces(*values: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(text for value in values if (text := _text(value))))


def _status_in(*texts: str | None) -> str | None:
    for text in texts:
        if text and (found := _STATUS.search(text)):
            return found[0]
    return None


def _dicts(value: Any) -> list[dict]:
    """The objects in what should be a list of objects (anything else in it, or no list, is none)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise PayloadError(f"expected {what} to be a JSON object")
    return value


# --- Amazon SES, through SNS ---------------------------------------------------------------------------------

def ses_events(message: Any, sns_message_id: str) -> list[ProviderEvent]:
    """One SES notification (the `Message` of an SNS notification, parsed): one event per recipient."""
    message = _object(message, "the SNS Message")
    kind_name = _text(message.get("notificationType") or message.get("eventType"))
    mail = _object(message.get("mail", {}), "mail")
    headers = {_text(h.get("name")).lower(): _text(h.get("value")) for h in _dicts(mail.get("headers"))}
    common = mail.get("commonHeaders") if isinstance(mail.get("commonHeaders"), dict) else {}
    # The envelope sender SES was given is our signed VERP return path: the most direct trace.
    traces = _traces(mail.get("source"), common.get("messageId"), headers.get("message-id"),
                     headers.get("return-path"), mail.get("messageId"))
    key = f"ses:{_text(sns_message_id)}"
    if kind_name == "Bounce":
        return _ses_bounce(_object(message.get("bounce", {}), "bounce"), key, traces)
    if kind_name == "Complaint":
        complaint = _object(message.get("complaint", {}), "complaint")
        return [ProviderEvent("ses", "complaint", f"{key}:{i}", traces, _text(r.get("emailAddress")),
                              diagnostic=_text(complaint.get("complaintFeedbackType")) or "abuse")
                for i, r in enumerate(_recipients(complaint, "complainedRecipients"))]
    if kind_name in ("Delivery", "Open"):
        kind = "delivered" if kind_name == "Delivery" else "opened"
        return [ProviderEvent("ses", kind, key, traces)]
    return [ProviderEvent("ses", "ignored", key, traces, diagnostic=kind_name or "no notificationType")]


def _ses_bounce(bounce: dict, key: str, traces: tuple[str, ...]) -> list[ProviderEvent]:
    # Permanent: the address is bad. Transient (and Undetermined): SES retried and gave up.
    kind = "hard" if bounce.get("bounceType") == "Permanent" else "soft"
    sub = _text(bounce.get("bounceSubType"))
    events = []
    for i, recipient in enumerate(_recipients(bounce, "bouncedRecipients")):
        diagnostic = _text(recipient.get("diagnosticCode")) or sub
        status = _text(recipient.get("status")) or _status_in(diagnostic)
        events.append(ProviderEvent("ses", kind, f"{key}:{i}", traces, _text(recipient.get("emailAddress")),
                                    status or None, diagnostic or None))
    return events


def _recipients(block: dict, name: str) -> list[dict]:
    return _dicts(block.get(name)) or [{}]


# --- Postmark ------------------------------------------------------------------------------------------------

POSTMARK_HARD = ("HardBounce", "BadEmailAddress")
POSTMARK_SOFT = ("SoftBounce", "Transient", "DnsError", "Blocked")  # Blocked: the receiver's policy, not the address


def postmark_event(body: Any) -> ProviderEvent:
    body = _object(body, "the body")
    record = _text(body.get("RecordType"))
    metadata = body.get("Metadata") if isinstance(body.get("Metadata"), dict) else {}
    traces = _traces(body.get("MessageID"), *metadata.values())
    recipient = _text(body.get("Email") or body.get("Recipient"))
    key = f"postmark:{record}:{_text(body.get('ID')) or _text(body.get('MessageID'))}"
    if record == "Delivery":
        return ProviderEvent("postmark", "delivered", key, traces, recipient)
    if record == "Open":
        return ProviderEvent("postmark", "opened", key, traces, recipient)
    if record == "SpamComplaint":
        return ProviderEvent("postmark", "complaint", key, traces, recipient, diagnostic="SpamComplaint")
    bounce_type = _text(body.get("Type"))
    kind = ("hard" if bounce_type in POSTMARK_HARD else "soft" if bounce_type in POSTMARK_SOFT
            else "complaint" if bounce_type == "SpamComplaint" else "ignored")
    details = _text(body.get("Details")) or _text(body.get("Description"))
    if record != "Bounce":
        kind = "ignored"
    return ProviderEvent("postmark", kind, key, traces, recipient, _status_in(details), f"{bounce_type}: {details}")


# --- SendGrid ------------------------------------------------------------------------------------------------

def sendgrid_events(body: Any) -> list[ProviderEvent]:
    if not isinstance(body, list):
        raise PayloadError("expected a JSON array of events")
    return [_sendgrid_event(_object(item, "each event"), i) for i, item in enumerate(body)]


def _sendgrid_event(item: dict, index: int) -> ProviderEvent:
    name = _text(item.get("event"))
    sg_id = _text(item.get("sg_message_id"))
    # sg_message_id is the X-Message-Id SendGrid answered with, then ".filter…": keep both forms.
    traces = _traces(item.get("smtp-id"), sg_id, sg_id.partition(".filter")[0] if ".filter" in sg_id else "")
    key = f"sendgrid:{_text(item.get('sg_event_id')) or f'{sg_id}:{name}:{index}'}"
    recipient = _text(item.get("email"))
    if name in ("delivered", "open"):
        return ProviderEvent("sendgrid", "delivered" if name == "delivered" else "opened", key, traces, recipient)
    if name == "spamreport":
        return ProviderEvent("sendgrid", "complaint", key, traces, recipient, diagnostic="spamreport")
    if name == "bounce":
        reason = _text(item.get("reason"))
        status = _text(item.get("status")) or _status_in(reason)
        blocked = _text(item.get("type")) == "blocked" or (status or "").startswith("4")
        return ProviderEvent("sendgrid", "soft" if blocked else "hard", key, traces, recipient, status or None,
                             reason or None)
    return ProviderEvent("sendgrid", "ignored", key, traces, recipient, diagnostic=name or "no event")


# --- Mailgun -------------------------------------------------------------------------------------------------

def mailgun_event(data: Any) -> ProviderEvent:
    """The `event-data` of one Mailgun webhook."""
    data = _object(data, "event-data")
    name = _text(data.get("event"))
    message = data.get("message") if isinstance(data.get("message"), dict) else {}
    headers = message.get("headers") if isinstance(message.get("headers"), dict) else {}
    variables = data.get("user-variables") if isinstance(data.get("user-variables"), dict) else {}
    traces = _traces(headers.get("message-id"), *variables.values())
    key = f"mailgun:{_text(data.get('id')) or _text(data.get('timestamp'))}:{name}"
    recipient = _text(data.get("recipient"))
    if name in ("delivered", "opened"):
        return ProviderEvent("mailgun", name, key, traces, recipient)
    if name == "complained":
        return ProviderEvent("mailgun", "complaint", key, traces, recipient, diagnostic="complained")
    if name == "failed" and data.get("severity") == "permanent":
        status_block = data.get("delivery-status") if isinstance(data.get("delivery-status"), dict) else {}
        words = _text(status_block.get("description")) or _text(status_block.get("message"))
        status = _text(status_block.get("enhanced-code")) or _status_in(words)
        # "old": Mailgun retried a temporary failure until it gave up — a soft bounce, not a bad address.
        kind = "soft" if data.get("reason") == "old" or (status or "").startswith("4") else "hard"
        return ProviderEvent("mailgun", kind, key, traces, recipient, status or None,
                             f"{_text(status_block.get('code'))} {words}".strip() or None)
    # "failed" temporary: Mailgun is still retrying.
    return ProviderEvent("mailgun", "ignored", key, traces, recipient, diagnostic=name or "no event")
