"""What the console's tests share: accounts, a test client that logs in through the real form (CSRF token
and all), and the token itself."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlmodel import Session

from nurture.people import accounts
from nurture.runtime import Runtime
from nurture.web import create_app

PASSWORD = "kiln-fired-0123"


def add_account(rt: Runtime, email: str, role: str = "owner", password: str = PASSWORD) -> None:
    with Session(rt.db) as session:
        accounts.add(session, email, password, role, rt.clock())
        session.commit()


def new_client(rt: Runtime) -> FlaskClient:
    app = create_app(rt)
    app.config["TESTING"] = True
    return app.test_client()


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page)[1]


def log_in(client: FlaskClient, email: str, password: str = PASSWORD, **params: str):  # noqa: ANN201
    token = csrf_token(client)
    return client.post("/login", query_string=params, data={"email": email, "password": password,
                                                             "csrf_token": token})


def logged_in(rt: Runtime, role: str = "owner", email: str | None = None) -> FlaskClient:
    email = email or f"{role}@example.com"
    add_account(rt, email, role)
    client = new_client(rt)
    assert log_in(client, email).status_code == 302
    return client
