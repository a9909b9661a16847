"""Settings, read once from the environment and parsed strictly.

A bad value stops start-up with the variable's name (`ConfigError`), so a typo in production fails at deploy
time instead of at 3 a.m. in the middle of a batch. Nothing else in nurture reads `os.environ`.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from email.utils import parseaddr
from functools import cached_property
from pathlib import Path
from urllib.parse import unquote, urlsplit

from limits import parse_many

from nurture.rules.sequence import Window, parse_hours
from nurture.rules.sms import known_region


class ConfigError(ValueError):
    """A configuration variable has a value nurture cannot use."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None
    password: str | None
    security: str  # "plain" | "starttls" | "ssl"
    timeout: float = 30.0


@dataclass(frozen=True)
class DkimSettings:
    selector: str
    domain: str
    private_key: bytes  # PEM


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str | None
    secret_key: str
    base_url: str
    api_key: str
    email_backend: str
    smtp: SmtpSettings | None
    mail_from: str
    postal_address: str
    brand_name: str
    support_email: str
    sequences_dir: Path
    templates_dir: Path
    var_dir: Path
    outbox_dir: Path
    dkim: DkimSettings | None = None
    referral_landing_url: str = ""  # where /r/<code> leads (the code rides along as ?ref=)
    track_clicks: bool = True  # links go through /c/<token> (clicks feed scoring and conditions)
    track_opens: bool = False  # the open pixel: off by default (unreliable, and a privacy cost)
    queue_name: str = "nurture"
    tick_seconds: int = 5
    batch_size: int = 200
    claim_lease_seconds: int = 300
    max_pending_batches: int = 20
    retry_backoff_seconds: tuple[int, ...] = (60, 300, 1800, 7200, 21600)
    extra: Mapping[str, str] = field(default_factory=dict)
    forms_dir: Path = Path("forms")
    signup_expiry_hours: int = 72  # an unconfirmed double opt-in sign-up (and its link) lapses after this
    form_rate_limit: str = "10 per minute"  # per IP, on form submissions only (Flask-Limiter syntax)
    form_min_fill_seconds: int = 3  # a form sent back faster than this was filled by a bot
    sms: SmsSettings = field(default_factory=lambda: SmsSettings())
    bounces: BounceSettings = field(default_factory=lambda: BounceSettings())

    @cached_property  # on every message; parseaddr is slower than it looks
    def mail_domain(self) -> str:
        return parseaddr(self.mail_from)[1].rpartition("@")[2] or "localhost"

    @cached_property
    def bounce_address(self) -> str:
        """The mailbox bounces come back to; each message's envelope sender is its VERP form."""
        return self.bounces.address or parseaddr(self.mail_from)[1]


@dataclass(frozen=True)
class BounceSettings:
    address: str | None = None  # BOUNCE_ADDRESS; default MAIL_FROM's address (its mailbox takes +tags)
    maildir: Path | None = None  # BOUNCE_MAILDIR: a local maildir the worker reads
    imap_url: str | None = None  # BOUNCE_IMAP_URL: imaps://user:password@host[:port]/MAILBOX
    soft_limit: int = 3  # soft bounces within the window that suppress an address
    soft_window_days: int = 7


