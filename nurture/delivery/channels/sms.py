"""The SMS channel: quiet hours and the sender's pace in hold(), a text template rendered, the opt-out notice
on the first text to a number, handed to Twilio or the outbox."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Protocol

from redis import Redis
from sqlmodel import Session

from nurture.config import SmsSettings
from nurture.content.app_words import translate
from nurture.content.rendering import RenderError
from nurture.delivery.context import locale_chain, template_context
from nurture.delivery.transports import SmsTransport
from nurture.rules import decisions
from nurture.rules.sequence import Sequence, Step
from nurture.rules.sms import OutgoingSms, with_opt_out_notice
from nurture.store import claims as store
from nurture.store.models import Contact, Subscription

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime


def message_id(delivery_id: int) -> str:
    return f"nurture-sms-{delivery_id}"


def recipient_zones(contact: Contact) -> tuple[tzinfo, ...]:
    """The contact's own timezone when it has a valid one, else the zones its number's prefix implies."""
    return decisions.recipient_zones(contact.phone, contact.timezone)


def quiet_until(sms: SmsSettings, contact: Contact, now: datetime) -> datetime:
    """`now` when a text may go to `contact` now, else the next allowed minute in its local time."""
    return decisions.quiet_until(now, contact.phone, contact.timezone, sms.hours, sms.hours_by_region)


def is_first_text(rt: Runtime, phone: str) -> bool:
    """No text has gone to this number yet (whichever contact holds it)."""
    with Session(rt.db) as session:
        return not store.sent_to(session, "sms", phone)


class SmsChannel:
    name = "sms"
    status_field = "sms_status"

    def address(self, contact: Contact) -> str | None:
        return contact.phone

    def compose(self, rt: Runtime, contact: Contact, sequence: Sequence, step: Step, delivery_id: int,
                now: datetime) -> OutgoingSms:
        context = template_context(rt, contact, sequence, step, rt.signer.unsubscribe_token(delivery_id), delivery_id)
        chain = locale_chain(rt, contact)
        body = rt.catalog.render_text(step.template, context, chain)
        if not body:
            raise RenderError(f"{step.template}: the text is empty for this contact")
        phone = contact.phone or ""
        if is_first_text(rt, phone):
            body = with_opt_out_notice(body, rt.settings.brand_name,
                                       translate(contact.locale, "Reply STOP to opt out."))
        return OutgoingSms(to=phone, body=body, message_id=message_id(delivery_id),
                           status_callback=f"{rt.settings.base_url}/twilio/status",
                           locale=rt.catalog.text_variant(step.template, chain)[1])

    def hold(self, rt: Runtime, contact: Contact, now: datetime) -> tuple[datetime, str] | None:
        """Quiet hours first (they apply to every text), then the sender's pace. A contact who may not be
        texted anyway takes no slot: the send path skips it right after this."""
        if not contact.phone:
            return None
        sms = rt.settings.sms
        quiet = decisions.quiet_hours(now, contact.phone, contact.timezone, sms.hours, sms.hours_by_region)
        if quiet is not None:
            return quiet
        if contact.sms_status != Subscription.SUBSCRIBED:
            return None
        sender = sms.twilio.sender if sms.twilio and sms.twilio.sender else "outbox"
        slot = send_rate(rt).reserve(sender, contact.id or 0, now)
        if slot > now:
            return slot, f"sender pace ({sms.rate_per_second:g} texts a second from {sender})"
        return None

    def open_transport(self, rt: Runtime) -> SmsTransport:
        return rt.sms_transport()


# --- The sender's pace -------------------------------------------------------------------------------------

class SendRate(Protocol):
    def reserve(self, sender: str, contact_id: int, now: datetime) -> datetime:
        """`now` if a text to `contact_id` may go now, else the moment its reserved turn comes."""


def send_rate(rt: Runtime) -> SendRate:
    """Shared through Redis when there is one (every worker process takes turns from the same sender);
    kept in this process otherwise (`nurture send-due` without Redis is one process)."""
    if rt.sms_rate is None:
        interval = 1.0 / rt.settings.sms.rate_per_second
        rt.sms_rate = RedisSendRate(rt.redis_connection(), interval) if rt.settings.redis_url or rt.redis \
            else MemorySendRate(interval)
    return rt.sms_rate


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class MemorySendRate:
    """Turns `interval` seconds apart per sender (a virtual schedule, GCRA-style).

    A text that cannot go now reserves the next free turn and is deferred to it; when it comes back it
    uses that turn instead of queueing again, so a backlog drains at the sender's rate and never starves.
    Nothing sleeps: email and other senders in the same batch go on at once.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next_free: dict[str, float] = {}
        self._reserved: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()

    def reserve(self, sender: str, contact_id: int, now: datetime) -> datetime:
        t = now.timestamp()
        with self._lock:
            held = self._reserved.get((sender, contact_id))
            if held is not None:
                if held > t:
                    return _at(held)
                del self._reserved[(sender, contact_id)]
                return now
            slot = max(self._next_free.get(sender, 0.0), t)
            self._next_free[sender] = slot + self.interval
            if slot <= t:
                return now
            self._reserved[(sender, contact_id)] = slot
            if len(self._reserved) > 10_000:  # turns nobody came back for (the contact opted out meanwhile)
                self._reserved = {k: v for k, v in self._reserved.items() if v > t - 3600}
            return _at(slot)


# The same schedule in Redis, atomically (one script, so two workers never take the same turn).
# Returns "" to send now, or the reserved turn as a string (Redis would truncate a Lua number to an integer).
_RESERVE = """
local now, interval, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local held = redis.call('GET', KEYS[2])
if held then
  if tonumber(held) > now then return held end
  redis.call('DEL', KEYS[2])
  return ''
end
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local free = slot + interval
redis.call('SET', KEYS[1], string.format('%.6f', free), 'PX', math.ceil((free - now + keep) * 1000))
if slot <= now then return '' end
local turn = string.format('%.6f', slot)
redis.call('SET', KEYS[2], turn, 'PX', math.ceil((slot - now + keep) * 1000))
return turn
"""


class RedisSendRate:
    """MemorySendRate's schedule, shared by every process through Redis. The time comes from the caller's
    clock, not Redis's, so it is testable and consistent with the rest of the send path."""

    KEEP_SECONDS = 3600  # a reserved turn nobody came back for is forgotten after this

    def __init__(self, redis: Redis, interval: float) -> None:
        self.interval = interval
        self._script = redis.register_script(_RESERVE)

    def reserve(self, sender: str, contact_id: int, now: datetime) -> datetime:
        keys = [f"nurture:sms-pace:{sender}", f"nurture:sms-turn:{sender}:{contact_id}"]
        turn = self._script(keys=keys, args=[f"{now.timestamp():.6f}", self.interval, self.KEEP_SECONDS])
        return _at(float(turn)) if turn else now
