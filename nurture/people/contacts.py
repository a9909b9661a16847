"""Contacts: validating what people type, creating contacts without duplicates, enrolling them.

Raises `InvalidContact` (a domain error naming the field); the API and CLI turn it into a 400 or an exit
code. Never aborts an HTTP request itself.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlmodel import Session

from nurture.rules import engine
from nurture.rules.erasure import address_digest
from nurture.rules.locales import InvalidLocale, optional_locale
from nurture.rules.sequence import Sequence
from nurture.store import contacts as store
from nurture.store import erasure as erasure_store
from nurture.store.models import Contact, Enrollment, EnrollmentStatus

MAX_NAME = 100
MAX_SOURCE = 200  # the column's size
MAX_TAG = 100
MAX_DEPTH = 16  # custom fields nested deeper than this are no contact's data
# NUL: PostgreSQL refuses it in text. A lone surrogate (half a UTF-16 pair, which JSON's \ud800 can spell) has
# no UTF-8 form: both databases' drivers and every email encoder raise on it. The other C0 controls (tab,
# CR and LF aside) have no business in text a person typed, and break the headers it lands in.
UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


class InvalidContact(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ErasedAddress(InvalidContact):
    """The address belongs to a person erased at their request: adding it again would undo that. Every
    caller that handles InvalidContact (API 400, CLI exit code, an import's skipped row) handles this."""

    def __init__(self) -> None:
        super().__init__("email", "this address was erased at the person's request and is not added again "
                         "(see docs/compliance.md to lift it when they ask to come back)")


def check_not_erased(session: Session, normalised: str) -> None:
    """Raise ErasedAddress for an address on the erased list (people.erasure)."""
    if erasure_store.is_erased(session, address_digest(normalised)):
        raise ErasedAddress()


@dataclass(frozen=True)
class ContactInput:
    email: str
    first_name: str = ""
    last_name: str = ""
    phone: str | None = None
    timezone: str | None = None
    fields: dict | None = None
    tags: tuple[str, ...] = ()
    source: str | None = None
    locale: str | None = None  # a language tag (fr, pt-BR); normalised by `validated`


# email-validator checks the part after the @ of every address anew (IDNA, label and length rules: half
# of its cost per sign-up). That check depends on the domain alone, and a few domains (gmail.com, ...) make
# most sign-ups: it is remembered per process, for the last 1,024 domains. Every address is still checked,
# its local part and length each time; a domain that fails raises each time (errors are not remembered).
_VALIDATOR = sys.modules["email_validator.validate_email"]  # the module (the package exports the function)
_VALIDATOR.validate_email_domain_name = lru_cache(maxsize=1024)(_VALIDATOR.validate_email_domain_name)


def normalise_email(raw: str) -> str:
    """Syntax-checked, in its ASCII form and lower-cased, so 'Ann@Example.COM ' and 'ann@example.com' are one
    contact. (Local parts are case-sensitive in theory and case-insensitive at every real mailbox.)

    ASCII because that is all the mail path carries: formataddr and SMTP without SMTPUTF8 raise on
    anything else, so jürgen@example.com would fail every tick's send, forever. A domain has an ASCII form
    (IDNA: ann@münchen.de is ann@xn--mnchen-3ya.de); a local part does not, and is refused here."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidContact("email", "an email address is required")
    try:
        result = validate_email(raw.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidContact("email", str(exc)) from None
    return result.ascii_email.lower()


def normalise_phone(raw: str | None, region: str = "US") -> str | None:
    """E.164, or None for an empty value."""
    if raw is None or not str(raw).strip():
        return None
    try:
        number = phonenumbers.parse(str(raw), region)
    except phonenumbers.NumberParseException:
        raise InvalidContact("phone", f"{raw!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidContact("phone", f"{raw!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_text(raw: object, field: str, max_length: int) -> str:
    """One line of plain text as stored (escaped wherever shown), stripped: line breaks, control characters
    and lone surrogates are refused, never stored. Raises InvalidContact naming `field`."""
    if not isinstance(raw, str):
        raise InvalidContact(field, "must be text")
    if "\r" in raw or "\n" in raw:
        raise InvalidContact(field, "must be on one line")
    if UNSTORABLE.search(raw):
        raise InvalidContact(field, "contains a control character or an unpaired surrogate")
    value = raw.strip()
    if len(value) > max_length:
        raise InvalidContact(field, f"must be at most {max_length} characters")
    return value


def clean_name(raw: object, field: str) -> str:
    return "" if raw is None else check_text(raw, field, MAX_NAME)


def check_json(value: object, field: str) -> None:
    """Custom fields and event properties: every key and string, however deep, must be storable text
    (line breaks are fine here: a note may have several lines). Raises InvalidContact naming `field`."""
    pending: list[tuple[object, int]] = [(value, 0)]  # a loop, not recursion: the depth is the caller's
    while pending:
        item, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise InvalidContact(field, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, str) and UNSTORABLE.search(item):
            raise InvalidContact(field, "contains a control character or an unpaired surrogate")
        if isinstance(item, dict):
            pending += [(k, depth + 1) for k in item] + [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list):
            pending += [(v, depth + 1) for v in item]


def check_timezone(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name like "America" is a folder
        raise InvalidContact("timezone", f"{raw!r} is not an IANA timezone like Europe/Paris") from None
    return raw


def validated(data: ContactInput) -> ContactInput:
    """A cleaned copy of `data`, or InvalidContact naming the first bad field."""
    return ContactInput(
        email=normalise_email(data.email),
        first_name=clean_name(data.first_name, "first_name"),
        last_name=clean_name(data.last_name, "last_name"),
        phone=normalise_phone(data.phone),
        timezone=check_timezone(data.timezone),
        fields=_fields(data.fields),
        tags=tuple(dict.fromkeys(tag for tag in (check_text(t, "tags", MAX_TAG) for t in data.tags) if tag)),
        source=None if data.source is None else check_text(data.source, "source", MAX_SOURCE),
        locale=check_locale(data.locale),
    )


def check_locale(raw: object) -> str | None:
    """A language tag in Babel's form (`fr-FR` -> `fr_FR`), None when empty; InvalidContact otherwise."""
    try:
        return optional_locale(raw)
    except InvalidLocale as exc:
        raise InvalidContact("locale", str(exc)) from None


def _fields(fields: dict | None) -> dict:
    check_json(fields or {}, "fields")
    return dict(fields or {})


def record_event(session: Session, contact_id: int, type_: str, now: datetime, data: dict | None = None,
                 delivery_id: int | None = None) -> None:
    """Append to the contact's timeline (never updated, never deleted)."""
    store.insert_event(session, contact_id, type_, now, data or {}, delivery_id)


MERGED_ATTRS = ("first_name", "last_name", "phone", "timezone", "locale")


@dataclass(frozen=True)
class Merge:
    """What a second sign-up did to a known contact: `filled` the fields that were empty (name -> value,
    tags -> the ones added), `kept` the names of fields offered a different value than the one on record."""

    filled: dict[str, object]
    kept: list[str]


def merge_into(contact: Contact, offered: ContactInput) -> Merge:
    """The one rule for a contact that signs up again (form, API, CLI): nobody who types an address is
    signed in as its owner, so what is on record stays; empty fields are filled and tags accumulate.
    A correction to a name or phone the owner set is an edit, not a second sign-up."""
    filled: dict[str, object] = {}
    kept: list[str] = []
    for attr in MERGED_ATTRS:
        value, current = getattr(offered, attr), getattr(contact, attr)
        if value and not current:
            setattr(contact, attr, value)
            filled[attr] = value
        elif value and value != current:
            kept.append(attr)
    fields = _merge_fields(contact.fields, offered.fields or {}, kept)
    if fields:
        contact.fields = {**contact.fields, **fields}
        filled["fields"] = fields
    tags = [t for t in dict.fromkeys(offered.tags) if t not in contact.tags]
    if tags:
        contact.tags = [*contact.tags, *tags]
        filled["tags"] = tags
    return Merge(filled, kept)


def _merge_fields(current: dict, offered: dict, kept: list[str]) -> dict:
    """The custom fields `offered` adds: those missing or empty on record. Others go into `kept`."""
    added = {}
    for key, value in offered.items():
        if current.get(key) in (None, ""):
            added[key] = value
        elif value not in (None, "") and value != current[key]:
            kept.append(f"fields.{key}")
    return added


def record_merge(session: Session, contact: Contact, merge: Merge, now: datetime, source: str | None) -> None:
    """Put a merge on the contact's timeline, so the owner sees what a sign-up filled and what it offered
    that was not taken. Nothing is recorded when the sign-up brought nothing new."""
    if merge.filled or merge.kept:
        contact.updated_at = now
        record_event(session, contact.id, "contact.merged", now,
                     {"source": source, "filled": merge.filled, "kept": merge.kept})


@dataclass(frozen=True)
class Upserted:
    contact: Contact
    created: bool
    merge: Merge | None = None  # for a known contact: what the merge filled, and what it kept


def upsert_contact(session: Session, data: ContactInput, now: datetime) -> tuple[Contact, bool]:
    """Find the contact by normalised email or create it. Returns (contact, created)."""
    found = upsert(session, data, now)
    return found.contact, found.created


def upsert(session: Session, data: ContactInput, now: datetime) -> Upserted:
    """Find the contact by normalised email or create it. A known contact is merged by `merge_into`: it
    keeps what it has, gains what it lacked. Raises InvalidContact naming the first bad field."""
    clean = validated(data)
    contact = store.by_email(session, clean.email)
    if contact is not None:
        merge = merge_into(contact, clean)
        record_merge(session, contact, merge, now, clean.source)
        session.flush()
        return Upserted(contact, False, merge)
    check_not_erased(session, clean.email)  # an erased person's row holds their address no more
    contact = Contact(email=clean.email, first_name=clean.first_name, last_name=clean.last_name, phone=clean.phone,
                      timezone=clean.timezone, fields=dict(clean.fields or {}), tags=list(clean.tags),
                      source=clean.source, locale=clean.locale, created_at=now, updated_at=now)
    session.add(contact)
    session.flush()
    record_event(session, contact.id, "contact.created", now, {"source": clean.source})
    return Upserted(contact, True)


class UnknownStep(ValueError):
    """`start_at` names a step the sequence does not have."""


def may_reenter(sequence: Sequence, latest: Enrollment | None, now: datetime) -> bool:
    """The sequence's re-entry policy: once ever, every time it is not running, or not within a period."""
    if latest is None:
        return True
    if latest.status in (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED):
        return False
    policy = sequence.reentry
    if policy.policy == "always":
        return True
    return policy.policy == "after" and policy.after is not None and latest.created_at <= now - policy.after


def enroll(session: Session, contact: Contact, sequence: Sequence, now: datetime,
           start_at: str | None = None, by: str | None = None) -> tuple[Enrollment, bool]:
    """Put `contact` into `sequence`, at its first step or at `start_at` (a contact may enter the lifecycle
    anywhere: an imported customer starts at feedback). Returns (enrollment, created).

    Enrolling again while the contact is in the sequence (running or paused) never starts a second run;
    after it finished, the sequence's re-entry policy decides (default: once ever). `by`: who asked (an
    owner's console account, "cli"), kept on the timeline.
    """
    latest = store.latest_enrollment(session, contact.id, sequence.id)
    if latest is not None and not may_reenter(sequence, latest, now):
        return latest, False
    row = enrollment_row(contact.id, contact.timezone, sequence, now, latest.entry + 1 if latest else 1, start_at)
    enrollment = Enrollment(**row)
    session.add(enrollment)
    session.flush()
    record_event(session, contact.id, "sequence.enrolled", now,
                 {**enrolled_data(sequence, row), **({"by": by} if by else {})})
    return enrollment, True


def enrollment_row(contact_id: int | None, timezone: str | None, sequence: Sequence, now: datetime, entry: int,
                   start_at: str | None = None) -> dict[str, object]:
    """A new enrollment's columns, at the sequence's first step or at `start_at`: one definition for
    `enroll` and a new address's sign-up (nurture.people.new_signup, which inserts it without the ORM)."""
    tz = engine.contact_zone(timezone)
    if start_at is not None:
        step = sequence.step(start_at)
        if step is None:
            raise UnknownStep(f"sequence {sequence.id} has no step {start_at!r}")
        due: engine.Due | None = engine.Due(step.id, engine.step_due(step, now, tz))
    else:
        due = engine.first_due(sequence, now, tz)
    return {
        "contact_id": contact_id, "sequence_id": sequence.id, "sequence_version": sequence.version,
        "entry": entry, "step_id": due.step_id if due else None, "due_at": due.at if due else None,
        "step_entered_at": now, "status": EnrollmentStatus.ACTIVE if due else EnrollmentStatus.COMPLETED,
        "created_at": now, "updated_at": now,
    }


def enrolled_data(sequence: Sequence, row: dict[str, object]) -> dict[str, object]:
    """The `sequence.enrolled` event's properties for the enrollment `row`."""
    return {"sequence": sequence.id, "version": sequence.version, "first_step": row["step_id"], "entry": row["entry"]}
