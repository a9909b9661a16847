"""The rate limits' counters in Redis (failed console logins, form sign-ups) live under this nurture's own
prefix, `nurture:<QUEUE_NAME>:`, like every other key it writes: not under the `limits` library's shared
`LIMITS:` prefix, where any other app on the same Redis counts too (and two nurtures count each other)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from redis import Redis

from nurture.web import create_app, submit_limit
from tests.conftest import CONTENT, FakeClock
from tests.console_support import add_account, log_in, new_client

FORM = "beginners-guide"


def test_the_limits_count_under_this_nurture_s_own_prefix(make_runtime, sqlite_url, project: Path, clock: FakeClock,
                                                          redis_url: str) -> None:  # noqa: ANN001
    shutil.copytree(CONTENT / "forms", project / "forms")
    rt = make_runtime(sqlite_url, REDIS_URL=redis_url, QUEUE_NAME="studio-a")
    add_account(rt, "owner@example.com")
    assert log_in(new_client(rt), "owner@example.com", "guess-guess-guess").status_code == 401
    token = rt.signer.form_token(FORM, clock())
    clock.advance(seconds=20)
    signed_up = create_app(rt).test_client().post(f"/forms/{FORM}", data={"_started": token, "website": "",
                                                                          "email": "ann@example.com"})
    assert signed_up.status_code < 400

    keys = sorted(key.decode() for key in Redis.from_url(redis_url).keys("*"))
    limit_keys = [key for key in keys if "login" in key or "forms" in key]
    assert any("login" in key for key in limit_keys) and any("forms" in key for key in limit_keys), keys
    assert all(key.startswith("nurture:studio-a:") for key in limit_keys), keys
    assert not any(key.startswith("LIMITS") for key in keys), keys


def test_a_forked_process_counts_on_a_connection_of_its_own() -> None:
    """A thread keeps its connection to Redis across sign-ups; one made before a fork (gunicorn's arbiter
    builds nothing, but a preloading server would) is the parent's socket, never shared with a child."""
    limit = submit_limit.SubmitLimit("5 per minute", Redis.from_url("redis://127.0.0.1:1/0"), "gate")
    before = limit._connection()
    assert limit._connection() is before
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's verdict is its exit status
        mine = limit._connection()
        os._exit(0 if mine is not before and limit._connection() is mine else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert limit._connection() is before  # the parent's stays its own
