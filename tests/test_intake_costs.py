"""What the sign-up no longer pays for (bench/README.md, P4), and that nothing it guaranteed went with it:

- the pool pings a connection only after a pause (store.db.ping_when_idle), not at every checkout: a
  database restart is still survived, by the ping after a pause and, in steady use, by the sign-up's one
  retry on a new connection;
- the pool hands out the connection given back last (LIFO): a steady load reuses the few it needs;
- the rate limit's increment and the question "is a tick waiting?" are one Redis round trip; the nudge is
  made only when none is;
- the console's login Limiter hooks only the console's requests.
"""

from __future__ import annotations

import pytest
from redis import Redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from nurture.store.db import make_engine, ping
from nurture.web import create_app
from tests.conftest import _postgres_database
from tests.intake_support import add_forms, emails, end_connections, post


@pytest.fixture
def pg_url():  # noqa: ANN201
    yield from _postgres_database()


def test_a_connection_back_from_a_pause_is_pinged_and_replaced_when_the_server_restarted(pg_url) -> None:
    for idle_ping_seconds, survives in ((0.0, True), (3600.0, False)):
        engine = make_engine(pg_url, idle_ping_seconds=idle_ping_seconds)
        try:
            ping(engine)  # one connection made, back in the pool
            assert end_connections(pg_url) >= 1
            if survives:  # pinged at checkout (it sat longer than 0 s), found dead, replaced
                with engine.connect() as connection:
                    assert connection.execute(text("SELECT 1")).scalar() == 1
            else:  # not pinged (in steady use): the statement meets the dead connection
                with pytest.raises(DBAPIError) as raised, engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
                assert raised.value.connection_invalidated
                with engine.connect() as connection:  # and the pool made a new one for the next
                    assert connection.execute(text("SELECT 1")).scalar() == 1
        finally:
            engine.dispose()


def test_the_pool_hands_out_the_connection_given_back_last(pg_url) -> None:
    engine = make_engine(pg_url)
    try:
        first, second = engine.raw_connection(), engine.raw_connection()
        kept = {id(c.driver_connection): name for c, name in ((first, "first"), (second, "second"))}
        first.close()
        second.close()  # given back last
        again = engine.raw_connection()
        assert kept[id(again.driver_connection)] == "second"  # FIFO would hand out the first again
        again.close()
    finally:
        engine.dispose()


def test_a_sign_up_in_steady_use_survives_a_database_restart(make_runtime, project, pg_url, clock) -> None:
    add_forms(project)
    # TICK_SECONDS: the app reads the running sequence versions once a tick, before a request; that read
    # would meet the dead connection first and renew the pool, and the sign-up's own retry not be needed.
    rt = make_runtime(pg_url, FORM_RATE_LIMIT="1000 per minute", TICK_SECONDS="3600")
    client = create_app(rt).test_client()
    assert post(client, rt, clock, "ann@example.com").status_code == 303
    assert end_connections(pg_url) >= 1  # the pooled connection was just used: no ping after a pause
    assert post(client, rt, clock, "bob@example.com").status_code == 303  # tried again on a new connection
    assert post(client, rt, clock, "cy@example.com").status_code == 303
    assert emails(rt) == ["ann@example.com", "bob@example.com", "cy@example.com"]


def test_a_sign_up_while_a_tick_waits_makes_one_redis_round_trip(make_runtime, sqlite_url, project, redis_url,
                                                                 clock) -> None:
    add_forms(project)
    rt = make_runtime(sqlite_url, REDIS_URL=redis_url, FORM_RATE_LIMIT="1000 per minute")
    client, redis = create_app(rt).test_client(), Redis.from_url(redis_url)
    assert post(client, rt, clock, "ann@example.com").status_code == 303  # queues the tick (no tick waited)

    def calls() -> dict[str, int]:
        return {name: stats["calls"] for name, stats in redis.info("commandstats").items()}

    before = calls()
    assert post(client, rt, clock, "bob@example.com").status_code == 303
    after = calls()
    made = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
    redis.close()
    # One EVALSHA from the app (the script's own INCRBY and EXISTS run inside it; "info" is this test's own).
    assert made.pop("cmdstat_evalsha") == 1 and made.pop("cmdstat_info") == 1
    assert set(made) <= {"cmdstat_incrby", "cmdstat_exists"}, made
    assert made.get("cmdstat_incrby") == 1 and made.get("cmdstat_exists") == 1
    assert emails(rt) == ["ann@example.com", "bob@example.com"]


def test_the_login_limiter_hooks_only_the_consoles_requests(make_runtime, sqlite_url) -> None:
    app = create_app(make_runtime(sqlite_url))
    limiters = app.extensions["limiter"]
    assert len(limiters) == 1

    def of_limiter(funcs: list) -> list:
        return [f for f in funcs if any(getattr(f, "__self__", None) is lim or lim in getattr(f, "args", ())
                                        for lim in limiters)]

    for hooks in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        assert of_limiter(hooks.get(None, [])) == []  # not on a sign-up, a click, an unsubscribe ...
        assert len(of_limiter(hooks.get("console", []))) == 1  # on the console's, where the login is


def test_the_rate_limit_loads_its_script_again_after_redis_forgot_it(make_runtime, sqlite_url, project, redis_url,
                                                                     clock) -> None:
    add_forms(project)
    rt = make_runtime(sqlite_url, REDIS_URL=redis_url, FORM_RATE_LIMIT="2 per minute")
    client, redis = create_app(rt).test_client(), Redis.from_url(redis_url)
    assert post(client, rt, clock, "ann@example.com").status_code == 303
    redis.script_flush()  # as after a restart of Redis without its data, or SCRIPT FLUSH
    assert post(client, rt, clock, "bob@example.com").status_code == 303  # counted: the second of two
    assert post(client, rt, clock, "cy@example.com").status_code == 429  # so this one is one too many
    [key] = redis.keys(f"{rt.settings.redis_prefix}:limits:*nurture-forms*")  # the `limits` library's key, ours
    assert int(redis.get(key)) == 3
    redis.close()
    assert emails(rt) == ["ann@example.com", "bob@example.com"]
