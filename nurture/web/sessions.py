"""Flask's signed-cookie sessions, opened without cost on a request that brings no session cookie."""

from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface


class CookieSessions(SecureCookieSessionInterface):
    """Flask's own sessions (the console's login, its CSRF token), unchanged, except that a request with no
    session cookie gets its new empty session without Flask first building the signing serializer it would
    not use: every request paid for that, and the sign-ups, webhooks and tracking links that make nearly
    all of them bring no cookie (a cross-site form POST carries no SameSite=Lax cookie). Without a secret
    key Flask's own answer (no session) stands."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)
