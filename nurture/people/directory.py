"""The contact list, as the console page and GET /api/contacts ask for it: filters read from a query
string (strictly: a bad value is a `BadFilter` naming it, never a 500), a page, and the cursor of the next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlmodel import Session

from nurture.people.contacts import UNSTORABLE
from nurture.store import contact_list as store
from nurture.store.contact_list import Filters
from nurture.store.models import Contact, Subscription

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_QUERY = 320  # the longest address
FILTER_KEYS = ("q", "stage", "tag", "sequence", "email_status", "sms_status")
MAX_ID = 2**31 - 1  # ids are INTEGER: PostgreSQL refuses a larger number in the query (out of range)


class BadFilter(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Row:
    contact: Contact
    sequences: list[tuple[str, str]]  # (sequence id, active | paused)


@dataclass(frozen=True)
class Listing:
    rows: list[Row]
    next_cursor: str | None  # None on the last page


def filters_from(args: Mapping[str, str]) -> Filters:
    """Filters from a query string. Raises BadFilter for a value that could match nothing sensible."""
    values = {key: _text(args, key) for key in FILTER_KEYS}
    statuses = {s.value for s in Subscription}
    for key in ("email_status", "sms_status"):
        if values[key] and values[key] not in statuses:
            raise BadFilter(key, f"one of {', '.join(sorted(statuses))}")
    return Filters(query=(values["q"] or "").lower(), stage=values["stage"], tag=values["tag"],
                   sequence=values["sequence"], email_status=values["email_status"], sms_status=values["sms_status"])


def limit_from(raw: str | None) -> int:
    if raw in (None, ""):
        return DEFAULT_LIMIT
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadFilter("limit", f"a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def cursor_from(raw: str | None) -> int | None:
    """The `cursor` a previous page gave (the last id it showed), or None for the first page."""
    if raw in (None, ""):
        return None
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_ID:
        raise BadFilter("cursor", "not a cursor this list gave (use next_cursor as it came)")
    return int(raw)


def listing(session: Session, filters: Filters, limit: int = DEFAULT_LIMIT, cursor: int | None = None) -> Listing:
    """One page, newest first. One row more than asked is read to know whether another page follows."""
    contacts = store.page(session, filters, limit + 1, cursor)
    more = len(contacts) > limit
    contacts = contacts[:limit]
    running = store.running_sequences(session, [c.id for c in contacts if c.id is not None])
    return Listing([Row(c, running.get(c.id or 0, [])) for c in contacts],
                   str(contacts[-1].id) if more and contacts else None)


def _text(args: Mapping[str, str], key: str) -> str | None:
    value = (args.get(key) or "").strip()
    if not value:
        return None
    if len(value) > MAX_QUERY or UNSTORABLE.search(value):
        raise BadFilter(key, f"at most {MAX_QUERY} characters of plain text")
    return value
