"""`Settings`: one field per variable, aliased by the variable's name, with its default written once.

A default that follows from another variable (the SQLite file from VAR_DIR, the reply address from
MAIL_FROM, the queue from the database) is filled in by `_derived_defaults`, the one place for those.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.utils import parseaddr
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator, BeforeValidator, Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SecretsSettingsSource, SettingsConfigDict

from nurture.config import values as parse
from nurture.config.bounces import BounceSettings
from nurture.config.errors import SECRETS, ConfigError
from nurture.config.pacing import DeliverabilitySettings
from nurture.config.providers import ProviderSettings
from nurture.config.sms import TWILIO_TIMEOUT_SECONDS, SmsSettings
from nurture.config.values import BaseUrl, HttpUrl, MailAddress, SmtpSettings, one_of
from nurture.config.webhooks import WebhookSettings

Secret = Annotated[str, AfterValidator(parse.secret)]
Seconds = Annotated[tuple[int, ...], BeforeValidator(parse.backoff)]


@dataclass(frozen=True)
class DkimSettings:
    selector: str
    domain: str
    private_key: bytes  # PEM


def queue_for(database: str) -> str:
    """The RQ queue of the instance whose data is in `database`: two instances sharing one Redis must not
    take each other's jobs (a batch token means nothing to the other database). The password is left out,
    so rotating it keeps the queue."""
    parts = urlsplit(database)
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    digest = hashlib.sha256(urlunsplit(parts._replace(netloc=netloc)).encode()).hexdigest()[:10]
    return f"nurture-{digest}"


def _dkim_needs_all_three(data: dict[str, Any]) -> None:
    names = ("DKIM_SELECTOR", "DKIM_DOMAIN", "DKIM_PRIVATE_KEY")
    given = [name for name in names if data.get(name)]
    if given and len(given) < 3:
        missing = [name for name in names if name not in given]
        raise ConfigError(f"{missing[0]}: required when {', '.join(given)} is set (DKIM needs all three)")


# A claim's lease against one wait of a transport: a send is several waits (connect, MAIL, RCPT, DATA), and
# a third of the lease may already be gone when it starts (the batch renews every third).
LEASE_PER_SEND_TIMEOUT = 3


class _VarSecrets(SecretsSettingsSource):
    """pydantic-settings' secrets directory (VAR_DIR), for SECRET_KEY and API_KEY only: the other files
    there (the database, the outbox) are not settings, and looking each variable up costs a listdir."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field.alias not in SECRETS:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class Settings(BaseSettings):
    """Everything nurture reads from its environment. Build it with `load_settings`, which also says where
    the project is (NURTURE_ROOT) and where its local state lives (VAR_DIR)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False,
                                      validate_by_name=True, validate_by_alias=True)

    root: Path = Field(alias="NURTURE_ROOT")
    var_dir: Path = Field(alias="VAR_DIR")
    database_url: Annotated[str, AfterValidator(parse.database_url)] = Field(alias="DATABASE_URL")
    redis_url: str | None = Field(None, alias="REDIS_URL")
    base_url: BaseUrl = Field("http://localhost:8000", alias="BASE_URL")
    email_backend: Annotated[Literal["outbox", "smtp"], one_of("outbox", "smtp")] = Field(
        "outbox", alias="EMAIL_BACKEND")
    smtp: Annotated[SmtpSettings | None, BeforeValidator(parse.smtp_settings)] = Field(None, alias="SMTP_URL")
    # Who the mail is from. The starter content's brand.env names the demo studio; without one, a neutral
    # sender that makes clear nothing was configured.
    mail_from: MailAddress = Field("nurture <nurture@localhost>", alias="MAIL_FROM")
    postal_address: str = Field("", alias="POSTAL_ADDRESS")  # required to send for real (CAN-SPAM)
    brand_name: str = Field(alias="BRAND_NAME")  # default: the name in MAIL_FROM
    support_email: str = Field(alias="SUPPORT_EMAIL")  # default: the address in MAIL_FROM
    sequences_dir: Path = Field(alias="SEQUENCES_DIR")
    templates_dir: Path = Field(alias="TEMPLATES_DIR")
    forms_dir: Path = Field(alias="FORMS_DIR")
    segments_dir: Path = Field(alias="SEGMENTS_DIR")  # segments/*.yaml (docs/segments.md)
    broadcasts_dir: Path = Field(alias="BROADCASTS_DIR")  # broadcasts/*.yaml (docs/broadcasts.md)
    outbox_dir: Path = Field(alias="OUTBOX_DIR")
    queue_name: str = Field(alias="QUEUE_NAME")  # default: one per database, see queue_for
    tick_seconds: int = Field(5, ge=1, alias="TICK_SECONDS")
    batch_size: int = Field(200, ge=1, alias="BATCH_SIZE")
    claim_lease_seconds: int = Field(300, ge=10, alias="CLAIM_LEASE_SECONDS")
    max_pending_batches: int = Field(20, ge=1, alias="MAX_PENDING_BATCHES")
    retry_backoff_seconds: Seconds = Field((60, 300, 1800, 7200, 21600), alias="RETRY_BACKOFF")
    dkim_selector: str | None = Field(None, alias="DKIM_SELECTOR")
    dkim_domain: str | None = Field(None, alias="DKIM_DOMAIN")
    dkim_private_key: Annotated[str, AfterValidator(parse.pem_key)] | None = Field(
        None, alias="DKIM_PRIVATE_KEY")  # PEM text or a file path
    # Where /r/<code> leads (the code rides along as ?ref=); default: the starter sign-up form.
    referral_landing_url: HttpUrl = Field(alias="REFERRAL_LANDING_URL")
    track_clicks: bool = Field(True, alias="TRACK_CLICKS")  # links through /c/<token>: clicks feed scoring
    track_opens: bool = Field(False, alias="TRACK_OPENS")  # the open pixel: unreliable, and a privacy cost
    # An unconfirmed double opt-in sign-up (and its link) lapses after this.
    signup_expiry_hours: int = Field(72, ge=1, alias="SIGNUP_EXPIRY_HOURS")
    # Per IP, on form submissions only (Flask-Limiter syntax).
    form_rate_limit: Annotated[str, AfterValidator(parse.rate_limit)] = Field("10 per minute", alias="FORM_RATE_LIMIT")
    form_min_fill_seconds: int = Field(3, ge=0, alias="FORM_MIN_FILL_SECONDS")  # faster: a bot filled it
    # The language of a contact without one, and of the template files without a locale suffix (docs/locales.md).
    default_locale: Annotated[str, BeforeValidator(parse.locale_tag)] = Field("en", alias="DEFAULT_LOCALE")
    sms: SmsSettings
    bounces: BounceSettings
    deliverability: DeliverabilitySettings  # pacing, warm-up, the reputation guard (config/pacing.py)
    providers: ProviderSettings
    webhooks: WebhookSettings
    # Without a variable, read from VAR_DIR/secret_key and VAR_DIR/api_key (pydantic-settings' secrets
    # directory), which only an explicit start-up step writes (nurture.config.loading.write_missing_secrets).
    # Missing is reported last, in `_parts_fit_together`: a bad value elsewhere is the news.
    secret_key: Secret = Field("", alias="SECRET_KEY")  # signs links: must survive restarts
    api_key: Secret = Field("", alias="API_KEY")
    # Stripe price ids and inbound hooks (integrations.yaml); the hooks' secrets are the *_WEBHOOK_SECRET
    # variables (STRIPE_WEBHOOK_SECRET, and whatever name the file gives each hook), read here, once.
    integrations_file: Path = Field(alias="INTEGRATIONS_FILE")
    stripe_webhook_secret: str | None = Field(None, alias="STRIPE_WEBHOOK_SECRET", repr=False)  # whsec_...
    webhook_secrets: dict[str, str] = Field(default_factory=dict, repr=False)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment comes in as a mapping (load_settings reads os.environ itself), so tests and
        # production go through the same door; the secrets directory is consulted after it.
        assert isinstance(file_secret_settings, SecretsSettingsSource)
        return init_settings, _VarSecrets(settings_cls, file_secret_settings.secrets_dir)

    @model_validator(mode="before")
    @classmethod
    def _derived_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        _dkim_needs_all_three(data)  # before DKIM_PRIVATE_KEY is read: a lone path is not worth opening
        root, var_dir = Path(data["NURTURE_ROOT"]), Path(data["VAR_DIR"])
        name, address = parseaddr(str(cls._given(data, "mail_from")))
        defaults = {
            "DATABASE_URL": f"sqlite:///{var_dir / 'nurture.db'}",
            "SEQUENCES_DIR": root / "sequences", "TEMPLATES_DIR": root / "email_templates",
            "FORMS_DIR": root / "forms", "SEGMENTS_DIR": root / "segments", "OUTBOX_DIR": var_dir / "outbox",
            "INTEGRATIONS_FILE": root / "integrations.yaml",
            "BROADCASTS_DIR": root / "broadcasts",
            "BRAND_NAME": name or address, "SUPPORT_EMAIL": address,
            "REFERRAL_LANDING_URL": str(cls._given(data, "base_url")).rstrip("/") + "/forms/beginners-guide",
        }
        values = {**defaults, **data}
        values.setdefault("QUEUE_NAME", queue_for(str(values["DATABASE_URL"])))
        # SmsSettings picks its own variables (SMS_*, TWILIO_*) from the same mapping.
        values["sms"] = {"SMS_TEMPLATES_DIR": root / "sms_templates", **data}
        values["bounces"] = data  # and BounceSettings its BOUNCE_*
        values["deliverability"] = data  # and DeliverabilitySettings its PACING_*, WARMUP_*, REPUTATION_*
        values["webhook_secrets"] = {name.upper(): secret for name, secret in data.items()
                                     if isinstance(name, str) and name.upper().endswith("_WEBHOOK_SECRET") and secret}
        values["providers"] = data  # and ProviderSettings the providers' webhook secrets
        values["webhooks"] = WebhookSettings.from_environment(  # and WebhookSettings its WEBHOOK*
            {"WEBHOOKS_FILE": root / "webhooks.yaml", **data})
        return values

    @classmethod
    def _given(cls, values: dict[str, Any], field: str) -> Any:
        info = cls.model_fields[field]
        return values.get(info.alias, info.default)

    @model_validator(mode="after")
    def _parts_fit_together(self) -> Self:
        if self.email_backend == "smtp" and self.smtp is None:
            raise ConfigError("SMTP_URL: required when EMAIL_BACKEND=smtp")
        if self.email_backend == "smtp" and not self.postal_address.strip():
            raise ConfigError("POSTAL_ADDRESS: required when EMAIL_BACKEND=smtp (every email must show a "
                              "physical address: CAN-SPAM)")
        self._lease_covers_a_send()
        for name, value in (("SECRET_KEY", self.secret_key), ("API_KEY", self.api_key)):
            if not value:
                raise ConfigError(f"{name}: not set, and {self.var_dir / name.lower()} does not exist (set "
                                  f"{name}, or run `nurture db upgrade` once to generate it there)")
        return self

    def _lease_covers_a_send(self) -> None:
        """A send must end well inside the claim's lease: one that outlives it lets another worker take the
        step over and send it again. The transports cut a send off at the lease's end (each wait bounded by
        the time left); this makes sure that a server merely as slow as the timeout allows is not cut off."""
        timeouts = []
        if self.email_backend == "smtp" and self.smtp is not None:
            timeouts.append((self.smtp.timeout, "SMTP timeout (SMTP_URL's ?timeout=)"))
        if self.sms.backend == "twilio":
            timeouts.append((TWILIO_TIMEOUT_SECONDS, "Twilio API timeout"))
        for timeout, what in timeouts:
            if self.claim_lease_seconds < LEASE_PER_SEND_TIMEOUT * timeout:
                raise ConfigError(
                    f"CLAIM_LEASE_SECONDS: {self.claim_lease_seconds} s is shorter than a send may take: the {what} "
                    f"is {timeout:g} s, so the lease must be at least {LEASE_PER_SEND_TIMEOUT * timeout:g} s "
                    f"({LEASE_PER_SEND_TIMEOUT} times it)")

    @cached_property
    def dkim(self) -> DkimSettings | None:
        if not (self.dkim_selector and self.dkim_domain and self.dkim_private_key):
            return None
        return DkimSettings(self.dkim_selector, self.dkim_domain, self.dkim_private_key.encode())

    @cached_property  # on every message; parseaddr is slower than it looks
    def mail_domain(self) -> str:
        return parseaddr(self.mail_from)[1].rpartition("@")[2] or "localhost"

    @property
    def redis_prefix(self) -> str:
        """Where this nurture's keys live in a shared Redis (the rate limits' counters, pacing, the tick's
        flag): one QUEUE_NAME, one namespace, so two nurtures or another app on the same Redis never mix."""
        return f"nurture:{self.queue_name}"

    @property
    def webhooks_file(self) -> Path:
        return self.webhooks.file or self.root / "webhooks.yaml"

    @cached_property
    def bounce_address(self) -> str:
        """The mailbox bounces come back to; each message's envelope sender is its VERP form."""
        return self.bounces.address or parseaddr(self.mail_from)[1]
