"""The console's login: accounts with Argon2 passwords, sessions, CSRF on every form, failed logins
rate-limited, roles, secure cookies, logging out. The API keeps its bearer key."""

from __future__ import annotations

import re

import pytest
from flask import Blueprint
from sqlmodel import Session, select

from nurture.people import accounts
from nurture.store.models import User
from nurture.web import auth
from tests.console_support import PASSWORD, add_account, csrf_token, log_in, logged_in, new_client

CONSOLE_PAGES = ["/", "/map.svg", "/map.pdf"]


@pytest.mark.parametrize("path", CONSOLE_PAGES)
def test_a_page_without_a_session_redirects_to_the_login(make_runtime, sqlite_url, path) -> None:
    client = new_client(make_runtime(sqlite_url))
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert client.get(path, headers={"Authorization": "Bearer test-api-key-0123456789"}).status_code == 302


def test_the_api_key_no_longer_opens_the_console_but_still_opens_the_api(make_runtime, sqlite_url) -> None:
    client = new_client(make_runtime(sqlite_url))
    assert client.get("/", auth=("owner", "test-api-key-0123456789")).status_code == 302
    assert client.get("/api/contacts/nobody@example.com",
                      headers={"Authorization": "Bearer test-api-key-0123456789"}).status_code == 404
    assert client.get("/healthz").json == {"status": "ok", "database": "ok"}


def test_it_logs_in_with_the_right_password_and_goes_where_it_was_sent(make_runtime, database_url) -> None:
    rt = make_runtime(database_url)
    add_account(rt, "Owner@Example.COM")
    client = new_client(rt)
    response = log_in(client, "owner@example.com", next="/map.svg")
    assert response.status_code == 302 and response.headers["Location"] == "/map.svg"
    assert client.get("/map.svg").mimetype == "image/svg+xml"
    with Session(rt.db) as session:
        user = session.exec(select(User)).one()
    assert user.last_login_at == rt.clock()
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash


