"""The health check. (The owner's overview that was here, behind the API key, is now the console's
lifecycle map at `/`, behind a login: nurture.web.console.)"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from redis import Redis
from redis.exceptions import RedisError

from nurture.store.db import ping
from nurture.web import runtime

bp = Blueprint("public", __name__)


@bp.get("/healthz")
def health() -> tuple[Response, int]:
    rt = runtime()
    checks = {}
    try:
        ping(rt.db)
        checks["database"] = "ok"
    except Exception as exc:  # report, don't crash: this is what a load balancer polls
        checks["database"] = f"error: {exc}"
    if rt.settings.redis_url:  # without Redis nothing is sent: the workers wait for it, and this says so
        checks["redis"] = _redis_check(rt.settings.redis_url)
    ok = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if ok else "error", **checks), 200 if ok else 503


def _redis_check(url: str) -> str:
    # A client of its own with short timeouts, kept per app: a Redis that hangs must not hang the check.
    client = current_app.extensions.get("nurture.health_redis")
    if client is None:
        client = Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        current_app.extensions["nurture.health_redis"] = client
    try:
        client.ping()
        return "ok"
    except RedisError as exc:
        return f"error: {exc}"
