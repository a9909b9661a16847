"""The Flask app factory. Blueprints turn domain errors into HTTP responses; the domain never aborts."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import Flask, current_app
from sqlalchemy.exc import SQLAlchemyError

from nurture.config import startup_settings
from nurture.delivery import versions
from nurture.runtime import Runtime, build_runtime
from nurture.store.db import upgrade
from nurture.store.models import EnrollmentStatus, Subscription
from nurture.web.inputs import StrictJSONProvider
from nurture.web.sessions import CookieSessions

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # a signup or API request is a few hundred bytes; anything near this is not one


def create_app(runtime: Runtime | None = None) -> Flask:
    """Build the web app. Without `runtime`, settings come from the environment (read once, strictly)."""
    rt = runtime or build_runtime(startup_settings())
    if runtime is None:
        upgrade(rt.db)
    app = Flask(__name__)
    app.json = StrictJSONProvider(app)  # NaN, 1e999 and runaway nesting are a 400, not a 500 further in
    app.session_interface = CookieSessions()  # no signing serializer built for a request without a cookie
    app.config.update(SECRET_KEY=rt.settings.secret_key, MAX_CONTENT_LENGTH=MAX_BODY, JSON_SORT_KEYS=False)
    app.extensions["nurture"] = rt
    app.before_request(_follow_sequences(rt))
    # Templates compare statuses by name too, not by a string that a typo would make never match.
    app.jinja_env.globals.update(Subscription=Subscription, EnrollmentStatus=EnrollmentStatus)

    from nurture.web import api, forms, i18n, public, unsubscribe

    i18n.init_app(app)  # the pages a contact sees, in the contact's language (Flask-Babel)

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
    from nurture.web import integrations

    app.register_blueprint(integrations.bp)
    from nurture.web import hooks

    app.register_blueprint(hooks.bp)  # the email providers' webhooks (SES, Postmark, SendGrid, Mailgun)
    from nurture.web import console

    console.init_app(app, rt)  # the owner's console: login, sessions, CSRF, the lifecycle map at /
    if runtime is None:  # served: gunicorn builds one app per worker process, for the process's life
        # Everything built so far lives as long as the worker: out of the collector's sight. A full
        # collection walked these ~200,000 objects every few thousand sign-ups, an 86 ms pause each time
        # (bench/README.md, P4). The worker process does the same (worker.py).
        gc.freeze()
    return app


def _follow_sequences(rt: Runtime) -> Callable[[], None]:
    """Before a request: run the sequence versions the worker runs (it decides which version of an edited
    file runs; see nurture.delivery.versions.follow). Read at most once a tick: the worker changes no faster."""
    last: list[datetime] = []

    def follow() -> None:
        now = rt.clock()
        if last and now - last[0] < timedelta(seconds=rt.settings.tick_seconds):
            return
        last[:] = [now]
        try:
            versions.follow(rt)
        except SQLAlchemyError as exc:  # keep serving the versions held; /healthz reports the database
            log.warning("could not read the running sequence versions: %s", exc)

    return follow


def runtime() -> Runtime:
    return current_app.extensions["nurture"]
