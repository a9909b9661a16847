"""The Flask app factory. Blueprints turn domain errors into HTTP responses; the domain never aborts."""

from __future__ import annotations

from flask import Flask, current_app

from nurture.config import load_settings
from nurture.runtime import Runtime, build_runtime
from nurture.store.db import upgrade
from nurture.web.inputs import StrictJSONProvider

MAX_BODY = 64 * 1024  # a signup or API request is a few hundred bytes; anything near this is not one


def create_app(runtime: Runtime | None = None) -> Flask:
    """Build the web app. Without `runtime`, settings come from the environment (read once, strictly)."""
    rt = runtime or build_runtime(load_settings())
    if runtime is None:
        upgrade(rt.db)
    app = Flask(__name__)
    app.json = StrictJSONProvider(app)  # NaN, 1e999 and runaway nesting are a 400, not a 500 further in
    app.config.update(SECRET_KEY=rt.settings.secret_key, MAX_CONTENT_LENGTH=MAX_BODY, JSON_SORT_KEYS=False)
    app.extensions["nurture"] = rt

    from nurture.web import api, forms, public, unsubscribe

    app.register_blueprint(public.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(unsubscribe.bp)
    forms.init_app(app, rt)  # the form blueprint, with its per-IP rate limit on submissions
    from nurture.web import events, feedback, tracking

    app.register_blueprint(events.bp)
    app.register_blueprint(tracking.bp)
    app.register_blueprint(feedback.bp)
    from nurture.web import twilio

    app.register_blueprint(twilio.bp)
    return app


def runtime() -> Runtime:
    return current_app.extensions["nurture"]
