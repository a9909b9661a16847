"""Contacts, deliveries and consent records as CSV, a line at a time: the console streams it to the browser,
`nurture contacts export` to a file, and neither holds the whole table in memory (store.exports pages it).

A cell a person typed that starts with `=`, `+`, `-` or `@` is prefixed with `'`: a spreadsheet would run
it as a formula (OWASP "CSV injection": `=HYPERLINK(...)` in a first name). Phone numbers (E.164, checked)
and the columns nurture writes itself are left as they are.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from nurture.store import exports as store

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Columns whose values nurture writes (ids, statuses, times, hashes, E.164 numbers): never formulas.
TRUSTED = {"id", "contact_id", "delivery_id", "phone", "stage", "email_status", "sms_status", "created_at",
           "updated_at", "sent_at", "status", "channel", "action", "attempts", "consent_hash", "sequence_version",
           "legal_basis", "scope"}

TABLES: dict[str, tuple[Callable[[Engine], Iterator[dict[str, Any]]], tuple[str, ...]]] = {
    "contacts": (store.contacts, store.CONTACT_COLUMNS),
    "deliveries": (store.deliveries, ("id", "contact_id", "email", *store.DELIVERY_COLUMNS[2:])),
    "consent": (store.consents, ("id", "contact_id", "email", *store.CONSENT_COLUMNS[2:])),
}


class UnknownTable(LookupError):
    """Not one of TABLES."""


def csv_lines(engine: Engine, table: str) -> Iterator[str]:
    """The header, then one CSV line per row of `table` (contacts, deliveries, consent)."""
    if table not in TABLES:
        raise UnknownTable(table)
    rows, columns = TABLES[table]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180, and what spreadsheets expect

    def line(values: list[str]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(list(columns))
    for row in rows(engine):
        yield line([cell(name, row.get(name)) for name in columns])


def cell(column: str, value: object) -> str:
    """One value as text: times in ISO 8601 UTC, tags comma-separated, custom fields as JSON."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, list):
        text = ",".join(str(v) for v in value)
    elif isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True) if value else ""
    else:
        text = str(value)
    return "'" + text if column not in TRUSTED and text.startswith(FORMULA_START) else text
