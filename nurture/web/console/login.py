"""Logging in and out. A failed login answers 401 (that is what the rate limit counts)."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from sqlmodel import Session
from werkzeug.wrappers import Response

from nurture.people import accounts
from nurture.store import console as store
from nurture.web import auth, runtime
from nurture.web.console import bp


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    target = auth.safe_next(request.args.get("next")) or url_for("console.home")
    if current_user.is_authenticated:
        return redirect(target)
    if request.method == "GET":
        return render_template("console/login.html", email="", error=None, first_run=_no_accounts_yet())
    rt = runtime()
    email = request.form.get("email", "")
    with Session(rt.db) as session:
        user = accounts.authenticate(session, email, request.form.get("password", ""), rt.clock())
        if user is None:
            return render_template("console/login.html", email=email, first_run=False,
                                   error="That email and password do not match an account."), 401
        session.commit()
        login_user(auth.ConsoleUser(user.session_id, user.email, user.role))
    return redirect(target)


@bp.post("/logout")
@auth.any_role
def logout() -> Response:
    logout_user()
    return redirect(url_for("console.login"))


def _no_accounts_yet() -> bool:
    with Session(runtime().db) as session:
        return store.count_users(session) == 0
