"""What templates see: plain snapshots of the contact, brand, sequence and step.

Shared by every channel (nurture.delivery.context fills them) and by `nurture check`, which knows from here
which names and attributes a template may use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class ContactRow(Protocol):
    first_name: str
    last_name: str
    email: str
    phone: str | None
    timezone: str | None
    stage: str
    tags: list[str]
    fields: dict


@dataclass(frozen=True)
class ContactView:
    """A snapshot, never the ORM row (no lazy loads mid-render)."""

    first_name: str
    last_name: str
    email: str
    phone: str | None
    timezone: str | None
    stage: str
    tags: tuple[str, ...]
    fields: dict

    @classmethod
    def of(cls, contact: ContactRow) -> ContactView:
        return cls(contact.first_name, contact.last_name, contact.email, contact.phone, contact.timezone,
                   contact.stage, tuple(contact.tags), dict(contact.fields))


@dataclass(frozen=True)
class BrandView:
    name: str
    support_email: str
    base_url: str


@dataclass(frozen=True)
class SequenceView:
    id: str
    name: str


@dataclass(frozen=True)
class StepView:
    id: str
    kind: str
