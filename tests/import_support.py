"""What the import and export tests share: CSV files written to tmp, the CLI run against a runtime's
database, and reading a contact back."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlmodel import Session, select

from nurture.cli import main
from nurture.runtime import Runtime
from nurture.store.models import Consent, Contact, Enrollment
from tests.conftest import worker_env

LEADS = """Email,First Name,Last Name,Phone,Company,Tags
ann@example.com,Ann,Lee,+1 415 555 2671,Kiln Co,"vip, wheel"
not-an-address,Bob,,,,
carl@example.com,Carl,,12,,
ANN@Example.com,Annie,,,,
dora@example.com,Dora,,,Dora Inc,
"""


def write_csv(folder: Path, text: str, name: str = "leads.csv") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def run_cli(monkeypatch: pytest.MonkeyPatch, project: Path, database_url: str, *args: str) -> Result:
    for name, value in worker_env(project, database_url).items():
        monkeypatch.setenv(name, value)
    return CliRunner().invoke(main, list(args))


def contact(rt: Runtime, email: str) -> Contact | None:
    with Session(rt.db) as session:
        return session.exec(select(Contact).where(Contact.email == email)).first()


def consents_of(rt: Runtime, email: str) -> list[Consent]:
    with Session(rt.db) as session:
        return list(session.exec(select(Consent).join(Contact, Contact.id == Consent.contact_id)
                                 .where(Contact.email == email).order_by(Consent.id)))


def enrollments_of(rt: Runtime, email: str) -> list[Enrollment]:
    with Session(rt.db) as session:
        return list(session.exec(select(Enrollment).join(Contact, Contact.id == Enrollment.contact_id)
                                 .where(Contact.email == email).order_by(Enrollment.id)))


def count(rt: Runtime, model: type) -> int:
    with Session(rt.db) as session:
        return len(session.exec(select(model)).all())
