"""The per-IP limit on sign-ups (FORM_RATE_LIMIT), counted in Redis so every web worker shares it.

It is the `limits` library, the rate-limit engine Flask-Limiter is built on, called once from the submit
view: one atomic increment in Redis (one round trip) and nothing on any other request. Flask-Limiter as an
app extension did the same increment but also ran its before- and after-request hooks on every request,
and resolved which limits apply three times per sign-up: 0.5-1 ms of CPU a sign-up, a fifth of what the
whole form POST cost beyond a bare Flask endpoint (bench/README.md, P4). The console's login limit keeps
Flask-Limiter (nurture.web.auth): it needs deduct-on-failure, and logins are rare.

Redis down or hanging: the count falls back to this process's memory (short timeouts), never fails a
sign-up, and Redis is tried again on the next one.
"""

from __future__ import annotations

import logging

from flask import Flask, abort, current_app, request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

log = logging.getLogger(__name__)

KEY_PREFIX = "nurture-forms"
TIMEOUT = 0.5  # seconds: a Redis that hangs must not hold a visitor's sign-up


class SubmitLimit:
    """FORM_RATE_LIMIT ("10 per minute", or several: "5/minute;50/day") per client address."""

    def __init__(self, limits: str, redis_url: str | None, redis_prefix: str) -> None:
        self.items: list[RateLimitItem] = parse_many(limits)
        self.fallback = FixedWindowRateLimiter(MemoryStorage())
        self.shared = self.fallback
        if redis_url:
            storage = storage_from_string(redis_url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT,
                                          key_prefix=limits_prefix(redis_prefix))
            self.shared = FixedWindowRateLimiter(storage)

    def allows(self, client: str | None) -> bool:
        """Count one sign-up from `client`; False when it is one too many (under every limit given)."""
        try:
            return self._hit(self.shared, client)
        except Exception as exc:  # noqa: BLE001 — whatever the storage raises, a sign-up must not fail
            log.warning("the sign-up rate limit could not reach Redis, counting in memory: %s", exc)
            return self._hit(self.fallback, client)

    def _hit(self, limiter: FixedWindowRateLimiter, client: str | None) -> bool:
        results = [limiter.hit(item, KEY_PREFIX, client or "unknown") for item in self.items]
        return all(results)


def limits_prefix(redis_prefix: str) -> str:
    """The `limits` storage's key prefix in Redis, under this nurture's own (Settings.redis_prefix)."""
    return f"{redis_prefix}:limits"


def install(app: Flask, limits: str, redis_url: str | None, redis_prefix: str) -> None:
    """One limit per app: each app may have its own Redis."""
    app.extensions["nurture.forms.limit"] = SubmitLimit(limits, redis_url, redis_prefix)


def enforce() -> None:
    """Count this request's sign-up; a 429 (the form blueprint's page or JSON) when it is one too many."""
    if not current_app.extensions["nurture.forms.limit"].allows(request.remote_addr):
        abort(429)
