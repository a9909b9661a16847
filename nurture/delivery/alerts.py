"""Alerts to people at the business (hot leads, unhappy customers), sent by the tick over one connection."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from sqlmodel import Session

from nurture.content.mail import Envelope, build_email
from nurture.content.rendering import RenderedEmail
from nurture.delivery import reputation
from nurture.delivery.transports import EmailTransport, TransportError
from nurture.store import alerts
from nurture.store.models import Alert

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime


def send_alerts(rt: Runtime, limit: int = 100) -> int:
    """Send pending alerts to people at the business (hot leads, unhappy customers). Each alert is claimed
    by a conditional UPDATE first, so two ticks never send the same one."""
    sent = reputation.send_pause_alerts(rt)  # the owner's email about a reputation pause, once
    with Session(rt.db, expire_on_commit=False) as session:
        now = rt.clock()
        pending = alerts.pending_alerts(session, now, limit)
        if not pending:
            return sent
        transport = rt.email_transport()
        try:
            for alert in pending:
                taken = alerts.take_alert(session, alert.id)
                session.commit()
                if taken:
                    sent += _send_alert(rt, session, transport, alert)
        finally:
            transport.close()
    return sent


def _send_alert(rt: Runtime, session: Session, transport: EmailTransport, alert: Alert) -> int:
    now = rt.clock()
    envelope = Envelope(mail_from=rt.settings.mail_from, to_address=alert.recipient, to_name="",
                        message_id=f"<nurture.alert.{alert.id}@{rt.settings.mail_domain}>", date=now,
                        list_id=f"nurture alerts <alerts.{rt.settings.mail_domain}>")
    content = RenderedEmail(subject=alert.subject, text=alert.body,
                            html=f"<pre style=\"font: 14px/1.5 sans-serif; white-space: pre-wrap\">"
                                 f"{html.escape(alert.body)}</pre>")
    try:
        transport.send(build_email(envelope, content))
    except TransportError as exc:
        alerts.alert_not_sent(session, alert.id, str(exc), exc.permanent)
        session.commit()
        return 0
    alerts.alert_sent(session, alert.id, now)
    session.commit()
    return 1
