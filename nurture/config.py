"""Settings, read once from the environment and parsed strictly.

A bad value stops start-up with the variable's name (`ConfigError`), so a typo in production fails at deploy
time instead of at 3 a.m. in the middle of a batch. Nothing else in nurture reads `os.environ`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import unquote, urlsplit


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
    queue_name: str = "nurture"
    tick_seconds: int = 5
    batch_size: int = 200
    claim_lease_seconds: int = 300
    max_pending_batches: int = 20
    retry_backoff_seconds: tuple[int, ...] = (60, 300, 1800, 7200, 21600)
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def mail_domain(self) -> str:
        return parseaddr(self.mail_from)[1].rpartition("@")[2] or "localhost"


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
    )


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
