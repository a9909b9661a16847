"""SMS settings: the SMS_* and TWILIO_* variables. `SmsSettings()` alone is the default setup (texts to the
outbox, 08:00-21:00, stricter states 08:00-20:00): each default is written once, here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from nurture.config.errors import ConfigError
from nurture.config.values import BaseUrl, matching, one_of, region_windows, window
from nurture.rules.sequence import Window

TWILIO_TIMEOUT_SECONDS = 15.0  # per API request: a hung API must not hold a batch (and its email) for long


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


AccountSid = Annotated[str | None, matching(r"^AC[0-9a-fA-F]{32}$", "an account SID like AC followed by 32 hex digits")]
ServiceSid = Annotated[str | None, matching(r"^MG[0-9a-fA-F]{32}$", "a service SID like MG followed by 32 hex digits")]
# E.164, or a 5-6 digit short code. Not alphanumeric sender ids: nobody can reply STOP to those.
Sender = Annotated[str | None, matching(r"^(\+[1-9]\d{6,14}|\d{5,6})$",
                                        "an E.164 number like +15035550100 or a short code")]


class SmsSettings(BaseModel):
    """Built from the whole environment mapping; each field reads the variable it is aliased to."""

    model_config = ConfigDict(frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True)

    backend: Annotated[Literal["outbox", "twilio"], one_of("outbox", "twilio")] = Field(
        "outbox", alias="SMS_BACKEND")
    templates_dir: Path = Field(Path("sms_templates"), alias="SMS_TEMPLATES_DIR")
    # When texts may be sent, in the recipient's local time.
    hours: Annotated[Window, BeforeValidator(window)] = Field(Window(time(8), time(21)), alias="SMS_HOURS")
    hours_by_region: Annotated[dict[str, Window], BeforeValidator(region_windows)] = Field(
        default_factory=_default_region_hours, alias="SMS_HOURS_BY_REGION")
    # Per sender: a US long code takes about one a second.
    rate_per_second: float = Field(1.0, gt=0, lt=10_000, alias="SMS_RATE_PER_SECOND")
    max_segments: int = Field(2, ge=1, alias="SMS_MAX_SEGMENTS")  # `nurture check` warns above this
    # Who answers STOP and START: Twilio's Advanced Opt-Out (its own reply; the default), or nurture, in the
    # contact's language (turn Twilio's replies off in the Messaging Service then, or people get two).
    opt_out_replies: Annotated[Literal["twilio", "nurture"], one_of("twilio", "nurture")] = Field(
        "twilio", alias="SMS_OPT_OUT_REPLIES")

    # Required for SMS_BACKEND=twilio; with the outbox backend optional (its auth token lets the webhooks
    # check signatures).
    account_sid: AccountSid = Field(None, alias="TWILIO_ACCOUNT_SID")
    auth_token: str | None = Field(None, alias="TWILIO_AUTH_TOKEN")
    from_number: Sender = Field(None, alias="TWILIO_FROM")
    messaging_service_sid: ServiceSid = Field(None, alias="TWILIO_MESSAGING_SERVICE_SID")
    api_base: BaseUrl | None = Field(None, alias="TWILIO_API_BASE")

    @model_validator(mode="after")
    def _twilio_is_whole(self) -> Self:
        if self.from_number and self.messaging_service_sid:
            raise ConfigError("TWILIO_FROM: set either TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID, not both")
        if self.backend == "twilio":
            for name, value in (("TWILIO_ACCOUNT_SID", self.account_sid), ("TWILIO_AUTH_TOKEN", self.auth_token)):
                if not value:
                    raise ConfigError(f"{name}: required when SMS_BACKEND=twilio")
            if not (self.from_number or self.messaging_service_sid):
                raise ConfigError("TWILIO_FROM: required when SMS_BACKEND=twilio (or TWILIO_MESSAGING_SERVICE_SID)")
        if self.account_sid and self.auth_token and len(self.auth_token) < 16:
            raise ConfigError("TWILIO_AUTH_TOKEN: too short to be an auth token")
        return self

    @cached_property
    def twilio(self) -> TwilioSettings | None:
        """The Twilio account, when both its SID and auth token are set."""
        if not self.account_sid or not self.auth_token:
            return None
        return TwilioSettings(self.account_sid, self.auth_token, self.from_number, self.messaging_service_sid,
                              self.api_base)
