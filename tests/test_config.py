"""Settings are read once and strictly: a bad value stops start-up naming the variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from nurture.cli import main
from nurture.config import ConfigError, load_settings, parse_smtp_url, write_missing_secrets


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"VAR_DIR": str(tmp_path / "var"), "NURTURE_ROOT": str(tmp_path), **values}


@pytest.mark.parametrize(("name", "value"), [
    ("EMAIL_BACKEND", "carrier-pigeon"),
    ("TICK_SECONDS", "soon"),
    ("BATCH_SIZE", "0"),
    ("BASE_URL", "localhost:8000"),
    ("MAIL_FROM", "not an address"),
    ("DATABASE_URL", "mysql://x"),
    ("SMTP_URL", "http://mail.example.com"),
    ("SECRET_KEY", "short"),
    ("RETRY_BACKOFF", "1,two"),
    ("BOUNCE_ADDRESS", "Bounces <bounces@example.com>"),
    ("BOUNCE_ADDRESS", "bounces+x@example.com"),
    ("BOUNCE_IMAP_URL", "pop3://mail.example.com"),
    ("BOUNCE_SOFT_LIMIT", "0"),
    ("BOUNCE_SOFT_WINDOW_DAYS", "a week"),
])
def test_a_bad_value_names_the_variable(tmp_path, name, value) -> None:
    with pytest.raises(ConfigError, match=f"^{name}:"):
        load_settings(env(tmp_path, **{name: value}))


def test_smtp_backend_needs_an_smtp_url(tmp_path) -> None:
    with pytest.raises(ConfigError, match="^SMTP_URL: required"):
        load_settings(env(tmp_path, EMAIL_BACKEND="smtp"))


def test_the_defaults_are_the_embedded_setup(tmp_path) -> None:
    write_missing_secrets(env(tmp_path))  # the start-up step of `nurture dev` and `nurture db upgrade`
    settings = load_settings(env(tmp_path))
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'nurture.db'}"
    assert settings.email_backend == "outbox" and settings.outbox_dir == tmp_path / "var" / "outbox"
    assert settings.base_url == "http://localhost:8000"
    # Generated secrets survive a restart (unsubscribe links must keep working).
    assert load_settings(env(tmp_path)).secret_key == settings.secret_key
    assert load_settings(env(tmp_path)).api_key == settings.api_key


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://user:p%40ss@mail.example.com:587", ("mail.example.com", 587, "user", "p@ss", "starttls")),
    ("smtps://mail.example.com", ("mail.example.com", 465, None, None, "ssl")),
    ("smtp://127.0.0.1:2525", ("127.0.0.1", 2525, None, None, "plain")),
    ("smtp://relay:25?starttls", ("relay", 25, None, None, "starttls")),
])
def test_smtp_urls_are_parsed(url, expected) -> None:
    s = parse_smtp_url(url)
    assert (s.host, s.port, s.username, s.password, s.security) == expected


def test_a_postgres_url_uses_psycopg(tmp_path) -> None:
    write_missing_secrets(env(tmp_path))
    settings = load_settings(env(tmp_path, DATABASE_URL="postgresql://u@db/nurture"))
    assert settings.database_url == "postgresql+psycopg://u@db/nurture"


def test_the_cli_reports_a_config_error_in_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("EMAIL_BACKEND", "fax")
    result = CliRunner().invoke(main, ["contacts", "add", "a@example.com"])
    assert result.exit_code == 2
    expected = "nurture: configuration error: EMAIL_BACKEND: expected one of outbox, smtp, got 'fax'"
    assert result.output.strip() == expected


def test_bounces_come_back_to_mail_from_unless_a_bounce_address_is_set(tmp_path) -> None:
    write_missing_secrets(env(tmp_path))
    settings = load_settings(env(tmp_path, MAIL_FROM="Shop <hello@shop.example>"))
    assert settings.bounce_address == "hello@shop.example"
    assert (settings.bounces.soft_limit, settings.bounces.soft_window_days) == (3, 7)
    assert settings.bounces.maildir is None and settings.bounces.imap_url is None
    settings = load_settings(env(tmp_path, BOUNCE_ADDRESS="bounces@mail.shop.example", BOUNCE_MAILDIR="/srv/b",
                                 BOUNCE_SOFT_LIMIT="5", BOUNCE_SOFT_WINDOW_DAYS="14"))
    assert settings.bounce_address == "bounces@mail.shop.example"
    assert (settings.bounces.maildir, settings.bounces.soft_limit, settings.bounces.soft_window_days) == (
        Path("/srv/b"), 5, 14)


def test_reading_settings_writes_nothing(tmp_path) -> None:
    load_settings(env(tmp_path, SECRET_KEY="s" * 20, API_KEY="k" * 20))
    with pytest.raises(ConfigError) as caught:
        load_settings(env(tmp_path))
    assert str(caught.value) == (f"SECRET_KEY: not set, and {tmp_path / 'var' / 'secret_key'} does not exist (set "
                                 f"SECRET_KEY, or run `nurture db upgrade` once to generate it there)")
    assert not (tmp_path / "var").exists()


def test_the_start_up_step_writes_each_missing_secret_once_for_its_owner_only(tmp_path) -> None:
    written = write_missing_secrets(env(tmp_path, API_KEY="k" * 20))
    assert written == [tmp_path / "var" / "secret_key"]  # API_KEY is set: no file for it
    assert (written[0].stat().st_mode & 0o777) == 0o600
    key = written[0].read_text()
    assert write_missing_secrets(env(tmp_path, API_KEY="k" * 20)) == []
    assert written[0].read_text() == key and list((tmp_path / "var").iterdir()) == written


def test_the_queue_is_one_per_database(tmp_path) -> None:
    def queue(**values: str) -> str:
        return load_settings(env(tmp_path, SECRET_KEY="s" * 20, API_KEY="k" * 20, **values)).queue_name

    first, second = queue(DATABASE_URL="postgresql://u:pw@db/one"), queue(DATABASE_URL="postgresql://u:pw@db/two")
    assert first.startswith("nurture-") and first != second
    assert queue(DATABASE_URL="postgresql://u:rotated@db/one") == first  # a new password keeps the queue
    assert queue(VAR_DIR=str(tmp_path / "a")) != queue(VAR_DIR=str(tmp_path / "b"))  # two SQLite files
    assert queue(QUEUE_NAME="shared") == "shared"


def test_the_sender_comes_from_the_project_brand_file_under_the_environment(tmp_path) -> None:
    secrets = {"SECRET_KEY": "s" * 20, "API_KEY": "k" * 20}
    bare = load_settings(env(tmp_path, **secrets))
    assert (bare.brand_name, bare.mail_from, bare.postal_address) == ("nurture", "nurture <nurture@localhost>", "")
    (tmp_path / "brand.env").write_text('BRAND_NAME="Kiln & Co"\nMAIL_FROM="Kiln <hi@kiln.example>"\n'
                                        'POSTAL_ADDRESS="1 Clay St, Salem"\n')
    branded = load_settings(env(tmp_path, **secrets))
    assert (branded.brand_name, branded.support_email, branded.postal_address) == (
        "Kiln & Co", "hi@kiln.example", "1 Clay St, Salem")
    assert load_settings(env(tmp_path, BRAND_NAME="Other", **secrets)).brand_name == "Other"


def test_sending_for_real_needs_a_postal_address(tmp_path) -> None:
    with pytest.raises(ConfigError, match="^POSTAL_ADDRESS: required when EMAIL_BACKEND=smtp"):
        load_settings(env(tmp_path, EMAIL_BACKEND="smtp", SMTP_URL="smtp://relay:25", SECRET_KEY="s" * 20,
                          API_KEY="k" * 20))


def test_the_readme_table_names_every_variable_and_only_those() -> None:
    from nurture.config import (
        BounceSettings,
        DeliverabilitySettings,
        ProviderSettings,
        Settings,
        SmsSettings,
        WebhookSettings,
    )

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = {name for row in table.splitlines() if row.startswith("| `")
                  for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}
    fields = [*Settings.model_fields.values(), *SmsSettings.model_fields.values(),
              *BounceSettings.model_fields.values(), *ProviderSettings.model_fields.values(),
              *DeliverabilitySettings.model_fields.values(), *WebhookSettings.model_fields.values()]
    assert documented == {field.alias for field in fields if field.alias}


def test_only_the_two_secrets_are_read_from_var(tmp_path) -> None:
    write_missing_secrets(env(tmp_path))
    (tmp_path / "var" / "base_url").write_text("https://stray.example\n")  # a file, not a setting
    settings = load_settings(env(tmp_path))
    assert settings.secret_key == (tmp_path / "var" / "secret_key").read_text().strip()
    assert settings.base_url == "http://localhost:8000"


def sending_env(tmp_path: Path, **values: str) -> dict[str, str]:
    return env(tmp_path, EMAIL_BACKEND="smtp", POSTAL_ADDRESS="1 Main St", SECRET_KEY="s" * 20, API_KEY="k" * 20,
               **values)


def test_a_claim_lease_shorter_than_a_send_may_take_is_refused(tmp_path) -> None:
    # A send may wait for the SMTP server up to its timeout at each step; a lease it can outlive lets another
    # worker send the same step again.
    with pytest.raises(ConfigError, match=r"^CLAIM_LEASE_SECONDS: 60 s is shorter than a send may take: the SMTP "
                                          r"timeout .* is 30 s, so the lease must be at least 90 s"):
        load_settings(sending_env(tmp_path, SMTP_URL="smtp://relay:25", CLAIM_LEASE_SECONDS="60"))
    with pytest.raises(ConfigError, match="^CLAIM_LEASE_SECONDS: 10 s .* at least 15 s"):
        load_settings(sending_env(tmp_path, SMTP_URL="smtp://relay:25?timeout=5", CLAIM_LEASE_SECONDS="10"))
    with pytest.raises(ConfigError, match="^CLAIM_LEASE_SECONDS: 30 s .* Twilio API timeout is 15 s"):
        load_settings(env(tmp_path, SMS_BACKEND="twilio", TWILIO_ACCOUNT_SID="AC" + "0" * 32,
                          TWILIO_AUTH_TOKEN="t" * 32, TWILIO_FROM="+15035550100", SECRET_KEY="s" * 20,
                          API_KEY="k" * 20, CLAIM_LEASE_SECONDS="30"))


def test_a_claim_lease_that_covers_the_send_timeout_is_taken(tmp_path) -> None:
    settings = load_settings(sending_env(tmp_path, SMTP_URL="smtp://relay:25?timeout=3", CLAIM_LEASE_SECONDS="10"))
    assert settings.smtp is not None and settings.smtp.timeout == 3 and settings.claim_lease_seconds == 10
    assert load_settings(sending_env(tmp_path, SMTP_URL="smtp://relay:25")).smtp.timeout == 30  # the default


@pytest.mark.parametrize("timeout", ["0", "soon", "-1", "601"])
def test_a_bad_smtp_timeout_names_the_variable(tmp_path, timeout) -> None:
    with pytest.raises(ConfigError, match=f"^SMTP_URL: .*timeout={timeout}: expected seconds"):
        load_settings(sending_env(tmp_path, SMTP_URL=f"smtp://relay:25?timeout={timeout}"))
