"""Pacing email per receiving domain group, shared by every worker through Redis.

Each group (gmail, outlook, yahoo, other) has its own schedule of turns, and the relay's quota
(EMAIL_RATE) one more that every message takes a turn in too: a GCRA-style virtual schedule, so a burst
of up to one second's worth goes at once and a backlog drains at the rate. A message whose turn is later
reserves that turn and is deferred to it (when it comes back it uses the turn instead of queueing again);
nothing sleeps, and other groups go on at once. A relay's "slow down" (421/451/454) backs its group off
for a growing time. A warming-up sending domain gets a daily cap, counted per UTC day.

The time is the caller's clock, passed into the script, never Redis's: the worker's decisions and the
tests see one time. Flushing Redis only restarts the schedules (the warm-up count is read again from the
delivery rows), which errs on the side of sending a little early, never of losing a message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from redis import Redis

from nurture.config import DeliverabilitySettings
from nurture.rules import pacing

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime

KEEP_SECONDS = 3600  # a schedule or a reserved turn nobody came back for is forgotten this long after
RESET_AFTER = 3600  # a throttle this long after the previous one starts the backoff from its first step
DAY_TTL = 2 * 86400


@dataclass(frozen=True)
class Ticket:
    """One message asking for a turn: its group, whose turn it may hold, and the warm-up's say."""

    group: str
    holder: int  # the enrollment id: a deferred message comes back to the turn it reserved
    cap: int | None  # today's warm-up cap, or None
    capped: bool  # False for transactional mail: counted toward the cap, never held by it
    count_today: Callable[[], int]  # sends so far today, from the database (Redis lost the count)


class Pacer(Protocol):
    def admit(self, ticket: Ticket, now: datetime) -> tuple[datetime, str] | None:
        """None: send now (its turn is taken). Else when to come back, and why."""

    def throttle(self, group: str, now: datetime) -> datetime:
        """The relay asked to slow down for `group`: back it off; returns until when."""

    def backoffs(self, now: datetime) -> dict[str, datetime]:
        """The groups backed off at `now`, and until when."""


def pacer(rt: Runtime) -> Pacer:
    """Shared through Redis when there is one; kept in this process otherwise (`nurture send-due` without
    Redis is one process)."""
    if rt.email_pacer is None:
        settings = rt.settings.deliverability
        prefix = f"{rt.settings.redis_prefix}:pace"
        rt.email_pacer = RedisPacer(rt.redis_connection(), settings, prefix) \
            if rt.settings.redis_url or rt.redis else MemoryPacer(settings)
    return rt.email_pacer


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _schedule(rate: float) -> tuple[float, float]:
    """(seconds between turns, burst tolerance) for `rate` a second; (0, 0) is no limit."""
    if rate <= 0:
        return 0.0, 0.0
    interval = 1.0 / rate
    return interval, interval * (max(int(rate), 1) - 1)  # up to one second's worth at once


def _why(code: str, ticket: Ticket, settings: DeliverabilitySettings, until: datetime) -> str:
    if code == "b":
        return f"pacing: the relay asked to slow down for {ticket.group} (backed off until {until:%H:%M:%S})"
    if code == "c":
        return f"warm-up: today's cap of {ticket.cap} emails is reached"
    group = settings.group_rates.get(ticket.group, 0)
    paces = ([f"{ticket.group} {group:g}/s"] if group else []) + (
        [f"relay {settings.email_rate:g}/s"] if settings.email_rate else [])
    return f"pacing: next turn at {' and '.join(paces)}"


