"""The owner's overview (behind the API key) and the health check."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlmodel import Session
from werkzeug.datastructures import Authorization

from nurture.rules.sequence import LIFECYCLE_STAGES
from nurture.runtime import Runtime
from nurture.store import overview as overview_store
from nurture.web import runtime

bp = Blueprint("public", __name__)


def owner_only(view: Callable[..., Any]) -> Callable[..., Any]:
    """HTTP Basic with the API key as the password (any user name): the overview shows the business's
    numbers, which are nobody else's business. Bearer works too, for scripts."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        expected = runtime().settings.api_key.encode()
        auth = _authorization()
        given = (auth.password or auth.token or "") if auth else ""
        if not hmac.compare_digest(given.encode(), expected):
            return Response("Log in with any user name and the API key (var/api_key unless API_KEY is set).\n",
                            401, {"WWW-Authenticate": 'Basic realm="nurture", charset="UTF-8"'})
        return view(*args, **kwargs)

    return wrapper


def _authorization() -> Authorization | None:
    """The request's credentials, or None when there are none we can read. Werkzeug parses `Basic` with
    base64.b64decode, which raises ValueError (chained to "UnicodeEncodeError: 'ascii' codec can't encode
    character") for a non-ASCII byte in the header, and that escaped as a 500: a garbled login is no login."""
    try:
        return request.authorization
    except ValueError:
        return None


@bp.get("/")
@owner_only
def overview() -> str:
    """The whole map at once, printable: the seven lifecycle stages with their contacts, the sequences that
    serve each (and the gaps: stages with no automation yet), and each sequence's contacts by step."""
    rt = runtime()
    with Session(rt.db) as session:
        by_stage = overview_store.contacts_by_stage(session)
        waiting = overview_store.waiting_by_step(session)
        sent = overview_store.sent_by_step(session)
        contacts = overview_store.contact_count(session)
    return render_template("overview.html", sequences=rt.sequences.all(), waiting=waiting, sent=sent,
                           contacts=contacts, settings=rt.settings, lifecycle=lifecycle_map(rt, by_stage))


def lifecycle_map(rt: Runtime, by_stage: dict[str, int]) -> list[dict[str, Any]]:
    rules = rt.sequences.lifecycle
    rows = []
    for stage in LIFECYCLE_STAGES:
        contact_stages = [name for name, lifecycle_stage in rules.stages.items() if lifecycle_stage == stage]
        serving = [s for s in rt.sequences.all() if s.stage == stage]
        rows.append({"stage": stage, "contact_stages": contact_stages,
                     "contacts": sum(by_stage.get(name, 0) for name in contact_stages), "sequences": serving})
    return rows


@bp.get("/healthz")
def health() -> tuple[Response, int]:
    rt = runtime()
    checks = {}
    try:
        with Session(rt.db) as session:
            session.execute(text("SELECT 1"))
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
