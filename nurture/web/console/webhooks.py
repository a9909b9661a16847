"""Webhooks out in the console: /webhooks lists the endpoints of webhooks.yaml with their state and the log
of attempts; an owner may send a test ping and switch a disabled endpoint back on."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from nurture.delivery import webhook_views, webhooks
from nurture.web import runtime
from nurture.web.console import bp

LOG_LIMIT = 100


@bp.get("/webhooks")
def webhooks_page() -> str:
    rt = runtime()
    views = webhook_views.endpoint_views(rt)
    chosen = request.args.get("name") or None
    if chosen not in {v.endpoint.name for v in views}:
        chosen = None  # an unknown name shows every endpoint's log, not an error
    return render_template("console/webhooks.html", views=views, chosen=chosen,
                           log=webhook_views.attempt_log(rt, chosen, LOG_LIMIT), describe=webhook_views.describe,
                           file=rt.settings.webhooks_file.name)


@bp.post("/webhooks/<name>/ping")
def webhook_ping(name: str) -> Response:
    try:
        outcome = webhooks.send_ping(runtime(), name)
    except webhooks.UnknownEndpoint:
        abort(404)
    if outcome.ok:
        flash(f"Test ping to {name}: {outcome.status_code} accepted in {outcome.duration_ms} ms.", "ok")
    else:
        flash(f"Test ping to {name} failed: {outcome.error}", "error")
    return redirect(url_for("console.webhooks_page", name=name))


@bp.post("/webhooks/<name>/enable")
def webhook_enable(name: str) -> Response:
    if name not in {v.endpoint.name for v in webhook_views.endpoint_views(runtime())}:
        abort(404)
    webhooks.enable(runtime(), name)
    flash(f"{name} is switched back on: its waiting events go out at the next tick.", "ok")
    return redirect(url_for("console.webhooks_page", name=name))
