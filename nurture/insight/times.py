"""How `nurture simulate` and `nurture why` write times: the contact's wall clock, and UTC."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


def stamp(at: datetime, zone: tzinfo) -> str:
    """'2026-11-25 10:00 Wed CET': the contact's wall clock, with the abbreviation that shows DST."""
    local = at.astimezone(zone)
    return local.strftime("%Y-%m-%d %H:%M:%S %a %Z" if local.second else "%Y-%m-%d %H:%M %a %Z")


def utc_stamp(at: datetime) -> str:
    """'2026-11-25 09:00Z'."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ" if at.second else "%Y-%m-%d %H:%MZ")


def iso_utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def is_utc(zone: tzinfo) -> bool:
    """Whether local time is UTC itself (no timezone set, or UTC): a second UTC column would repeat it."""
    return zone is UTC or getattr(zone, "key", None) in ("UTC", "Etc/UTC", "Etc/UCT", "UCT", "Zulu", "Etc/Zulu")
