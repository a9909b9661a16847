"""What the contact tests share: a runtime on SQLite and PostgreSQL with a few contacts, owner actors, and
a dump of every row of every table (to show that an erased person is nowhere in it)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import MetaData
from sqlmodel import Session

from nurture.people.owner_actions import Actor
from nurture.runtime import Runtime
from nurture.store.models import Contact
from tests.conftest import write_sequence

OWNER = Actor("owner@example.com", "console")
VIP_WELCOME = """
id: vip-welcome
name: VIP welcome
stage: nurture-prospects
trigger:
  - {tag: vip}
steps:
  - {id: hello, kind: educate, template: lead/edu-3, subject: Welcome VIP}
"""


def add_vip_sequence(project: Path) -> None:
    write_sequence(project, "vip-welcome", VIP_WELCOME)


def contact(rt: Runtime, contact_id: int) -> Contact:
    with Session(rt.db, expire_on_commit=False) as session:
        found = session.get(Contact, contact_id)
        assert found is not None
        return found


def every_row_as_text(rt: Runtime) -> str:
    """Every value of every row of every table, one line a row: what a database dump would hold."""
    metadata = MetaData()
    metadata.reflect(rt.db)
    lines = []
    with rt.db.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(table.select()):
                lines.append(f"{table.name}: {tuple(row)!r}")
    return "\n".join(lines)
