"""The per-IP limit on sign-ups (FORM_RATE_LIMIT), counted in Redis so every web worker shares it, and in
the same round trip whether a tick is waiting already (so the sign-up need not queue one).

The counting is the `limits` library's fixed window (what Flask-Limiter is built on): the same keys, the same
increment-then-expire. But the increment is a Lua script of ours, run once from the submit view, that also
asks whether the worker nudge's gate is set (`jobs.request_tick`): a sign-up used to make two Redis round
trips, the increment and the nudge's `SET NX`, each 10-13% of its time on a busy machine (bench/README.md,
P4). Now it makes one, plus the nudge only when no tick was waiting (the first sign-up after a tick
started). Flask-Limiter as an app extension did the same increment but also ran its hooks on every request
and resolved the limits three times per sign-up. The console's login limit keeps Flask-Limiter
(nurture.web.auth): it needs deduct-on-failure, and logins are rare.

Redis down or hanging: the count falls back to this process's memory (short timeouts), never fails a
sign-up, and Redis is tried again on the next one; whether a tick waits is then unknown (the nudge tries).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from flask import Flask, abort, current_app, request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from redis import Redis
from redis.exceptions import NoScriptError

log = logging.getLogger(__name__)

KEY_PREFIX = "nurture-forms"
STORAGE_PREFIX = "LIMITS"  # the `limits` library's RedisStorage prefix: the keys are the ones it would use
TIMEOUT = 0.5  # seconds: a Redis that hangs must not hold a visitor's sign-up

# KEYS: the counters (one per limit), then the tick gate. ARGV: each counter's window, in seconds.
# Returns each counter after the increment, then whether the gate is set (1 or 0).
COUNT_AND_ASK = """
local found = {}
for i = 1, #KEYS - 1 do
    local current = redis.call("INCRBY", KEYS[i], 1)
    if current == 1 then
        redis.call("EXPIRE", KEYS[i], ARGV[i])
    end
    found[i] = current
end
found[#KEYS] = redis.call("EXISTS", KEYS[#KEYS])
return found
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    tick_waiting: bool  # a tick is queued and has not started: it will claim what this sign-up writes


class SubmitLimit:
    """FORM_RATE_LIMIT ("10 per minute", or several: "5/minute;50/day") per client address."""

    def __init__(self, limits: str, redis: Redis | None, gate_key: str = "") -> None:
        self.items: list[RateLimitItem] = parse_many(limits)
        self.fallback = FixedWindowRateLimiter(MemoryStorage())
        self.redis, self.gate_key = redis, gate_key
        self.sha = hashlib.sha1(COUNT_AND_ASK.encode()).hexdigest()  # noqa: S324 — Redis names scripts so
        self.windows = [item.get_expiry() for item in self.items]

    def allows(self, client: str | None) -> bool:
        """Count one sign-up from `client`; False when it is one too many (under every limit given)."""
        return self.check(client).allowed

    def check(self, client: str | None) -> Verdict:
        """Count one sign-up from `client` and say whether a tick is waiting, in one Redis round trip."""
        who = client or "unknown"
        if self.redis is not None:
            keys = [f"{STORAGE_PREFIX}:{item.key_for(KEY_PREFIX, who)}" for item in self.items]
            try:
                *counts, gate = self._run([*keys, self.gate_key], self.windows)
            except Exception as exc:  # noqa: BLE001 — whatever Redis raises, a sign-up must not fail
                log.warning("the sign-up rate limit could not reach Redis, counting in memory: %s", exc)
            else:
                allowed = all(int(n) <= item.amount for n, item in zip(counts, self.items, strict=True))
                return Verdict(allowed, bool(gate))
        results = [self.fallback.hit(item, KEY_PREFIX, who) for item in self.items]
        return Verdict(all(results), False)

    def _run(self, keys: list[str], args: list[int]) -> list[int]:
        """EVALSHA, loading the script first when Redis does not have it (a restart, a flush). Called
        directly: redis-py's Script wrapper checked its client against a typing Protocol on every call."""
        assert self.redis is not None
        try:
            return self.redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self.redis.script_load(COUNT_AND_ASK)
            return self.redis.evalsha(self.sha, len(keys), *keys, *args)


def install(app: Flask, limits: str, redis: Redis | None, gate_key: str = "") -> None:
    """One limit per app: each app may have its own Redis."""
    app.extensions["nurture.forms.limit"] = SubmitLimit(limits, redis, gate_key)


def enforce() -> bool:
    """Count this request's sign-up; a 429 (the form blueprint's page or JSON) when it is one too many.
    Returns whether a tick was waiting when it was counted (False when unknown)."""
    verdict = current_app.extensions["nurture.forms.limit"].check(request.remote_addr)
    if not verdict.allowed:
        abort(429)
    return verdict.tick_waiting
