"""`nurture users add/list/remove/password`: the console's accounts from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from nurture.cli import main
from tests.conftest import worker_env


@pytest.fixture
def run(sqlite_url: str, project: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    for key, value in worker_env(project, sqlite_url).items():
        monkeypatch.setenv(key, value)

    def invoke(*args: str, typed: str | None = None) -> Result:
        return CliRunner().invoke(main, list(args), input=typed)

    return invoke


def test_it_adds_an_account_asking_for_the_password_twice(run) -> None:
    added = run("users", "add", "Ann@Example.com", typed="kiln-fired-0123\nkiln-fired-0123\n")
    assert added.exit_code == 0, added.output
    assert "added ann@example.com (owner): log in at https://nurture.test/login" in added.output
    assert "kiln-fired-0123" not in added.output  # the prompt does not echo it
    listed = run("users", "list")
    assert "ann@example.com\towner\tlast login never" in listed.output


def test_mismatched_or_short_passwords_and_second_accounts_are_refused(run) -> None:
    assert run("users", "add", "ann@example.com", typed="kiln-fired-0123\nother-password-1\n"
               "kiln-fired-0123\nkiln-fired-0123\n").exit_code == 0  # the prompt asks again after a mismatch
    short = run("users", "add", "bob@example.com", "--role", "viewer", "--password", "short")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    again = run("users", "add", "ann@example.com", "--password", "kiln-fired-0123")
    assert again.exit_code == 1 and "already has an account" in again.output
    assert run("users", "add", "bob@example.com", "--role", "admin", "--password", "x" * 12).exit_code == 2


def test_it_sets_a_new_password_and_removes_an_account(run) -> None:
    run("users", "add", "ann@example.com", "--role", "viewer", "--password", "kiln-fired-0123")
    changed = run("users", "password", "ann@example.com", typed="a-new-password-9\na-new-password-9\n")
    assert changed.exit_code == 0 and "other sessions are logged out" in changed.output
    assert run("users", "remove", "ann@example.com").exit_code == 0
    assert "no accounts yet" in run("users", "list").output
    gone = run("users", "remove", "ann@example.com")
    assert gone.exit_code == 1 and "no account for 'ann@example.com'" in gone.output


def test_make_run_says_how_to_make_the_first_account(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from nurture.cli.devserver import print_banner
    from nurture.config import load_settings

    settings = load_settings(worker_env(tmp_path, f"sqlite:///{tmp_path / 'n.db'}"))
    print_banner(settings, 8000, "redis://127.0.0.1:1/0", False, [], accounts=0)
    assert "nurture users add you@example.com" in capsys.readouterr().out
    print_banner(settings, 8000, "redis://127.0.0.1:1/0", False, [], accounts=2)
    assert "log in with your account (2 exist" in capsys.readouterr().out