# KEYS: the group's backoff (hash), the group's and the relay's next free turn, today's count, the turn
# this message holds. Returns "" (send now), "count" (today's count is missing: the caller reads it from
# the database and sets it), or "<b|c|t>:<timestamp>" (backed off, capped, or a turn reserved for later).
_ADMIT = """
local now = tonumber(ARGV[1])
local gi, gtau, ri, rtau = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local cap, keep = tonumber(ARGV[6]), tonumber(ARGV[9])
local function fmt(x) return string.format('%.6f', x) end
local function num(key) return tonumber(redis.call('GET', key) or '0') end
local backoff = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if backoff > now then return 'b:' .. fmt(backoff) end
if cap > 0 then
  local sent = redis.call('GET', KEYS[4])
  if not sent then return 'count' end
  if ARGV[7] == '1' and tonumber(sent) >= cap then return 'c:' .. ARGV[8] end
end
local held = redis.call('GET', KEYS[5])
if held then
  if tonumber(held) > now then return 't:' .. held end
  redis.call('DEL', KEYS[5])
else
  local slot = now
  if gi > 0 then slot = math.max(slot, num(KEYS[2]) - gtau) end
  if ri > 0 then slot = math.max(slot, num(KEYS[3]) - rtau) end
  if gi > 0 then
    local free = math.max(num(KEYS[2]), slot) + gi
    redis.call('SET', KEYS[2], fmt(free), 'PX', math.ceil((free - now + keep) * 1000))
  end
  if ri > 0 then
    local free = math.max(num(KEYS[3]), slot) + ri
    redis.call('SET', KEYS[3], fmt(free), 'PX', math.ceil((free - now + keep) * 1000))
  end
  if slot > now then
    redis.call('SET', KEYS[5], fmt(slot), 'PX', math.ceil((slot - now + keep) * 1000))
    return 't:' .. fmt(slot)
  end
end
if cap > 0 then
  redis.call('INCR', KEYS[4])
end
return ''
"""

# KEYS: the group's backoff hash. ARGV: now, the backoff steps (comma-separated), reset-after seconds.
# A throttle while already backed off does not grow it: the other workers' sends in flight meet the
# same "slow down" at the same moment, and that is one signal, not five.
_THROTTLE = """
local now, reset = tonumber(ARGV[1]), tonumber(ARGV[3])
local steps = {}
for s in string.gmatch(ARGV[2], '[^,]+') do steps[#steps + 1] = tonumber(s) end
local state = redis.call('HMGET', KEYS[1], 'until', 'level', 'at')
local until_, level, at = tonumber(state[1] or '0'), tonumber(state[2] or '0'), tonumber(state[3] or '0')
if until_ > now then return string.format('%.6f', until_) end
if now - at > reset + (steps[math.min(math.max(level, 1), #steps)]) then level = 0 end
level = level + 1
until_ = now + steps[math.min(level, #steps)]
redis.call('HSET', KEYS[1], 'until', string.format('%.6f', until_), 'level', level, 'at', string.format('%.6f', now))
redis.call('EXPIRE', KEYS[1], 86400)
return string.format('%.6f', until_)
"""


class RedisPacer:
    def __init__(self, redis: Redis, settings: DeliverabilitySettings, prefix: str) -> None:
        self.redis, self.settings, self.prefix = redis, settings, prefix
        self._admit = redis.register_script(_ADMIT)
        self._throttle = redis.register_script(_THROTTLE)

    def _backoff_key(self, group: str) -> str:
        return f"{self.prefix}:backoff:{group}"

    def admit(self, ticket: Ticket, now: datetime) -> tuple[datetime, str] | None:
        day = now.astimezone(UTC).date().isoformat()
        keys = [self._backoff_key(ticket.group), f"{self.prefix}:next:{ticket.group}", f"{self.prefix}:next",
                f"{self.prefix}:sent:{day}", f"{self.prefix}:turn:{ticket.holder}"]
        gi, gtau = _schedule(self.settings.group_rates.get(ticket.group, 0))
        ri, rtau = _schedule(self.settings.email_rate)
        args = [f"{now.timestamp():.6f}", gi, gtau, ri, rtau, ticket.cap or 0, int(ticket.capped),
                f"{pacing.next_midnight(now).timestamp():.6f}", KEEP_SECONDS]
        answer = self._admit(keys=keys, args=args).decode()
        if answer == "count":
            # NX: of two workers counting at once, the first count stands (both read the same rows).
            self.redis.set(keys[3], ticket.count_today(), nx=True, ex=DAY_TTL)
            answer = self._admit(keys=keys, args=args).decode()
        if not answer:
            return None
        code, _, stamp = answer.partition(":")
        until = _at(float(stamp))
        return until, _why(code, ticket, self.settings, until)

    def throttle(self, group: str, now: datetime) -> datetime:
        steps = ",".join(str(s) for s in self.settings.throttle_backoff)
        until = self._throttle(keys=[self._backoff_key(group)], args=[f"{now.timestamp():.6f}", steps, RESET_AFTER])
        return _at(float(until))

    def backoffs(self, now: datetime) -> dict[str, datetime]:
        with self.redis.pipeline(transaction=False) as pipe:
            for group in pacing.GROUPS:
                pipe.hget(self._backoff_key(group), "until")
            values = pipe.execute()
        return {group: _at(float(value)) for group, value in zip(pacing.GROUPS, values, strict=True)
                if value and float(value) > now.timestamp()}


