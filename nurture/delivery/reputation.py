"""The reputation guard: bounce and complaint rates over the newest sends, overall and per sequence; above
a threshold, marketing email pauses by itself (transactional mail goes on), the owner gets one alert email
per pause, and `nurture resume-sending` lets it go again after a look. The pause is a database row, so a
Redis flush or a restart never resumes sending. See docs/deliverability.md."""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session

from nurture.content.mail import Envelope, build_email
from nurture.content.rendering import RenderedEmail
from nurture.delivery.transports import TransportError
from nurture.rules.reputation import Rates, Thresholds, percent, verdict
from nurture.store import deliverability as store
from nurture.store.models import AlertStatus, SendingPause

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Standing:
    """What the owner sees: the rates overall and per sequence, the limits, and the pause if one holds."""

    overall: Rates
    by_sequence: dict[str, Rates]
    limits: Thresholds
    window: int
    pause: SendingPause | None
    history: list[SendingPause]
    since_resume: bool = False  # the rates count only sends after the last resume


def thresholds(rt: Runtime) -> Thresholds:
    s = rt.settings.deliverability
    return Thresholds(s.max_bounce_rate, s.max_complaint_rate, s.min_sends)


def _rates(counts: store.Counts) -> Rates:
    return Rates(counts.sends, counts.bounces, counts.complaints)


def check(rt: Runtime, now: datetime) -> bool:
    """Pause marketing email if the rates over the newest sends are over a threshold. Returns whether
    marketing is paused. Cheap enough for every batch: the newest sends come off the primary key."""
    settings = rt.settings.deliverability
    if not settings.guard:
        return False
    with Session(rt.db) as session:
        if store.is_paused(session):
            return True
        rates = _rates(store.overall_counts(session, settings.window, store.judged_from(session)))
        reason = verdict(rates, thresholds(rt))
        if reason is None:
            return False
        opened = store.pause(session, dict(
            reason=reason[:300], sends_total=store.email_sends_total(session), window_sends=rates.sends,
            bounce_rate=rates.bounce_rate, complaint_rate=rates.complaint_rate, paused_at=now,
            alert_recipient=owner_address(rt)))
        session.commit()
    if opened:
        log.warning("reputation guard: marketing email paused: %s", reason)
    return True


def owner_address(rt: Runtime) -> str:
    return rt.sequences.lifecycle.owner_email or rt.settings.support_email


def standing(rt: Runtime) -> Standing:
    settings = rt.settings.deliverability
    with Session(rt.db, expire_on_commit=False) as session:
        after = store.judged_from(session)
        overall = _rates(store.overall_counts(session, settings.window, after))
        by_sequence = {k: _rates(v) for k, v in store.counts_by_sequence(session, settings.window, after).items()}
        return Standing(overall, by_sequence, thresholds(rt), settings.window, store.open_pause(session),
                        store.recent_pauses(session), since_resume=after > 0)


def resume(rt: Runtime, by: str) -> SendingPause | None:
    """Lift the pause (the owner has looked). Marketing held by it goes out within PAUSE_RECHECK. The
    guard then judges only the sends after this moment, from REPUTATION_MIN_SENDS of them on."""
    with Session(rt.db, expire_on_commit=False) as session:
        lifted = store.resume(session, rt.clock(), by)
        session.commit()
    if lifted is not None:
        log.warning("reputation guard: sending resumed by %s", by)
    return lifted


def send_pause_alerts(rt: Runtime) -> int:
    """The owner's email about each new pause, once (claimed by a conditional UPDATE)."""
    sent = 0
    with Session(rt.db, expire_on_commit=False) as session:
        pending = store.pending_pause_alerts(session)
        if not pending:
            return 0
        transport = rt.email_transport()
        try:
            for pause in pending:
                taken = store.take_pause_alert(session, pause.id or 0)
                session.commit()
                if taken:
                    sent += _send_pause_alert(rt, session, transport, pause)
        finally:
            transport.close()
    return sent


def _send_pause_alert(rt: Runtime, session: Session, transport: object, pause: SendingPause) -> int:
    domain = rt.settings.mail_domain
    envelope = Envelope(mail_from=rt.settings.mail_from, to_address=pause.alert_recipient, to_name="",
                        message_id=f"<nurture.pause.{pause.id}@{domain}>", date=rt.clock(),
                        list_id=f"nurture alerts <alerts.{domain}>")
    body = alert_text(pause, rt.settings.base_url)
    content = RenderedEmail(subject=f"Marketing email paused: {pause.reason}"[:300], text=body,
                            html=f"<pre style=\"font: 14px/1.5 sans-serif; white-space: pre-wrap\">"
                                 f"{html.escape(body)}</pre>")
    try:
        transport.send(build_email(envelope, content))  # type: ignore[attr-defined]
    except TransportError as exc:
        store.pause_alert_done(session, pause.id or 0, AlertStatus.FAILED if exc.permanent else AlertStatus.PENDING,
                               str(exc))
        session.commit()
        return 0
    store.pause_alert_done(session, pause.id or 0, AlertStatus.SENT)
    session.commit()
    return 1


def alert_text(pause: SendingPause, base_url: str) -> str:
    return (f"nurture paused all marketing email at {pause.paused_at:%Y-%m-%d %H:%M} UTC: {pause.reason}.\n"
            f"Bounce rate {percent(pause.bounce_rate)}, complaint rate {percent(pause.complaint_rate)} over the "
            f"last {pause.window_sends} sends ({pause.sends_total} emails sent in all).\n\n"
            "Confirmations and other transactional email still go out. Mailbox providers slow down or block "
            "senders above these rates, so nothing else is sent until you have looked:\n"
            f"  - the rates per sequence: nurture reputation, or {base_url.rstrip('/')}/console/reputation\n"
            "  - where the bouncing addresses came from (an old list? a form without double opt-in?)\n"
            "Then: nurture resume-sending\n")
