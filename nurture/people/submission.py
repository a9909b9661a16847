"""What a person sent through a form -> a clean `Submission`, or `InvalidSignup` naming every bad field.

Pure: no database, no request. The web layer hands in the posted values (form-encoded or JSON) and the
query string; every message here is meant to be shown next to its field, as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from nurture.content.forms import ATTRIBUTION_KEYS, META_FIELDS, FieldSpec, Form
from nurture.people.contacts import (
    MAX_NAME,
    UNSTORABLE,
    InvalidContact,
    check_timezone,
    normalise_email,
    normalise_phone,
)
from nurture.rules.locales import InvalidLocale, Words, optional_locale

FORM_ERROR = "_form"  # the key of an error about the whole form rather than one field
REQUIRED = Words("This field is required.")
ONE_LINE = Words("Please keep this on one line.")
_TRUE = {"on", "true", "1", "yes", "y"}
_FALSE = {"", "off", "false", "0", "no", "n"}
BUILTIN_MAX = {"email": 320, "first_name": MAX_NAME, "last_name": MAX_NAME, "phone": 40}  # the columns' sizes
MAX_ATTRIBUTION = 500  # a landing page URL with its UTM tags fits; a pasted essay does not


class InvalidSignup(ValueError):
    """The submission cannot be used. `errors` maps a field name (or FORM_ERROR) to a message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Submission:
    email: str
    first_name: str = ""
    last_name: str = ""
    phone: str | None = None
    timezone: str | None = None
    fields: dict = field(default_factory=dict)  # the form's custom fields, typed
    attribution: dict = field(default_factory=dict)
    sms_consent: bool = False  # the form's SMS checkbox was ticked (with a phone number)
    locale: str | None = None  # the form's `locale` field or hidden value; else the web layer negotiates one


def _scalar(value: object) -> str | bool | int | float | None:
    """Form posts give strings; JSON may give numbers and booleans. Lists and objects are not a value."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise InvalidContact("", Words("Please give a single value."))


def _text(value: object, max_length: int) -> str:
    raw = _scalar(value)
    text = "" if raw is None else str(raw)
    if "\r" in text or "\n" in text:
        raise InvalidContact("", ONE_LINE)
    if UNSTORABLE.search(text):  # also a lone surrogate, which a JSON post can spell
        raise InvalidContact("", Words("This contains characters that aren't allowed."))
    text = text.strip()
    if len(text) > max_length:
        raise InvalidContact("", Words("Please use at most %(max)d characters.", max=max_length))
    return text


def _checkbox(value: object) -> bool:
    raw = _scalar(value)
    if isinstance(raw, bool):
        return raw
    text = "" if raw is None else str(raw).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise InvalidContact("", Words("Please tick the box or leave it empty."))


def _typed(spec: FieldSpec, text: str, region: str) -> object:
    """A non-empty value of one field, converted to what is stored."""
    if spec.type == "email":
        try:
            return normalise_email(text)
        except InvalidContact as exc:
            raise InvalidContact("", Words.detailed("Please enter a valid email address.", exc.message)) from None
    if spec.type == "tel":
        try:
            return normalise_phone(text, region)
        except InvalidContact:
            raise InvalidContact("", Words("Please enter a valid phone number, like +1 415 555 2671.")) from None
    if spec.type == "number":
        try:
            number = float(text.replace(",", "."))
        except ValueError:
            raise InvalidContact("", Words("Please enter a number.")) from None
        if number != number or number in (float("inf"), float("-inf")):
            raise InvalidContact("", Words("Please enter a number."))
        return int(number) if number.is_integer() else number
    if spec.type == "choice" and text not in spec.choices:
        raise InvalidContact("", Words("Please choose one of: %(choices)s.", choices=", ".join(spec.choices)))
    if spec.type == "date":
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise InvalidContact("", Words("Please enter a date like 2026-05-31.")) from None
    return text


def clean_value(spec: FieldSpec, value: object, region: str = "US") -> object:
    """One field's value, cleaned and typed; "" or None when empty. Raises InvalidContact (field-less)."""
    if spec.type == "checkbox":
        ticked = _checkbox(value)
        if spec.required and not ticked:
            raise InvalidContact("", REQUIRED)
        return ticked
    text = _text(value, BUILTIN_MAX.get(spec.name, spec.max_length))
    if not text:
        if spec.required:
            raise InvalidContact("", REQUIRED)
        return None if spec.type == "tel" else ""
    return _typed(spec, text, region)


