"""The email channel: render, build the MIME message, DKIM-sign, hand it to SMTP or the outbox."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from nurture.content.mail import Envelope, OutgoingEmail, build_email, dkim_sign
from nurture.content.rendering import RenderedEmail
from nurture.delivery.context import locale_chain, template_context
from nurture.delivery.transports import EmailTransport
from nurture.rules.links import add_pixel, track_links
from nurture.rules.sequence import Sequence, Step
from nurture.store.models import Contact

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime


def message_id(rt: Runtime, delivery_id: int) -> str:
    """Deterministic per delivery, so a send repeated after a crash carries the same Message-ID and the
    receiving side can fold the two into one."""
    return f"<nurture.{delivery_id}.{rt.signer.message_tag(delivery_id)}@{rt.settings.mail_domain}>"


def _unsubscribe_mailto(support_email: str, token: str) -> str:
    # quote("unsubscribe " + token), without quote(): the token is URL-safe base64 and dots already.
    return f"mailto:{support_email}?subject=unsubscribe%20{token}"


def compose_email(rt: Runtime, contact: Contact, sequence: Sequence, step: Step, delivery_id: int,
                  now: datetime) -> OutgoingEmail:
    """Render and build one email. Raises RenderError when the template cannot be rendered for this contact."""
    token = rt.signer.unsubscribe_token(delivery_id)
    context = template_context(rt, contact, sequence, step, token, delivery_id)
    settings = rt.settings
    chain = locale_chain(rt, contact)
    subject, _ = step.subject_for(chain)
    rendered = rt.catalog.render_email(step.template, subject, context, chain, now)
    content = replace(rendered, html=tracked_html(rt, rendered.html, delivery_id, token))
    mid = message_id(rt, delivery_id)
    envelope = Envelope(
        mail_from=settings.mail_from,
        to_address=contact.email,
        to_name=f"{contact.first_name} {contact.last_name}".strip(),
        message_id=mid,
        date=now,
        list_id=f"{sequence.name} <{sequence.id}.{settings.mail_domain}>",
        unsubscribe_url=context["unsubscribe_url"],
        unsubscribe_mailto=_unsubscribe_mailto(settings.support_email, token),
        # Postmark's webhooks echo X-PM-Metadata-* back as Metadata, but not our Message-ID: this is how
        # its bounce or delivery report finds the delivery (nurture.people.provider_events).
        extra_headers=(f"X-PM-Metadata-nurture-message-id: {mid}",) if settings.providers.postmark_on else (),
        # The envelope sender (MAIL FROM, the Return-Path a receiver records) names this delivery, signed:
        # a bounce or a feedback report that comes back to it says which message failed, and a forged one
        # cannot unsubscribe anybody (see docs/deliverability.md).
        envelope_from=rt.signer.return_path(delivery_id, settings.bounce_address),
    )
    message = build_email(envelope, content)
    return dkim_sign(message, settings.dkim) if settings.dkim else message


def track(rt: Runtime, content: RenderedEmail, delivery_id: int, token: str) -> RenderedEmail:
    """Wrap the message's links for click tracking and add the open pixel, as configured."""
    return replace(content, html=tracked_html(rt, content.html, delivery_id, token))


def tracked_html(rt: Runtime, html: str, delivery_id: int, token: str) -> str:
    """`html` with its links wrapped for click tracking and the open pixel added, as configured."""
    base = rt.settings.base_url
    if rt.settings.track_clicks:
        html = track_links(html, base, lambda url: f"{base}/c/{rt.signer.click_token(delivery_id, url)}")
    if rt.settings.track_opens:
        html = add_pixel(html, f"{base}/o/{token}.gif")
    return html


class EmailChannel:
    name = "email"
    status_field = "email_status"

    def address(self, contact: Contact) -> str | None:
        return contact.email

    def compose(self, rt: Runtime, contact: Contact, sequence: Sequence, step: Step, delivery_id: int,
                now: datetime) -> OutgoingEmail:
        return compose_email(rt, contact, sequence, step, delivery_id, now)

    def hold(self, rt: Runtime, contact: Contact, now: datetime) -> tuple[datetime, str] | None:
        return None  # email has no quiet hours; send windows are the sequence's business

    def open_transport(self, rt: Runtime) -> EmailTransport:
        return rt.email_transport()
