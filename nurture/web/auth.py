"""Console sessions: Flask-Login over the accounts of nurture.people.accounts, CSRF (Flask-WTF) on every
console form, and a rate limit (Flask-Limiter) on failed logins.

The API keeps its bearer key (nurture.web.api); this is for people with a browser. CSRF is checked by the
console's own blueprints (`guard`), not app-wide: the signup forms are posted from the business's own
site, and the unsubscribe and Twilio endpoints are posted by mail providers and Twilio, none of which
can carry a token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, redirect, request, url_for
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, UserMixin, current_user
from flask_wtf.csrf import CSRFProtect
from sqlmodel import Session

from nurture.runtime import Runtime
from nurture.store import console
from nurture.web import runtime

# Failed logins only (successful ones are not counted): per address of the browser, and per account,
# so that guessing one owner's password from many addresses is slow too. Argon2 makes each guess cost
# a quarter of a second of CPU as well.
LOGIN_LIMITS_PER_IP = "5 per minute;30 per hour"
LOGIN_LIMIT_PER_ACCOUNT = "20 per hour"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

csrf = CSRFProtect()


@dataclass
class ConsoleUser(UserMixin):
    """Who is logged in, as the session knows them. `id` is the account's session id, not its row id:
    it changes with the password, which ends every older session."""

    id: str
    email: str
    role: str

    @property
    def may_write(self) -> bool:
        return self.role == "owner"


def init_app(app: Flask, rt: Runtime) -> None:
    """Sessions, CSRF and the login rate limit. Cookies are Secure when BASE_URL is https."""
    secure = rt.settings.base_url.startswith("https://")
    app.config.update(SESSION_COOKIE_SECURE=secure, SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      REMEMBER_COOKIE_SECURE=secure, REMEMBER_COOKIE_HTTPONLY=True,
                      WTF_CSRF_CHECK_DEFAULT=False,  # checked per console blueprint: see `guard`
                      WTF_CSRF_TIME_LIMIT=None)  # the token lives as long as the session that holds it
    csrf.init_app(app)
    manager = LoginManager(app)
    manager.login_view = "console.login"
    manager.login_message = "Please log in to see that page."
    manager.user_loader(load_user)


def load_user(session_id: str) -> ConsoleUser | None:
    with Session(runtime().db) as session:
        user = console.user_by_session_id(session, session_id)
        return ConsoleUser(user.session_id, user.email, user.role) if user else None


def login_limiter(app: Flask, rt: Runtime, blueprint: str | None = None) -> Limiter:
    """A Limiter of its own (key prefix apart from the forms'), in Redis when there is one.

    With `blueprint`, its request hooks run for that blueprint's requests only. Flask-Limiter hooks every
    request of the app (before, after and teardown), though this Limiter has no default limits and only the
    login view is limited: on a sign-up that was 6% of the CPU (bench/README.md, P4) for nothing. The
    decorated view checks its limits itself; the after-request hook deducts a failed login (`deduct_when`)
    and the teardown resets the limiter's per-request state, so both still run where the login is."""
    hooks = {name: {key: list(funcs) for key, funcs in getattr(app, name).items()}
             for name in ("before_request_funcs", "after_request_funcs", "teardown_request_funcs")}
    limiter = Limiter(get_remote_address, app=app, storage_uri=rt.settings.redis_url or "memory://",
                      key_prefix="nurture-login", default_limits=[], swallow_errors=True,
                      in_memory_fallback_enabled=True)
    if blueprint is not None:
        for name, before in hooks.items():
            registered = getattr(app, name)
            added = [f for f in registered.get(None, []) if f not in before.get(None, [])]
            registered[None] = [f for f in registered.get(None, []) if f not in added]
            registered.setdefault(blueprint, []).extend(added)
    return limiter


def limit_logins(app: Flask, rt: Runtime, endpoint: str) -> None:
    """Rate-limit failed POSTs to `endpoint` (a failed login answers 401); the limiter's hooks run for the
    requests of `endpoint`'s blueprint only."""
    limiter = login_limiter(app, rt, endpoint.rpartition(".")[0] or None)
    view = limiter.limit(LOGIN_LIMITS_PER_IP, methods=["POST"], deduct_when=_failed)(app.view_functions[endpoint])
    view = limiter.limit(LOGIN_LIMIT_PER_ACCOUNT, methods=["POST"], deduct_when=_failed, key_func=_account_key)(view)
    app.view_functions[endpoint] = view


def _failed(response: Response) -> bool:
    return response.status_code == 401


def _account_key() -> str:
    return "account:" + request.form.get("email", "").strip().lower()[:320]


def guard(bp: Blueprint, open_endpoints: tuple[str, ...] = ()) -> None:
    """Every view of `bp` needs a session (except `open_endpoints`, the login page); every POST, PUT,
    PATCH or DELETE needs the CSRF token, and an owner unless the view is marked `any_role`."""

    @bp.before_request
    def _check() -> Any:
        if request.method not in SAFE_METHODS:
            csrf.protect()  # raises CSRFError (400) without a valid token
        if request.endpoint in open_endpoints:
            return None
        if not current_user.is_authenticated:
            return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
        view = current_app.view_functions.get(request.endpoint or "")
        if request.method not in SAFE_METHODS and not current_user.may_write and not getattr(view, "any_role", False):
            abort(403)
        return None


def any_role(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a view that changes something every logged-in user may change (logging out)."""
    view.any_role = True  # type: ignore[attr-defined]
    return view


def safe_next(target: str | None) -> str | None:
    """Where to go after logging in: a path on this site, never another site (`//evil.test`, `https:`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target