class MemoryPacer:
    """RedisPacer's schedules kept in this process, for a single process without Redis."""

    def __init__(self, settings: DeliverabilitySettings) -> None:
        self.settings = settings
        self._next: dict[str, float] = {}  # group (or "" for the relay) -> next free turn
        self._held: dict[int, float] = {}
        self._sent: dict[str, int] = {}  # UTC day -> sends
        self._backoff: dict[str, tuple[float, int, float]] = {}  # group -> (until, level, at)
        self._lock = threading.Lock()

    def admit(self, ticket: Ticket, now: datetime) -> tuple[datetime, str] | None:
        t, day = now.timestamp(), now.astimezone(UTC).date().isoformat()
        with self._lock:
            until = self._backoff.get(ticket.group, (0.0, 0, 0.0))[0]
            if until > t:
                return _at(until), _why("b", ticket, self.settings, _at(until))
            if ticket.cap:
                sent = self._sent.setdefault(day, ticket.count_today())
                if ticket.capped and sent >= ticket.cap:
                    midnight = pacing.next_midnight(now)
                    return midnight, _why("c", ticket, self.settings, midnight)
            slot = self._take_turn(ticket, t)
            if slot > t:
                return _at(slot), _why("t", ticket, self.settings, _at(slot))
            if ticket.cap:
                self._sent[day] += 1
            return None

    def _take_turn(self, ticket: Ticket, t: float) -> float:
        held = self._held.pop(ticket.holder, None)
        if held is not None:
            if held > t:
                self._held[ticket.holder] = held
            return held
        schedules = [(key, *_schedule(rate)) for key, rate in
                     ((ticket.group, self.settings.group_rates.get(ticket.group, 0)), ("", self.settings.email_rate))]
        slot = max([t] + [self._next.get(key, 0.0) - tau for key, interval, tau in schedules if interval])
        for key, interval, _ in schedules:
            if interval:
                self._next[key] = max(self._next.get(key, 0.0), slot) + interval
        if slot > t:
            self._held[ticket.holder] = slot
        return slot

    def throttle(self, group: str, now: datetime) -> datetime:
        t, steps = now.timestamp(), self.settings.throttle_backoff
        with self._lock:
            until, level, at = self._backoff.get(group, (0.0, 0, 0.0))
            if until > t:
                return _at(until)
            if t - at > RESET_AFTER + pacing.backoff_seconds(steps, level):
                level = 0
            until = t + pacing.backoff_seconds(steps, level + 1)
            self._backoff[group] = (until, level + 1, t)
            return _at(until)

    def backoffs(self, now: datetime) -> dict[str, datetime]:
        with self._lock:
            return {g: _at(u) for g, (u, _, _) in self._backoff.items() if u > now.timestamp()}
