"""What an email provider's signed webhook event does: the same as the news by email, through the same
functions.

- bounce or complaint: `nurture.people.bounces.apply_to_delivery`, exactly as a DSN or ARF report read
  from the bounce mailbox (suppression, the complaint's unsubscribe with its consent record, the soft
  bounce count, the delivery row `bounced` only from `sent`);
- delivered, opened: the delivery's provider status moves forward only (a late "delivered" after an
  "opened" changes nothing), and an event goes on the contact's timeline — an open also counts toward
  the lead score, as the open pixel's does;
- the same event sent twice (providers retry) changes things once: its key is a receipt.

The delivery is found by what the provider echoes back: the id nurture recorded when the relay took the
message (our Message-ID), or our signed return path or Message-ID, whose MAC is checked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session

from nurture.content.provider_events import ProviderEvent
from nurture.people import automation, bounces
from nurture.store import provider_events as store
from nurture.store.models import Contact, Delivery

if TYPE_CHECKING:
    from nurture.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Applied:
    """`what`: recorded | stale | duplicate | unknown-delivery | ignored, or a bounce Outcome's `what`."""

    what: str
    delivery_id: int | None = None


def find_delivery(session: Session, rt: Runtime, traces: tuple[str, ...]) -> int | None:
    """Our delivery, by a signed trace first (it proves itself), else by the provider id on record."""
    for trace in traces:
        delivery_id = rt.signer.returned_delivery(trace)
        if delivery_id is not None:
            return delivery_id
    candidates = [form for trace in traces for form in (trace, f"<{trace.strip('<>')}>")]
    return store.email_by_provider_id(session, candidates)


def apply_event(session: Session, rt: Runtime, event: ProviderEvent, now: datetime) -> Applied:
    """Apply one verified event. The caller commits."""
    if event.kind == "ignored":
        return Applied("ignored")
    delivery_id = find_delivery(session, rt, event.traces)
    if delivery_id is None:
        log.info("%s webhook: %s for no delivery of ours (%s)", event.provider, event.kind, event.traces)
        return Applied("unknown-delivery")
    if not store.first_receipt(session, event.key, now):
        return Applied("duplicate", delivery_id)
    if event.kind in bounces.EVENT_TYPES:
        outcome = bounces.apply_to_delivery(session, rt.settings.bounces, event.as_report(), delivery_id, now)
        return Applied(outcome.what, delivery_id)
    return _status(session, rt, event, delivery_id, now)


def _status(session: Session, rt: Runtime, event: ProviderEvent, delivery_id: int, now: datetime) -> Applied:
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        return Applied("unknown-delivery", delivery_id)
    recorded = store.record_email_status(session, delivery_id, event.kind, now)
    contact = session.get(Contact, delivery.contact_id)
    if contact is None:  # foreign key: only a row deleted under us
        return Applied("unknown-delivery", delivery_id)
    # Every open is news for the score (a second open of the same message is interest too); a delivery
    # report is news once.
    if recorded or event.kind == "opened":
        data = {"sequence": delivery.sequence_id, "step": delivery.step_id, "via": event.provider, "bot": False}
        automation.record(session, rt, contact, f"email.{event.kind}", data, now)
    return Applied("recorded" if recorded else "stale", delivery_id)