def clean_attribution(posted: Mapping[str, object], query: Mapping[str, str]) -> dict[str, str]:
    """Source, UTM tags, referral code, landing page: from the query string, then hidden fields (which win).
    Never an error for the person: a damaged tag is cut and kept on one line, not refused."""
    result: dict[str, str] = {}
    for key in ATTRIBUTION_KEYS:
        raw = posted.get(key) if posted.get(key) not in (None, "") else query.get(key)
        if isinstance(raw, str | int | float) and not isinstance(raw, bool):
            value = " ".join(UNSTORABLE.sub("", str(raw)).split())[:MAX_ATTRIBUTION]
            if value:
                result[key] = value
    return result


def _timezone(value: object) -> str | None:
    """The browser's own zone, filled in by the form's script. A bad one is dropped: not the person's fault."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return check_timezone(value.strip()) or None
    except InvalidContact:
        return None


def _locale(value: object) -> str | None:
    """A hidden `locale` (set by the site, not typed by the person): a bad one is dropped, like a timezone."""
    try:
        return optional_locale(value) if isinstance(value, str) else None
    except InvalidLocale:
        return None


def _field_errors(form: Form, posted: Mapping[str, object]) -> tuple[dict[str, object], dict[str, str]]:
    values: dict[str, object] = {}
    errors: dict[str, str] = {}
    for spec in form.fields:
        try:
            values[spec.name] = clean_value(spec, posted.get(spec.name), form.phone_region)
        except InvalidContact as exc:
            errors[spec.name] = exc.message
    if form.consent_checkbox:
        try:
            if not _checkbox(posted.get("consent")):
                errors["consent"] = Words("Please tick the box to agree, so we may email you.")
        except InvalidContact as exc:
            errors["consent"] = exc.message
    if form.sms_consent_text and _sms_ticked(posted) and not values.get("phone") and "phone" not in errors:
        errors["phone"] = Words("Add your mobile number to get texts, or untick the box.")
    return values, errors


def _sms_ticked(posted: Mapping[str, object]) -> bool:
    try:
        return _checkbox(posted.get("sms_consent"))
    except InvalidContact:
        return False


def read_submission(form: Form, posted: Mapping[str, object], query: Mapping[str, str] | None = None) -> Submission:
    """A clean Submission for `form`, or InvalidSignup listing every problem at once (a form that reports
    one error per round trip makes people give up)."""
    values, errors = _field_errors(form, posted)
    unknown = sorted(set(posted) - {f.name for f in form.fields} - META_FIELDS)
    if unknown:
        errors[FORM_ERROR] = Words("This form has no field %(field)r. Please use the form as it is.", field=unknown[0])
    if errors:
        raise InvalidSignup(errors)
    custom = {spec.name: values[spec.name] for spec in form.fields
              if not spec.builtin and values[spec.name] not in ("", None)}
    return Submission(
        email=str(values["email"]),
        first_name=str(values.get("first_name") or ""),
        last_name=str(values.get("last_name") or ""),
        phone=values.get("phone") or None,  # type: ignore[arg-type]
        timezone=_timezone(posted.get("timezone")),
        fields=custom,
        attribution=clean_attribution(posted, query or {}),
        sms_consent=bool(form.sms_consent_text) and _sms_ticked(posted) and bool(values.get("phone")),
        locale=str(values["locale"]) if values.get("locale") else _locale(posted.get("locale")),
    )
