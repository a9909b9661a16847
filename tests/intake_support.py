"""Helpers for tests/test_intake_costs.py: posting the starter form, and ending a database's connections
the way a PostgreSQL restart does."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from nurture.runtime import Runtime
from nurture.store.models import Contact
from tests.conftest import CONTENT, PG_ADMIN_URL, FakeClock

FORM = "beginners-guide"
UA = "Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0"


def add_forms(project: Path) -> None:
    shutil.copytree(CONTENT / "forms", project / "forms")


def post(client: FlaskClient, rt: Runtime, clock: FakeClock, email: str):  # noqa: ANN201
    token = rt.signer.form_token(FORM, clock())
    clock.advance(seconds=20)  # the time a person takes to fill it in
    return client.post(f"/forms/{FORM}", data={"_started": token, "website": "", "email": email},
                       headers={"User-Agent": UA})


def emails(rt: Runtime) -> list[str]:
    with Session(rt.db) as session:
        return [c.email for c in session.exec(select(Contact).order_by(Contact.id))]


def end_connections(database_url: str) -> int:
    """End every session on `database_url`'s database, as a server restart does (pg_terminate_backend: the
    clients' sockets are closed by the server). Returns how many were ended."""
    name = make_url(database_url).database
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        rows = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchall()
    return sum(1 for (ended,) in rows if ended)
