"""Bounce settings: the BOUNCE_* variables. `BounceSettings()` alone is the default (bounces come back to
MAIL_FROM's address; three soft bounces within seven days suppress an address)."""

from __future__ import annotations

from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator


class BounceSettings(BaseModel):
    """Built from the whole environment mapping; each field reads the variable it is aliased to."""

    model_config = ConfigDict(frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True)

    address: str | None = Field(None, alias="BOUNCE_ADDRESS")  # default: MAIL_FROM's (its mailbox takes +tags)
    maildir: Path | None = Field(None, alias="BOUNCE_MAILDIR")  # a local maildir the worker reads
    imap_url: str | None = Field(None, alias="BOUNCE_IMAP_URL")  # imaps://user:password@host[:port]/MAILBOX
    soft_limit: int = Field(3, ge=1, alias="BOUNCE_SOFT_LIMIT")  # soft bounces within the window that suppress
    soft_window_days: int = Field(7, ge=1, alias="BOUNCE_SOFT_WINDOW_DAYS")

    @field_validator("address")
    @classmethod
    def _bare_address(cls, value: str | None) -> str | None:
        # The VERP form adds its own +tag: a display name or a tag of its own would break it.
        if value and (parseaddr(value)[1] != value or "@" not in value or "+" in value):
            raise ValueError(f"expected a bare address like bounces@example.com, got {value!r}")
        return value

    @field_validator("imap_url")
    @classmethod
    def _imap(cls, value: str | None) -> str | None:
        if value and (urlsplit(value).scheme not in ("imap", "imaps") or not urlsplit(value).hostname):
            raise ValueError(f"expected imaps://user:password@host/INBOX, got {value!r}")
        return value
