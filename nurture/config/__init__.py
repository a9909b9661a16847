"""Settings, read once from the environment and parsed strictly (pydantic-settings).

A bad value stops start-up with the variable's name (`ConfigError`), so a typo in production fails at deploy
time instead of at 3 a.m. in the middle of a batch. Nothing else in nurture reads `os.environ`.

    settings.py   the variables: one field each, aliased by its name, its default written once
    sms.py        the SMS_* and TWILIO_* variables
    bounces.py    the BOUNCE_* variables
    pacing.py     EMAIL_RATE, PACING_*, WARMUP_* and REPUTATION_* (deliverability)
    providers.py  the email providers' webhook secrets (SES/SNS, Postmark, SendGrid, Mailgun)
    webhooks.py   the WEBHOOKS_* variables, and every WEBHOOK_SECRET_* gathered
    values.py     what one value may look like (URLs, addresses, SMTP URLs, hours, rates)
    errors.py     ConfigError, and pydantic's errors said as `NAME: what is wrong`
    loading.py    load_settings (reads, writes nothing) and startup_settings (writes missing secrets first)
"""

from nurture.config.bounces import BounceSettings
from nurture.config.errors import ConfigError
from nurture.config.loading import load_settings, startup_settings, write_missing_secrets
from nurture.config.pacing import DeliverabilitySettings
from nurture.config.providers import ProviderSettings
from nurture.config.settings import DkimSettings, Settings
from nurture.config.sms import SmsSettings, TwilioSettings
from nurture.config.values import SmtpSettings, parse_smtp_url
from nurture.config.webhooks import WebhookSettings

__all__ = [
    "BounceSettings", "ConfigError", "DeliverabilitySettings", "DkimSettings", "ProviderSettings", "Settings",
    "SmsSettings", "SmtpSettings", "TwilioSettings", "WebhookSettings",
    "load_settings", "parse_smtp_url", "startup_settings", "write_missing_secrets",
]
