"""The variables of one message: the views of nurture.content.views filled from the contact, and the links."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nurture.content.views import BrandView, ContactView, SequenceView, StepView
from nurture.rules.locales import lookup_chain
from nurture.rules.sequence import Sequence, Step
from nurture.store.models import Contact

if TYPE_CHECKING:
    from nurture.runtime import Runtime


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
        # Two addresses: the unsubscribe link (also List-Unsubscribe's one-click) and the preference page.
        "unsubscribe_url": f"{settings.base_url}/u/{token}/unsubscribe",
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


def locale_chain(rt: Runtime, contact: Contact) -> tuple[str, ...]:
    """Which localized template files to look for first for `contact` (docs/locales.md)."""
    return lookup_chain(contact.locale, rt.settings.default_locale)
