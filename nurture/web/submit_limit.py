"""The per-IP limit on sign-ups (FORM_RATE_LIMIT), counted in Redis so every web worker shares it, and in
the same round trip whether a tick is waiting already (so the sign-up need not queue one).

The count is sent first (`start`) and its answer read later (`enforce`): the sign-up view reads and checks
the form while Redis answers, and reads the answer before it writes anything or answers the visitor.

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
import os
import threading
from dataclasses import dataclass

from flask import Flask, abort, current_app, request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from redis import Redis
from redis.connection import Connection
from redis.exceptions import NoScriptError

log = logging.getLogger(__name__)

KEY_PREFIX = "nurture-forms"
# The `limits` library's RedisStorage prefix is "LIMITS", every app's on that Redis: ours is under this
# nurture's own (Settings.redis_prefix), as the console's login limit is (nurture.web.auth).
STORAGE_PREFIX = "LIMITS"
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


class Counting:
    """One sign-up's count, sent to Redis and not yet answered (or, without Redis, to be counted in memory)."""

    def __init__(self, limit: SubmitLimit, who: str, connection: Connection | None,
                 keys: list[str] | None = None) -> None:
        self.limit, self.who, self.connection, self.keys = limit, who, connection, keys or []
        self._verdict: Verdict | None = None

    def verdict(self) -> Verdict:
        """The answer, read once (later calls give the same)."""
        if self._verdict is None:
            self._verdict = self.limit._answer(self)
        return self._verdict


class SubmitLimit:
    """FORM_RATE_LIMIT ("10 per minute", or several: "5/minute;50/day") per client address."""

    def __init__(self, limits: str, redis: Redis | None, gate_key: str = "",
                 storage_prefix: str = STORAGE_PREFIX) -> None:
        self.items: list[RateLimitItem] = parse_many(limits)
        self.fallback = FixedWindowRateLimiter(MemoryStorage())
        self.redis, self.gate_key, self.storage_prefix = redis, gate_key, storage_prefix
        self.sha = hashlib.sha1(COUNT_AND_ASK.encode()).hexdigest()  # noqa: S324 — Redis names scripts so
        self.windows = [item.get_expiry() for item in self.items]
        self._own = threading.local()  # each thread's connection to Redis (see _connection)

    def allows(self, client: str | None) -> bool:
        """Count one sign-up from `client`; False when it is one too many (under every limit given)."""
        return self.check(client).allowed

    def check(self, client: str | None) -> Verdict:
        """Count one sign-up from `client` and say whether a tick is waiting, in one Redis round trip."""
        return self.start(client).verdict()

    def start(self, client: str | None) -> Counting:
        """Send the count of one sign-up from `client` to Redis and return at once; `Counting.verdict` reads
        the answer. The sign-up view reads and checks the form meanwhile instead of waiting (with no round
        trip at all, sign-ups ran 5% faster: bench/README.md, P4)."""
        who = client or "unknown"
        if self.redis is None:
            return Counting(self, who, None)
        connection = self._connection()
        self._settle(connection)
        keys = [*(f"{self.storage_prefix}:{item.key_for(KEY_PREFIX, who)}" for item in self.items), self.gate_key]
        try:
            connection.send_command("EVALSHA", self.sha, len(keys), *keys, *self.windows)
        except Exception as exc:  # noqa: BLE001 — whatever Redis raises, a sign-up must not fail
            connection.disconnect()
            log.warning("the sign-up rate limit could not reach Redis, counting in memory: %s", exc)
            return Counting(self, who, None)
        counting = self._own.unread = Counting(self, who, connection, keys)
        return counting

    def _settle(self, connection: Connection) -> None:
        """A count sent on this thread's connection and never read (its request ended in an error before
        the view read it) is read now, so that no answer is taken for another's."""
        unread = getattr(self._own, "unread", None)
        if unread is not None and unread.connection is connection:
            unread.verdict()

    def _answer(self, counting: Counting) -> Verdict:
        connection = counting.connection
        if connection is not None:
            if getattr(self._own, "unread", None) is counting:
                self._own.unread = None
            try:
                *counts, gate = self._read(connection, counting.keys)
            except Exception as exc:  # noqa: BLE001 — whatever Redis raises, a sign-up must not fail
                log.warning("the sign-up rate limit could not reach Redis, counting in memory: %s", exc)
            else:
                allowed = all(int(n) <= item.amount for n, item in zip(counts, self.items, strict=True))
                return Verdict(allowed, bool(gate))
        results = [self.fallback.hit(item, KEY_PREFIX, counting.who) for item in self.items]
        return Verdict(all(results), False)

    def _read(self, connection: Connection, keys: list[str]) -> list[int]:
        """The count's answer; when Redis did not have the script (a restart, a flush), it is loaded and
        the count sent again. A connection that failed in any way is closed, never reused half-read: the
        next sign-up connects again."""
        try:
            try:
                return connection.read_response()  # raises the error Redis answered with (NoScriptError ...)
            except NoScriptError:
                self._call(connection, "SCRIPT", "LOAD", COUNT_AND_ASK)
                return self._call(connection, "EVALSHA", self.sha, len(keys), *keys, *self.windows)
        except BaseException:
            connection.disconnect()
            raise

    @staticmethod
    def _call(connection: Connection, *command: object) -> list[int]:
        connection.send_command(*command)
        return connection.read_response()  # raises the error Redis answered with (NoScriptError ...)

    def _connection(self) -> Connection:
        """This thread's connection to Redis, made from the client's settings (its short timeouts), kept
        across sign-ups (connecting again after a failure by itself). Not the client's pool: around one
        command, its checkout and check-in, its check for unread data and its retry wrapper cost as much
        CPU as the command itself (bench/README.md, P4), and a thread holds at most one connection anyway."""
        found = getattr(self._own, "connection", None)
        if found is None or self._own.forks != _forks[0]:  # made before a fork: the parent's socket
            assert self.redis is not None
            found = self._own.connection = self.redis.connection_pool.make_connection()
            self._own.forks = _forks[0]
        return found


# How many forks this process is from the one that imported this module: a thread's connection made before
# a fork belongs to the parent. Counted at the fork, not asked with os.getpid() at every sign-up (a system
# call, and a moment the thread gives up the GIL to the web worker's others).
_forks = [0]
os.register_at_fork(after_in_child=lambda: _forks.__setitem__(0, _forks[0] + 1))


def limits_prefix(redis_prefix: str) -> str:
    """The rate limits' key prefix in Redis, under this nurture's own (Settings.redis_prefix)."""
    return f"{redis_prefix}:limits"


def install(app: Flask, limits: str, redis: Redis | None, gate_key: str = "",
            storage_prefix: str = STORAGE_PREFIX) -> None:
    """One limit per app: each app may have its own Redis."""
    app.extensions["nurture.forms.limit"] = SubmitLimit(limits, redis, gate_key, storage_prefix)


def start() -> Counting:
    """Count this request's sign-up (sent; its answer read by `enforce`)."""
    return current_app.extensions["nurture.forms.limit"].start(request.remote_addr)


def enforce(counting: Counting) -> bool:
    """A 429 (the form blueprint's page or JSON) when this request's sign-up is one too many. Returns whether
    a tick was waiting when it was counted (False when unknown)."""
    verdict = counting.verdict()
    if not verdict.allowed:
        abort(429)
    return verdict.tick_waiting
