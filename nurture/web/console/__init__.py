"""The owner's console: log in, the lifecycle map as the home page, funnels, forms and suppressions.

One blueprint for the console's pages; `nurture.web.auth.guard` puts every view behind a session, CSRF
on every form, and writes behind the owner role. Its views live in the modules beside this one.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, render_template
from flask_wtf.csrf import CSRFError

from nurture.runtime import Runtime
from nurture.web import auth, runtime

bp = Blueprint("console", __name__)
auth.guard(bp, open_endpoints=("console.login",))


@bp.after_request
def private(response: Response) -> Response:
    """Console pages hold personal data: never cached on the way or kept by the browser, never framed by
    another site (clickjacking), and their addresses never sent on to other sites."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@bp.context_processor
def brand() -> dict[str, str]:
    return {"brand": runtime().settings.brand_name}


@bp.errorhandler(CSRFError)
def refused_without_token(error: CSRFError) -> tuple[str, int]:
    return render_template("console/message.html", title="Please try again",
                           text="The form had expired or did not come from this console (CSRF check: "
                           f"{error.description}). Go back, reload the page and send it again."), 400


@bp.errorhandler(403)
def forbidden(_error: Exception) -> tuple[str, int]:
    return render_template("console/message.html", title="Not allowed",
                           text="Your account may look but not change things (role: viewer). "
                           "Ask an owner."), 403


@bp.errorhandler(429)
def too_many(_error: Exception) -> tuple[str, int]:
    return render_template("console/message.html", title="Too many tries",
                           text="Too many failed logins from here or for this account. Wait a few minutes "
                           "and try again."), 429


def init_app(app: Flask, rt: Runtime) -> None:
    from nurture.web.console import (  # noqa: F401  (their views join `bp`)
        broadcasts,
        contacts,
        exports,
        forms,
        funnel,
        importing,
        lifecycle,
        login,
        reputation,
        segments,
        suppressions,
        webhooks,
    )

    auth.init_app(app, rt)
    app.register_blueprint(bp)
    auth.limit_logins(app, rt, "console.login")
