"""Reading what comes back: bounces (RFC 3464 delivery status notifications, and the plain-text ones some
MTAs still write) and spam complaints (RFC 5965 ARF feedback reports). Bytes in, a `Report` out; no I/O.

Structured DSNs are read field by field with the stdlib `email` package: their Status code is what says
hard (5.x.x) or soft (4.x.x). Bounces without one go to flufl.bounce, GNU Mailman's detectors for the
formats of qmail, Postfix, Exim, Exchange and the rest, which says whether the failure is permanent.
No maintained parser for ARF exists on PyPI; its fields are plain headers, so the stdlib reads them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from email.utils import getaddresses, parseaddr

from flufl.bounce import all_failures

# Where a returned message says who sent it: the envelope recipient of the bounce (which the mailbox or
# the relay records), a feedback report's Original-Mail-From, and the quoted original's own headers.
_TRACE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
_STATUS = re.compile(r"\b([45])\.(\d{1,3})\.(\d{1,3})\b")
_TYPED = re.compile(r"^(?:rfc822|dns|smtp|x-[\w.-]+|utf-8)\s*;\s*", re.IGNORECASE)  # RFC 3464's type prefix
_REPLY = re.compile(r"\b([45])\d\d[ -]")
_QUOTED = re.compile(rb"^(?:Return-Path|Message-ID):[ \t]*<([^>\s]+)>", re.IGNORECASE | re.MULTILINE)
COMPLAINTS = ("abuse", "fraud")  # RFC 5965 feedback types that are a recipient's complaint


@dataclass(frozen=True)
class Report:
    """What a returned message says. `kind`: hard | soft | complaint | delayed (a warning: the MTA is
    still trying) | unknown (not a bounce we can read)."""

    kind: str
    traces: tuple[str, ...]  # addresses and Message-IDs that may name the delivery, most direct first
    fingerprint: str  # the same report read twice has the same one (its Message-ID, or its bytes' hash)
    status: str | None = None  # the enhanced status code, 5.1.1
    diagnostic: str | None = None  # the receiving server's words, or the feedback type
    recipient: str | None = None  # the address that failed, as the report gives it
    reporter: str | None = None  # Reporting-MTA, or the feedback report's User-Agent

    @property
    def reason(self) -> str:
        what = {"hard": "hard bounce", "soft": "soft bounce", "complaint": "spam complaint"}.get(self.kind, self.kind)
        detail = " ".join(part for part in (self.status, self.diagnostic) if part)
        return f"{what}: {detail}"[:200] if detail else what


def parse_report(data: bytes, envelope_recipients: tuple[str, ...] = ()) -> Report:
    """Read one returned message. `envelope_recipients`: the RCPT TO addresses it came to, when known
    (the inbound SMTP endpoint knows them; a mailbox records them in Delivered-To)."""
    message = message_from_bytes(data, policy=policy.compat32)
    fingerprint = _fingerprint(message, data)
    traces = _traces(message, data, envelope_recipients)
    if message.get_content_type() == "multipart/report":
        report_type = (message.get_param("report-type") or "").lower()
        if report_type == "feedback-report":
            return _feedback(message, traces, fingerprint)
        if report_type == "delivery-status":
            found = _delivery_status(message, traces, fingerprint)
            if found is not None:
                return found
    return _plain(message, traces, fingerprint)


def _fingerprint(message: Message, data: bytes) -> str:
    message_id = (message.get("Message-ID") or "").strip()
    return message_id[:150] if message_id else "sha256:" + hashlib.sha256(data).hexdigest()


def _traces(message: Message, data: bytes, envelope: tuple[str, ...]) -> tuple[str, ...]:
    found = list(envelope)
    for name in _TRACE_HEADERS:
        found += [address for _, address in getaddresses([str(v) for v in message.get_all(name, [])]) if address]
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            block = _first_block(part)
            found += [parseaddr(str(block.get("Original-Mail-From", "")))[1]] if block is not None else []
    found += [match.decode("ascii", "replace") for match in _QUOTED.findall(data)]
    return tuple(dict.fromkeys(address for address in found if address))


def _first_block(part: Message) -> Message | None:
    """The header block of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    if isinstance(payload, str):  # some parsers leave a part they do not know as text
        return message_from_bytes(payload.strip().encode("utf-8", "replace"), policy=policy.compat32)
    return None


