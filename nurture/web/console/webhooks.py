"""Webhooks out in the console: /webhooks lists the endpoints of webhooks.yaml with their state and the log
of attempts; an owner may send a test ping and switch a disabled endpoint back on."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from nurture.delivery import webhook_views, webhooks
from nurture.rules.webhooks import EVENT_NAMES
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
                           file=rt.settings.webhooks_file.name, event_names=EVENT_NAMES,
                           secret_names=sorted(rt.settings.webhooks.secrets), form={}, problems=[])


@bp.post("/webhooks/new")
def webhook_add() -> Response | tuple[str, int]:
    rt = runtime()
    form = {key: request.form.get(key, "").strip() for key in ("name", "url", "secret_env")}
    events = [e for e in request.form.getlist("events") if e in EVENT_NAMES]
    problems = webhooks.add_endpoint(rt, form["name"], form["url"], events, form["secret_env"])
    if not problems:
        flash(f"{form['name']} added: it receives what happens from now on.", "ok")
        return redirect(url_for("console.webhooks_page", name=form["name"]))
    views = webhook_views.endpoint_views(rt)
    return render_template("console/webhooks.html", views=views, chosen=None,
                           log=webhook_views.attempt_log(rt, None, LOG_LIMIT), describe=webhook_views.describe,
                           file=rt.settings.webhooks_file.name, event_names=EVENT_NAMES,
                           secret_names=sorted(rt.settings.webhooks.secrets), form={**form, "events": events},
                           problems=problems), 400


@bp.post("/webhooks/<name>/remove")
def webhook_remove(name: str) -> Response:
    if not webhooks.remove_endpoint(runtime(), name):
        abort(404)
    flash(f"{name} removed; its waiting events will not be sent.", "ok")
    return redirect(url_for("console.webhooks_page"))


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
