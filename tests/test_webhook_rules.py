"""The pure part of webhooks out, without fixtures: the signature against the scheme's published example,
the retry schedule, when an endpoint is switched off, the event names, and strict settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nurture.config import ConfigError, load_settings
from nurture.rules import webhooks as rules


def test_it_signs_the_standard_webhooks_example_exactly() -> None:
    # The example of the Standard Webhooks spec and its reference libraries' tests.
    signature = rules.sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                           b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize("secret, problem", [("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "start with whsec_"),
                                             ("whsec_not base64!", "base64"), ("whsec_c2hvcnQ=", "24 random bytes")])
def test_it_refuses_a_secret_that_is_not_one(secret: str, problem: str) -> None:
    with pytest.raises(rules.BadSecret, match=problem):
        rules.secret_bytes(secret)


def test_retries_spread_over_a_day_and_then_stop() -> None:
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    waits = [rules.retry_at(n, now) - now for n in range(1, 8)]
    assert waits == [timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
                     timedelta(hours=5), timedelta(hours=10), timedelta(hours=10)]
    assert sum(waits, timedelta()) > rules.DISABLE_AFTER  # a message outlives the day its endpoint is given
    assert rules.retry_at(8, now) is None


def test_an_endpoint_is_switched_off_after_failing_for_a_whole_day() -> None:
    now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert not rules.should_disable(None, now)
    assert not rules.should_disable(now - timedelta(hours=23, minutes=59), now)
    assert rules.should_disable(now - timedelta(hours=24), now)


def test_only_a_2xx_is_acceptance() -> None:
    assert [rules.accepted(c) for c in (200, 204, 299, 301, 302, 400, 500)] == [True] * 3 + [False] * 4


def test_every_public_name_an_endpoint_may_ask_for_has_an_internal_event() -> None:
    assert set(rules.EVENT_NAMES) == set(rules.PUBLIC_NAMES.values())
    for name in ("contact.created", "contact.confirmed", "stage.changed", "delivery.sent", "delivery.bounced",
                 "unsubscribed", "feedback", "referral", "goal.reached"):
        assert name in rules.EVENT_NAMES
    assert rules.Endpoint("crm", "https://x", "WEBHOOK_SECRET_CRM").wants("referral")  # no list: everything
    assert not rules.Endpoint("crm", "https://x", "WEBHOOK_SECRET_CRM", ("feedback",)).wants("referral")


@pytest.mark.parametrize("name, value", [("WEBHOOKS_TIMEOUT_SECONDS", "soon"), ("WEBHOOKS_TIMEOUT_SECONDS", "60"),
                                         ("WEBHOOKS_ALLOW_PRIVATE", "maybe")])
def test_a_bad_setting_stops_start_up_with_its_name(tmp_path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: "):
        load_settings({"NURTURE_ROOT": str(tmp_path), "SECRET_KEY": "s" * 20, "API_KEY": "k" * 20, name: value})


def test_secrets_are_gathered_by_their_prefix(tmp_path) -> None:
    settings = load_settings({"NURTURE_ROOT": str(tmp_path), "SECRET_KEY": "s" * 20, "API_KEY": "k" * 20,
                              "WEBHOOK_SECRET_CRM": "whsec_x", "OTHER": "y"})
    assert settings.webhooks.secrets == {"WEBHOOK_SECRET_CRM": "whsec_x"}
    assert settings.webhooks_file == tmp_path / "webhooks.yaml"
