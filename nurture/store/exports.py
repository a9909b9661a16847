"""The rows of a CSV export, read in pages so that a million contacts never sit in memory at once.

Each query is keyset-paged on the primary key (`WHERE id > last ORDER BY id LIMIT n`): no server-side cursor
to keep open across a slow download, the same on SQLite and PostgreSQL, and each page costs the same however
far in it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from nurture.store.models import Consent, Contact, Delivery

PAGE = 2000

CONTACT_COLUMNS = ("id", "email", "phone", "first_name", "last_name", "timezone", "locale", "stage", "email_status",
                   "sms_status", "tags", "fields", "source", "created_at", "updated_at")
DELIVERY_COLUMNS = ("id", "contact_id", "sequence_id", "sequence_version", "step_id", "channel", "kind",
                    "recipient", "status", "provider_status", "error", "attempts", "created_at", "sent_at")
CONSENT_COLUMNS = ("id", "contact_id", "channel", "action", "method", "scope", "legal_basis", "form_id",
                   "delivery_id", "consent_text", "consent_hash", "ip", "user_agent", "created_at")


def contacts(engine: Engine) -> Iterator[dict[str, Any]]:
    yield from _paged(engine, select(*(getattr(Contact, c) for c in CONTACT_COLUMNS)), Contact.id)


def deliveries(engine: Engine) -> Iterator[dict[str, Any]]:
    query = select(*(getattr(Delivery, c) for c in DELIVERY_COLUMNS), Contact.email.label("email")).join(
        Contact, Contact.id == Delivery.contact_id)
    yield from _paged(engine, query, Delivery.id)


def consents(engine: Engine) -> Iterator[dict[str, Any]]:
    query = select(*(getattr(Consent, c) for c in CONSENT_COLUMNS), Contact.email.label("email")).join(
        Contact, Contact.id == Consent.contact_id)
    yield from _paged(engine, query, Consent.id)


def _paged(engine: Engine, query: Select, key: Any) -> Iterator[dict[str, Any]]:
    """Every row of `query` in `key` order, a page per short session: a download that stalls holds no
    transaction open (SQLite would keep its readers' snapshot, PostgreSQL its vacuum back)."""
    last = 0
    while True:
        with Session(engine) as session:
            page = [dict(row) for row in session.execute(query.where(key > last).order_by(key).limit(PAGE)).mappings()]
        yield from page
        if len(page) < PAGE:
            return
        last = page[-1]["id"]
