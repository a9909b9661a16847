"""What templates see: plain snapshots of the contact, brand, sequence and step, and the links.

Shared by every channel, and by `nurture check` (which knows from here which names and attributes exist).
"""

from __future__ import annotations

from dataclasses import dataclass

from nurture.models import Contact
from nurture.runtime import Runtime
from nurture.sequence import Sequence, Step


@dataclass(frozen=True)
class ContactView:
    """A snapshot, never the ORM row (no lazy loads mid-render)."""

    first_name: str
    last_name: str
    email: str
    phone: str | None
    timezone: str | None
    stage: str
    tags: tuple[str, ...]
    fields: dict

    @classmethod
    def of(cls, contact: Contact) -> ContactView:
        return cls(contact.first_name, contact.last_name, contact.email, contact.phone, contact.timezone,
                   contact.stage, tuple(contact.tags), dict(contact.fields))


@dataclass(frozen=True)
class BrandView:
    name: str
    support_email: str
    base_url: str


@dataclass(frozen=True)
class SequenceView:
    id: str
    name: str


@dataclass(frozen=True)
class StepView:
    id: str
    kind: str


def template_context(rt: Runtime, contact: Contact, sequence: Sequence, step: Step, token: str,
                     delivery_id: int | None = None) -> dict:
    """The variables of one message. `token` is the delivery's signed link token."""
    settings = rt.settings
    return {
        "referral_url": f"{settings.base_url}/r/{rt.signer.referral_code(contact.id)}",
        # Eleven signed links cost ~0.2 ms, so only feedback messages get them.
        "rating_links": rating_links(rt, delivery_id) if step.kind == "feedback" and delivery_id else [],
        "contact": ContactView.of(contact),
        "brand": BrandView(settings.brand_name, settings.support_email, settings.base_url),
        "postal_address": settings.postal_address,
        "unsubscribe_url": f"{settings.base_url}/u/{token}",
        "preferences_url": f"{settings.base_url}/u/{token}",
        # A timestamped signature costs ~0.1 ms; only the (transactional) confirmation email needs it.
        "confirm_url": (f"{settings.base_url}/confirm/{rt.signer.confirm_token(contact.id)}"
                        if sequence.transactional else ""),
        "sequence": SequenceView(sequence.id, sequence.name),
        "step": StepView(step.id, step.kind),
    }


def rating_links(rt: Runtime, delivery_id: int) -> list[tuple[int, str]]:
    """(score, URL) for 0..10: one click records the rating (see nurture.web.feedback)."""
    token = rt.signer.feedback_token(delivery_id)
    return [(score, f"{rt.settings.base_url}/feedback/{token}?score={score}") for score in range(11)]
