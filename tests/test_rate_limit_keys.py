"""The rate limits' counters in Redis (failed console logins, form sign-ups) live under this nurture's own
prefix, `nurture:<QUEUE_NAME>:`, like every other key it writes: not under the `limits` library's shared
`LIMITS:` prefix, where any other app on the same Redis counts too (and two nurtures count each other)."""

from __future__ import annotations

import shutil
from pathlib import Path

from redis import Redis

from nurture.web import create_app
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