def test_a_wrong_password_or_an_unknown_address_gets_the_same_401(make_runtime, sqlite_url) -> None:
    rt = make_runtime(sqlite_url)
    add_account(rt, "owner@example.com")
    client = new_client(rt)
    wrong = log_in(client, "owner@example.com", "not-the-password")
    unknown = log_in(client, "nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert "do not match an account" in wrong.get_data(as_text=True)
    def without_token(page: str) -> str:
        return re.sub(r'name="csrf_token" value="[^"]+"', "", page)

    assert without_token(wrong.get_data(as_text=True)).replace("owner@", "nobody@") == \
        without_token(unknown.get_data(as_text=True))
    assert client.get("/").status_code == 302


def test_it_never_sends_a_logged_in_user_to_another_site(make_runtime, sqlite_url) -> None:
    rt = make_runtime(sqlite_url)
    add_account(rt, "owner@example.com")
    for target in ("//evil.test/x", "https://evil.test/", "/\\evil.test"):
        client = new_client(rt)
        assert log_in(client, "owner@example.com", next=target).headers["Location"] == "/"


def test_a_post_without_the_csrf_token_is_refused(make_runtime, sqlite_url) -> None:
    rt = make_runtime(sqlite_url)
    add_account(rt, "owner@example.com")
    client = new_client(rt)
    refused = client.post("/login", data={"email": "owner@example.com", "password": PASSWORD})
    assert refused.status_code == 400 and "CSRF" in refused.get_data(as_text=True)
    forged = client.post("/login", data={"email": "owner@example.com", "password": PASSWORD,
                                         "csrf_token": "forged"})
    assert forged.status_code == 400
    assert client.get("/").status_code == 302  # still not logged in
    client = logged_in(rt, email="second@example.com")
    assert client.post("/logout").status_code == 400  # logging out is a form too
    assert client.get("/").status_code == 200


def test_logging_out_ends_the_session(make_runtime, sqlite_url) -> None:
    client = logged_in(make_runtime(sqlite_url))
    assert client.get("/").status_code == 200
    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert client.get("/").status_code == 302


def test_a_new_password_or_a_removed_account_ends_its_sessions(make_runtime, sqlite_url) -> None:
    rt = make_runtime(sqlite_url)
    ann, bob = logged_in(rt, email="ann@example.com"), logged_in(rt, email="bob@example.com")
    with Session(rt.db) as session:
        accounts.set_password(session, "ann@example.com", "a-brand-new-password")
        accounts.remove(session, "bob@example.com")
        session.commit()
    assert ann.get("/").status_code == 302 and bob.get("/").status_code == 302
    assert log_in(new_client(rt), "ann@example.com", "a-brand-new-password").status_code == 302


def test_failed_logins_are_rate_limited_and_successful_ones_are_not(make_runtime, sqlite_url) -> None:
    rt = make_runtime(sqlite_url)
    add_account(rt, "owner@example.com")
    client = new_client(rt)
    for _ in range(8):  # successes do not use up the allowance
        assert log_in(client, "owner@example.com").status_code == 302
        client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    for _ in range(5):
        assert log_in(client, "owner@example.com", "guess-guess-guess").status_code == 401
    limited = log_in(client, "owner@example.com")  # even the right password waits now
    assert limited.status_code == 429 and "Too many failed logins" in limited.get_data(as_text=True)


def test_a_viewer_may_look_but_not_change_anything(make_runtime, sqlite_url) -> None:
    """Every console blueprint is guarded alike: a POST needs the owner role unless marked any_role."""
    rt = make_runtime(sqlite_url)
    from nurture.web import create_app

    app = create_app(rt)
    extra = Blueprint("console_extra", __name__)
    auth.guard(extra)
    extra.add_url_rule("/extra", "change", lambda: "changed", methods=["GET", "POST"])
    app.register_blueprint(extra)
    add_account(rt, "viewer@example.com", "viewer")
    add_account(rt, "owner@example.com", "owner")
    for email, expected in (("viewer@example.com", 403), ("owner@example.com", 200)):
        client = app.test_client()
        assert log_in(client, email).status_code == 302
        assert client.get("/extra").status_code == 200
        response = client.post("/extra", data={"csrf_token": csrf_token(client, "/")})
        assert response.status_code == expected
    assert app.test_client().get("/extra").status_code == 302  # and nobody without a session


def test_the_session_cookie_is_secure_when_base_url_is_https(make_runtime, sqlite_url) -> None:
    for base_url, secure in (("https://nurture.test", True), ("http://localhost:8000", False)):
        rt = make_runtime(sqlite_url, BASE_URL=base_url)
        add_account(rt, f"owner{int(secure)}@example.com")
        response = log_in(new_client(rt), f"owner{int(secure)}@example.com")
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert ("Secure" in cookie) is secure


def test_the_login_page_says_how_to_make_the_first_account(make_runtime, sqlite_url) -> None:
    rt = make_runtime(sqlite_url)
    client = new_client(rt)
    assert "nurture users add" in client.get("/login").get_data(as_text=True)
    add_account(rt, "owner@example.com")
    assert "nurture users add" not in client.get("/login").get_data(as_text=True)


@pytest.mark.parametrize(("email", "password", "role", "words"), [
    ("not-an-email", PASSWORD, "owner", "@"),
    ("ann@example.com", "short", "owner", "at least 10"),
    ("ann@example.com", PASSWORD, "admin", "unknown role"),
])
def test_an_account_needs_an_address_a_long_password_and_a_known_role(make_runtime, sqlite_url, email, password,
                                                                       role, words) -> None:
    rt = make_runtime(sqlite_url)
    with Session(rt.db) as session, pytest.raises(accounts.AccountError, match=words):
        accounts.add(session, email, password, role, rt.clock())


def test_an_address_has_one_account(make_runtime, sqlite_url) -> None:
    rt = make_runtime(sqlite_url)
    add_account(rt, "ann@example.com")
    with Session(rt.db) as session, pytest.raises(accounts.AccountError, match="already has an account"):
        accounts.add(session, "ANN@example.com", PASSWORD, "viewer", rt.clock())


def test_console_pages_are_not_cached_or_framed(make_runtime, sqlite_url) -> None:
    client = logged_in(make_runtime(sqlite_url))
    for path in ("/", "/login", "/map.svg"):
        headers = client.get(path).headers
        assert headers["Cache-Control"] == "no-store" and headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
