"""What one variable's value may look like: the parsers behind the settings' fields.

Each raises `ValueError` with what is wrong (the field adds the variable's name), so every URL, address and
list is checked in exactly one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, unquote, urlsplit

from limits import parse_many
from pydantic import AfterValidator, BeforeValidator

from nurture.config.errors import ConfigError
from nurture.rules.sequence import Window, parse_hours
from nurture.rules.sms import known_region


def http_url(value: str) -> str:
    """An absolute http(s) URL: the one check for every URL variable."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an absolute http(s) URL, got {value!r}")
    return value


def _without_trailing_slash(value: object) -> object:
    return value.rstrip("/") if isinstance(value, str) else value


HttpUrl = Annotated[str, AfterValidator(http_url)]
# An address paths are appended to (BASE_URL + "/u/...", TWILIO_API_BASE + "/2010-04-01/..."): no trailing slash.
BaseUrl = Annotated[str, BeforeValidator(_without_trailing_slash), AfterValidator(http_url)]


def one_of(*allowed: str) -> BeforeValidator:
    def check(value: object) -> object:
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")
        return value

    return BeforeValidator(check)


def locale_tag(value: object) -> object:
    """DEFAULT_LOCALE: a language tag Babel knows, normalised (`en-US` -> `en_US`)."""
    from nurture.rules.locales import InvalidLocale, normalise_locale

    if not isinstance(value, str):
        raise ValueError("expected a language tag like en or fr")
    try:
        return normalise_locale(value)
    except InvalidLocale as exc:
        raise ValueError(str(exc)) from None


def matching(pattern: str, expected: str) -> BeforeValidator:
    """Optional text of a known form (surrounding spaces dropped; blank is unset)."""
    compiled = re.compile(pattern)

    def check(value: object) -> object:
        value = value.strip() or None if isinstance(value, str) else value
        if isinstance(value, str) and not compiled.match(value):
            raise ValueError(f"expected {expected}, got {value!r}")
        return value

    return BeforeValidator(check)


def mail_address(value: str) -> str:
    if "\n" in value or "\r" in value or "@" not in parseaddr(value)[1]:
        raise ValueError(f"expected an address like 'Name <you@example.com>', got {value!r}")
    return value


MailAddress = Annotated[str, AfterValidator(mail_address)]


def secret(value: str) -> str:
    """SECRET_KEY, API_KEY: long enough not to be guessed ('' is unset: the settings report it last)."""
    if value and len(value) < 16:
        raise ValueError("must be at least 16 characters")
    return value


def database_url(value: str) -> str:
    """SQLite or PostgreSQL; a plain postgresql:// URL gets the psycopg 3 driver SQLAlchemy needs named."""
    if not value.startswith(("sqlite:", "postgresql")):
        raise ValueError(f"expected sqlite:///path or postgresql://..., got {value!r}")
    if value.startswith("postgresql://"):
        return "postgresql+psycopg://" + value.removeprefix("postgresql://")
    return value


SMTP_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None
    password: str | None
    security: str  # "plain" | "starttls" | "ssl"
    timeout: float = SMTP_TIMEOUT_SECONDS  # seconds, per wait for the server (SMTP_URL's ?timeout=)


def smtp_settings(url: object) -> object:
    """`smtp://user:pass@host:587?starttls`, `smtps://host:465`, `smtp://host:25` (plain, for local relays).

    smtp:// on port 587 defaults to STARTTLS because that is what every submission server expects.
    `timeout=N` (seconds, default 30) bounds each wait for the server; CLAIM_LEASE_SECONDS must cover it.
    """
    if not isinstance(url, str):
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(f"expected smtp://[user:password@]host[:port] or smtps://..., got {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in {url!r}") from None
    query = parts.query.lower()
    if parts.scheme == "smtps":
        security, port = "ssl", port or 465
    elif "starttls" in query or (port == 587 and "plain" not in query):
        security, port = "starttls", port or 587
    else:
        security, port = "plain", port or 25
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return SmtpSettings(host=parts.hostname, port=port, username=user, password=password, security=security,
                        timeout=_smtp_timeout(parse_qs(parts.query).get("timeout")))


def _smtp_timeout(given: list[str] | None) -> float:
    if not given:
        return SMTP_TIMEOUT_SECONDS
    try:
        timeout = float(given[-1])
    except ValueError:
        timeout = 0.0
    if not 0 < timeout <= 600:
        raise ValueError(f"timeout={given[-1]}: expected seconds between 0 and 600")
    return timeout


def parse_smtp_url(url: str) -> SmtpSettings:
    """SMTP_URL's value as `SmtpSettings`. Raises `ConfigError`."""
    try:
        return smtp_settings(url)  # type: ignore[return-value]
    except ValueError as exc:
        raise ConfigError(f"SMTP_URL: {exc}") from None


def backoff(value: object) -> object:
    """RETRY_BACKOFF="60,300,1800": seconds between attempts."""
    if not isinstance(value, str):
        return value
    try:
        values = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise ValueError(f"expected comma-separated seconds like 60,300,1800, got {value!r}") from None
    if not values or min(values) < 1:
        raise ValueError("needs at least one positive number of seconds")
    return values


def rate_limit(value: str) -> str:
    # Flask-Limiter's own parser: what passes here is what it will enforce.
    try:
        parse_many(value)
    except ValueError:
        raise ValueError(f"expected a rate like '10 per minute' or '5/minute;50/day', got {value!r}") from None
    return value


def pem_key(value: str) -> str:
    """DKIM_PRIVATE_KEY: PEM text, or the path of a file holding it."""
    if "-----BEGIN" not in value:
        try:
            value = Path(value).read_text()
        except OSError as exc:
            raise ValueError(f"neither a PEM key nor a readable file: {exc}") from None
    if "PRIVATE KEY-----" not in value:
        raise ValueError("not a PEM private key")
    return value


def window(value: object) -> object:
    """'08:00-21:00' as a `Window`."""
    return Window(*parse_hours(value)) if isinstance(value, str) else value


def region_windows(value: object) -> object:
    """"US-FL=08:00-20:00,GB=09:00-20:00": a country code, or US-<state> (read from the area code)."""
    if not isinstance(value, str):
        return value
    windows: dict[str, Window] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        region, _, hours = item.partition("=")
        region = region.strip().upper()
        if not known_region(region) or not hours:
            raise ValueError(f"expected REGION=HH:MM-HH:MM items like US-FL=08:00-20:00 "
                             f"(REGION: a country code like GB, or US-<state>), got {item!r}")
        windows[region] = Window(*parse_hours(hours.strip()))
    return windows
