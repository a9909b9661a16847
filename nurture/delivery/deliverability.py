"""The send path's deliverability checks for email, after consent, quiet hours, window and frequency cap:
the reputation guard's pause (marketing only), a receiving domain group backed off after a "slow down",
the pace per group and the relay's quota, and the warm-up's daily cap. A message held here is deferred
with its reason and keeps its retries; other groups go on. See docs/deliverability.md."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from nurture.delivery.pacing import Ticket, pacer
from nurture.rules import pacing
from nurture.store import deliverability as store

if TYPE_CHECKING:  # the batch is handed in; dispatch and outcomes import this module
    from nurture.delivery.outcomes import Batch, Item, Send
    from nurture.runtime import Runtime

log = logging.getLogger(__name__)

PAUSED = "sending paused: reputation guard"
# A paused marketing message looks again this often: `nurture resume-sending` lets it go within this.
PAUSE_RECHECK = timedelta(minutes=15)


def read_chunk_state(batch: Batch, now: datetime) -> None:
    """Read, once a chunk, whether the guard has paused marketing, and (when nothing paces every message,
    which reads it anyway) which groups another worker backed off."""
    settings = batch.rt.settings.deliverability
    batch.paused = settings.guard and store.is_paused(batch.session)
    if not settings.paced:
        try:
            batch.backoffs.update(pacer(batch.rt).backoffs(now))
        except RedisError:
            # Redis restarting: unpaced mail goes on (a relay that still wants a pause says so again);
            # paced mail waits for it instead, in hold_email, rather than pass the rates unwatched.
            log.warning("pacing: Redis unreachable; the other workers' backoffs are not seen this chunk")


def hold_email(batch: Batch, item: Item, address: str, now: datetime) -> tuple[datetime, str] | None:
    """Why this email must wait, and until when; None when it may go now (its turn is then taken)."""
    transactional = item.sequence.transactional
    if batch.paused and not transactional:  # confirmations and receipts go on: the contact asked for them
        return now + PAUSE_RECHECK, PAUSED
    group = pacing.domain_group(address)
    backed_off = _backed_off(batch, group, now)
    if backed_off is not None:
        return backed_off
    settings = batch.rt.settings.deliverability
    if not settings.paced:
        return None
    cap = pacing.warmup_cap(settings.warmup_daily, settings.warmup_start, now.date())
    ticket = Ticket(group, item.enrollment.id or 0, cap, capped=not transactional,
                    count_today=lambda: store.email_sent_since(batch.session, pacing.day_start(now)))
    return pacer(batch.rt).admit(ticket, now)


def held_back(batch: Batch, send: Send, now: datetime) -> tuple[datetime, str] | None:
    """A message already let through, whose group was backed off since (a "slow down" earlier in its
    chunk): it waits with the rest of its group instead of asking again."""
    if send.channel.name != "email":
        return None
    return _backed_off(batch, pacing.domain_group(send.address), now)


def throttled(batch: Batch, address: str, now: datetime) -> tuple[datetime, str]:
    """The relay said "slow down" for this address: back its group off, for every worker."""
    group = pacing.domain_group(address)
    until = pacer(batch.rt).throttle(group, now)
    batch.backoffs[group] = until
    return until, _slow_down(group, until)


def current_backoffs(rt: Runtime, now: datetime) -> dict[str, datetime]:
    """The domain groups backed off at `now` (for `nurture why` and the console), or none known while
    Redis does not answer."""
    try:
        return pacer(rt).backoffs(now)
    except RedisError:
        return {}


def _backed_off(batch: Batch, group: str, now: datetime) -> tuple[datetime, str] | None:
    until = batch.backoffs.get(group)
    if until is None or until <= now:
        return None
    return until, _slow_down(group, until)


def _slow_down(group: str, until: datetime) -> str:
    return f"pacing: the relay asked to slow down for {group} (backed off until {until:%H:%M:%S})"
