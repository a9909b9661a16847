"""The global suppression list: addresses no send ever passes (hard bounces, complaints, manual entries)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel import Session

from nurture.people.contacts import InvalidContact, normalise_email
from nurture.store import claims as store
from nurture.store import suppressions
from nurture.store.models import Suppression


@dataclass(frozen=True)
class ImportReport:
    added: int
    invalid: list[tuple[int, str, str]]  # (line, value, reason)


def add(session: Session, address: str, reason: str, now: datetime) -> str:
    """Suppress one email address (normalised). Raises InvalidContact for something that is not one."""
    normalised = normalise_email(address)
    store.suppress(session, normalised, "email", reason, now)
    return normalised


def remove(session: Session, address: str) -> bool:
    return suppressions.unsuppress(session, normalise_email(address))


def import_csv(session: Session, path: Path, now: datetime, reason: str = "imported") -> ImportReport:
    """Every address in the file's first column (a header row such as `email` is skipped). Bad rows are
    reported with their line and skipped; good ones are added."""
    added, invalid = 0, []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            value = row[0].strip() if row else ""
            if not value or (line == 1 and "@" not in value):
                continue
            row_reason = row[1].strip() if len(row) > 1 and row[1].strip() else reason
            try:
                add(session, value, row_reason, now)
                added += 1
            except InvalidContact as exc:
                invalid.append((line, value, exc.message))
    return ImportReport(added, invalid)


def suppressed_among(session: Session, addresses: Sequence[str]) -> dict[str, str]:
    """address -> reason, for the normalised `addresses` that no send may pass (a whole import batch in
    a few queries). What an import asks before it adds or updates anyone."""
    return suppressions.suppression_reasons(session, addresses)


def listing(session: Session) -> Iterable[Suppression]:
    return suppressions.listing(session)
