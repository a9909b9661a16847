"""The global suppression list: addresses no send ever passes (hard bounces, complaints, manual entries).

One door for `nurture suppress`, the console's Suppressions page and the bounce handling: addresses are
normalised here (email by email-validator, phone numbers to E.164 by phonenumbers), and every addition and
removal is kept in `suppression_change` with who made it and why.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel import Session

from nurture.people.contacts import UNSTORABLE, InvalidContact, normalise_email, normalise_phone
from nurture.rules.erasure import address_digest
from nurture.store import claims as store
from nurture.store import erasure as erasure_store
from nurture.store import suppressions
from nurture.store.models import Suppression, SuppressionChange

PER_PAGE = 50


@dataclass(frozen=True)
class ImportReport:
    added: int
    invalid: list[tuple[int, str, str]]  # (line, value, reason)


@dataclass(frozen=True)
class Page:
    entries: list[Suppression]
    total: int  # entries matching the search, on every page
    number: int  # from 1
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def normalise(address: str, phone_region: str = "US") -> tuple[str, str]:
    """(normalised address, channel): an email address (it has an @), else a phone number in E.164.
    Raises InvalidContact naming the field, with what is wrong."""
    if not isinstance(address, str) or not address.strip():
        raise InvalidContact("address", "an email address or a phone number is required")
    if "@" in address:
        return normalise_email(address), "email"
    return normalise_phone(address, phone_region) or "", "sms"


def _reason(text: str) -> str:
    """The reason, fit to keep: control characters dropped (PostgreSQL refuses a NUL in text), not refused,
    because bounce reports quote whatever the receiving server said and a bounce must never be lost."""
    return UNSTORABLE.sub("", text).strip() or "manual"


def add(session: Session, address: str, reason: str, now: datetime, actor: str = "system",
        phone_region: str = "US") -> str:
    """Suppress one address (normalised). Raises InvalidContact for something that is neither an email
    address nor a phone number. Adding an address already on the list keeps its first entry."""
    normalised, channel = normalise(address, phone_region)
    reason = _reason(reason)
    if suppressions.entry(session, normalised) is None:
        store.suppress(session, normalised, channel, reason, now)
        suppressions.record_change(session, normalised, channel, "added", reason, actor, now)
    return normalised


def remove(session: Session, address: str, now: datetime, reason: str = "manual", actor: str = "system",
           phone_region: str = "US") -> bool:
    """Take an address off the list, keeping who did it and why; False when it was not on it. Raises
    InvalidContact for something that is neither an email address nor a phone number."""
    normalised, channel = normalise(address, phone_region)
    reason = _reason(reason)
    removed = suppressions.unsuppress(session, normalised)
    if removed:
        suppressions.record_change(session, normalised, channel, "removed", reason, actor, now)
    return removed


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
                add(session, value, row_reason, now, actor="import")
                added += 1
            except InvalidContact as exc:
                invalid.append((line, value, exc.message))
    return ImportReport(added, invalid)


ERASED_REASON = "erased at the person's request"


def suppressed_among(session: Session, addresses: Sequence[str]) -> dict[str, str]:
    """address -> reason, for the normalised `addresses` that no send may pass (a whole import batch in
    a few queries), or that belong to a person erased at their request (people.erasure: kept only as a
    digest). What an import asks before it adds or updates anyone."""
    reasons = suppressions.suppression_reasons(session, addresses)
    digests = {address_digest(a): a for a in addresses if a not in reasons}
    for digest in erasure_store.erased_among(session, list(digests)):
        reasons[digests[digest]] = ERASED_REASON
    return reasons


def listing(session: Session) -> Iterable[Suppression]:
    return suppressions.listing(session)


def page(session: Session, search: str = "", number: int = 1, per_page: int = PER_PAGE) -> Page:
    """Entries whose address holds `search` (compared lower-cased, as addresses are kept), newest first."""
    number = max(1, number)
    search = UNSTORABLE.sub("", search).strip().lower()  # no address holds a control character
    entries, total = suppressions.page(session, search, (number - 1) * per_page, per_page)
    return Page(entries, total, number, per_page)


def recent_changes(session: Session, limit: int = 10) -> list[SuppressionChange]:
    return suppressions.recent_changes(session, limit)
