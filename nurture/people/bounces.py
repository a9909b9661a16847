"""What a bounce or a spam complaint does to a contact, once its return path has proved which delivery
it is about.

- hard bounce (5.x.x): the address is suppressed; nothing is sent to it again.
- soft bounce (4.x.x, the MTA gave up): counted; the SOFT_LIMIT-th within the window suppresses it.
- complaint (ARF abuse): unsubscribed from all marketing email, with a consent record, and suppressed:
  never mailed again, not even a confirmation.
- delayed (the MTA is still trying), unreadable, or unverified: nothing changes.

Each applied report is an event on the contact (`email.bounced`, `email.soft_bounce`,
`email.complained`) naming the delivery's sequence and step, so `nurture why` shows it; the delivery row
becomes `bounced`. The same report applied twice changes things once (its fingerprint is the event's key).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from nurture.config import BounceSettings
from nurture.content.reports import Report
from nurture.people import suppression
from nurture.people.preferences import LinkTarget, Origin, UnknownLink, resolve, unsubscribe_all
from nurture.rules.tokens import LinkSigner
from nurture.store import bounces as store

log = logging.getLogger(__name__)

EVENT_TYPES = {"hard": "email.bounced", "soft": "email.soft_bounce", "complaint": "email.complained"}


@dataclass(frozen=True)
class Outcome:
    """`what`: suppressed | counted | unsubscribed | duplicate | unverified | unknown-delivery | ignored."""

    what: str
    delivery_id: int | None = None
    detail: str = ""


def traced_delivery(signer: LinkSigner, report: Report) -> int | None:
    """The delivery the first verifying trace names (VERP return path, or our signed Message-ID)."""
    for trace in report.traces:
        delivery_id = signer.returned_delivery(trace)
        if delivery_id is not None:
            return delivery_id
    return None


def apply_report(session: Session, signer: LinkSigner, policy: BounceSettings, report: Report,
                 now: datetime) -> Outcome:
    """Apply one parsed report. The caller commits."""
    if report.kind not in EVENT_TYPES:
        return Outcome("ignored", detail=f"{report.kind}: {report.reason}")
    delivery_id = traced_delivery(signer, report)
    if delivery_id is None:
        # Forged, or sent to the bounce address by something that is not a returned message of ours.
        log.warning("bounce ignored: no verifying return path among %s (%s)", report.traces, report.reason)
        return Outcome("unverified", detail=report.reason)
    return apply_to_delivery(session, policy, report, delivery_id, now)


def apply_to_delivery(session: Session, policy: BounceSettings, report: Report, delivery_id: int,
                      now: datetime) -> Outcome:
    """Apply a bounce or complaint about a delivery already proved ours (by its return path, or by a
    provider's signed webhook naming it). The caller commits."""
    try:
        target = resolve(session, delivery_id)
    except UnknownLink:
        return Outcome("unknown-delivery", delivery_id)
    data = {"sequence": target.delivery.sequence_id, "step": target.delivery.step_id, "reason": report.reason,
            "status": report.status, "reporter": report.reporter, "kind": target.delivery.kind}
    key = f"{report.kind}:{delivery_id}:{report.fingerprint}"
    if not store.record_once(session, key, target.contact.id or 0, EVENT_TYPES[report.kind], data, delivery_id, now):
        return Outcome("duplicate", delivery_id)
    if report.kind != "complaint":
        store.mark_bounced(session, delivery_id, report.reason, now)
    return _consequences(session, policy, report, target, now)


def _consequences(session: Session, policy: BounceSettings, report: Report, target: LinkTarget,
                  now: datetime) -> Outcome:
    address, delivery_id = target.delivery.recipient, target.delivery.id
    if report.kind == "hard":
        suppression.add(session, address, report.reason, now)
        return Outcome("suppressed", delivery_id, report.reason)
    if report.kind == "complaint":
        return _complaint(session, report, target, now)
    since = now - timedelta(days=policy.soft_window_days)
    count = store.count_events_since(session, target.contact.id or 0, EVENT_TYPES["soft"], since)
    if count < policy.soft_limit:
        return Outcome("counted", delivery_id, f"{count} of {policy.soft_limit} in {policy.soft_window_days} days")
    reason = f"{count} soft bounces in {policy.soft_window_days} days (last: {report.reason})"
    suppression.add(session, address, reason, now)
    return Outcome("suppressed", delivery_id, reason)


def _complaint(session: Session, report: Report, target: LinkTarget, now: datetime) -> Outcome:
    """A recipient marked our mail as spam: out of all marketing email, on the record, and suppressed, so
    a later sign-up form or a resubscribe can never mail them again by mistake."""
    text = f"marked as spam: feedback report from {report.reporter or 'a mailbox provider'}"
    unsubscribe_all(session, target.contact, Origin("complaint", target.delivery.id, consent_text=text), now)
    suppression.add(session, target.delivery.recipient, f"spam complaint ({report.reporter or 'ARF'})", now)
    return Outcome("unsubscribed", target.delivery.id, text)
