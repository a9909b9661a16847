"""What a signup form is (`Form`, its fields and lead magnet), and the names every form carries or reserves.
Read from `forms/*.yaml` by nurture.content.forms; the format is documented in docs/forms.md."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

FORM_KEYS = {"id", "name", "title", "intro", "sequence", "confirm_sequence", "tags", "fields", "double_opt_in",
             "consent_text", "consent_checkbox", "allowed_origins", "redirect", "submit_label", "success_message",
             "lead_magnet", "phone_region", "sms_consent_text"}
FIELD_KEYS = {"name", "label", "type", "required", "choices", "max_length", "placeholder"}
MAGNET_KEYS = {"title", "url", "file"}
# The contact's own columns: their type is fixed. Anything else is a custom field, kept in contact.fields.
# `locale`: a choice of language tags (contact.locale), shown by each language's own name.
BUILTIN_FIELDS = {"email": "email", "first_name": "text", "last_name": "text", "phone": "tel", "locale": "choice"}
CUSTOM_TYPES = ("text", "number", "choice", "checkbox", "date")
# Names a form may not give its own fields: the hidden ones every form carries, and what nurture keeps.
HONEYPOT = "website"
STARTED = "_started"
ATTRIBUTION_KEYS = ("source", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "ref",
                    "gclid", "fbclid", "landing_page", "referrer")
# `locale` may also come hidden (a French site's snippet carries locale=fr) without being a field of the form.
META_FIELDS = {HONEYPOT, STARTED, "timezone", "locale", "consent", "sms_consent", *ATTRIBUTION_KEYS}
RESERVED_FIELDS = (META_FIELDS - {"locale"}) | {"lead_magnet", "tags", "sequence", "fields", "timezone", "stage"}
DEFAULT_CONFIRM_SEQUENCE = "confirm-email"
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
DEFAULT_LABELS = {"email": "Email", "first_name": "First name", "last_name": "Last name", "phone": "Phone",
                  "locale": "Language"}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    type: str  # email | tel | text | number | choice | checkbox | date
    required: bool = False
    choices: tuple[str, ...] = ()
    max_length: int = 200
    placeholder: str = ""

    @property
    def builtin(self) -> bool:
        return self.name in BUILTIN_FIELDS


@dataclass(frozen=True)
class LeadMagnet:
    """What the welcome email delivers after confirmation: a link, or a file kept beside the form files."""

    title: str
    url: str | None = None
    file: str | None = None  # relative to the forms directory


@dataclass(frozen=True)
class Form:
    id: str
    name: str
    sequence: str
    consent_text: str
    fields: tuple[FieldSpec, ...]
    title: str = ""
    intro: str = ""
    confirm_sequence: str = DEFAULT_CONFIRM_SEQUENCE
    tags: tuple[str, ...] = ()
    double_opt_in: bool = True
    consent_checkbox: bool = False
    allowed_origins: tuple[str, ...] = ()
    redirect: str | None = None
    submit_label: str = "Sign up"
    success_message: str = ""
    lead_magnet: LeadMagnet | None = None
    phone_region: str = "US"
    # SMS needs consent of its own (TCPA): with this text the form shows an unticked checkbox beside it,
    # and only a ticked box with a phone number records an SMS opt-in.
    sms_consent_text: str = ""
    path: str = ""
    version: str = ""
    key_lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)

    def allows_origin(self, origin: str | None) -> bool:
        return bool(origin) and ("*" in self.allowed_origins or origin.lower() in self.allowed_origins)

    @property
    def thanks_message(self) -> str:
        if self.success_message:
            return self.success_message
        if self.double_opt_in:
            return "Almost done: we've sent you an email. Click the link in it to confirm your address."
        return "Thank you! You're signed up."

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, 1)


def normalise_origin(value: str) -> str | None:
    """'https://Example.com/' -> 'https://example.com'; None if it is not a bare http(s) origin."""
    if value == "*":
        return value
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username:
        return None
    return f"{parts.scheme}://{parts.netloc.lower()}"