def _bounces(env: Mapping[str, str]) -> BounceSettings:
    address = env.get("BOUNCE_ADDRESS") or None
    if address and (parseaddr(address)[1] != address or "@" not in address or "+" in address):
        raise ConfigError(f"BOUNCE_ADDRESS: expected a bare address like bounces@example.com, got {address!r}")
    imap_url = env.get("BOUNCE_IMAP_URL") or None
    if imap_url and (urlsplit(imap_url).scheme not in ("imap", "imaps") or not urlsplit(imap_url).hostname):
        raise ConfigError(f"BOUNCE_IMAP_URL: expected imaps://user:password@host/INBOX, got {imap_url!r}")
    maildir = env.get("BOUNCE_MAILDIR")
    return BounceSettings(address, Path(maildir) if maildir else None, imap_url,
                          _int(env, "BOUNCE_SOFT_LIMIT", 3, minimum=1),
                          _int(env, "BOUNCE_SOFT_WINDOW_DAYS", 7, minimum=1))


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false, got {env.get(name)!r}")


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in allowed:
        raise ConfigError(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")
    return value


def parse_smtp_url(url: str) -> SmtpSettings:
    """`smtp://user:pass@host:587?starttls`, `smtps://host:465`, `smtp://host:25` (plain, for local relays).

    smtp:// on port 587 defaults to STARTTLS because that is what every submission server expects.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError(f"SMTP_URL: expected smtp://[user:password@]host[:port] or smtps://..., got {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"SMTP_URL: bad port in {url!r}") from None
    query = parts.query.lower()
    if parts.scheme == "smtps":
        security, port = "ssl", port or 465
    elif "starttls" in query or (port == 587 and "plain" not in query):
        security, port = "starttls", port or 587
    else:
        security, port = "plain", port or 25
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return SmtpSettings(host=parts.hostname, port=port, username=user, password=password, security=security)


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc:
        raise ConfigError(f"{name}: expected an absolute http(s) URL, got {value!r}")
    return value


def _base_url(env: Mapping[str, str]) -> str:
    value = (env.get("BASE_URL") or "http://localhost:8000").rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"BASE_URL: expected an absolute http(s) URL, got {value!r}")
    return value


def _mail_from(env: Mapping[str, str]) -> str:
    value = env.get("MAIL_FROM") or "Juniper Pottery Studio <hello@juniper.example>"
    if "\n" in value or "\r" in value or "@" not in parseaddr(value)[1]:
        raise ConfigError(f"MAIL_FROM: expected an address like 'Name <you@example.com>', got {value!r}")
    return value


def _persistent_secret(env: Mapping[str, str], name: str, var_dir: Path) -> str:
    """SECRET_KEY signs unsubscribe links and API_KEY guards the API, so both must survive restarts.
    Without one in the environment, a generated value is kept in var/ (fine for the embedded setup:
    `make run` never asks a newcomer for a secret, and prints where the API key is)."""
    value = env.get(name)
    if value:
        if len(value) < 16:
            raise ConfigError(f"{name}: must be at least 16 characters")
        return value
    path = var_dir / name.lower()
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


def load_settings(env: Mapping[str, str] | None = None, root: Path | None = None) -> Settings:
    """Build `Settings` from `env` (default: the process environment). Raises `ConfigError`."""
    env = os.environ if env is None else env
    root = Path(env.get("NURTURE_ROOT") or root or Path.cwd()).resolve()
    var_dir = Path(env.get("VAR_DIR") or root / "var")
    backend = _choice(env, "EMAIL_BACKEND", "outbox", ("outbox", "smtp"))
    smtp_url = env.get("SMTP_URL")
    smtp = parse_smtp_url(smtp_url) if smtp_url else None
    if backend == "smtp" and smtp is None:
        raise ConfigError("SMTP_URL: required when EMAIL_BACKEND=smtp")
    database_url = env.get("DATABASE_URL") or f"sqlite:///{var_dir / 'nurture.db'}"
    if not database_url.startswith(("sqlite:", "postgresql")):
        raise ConfigError(f"DATABASE_URL: expected sqlite:///path or postgresql://..., got {database_url!r}")
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    backoff = env.get("RETRY_BACKOFF")
    return Settings(
        database_url=database_url,
        redis_url=env.get("REDIS_URL") or None,
        secret_key=_persistent_secret(env, "SECRET_KEY", var_dir),
        base_url=_base_url(env),
        api_key=_persistent_secret(env, "API_KEY", var_dir),
        email_backend=backend,
        smtp=smtp,
        mail_from=_mail_from(env),
        postal_address=env.get("POSTAL_ADDRESS") or "Juniper Pottery Studio, 12 Kiln Lane, Portland, OR 97201, USA",
        brand_name=env.get("BRAND_NAME") or "Juniper Pottery Studio",
        support_email=env.get("SUPPORT_EMAIL") or parseaddr(_mail_from(env))[1],
        sequences_dir=Path(env.get("SEQUENCES_DIR") or root / "sequences"),
        templates_dir=Path(env.get("TEMPLATES_DIR") or root / "email_templates"),
        var_dir=var_dir,
        outbox_dir=Path(env.get("OUTBOX_DIR") or var_dir / "outbox"),
        queue_name=env.get("QUEUE_NAME") or "nurture",
        tick_seconds=_int(env, "TICK_SECONDS", 5, minimum=1),
        batch_size=_int(env, "BATCH_SIZE", 200, minimum=1),
        claim_lease_seconds=_int(env, "CLAIM_LEASE_SECONDS", 300, minimum=10),
        max_pending_batches=_int(env, "MAX_PENDING_BATCHES", 20, minimum=1),
        retry_backoff_seconds=_parse_backoff(backoff) if backoff else Settings.retry_backoff_seconds,
        dkim=_dkim(env),
        referral_landing_url=_url(env, "REFERRAL_LANDING_URL", _base_url(env) + "/forms/beginners-guide"),
        track_clicks=_bool(env, "TRACK_CLICKS", True),
        track_opens=_bool(env, "TRACK_OPENS", False),
        forms_dir=Path(env.get("FORMS_DIR") or root / "forms"),
        signup_expiry_hours=_int(env, "SIGNUP_EXPIRY_HOURS", 72, minimum=1),
        form_rate_limit=_rate_limit(env),
        form_min_fill_seconds=_int(env, "FORM_MIN_FILL_SECONDS", 3, minimum=0),
        sms=_sms(env, root),
        bounces=_bounces(env),
    )


def _rate_limit(env: Mapping[str, str]) -> str:
    # Flask-Limiter's own parser: what passes here is what it will enforce.
    value = env.get("FORM_RATE_LIMIT") or "10 per minute"
    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(f"FORM_RATE_LIMIT: expected a rate like '10 per minute' or '5/minute;50/day', "
                          f"got {value!r}") from None
    return value


def _dkim(env: Mapping[str, str]) -> DkimSettings | None:
    """All three of DKIM_SELECTOR, DKIM_DOMAIN, DKIM_PRIVATE_KEY (PEM text or a file path), or none."""
    names = ("DKIM_SELECTOR", "DKIM_DOMAIN", "DKIM_PRIVATE_KEY")
    given = {name: env.get(name) for name in names if env.get(name)}
    if not given:
        return None
    if len(given) < 3:
        missing = [name for name in names if name not in given]
        raise ConfigError(f"{missing[0]}: required when {', '.join(given)} is set (DKIM needs all three)")
    raw = given["DKIM_PRIVATE_KEY"]
    if "-----BEGIN" not in raw:
        try:
            raw = Path(raw).read_text()
        except OSError as exc:
            raise ConfigError(f"DKIM_PRIVATE_KEY: neither a PEM key nor a readable file: {exc}") from None
    if "PRIVATE KEY-----" not in raw:
        raise ConfigError("DKIM_PRIVATE_KEY: not a PEM private key")
    return DkimSettings(given["DKIM_SELECTOR"], given["DKIM_DOMAIN"], raw.encode())


def _parse_backoff(raw: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in raw.split(","))
    except ValueError:
        raise ConfigError(f"RETRY_BACKOFF: expected comma-separated seconds like 60,300,1800, got {raw!r}") from None
    if not values or min(values) < 1:
        raise ConfigError("RETRY_BACKOFF: needs at least one positive number of seconds")
    return values


# --- SMS ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TwilioSettings:
    account_sid: str
    auth_token: str  # also the key that signs Twilio's webhooks (X-Twilio-Signature)
    from_number: str | None = None
    messaging_service_sid: str | None = None
    # Another address for the same REST API (a Twilio-compatible provider, or a local one in tests); the
    # path after it is Twilio's own (/2010-04-01/Accounts/...).
    api_base: str | None = None

    @property
    def sender(self) -> str:
        return self.messaging_service_sid or self.from_number or ""


def _default_region_hours() -> dict[str, Window]:
    # States whose laws are stricter than the federal 08:00-21:00 (Florida FTSA, Oklahoma TSA, Maryland
    # Stop the Spam Calls Act: 08:00-20:00). Not legal advice: check the rules where your contacts live.
    return {region: Window(time(8), time(20)) for region in ("US-FL", "US-OK", "US-MD")}


@dataclass(frozen=True)
class SmsSettings:
    backend: str = "outbox"  # outbox | twilio
    twilio: TwilioSettings | None = None
    templates_dir: Path = Path("sms_templates")
    hours: Window = Window(time(8), time(21))  # when texts may be sent, in the recipient's local time
    hours_by_region: Mapping[str, Window] = field(default_factory=_default_region_hours)
    rate_per_second: float = 1.0  # per sender: a US long code takes about one a second
    max_segments: int = 2  # `nurture check` warns about templates longer than this


_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
# E.164, or a 5-6 digit short code. Not alphanumeric sender ids: nobody can reply STOP to those.
_SENDER = re.compile(r"^(\+[1-9]\d{6,14}|\d{5,6})$")


def _matching(env: Mapping[str, str], name: str, pattern: re.Pattern[str], example: str) -> str | None:
    value = (env.get(name) or "").strip() or None
    if value is not None and not pattern.match(value):
        raise ConfigError(f"{name}: expected {example}, got {value!r}")
    return value


def _twilio(env: Mapping[str, str], backend: str) -> TwilioSettings | None:
    """Required for SMS_BACKEND=twilio; with the outbox backend optional (its auth token lets the webhooks
    check signatures)."""
    sid = _matching(env, "TWILIO_ACCOUNT_SID", _ACCOUNT_SID, "an account SID like AC followed by 32 hex digits")
    token = env.get("TWILIO_AUTH_TOKEN") or None
    sender = _matching(env, "TWILIO_FROM", _SENDER, "an E.164 number like +15035550100 or a short code")
    service = _matching(env, "TWILIO_MESSAGING_SERVICE_SID", _SERVICE_SID, "a service SID like MG followed "
                                                                             "by 32 hex digits")
    if sender and service:
        raise ConfigError("TWILIO_FROM: set either TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID, not both")
    if backend == "twilio":
        for name, value in (("TWILIO_ACCOUNT_SID", sid), ("TWILIO_AUTH_TOKEN", token)):
            if not value:
                raise ConfigError(f"{name}: required when SMS_BACKEND=twilio")
        if not (sender or service):
            raise ConfigError("TWILIO_FROM: required when SMS_BACKEND=twilio (or TWILIO_MESSAGING_SERVICE_SID)")
    if not sid or not token:
        return None
    if len(token) < 16:
        raise ConfigError("TWILIO_AUTH_TOKEN: too short to be an auth token")
    api_base = (env.get("TWILIO_API_BASE") or "").rstrip("/") or None
    if api_base and (urlsplit(api_base).scheme not in ("http", "https") or not urlsplit(api_base).netloc):
        raise ConfigError(f"TWILIO_API_BASE: expected an absolute http(s) URL, got {api_base!r}")
    return TwilioSettings(sid, token, sender, service, api_base)


def _hours(name: str, raw: str) -> Window:
    try:
        return Window(*parse_hours(raw))
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _region_hours(env: Mapping[str, str]) -> dict[str, Window]:
    """SMS_HOURS_BY_REGION="US-FL=08:00-20:00,GB=09:00-20:00": a country code, or US-<state> (the state
    is read from the number's area code)."""
    raw = env.get("SMS_HOURS_BY_REGION")
    if raw is None or raw == "":
        return _default_region_hours()
    windows: dict[str, Window] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        region, _, hours = item.partition("=")
        region = region.strip().upper()
        if not known_region(region) or not hours:
            raise ConfigError(f"SMS_HOURS_BY_REGION: expected REGION=HH:MM-HH:MM items like US-FL=08:00-20:00 "
                              f"(REGION: a country code like GB, or US-<state>), got {item!r}")
        windows[region] = _hours("SMS_HOURS_BY_REGION", hours.strip())
    return windows


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if not 0 < value < 10_000:
        raise ConfigError(f"{name}: must be more than 0, got {raw!r}")
    return value


def _sms(env: Mapping[str, str], root: Path) -> SmsSettings:
    backend = _choice(env, "SMS_BACKEND", "outbox", ("outbox", "twilio"))
    return SmsSettings(
        backend=backend,
        twilio=_twilio(env, backend),
        templates_dir=Path(env.get("SMS_TEMPLATES_DIR") or root / "sms_templates"),
        hours=_hours("SMS_HOURS", env.get("SMS_HOURS") or "08:00-21:00"),
        hours_by_region=_region_hours(env),
        rate_per_second=_positive_float(env, "SMS_RATE_PER_SECOND", 1.0),
        max_segments=_int(env, "SMS_MAX_SEGMENTS", 2, minimum=1),
    )
