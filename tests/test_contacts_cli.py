"""`nurture contacts show` and `contacts consent`: one time format, key=value data, the form named once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session

from nurture.cli import main
from nurture.cli.lines import consent_via, data_text
from nurture.people.preferences import Origin, record_consent
from nurture.store.models import ConsentAction, Contact
from tests.conftest import worker_env
from tests.helpers import add_contact, send_due

TIMESTAMP = re.compile(r"^  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  ")


def test_event_data_reads_as_key_value_pairs_with_nested_keys_dotted() -> None:
    data = {"source": "form:guide", "attribution": {"utm_source": "fb", "landing": ""}, "double_opt_in": True,
            "reason": "goal reached: purchase", "tags": ["vip", "new"], "empty": {}}
    assert data_text(data) == ('source=form:guide attribution.utm_source=fb double_opt_in=yes '
                               'reason="goal reached: purchase" tags=vip,new')


@pytest.mark.parametrize(("method", "form", "message", "said"), [
    ("form", "beginners-guide", None, "via form beginners-guide"),
    ("one-click", None, 12, "via one-click, message 12"),
    ("api", "beginners-guide", None, "via api, form beginners-guide"),
    ("cli", None, None, "via cli"),
])
def test_a_consent_record_names_its_method_and_source_once(method: str, form: str | None, message: int | None,
                                                             said: str) -> None:
    assert consent_via(method, form, message) == said


def test_contacts_show_prints_one_time_format_and_no_python_dicts(make_runtime, project: Path, sqlite_url: str,  # noqa: ANN001
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    rt = make_runtime(sqlite_url)
    contact_id = add_contact(rt, "ann@example.com", "lead-nurture", first_name="Ann", fields={"plan": "wheel"})
    send_due(rt)
    with Session(rt.db) as session:
        contact = session.get(Contact, contact_id)
        record_consent(session, contact, "email", ConsentAction.OPT_IN,
                       Origin(method="form", form_id="beginners-guide", consent_text="Yes please"), rt.clock())
        session.commit()
    for name, value in worker_env(project, sqlite_url).items():
        monkeypatch.setenv(name, value)

    result = CliRunner().invoke(main, ["contacts", "show", "Ann@Example.com"])
    assert result.exit_code == 0, result.output
    out = result.output.splitlines()
    assert out[0] == "ann@example.com  Ann  stage=lead  email=subscribed  sms=none  (times in UTC)"
    assert "{" not in result.output and "+00:00" not in result.output
    records = [line for line in out if line.startswith("  ")]
    assert len(records) >= 5 and all(TIMESTAMP.match(line) for line in records), result.output
    assert any("lead-nurture/edu-1  email sent  (delivery 1)" in line for line in records)
    assert any(line.endswith("  contact.created") for line in records)  # its only datum, source, is empty
    assert any("sequence.enrolled  sequence=lead-nurture version=" in line for line in records)
    assert "email opt-in (all) via form beginners-guide  ip=-" in result.output
    assert "from form" not in result.output

    consent = CliRunner().invoke(main, ["contacts", "consent", "ann@example.com"]).output
    assert TIMESTAMP.match(consent.splitlines()[1]) and "via form beginners-guide\n" in consent


def test_contacts_show_refuses_what_is_not_an_address_in_one_line(make_runtime, project: Path, sqlite_url: str,  # noqa: ANN001
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    make_runtime(sqlite_url)
    for name, value in worker_env(project, sqlite_url).items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["contacts", "show", "not an address"])
    assert result.exit_code == 1 and result.output.startswith("nurture: email:")


def test_contacts_add_says_which_offered_values_it_kept_out(make_runtime, project: Path, sqlite_url: str,  # noqa: ANN001
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    make_runtime(sqlite_url)
    for name, value in worker_env(project, sqlite_url).items():
        monkeypatch.setenv(name, value)
    CliRunner().invoke(main, ["contacts", "add", "ann@example.com", "--name", "Ann Lee"])
    again = CliRunner().invoke(main, ["contacts", "add", "ann@example.com", "--name", "Someone Else",
                                      "--timezone", "Europe/Paris"])
    assert again.exit_code == 0, again.output
    assert again.output.splitlines()[1] == ("kept what is on record for first_name, last_name "
                                            "(a second sign-up only fills empty fields)")
    shown = CliRunner().invoke(main, ["contacts", "show", "ann@example.com"]).output
    assert shown.startswith("ann@example.com  Ann Lee  ")
    assert "contact.merged  source=cli filled.timezone=Europe/Paris kept=first_name,last_name" in shown