def _feedback(message: Message, traces: tuple[str, ...], fingerprint: str) -> Report:
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            block = _first_block(part)
            if block is None:
                break
            feedback_type = str(block.get("Feedback-Type", "")).strip().lower()
            kind = "complaint" if feedback_type in COMPLAINTS else "unknown"
            recipient = parseaddr(str(block.get("Original-Rcpt-To", "")))[1] or None
            reporter = str(block.get("User-Agent") or block.get("Reporting-MTA") or "").strip() or None
            return Report(kind, traces, fingerprint, diagnostic=f"feedback type {feedback_type or 'missing'}",
                          recipient=recipient, reporter=reporter)
    return Report("unknown", traces, fingerprint)


def _delivery_status(message: Message, traces: tuple[str, ...], fingerprint: str) -> Report | None:
    """The first recipient block that failed (or is delayed): nurture sends to one recipient a message."""
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks = payload if isinstance(payload, list) else []
        reporter = _field(blocks[0], "Reporting-MTA") if blocks else None
        for block in blocks[1:] or blocks:
            found = _recipient_block(block, traces, fingerprint, reporter)
            if found is not None:
                return found
    return None


def _field(block: Message, name: str) -> str | None:
    """A DSN field without its type prefix: `rfc822; ann@example.com` is ann@example.com."""
    value = _TYPED.sub("", " ".join(str(block.get(name, "")).split()), count=1)
    return value or None


def _recipient_block(block: Message, traces: tuple[str, ...], fingerprint: str, reporter: str | None) -> Report | None:
    action = str(block.get("Action", "")).strip().lower()
    if not action.startswith(("failed", "delayed", "error")):
        return None  # delivered, relayed, expanded: not a failure
    diagnostic = _field(block, "Diagnostic-Code")
    status = _status(str(block.get("Status", ""))) or _status(diagnostic or "")
    if action.startswith("delayed"):
        kind = "delayed"
    else:
        kind = "soft" if (status or "5").startswith("4") else "hard"
    recipient = parseaddr(_field(block, "Final-Recipient") or _field(block, "Original-Recipient") or "")[1]
    return Report(kind, traces, fingerprint, status, diagnostic, recipient or None, reporter)


def _status(text: str) -> str | None:
    match = _STATUS.search(text)
    if match:
        return ".".join(match.groups())
    reply = _REPLY.search(text + " ")
    return f"{reply[1]}.0.0" if reply else None


def _plain(message: Message, traces: tuple[str, ...], fingerprint: str) -> Report:
    """A bounce written as prose (qmail, old Postfix, Exchange...): flufl.bounce finds the failed
    recipients; the first status or SMTP reply code in the text says hard or soft."""
    temporary, permanent = all_failures(message)
    if not (temporary or permanent):
        return Report("unknown", traces, fingerprint)
    text = "\n".join(part.get_payload(decode=True).decode("utf-8", "replace")
                     for part in message.walk() if part.get_content_maintype() == "text"
                     and isinstance(part.get_payload(decode=True), bytes))
    line = next((line.strip() for line in text.splitlines() if _status(line)), None)
    status = _status(line) if line else None
    recipient = next(iter(sorted(permanent or temporary))).decode("ascii", "replace")
    if not permanent:
        return Report("delayed", traces, fingerprint, status, recipient=recipient)
    kind = "soft" if status and status.startswith("4") else "hard"
    return Report(kind, traces, fingerprint, status, line[:300] if line else None, recipient)
