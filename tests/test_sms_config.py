"""SMS settings: strict parsing, and every error names its variable."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from nurture.config import ConfigError, load_settings
from nurture.rules.sequence import Window

SID = "AC" + "a1" * 16
SERVICE = "MG" + "b2" * 16
TOKEN = "0123456789abcdef0123456789abcdef"


def settings(tmp_path: Path, **env: str):  # noqa: ANN201
    return load_settings({"VAR_DIR": str(tmp_path), "SECRET_KEY": "s" * 20, "API_KEY": "k" * 20, **env},
                         root=tmp_path)


def test_the_defaults_write_texts_to_the_outbox_between_08_and_21(tmp_path: Path) -> None:
    sms = settings(tmp_path).sms
    assert (sms.backend, sms.twilio, sms.rate_per_second, sms.max_segments) == ("outbox", None, 1.0, 2)
    assert sms.hours == Window(time(8), time(21))
    assert sms.hours_by_region["US-FL"] == Window(time(8), time(20))
    assert sms.templates_dir == tmp_path / "sms_templates"


def test_twilio_needs_an_account_a_token_and_one_sender(tmp_path: Path) -> None:
    sms = settings(tmp_path, SMS_BACKEND="twilio", TWILIO_ACCOUNT_SID=SID, TWILIO_AUTH_TOKEN=TOKEN,
                   TWILIO_MESSAGING_SERVICE_SID=SERVICE, SMS_RATE_PER_SECOND="0.5",
                   SMS_HOURS_BY_REGION="gb=09:00-20:00, US-OK=08:00-20:00").sms
    assert sms.twilio is not None and sms.twilio.sender == SERVICE and sms.rate_per_second == 0.5
    assert set(sms.hours_by_region) == {"GB", "US-OK"}


@pytest.mark.parametrize(("env", "message"), [
    ({"SMS_BACKEND": "carrier-pigeon"}, "SMS_BACKEND: expected one of outbox, twilio"),
    ({"SMS_BACKEND": "twilio"}, "TWILIO_ACCOUNT_SID: required when SMS_BACKEND=twilio"),
    ({"SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": SID}, "TWILIO_AUTH_TOKEN: required"),
    ({"SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN}, "TWILIO_FROM: required"),
    ({"TWILIO_ACCOUNT_SID": "SK123"}, "TWILIO_ACCOUNT_SID: expected an account SID"),
    ({"TWILIO_FROM": "5035550100"}, "TWILIO_FROM: expected an E.164 number"),
    ({"TWILIO_FROM": "JUNIPER"}, "TWILIO_FROM: expected an E.164 number"),
    ({"TWILIO_FROM": "+15035550100", "TWILIO_MESSAGING_SERVICE_SID": SERVICE}, "TWILIO_FROM: set either"),
    ({"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": "short"}, "TWILIO_AUTH_TOKEN: too short"),
    ({"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_API_BASE": "localhost:9"}, "TWILIO_API_BASE"),
    ({"SMS_HOURS": "21:00-08:00"}, "SMS_HOURS: a window must start before it ends"),
    ({"SMS_HOURS": "8 to 9"}, "SMS_HOURS: "),
    ({"SMS_HOURS_BY_REGION": "XX=08:00-20:00"}, "SMS_HOURS_BY_REGION: expected REGION=HH:MM-HH:MM"),
    ({"SMS_HOURS_BY_REGION": "US-ZZ=08:00-20:00"}, "SMS_HOURS_BY_REGION: expected"),
    ({"SMS_HOURS_BY_REGION": "US-FL"}, "SMS_HOURS_BY_REGION: expected"),
    ({"SMS_RATE_PER_SECOND": "0"}, "SMS_RATE_PER_SECOND: must be more than 0"),
    ({"SMS_RATE_PER_SECOND": "fast"}, "SMS_RATE_PER_SECOND: expected a number"),
    ({"SMS_MAX_SEGMENTS": "0"}, "SMS_MAX_SEGMENTS: must be at least 1"),
])
def test_a_bad_value_stops_start_up_naming_the_variable(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(tmp_path, **env)
    assert str(caught.value).startswith(message), str(caught.value)
