"""Webhooks-out settings: the WEBHOOK* variables. `WebhookSettings()` alone is the default (endpoints in
the project's webhooks.yaml, private addresses refused, 5-second timeouts).

Endpoint secrets are never written in webhooks.yaml: the file names a variable (`secret_env`), which must
start with WEBHOOK_SECRET_; every such variable is gathered here, so nothing else reads the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

SECRET_PREFIX = "WEBHOOK_SECRET_"


class WebhookSettings(BaseModel):
    """Built from the whole environment mapping; each field reads the variable it is aliased to."""

    model_config = ConfigDict(frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True)

    file: Path | None = Field(None, alias="WEBHOOKS_FILE")  # default: NURTURE_ROOT/webhooks.yaml
    # Loopback, private, link-local and reserved addresses are refused unless this is on (SSRF: a console
    # user could otherwise make the worker POST into the private network, e.g. a cloud metadata service).
    allow_private: bool = Field(False, alias="WEBHOOKS_ALLOW_PRIVATE")
    timeout_seconds: float = Field(5.0, gt=0, le=30, alias="WEBHOOKS_TIMEOUT_SECONDS")
    secrets: dict[str, str] = Field(default_factory=dict, repr=False)  # WEBHOOK_SECRET_* by name, gathered below

    @classmethod
    def from_environment(cls, data: dict) -> dict:
        """The mapping this model is built from: the variables, plus every WEBHOOK_SECRET_* gathered."""
        found = {str(k).upper(): str(v) for k, v in data.items() if str(k).upper().startswith(SECRET_PREFIX)}
        return {**data, "secrets": found}
