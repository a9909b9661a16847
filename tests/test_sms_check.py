"""`nurture check` on text templates: what forces UCS-2 (by name and line), texts past SMS_MAX_SEGMENTS, and
SMS steps that point nowhere. Warnings are printed as path:line: warning: ... and do not fail the check."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from nurture.cli import main

CONTENT = Path(__file__).resolve().parent / "content"  # the tests' frozen copy of the starter content
SEQUENCE = """
id: texts
name: Texts
stage: deliver-satisfy
steps:
  - id: booked
    kind: thank-you
    channel: sms
    template: {template}
"""


@pytest.fixture(autouse=True)
def settings_outside_the_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SECRET_KEY", "x" * 32)
    monkeypatch.setenv("API_KEY", "k" * 32)
    for name in ("NURTURE_ROOT", "SEQUENCES_DIR", "TEMPLATES_DIR", "SMS_TEMPLATES_DIR", "SMS_MAX_SEGMENTS",
                 "DATABASE_URL", "EMAIL_BACKEND", "SMS_BACKEND", "BRAND_NAME"):
        monkeypatch.delenv(name, raising=False)


def project(tmp_path: Path, text: str, template: str = "class/booked") -> Path:
    root = tmp_path / "project"
    shutil.copytree(CONTENT / "email_templates", root / "email_templates")
    shutil.copy(CONTENT / "brand.env", root / "brand.env")  # the sender's name counts in every text
    (root / "sequences").mkdir()
    (root / "sequences" / "texts.yaml").write_text(SEQUENCE.format(template=template))
    path = root / "sms_templates" / "class" / "booked.txt"
    path.parent.mkdir(parents=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def check(root: Path) -> Result:
    return CliRunner().invoke(main, ["check", "--root", str(root)])


def test_it_names_a_curly_quote_that_forces_ucs2_and_still_passes(tmp_path: Path) -> None:
    root = project(tmp_path, """
        Hi {{ contact.first_name or "there" }},
        you\u2019re booked at {{ brand.name }}!
        """)
    result = check(root)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == ("sms_templates/class/booked.txt:2: warning: \u2019 (RIGHT SINGLE QUOTATION MARK) makes the "
                        "text UCS-2: 70 characters a segment instead of 160, so it costs about double; "
                        "use \"'\" instead")
    assert lines[-1].startswith("ok:")


def test_each_kind_of_character_is_named_once_at_its_first_line(tmp_path: Path) -> None:
    root = project(tmp_path, """
        \u201cBooked\u201d\u00a0for Saturday
        Bring a towel \U0001f3fa and \u201csmile\u201d
        {# a comment\u2019s quote is never sent #}
        """)
    warnings = [line for line in check(root).stdout.splitlines() if "warning" in line]
    assert [w.split(": warning: ")[0] + ": " + w.split(": warning: ")[1].split(" makes")[0] for w in warnings] == [
        "sms_templates/class/booked.txt:1: \u201c (LEFT DOUBLE QUOTATION MARK)",
        "sms_templates/class/booked.txt:1: \u201d (RIGHT DOUBLE QUOTATION MARK)",
        "sms_templates/class/booked.txt:1: '\\xa0' (NO-BREAK SPACE)",
        "sms_templates/class/booked.txt:2: \U0001f3fa (AMPHORA)",
    ]


def test_a_text_longer_than_sms_max_segments_is_a_warning(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SMS_MAX_SEGMENTS", "1")
    root = project(tmp_path, "Hi {{ contact.first_name }}, " + "see you at the wheel! " * 6 + "\n")
    result = check(root)
    assert result.exit_code == 0
    assert ("sms_templates/class/booked.txt:1: warning: 2 segments (GSM-7, 193 characters) for a sample contact, "
            "with the opt-out notice of a first text: more than SMS_MAX_SEGMENTS (1)") in result.stdout.splitlines()


def test_a_short_plain_text_has_no_warnings(tmp_path: Path) -> None:
    result = check(project(tmp_path, "Hi {{ contact.first_name or 'there' }}, see you Saturday!\n"))
    assert result.exit_code == 0 and "warning" not in result.stdout


def test_an_sms_step_whose_template_is_missing_fails(tmp_path: Path) -> None:
    result = check(project(tmp_path, "Hi!\n", template="class/nope"))
    assert result.exit_code == 1
    assert ("sequences/texts.yaml:9: step 'booked': unknown text template 'class/nope' "
            "(no sms_templates/class/nope.txt)") in result.stdout


def test_an_undefined_variable_in_a_text_template_fails_at_its_line(tmp_path: Path) -> None:
    result = check(project(tmp_path, "Hi\n{{ contact.frist_name }}\n"))
    assert result.exit_code == 1
    assert "sms_templates/class/booked.txt:2: undefined template variable 'contact.frist_name'" in result.stdout


def test_a_subject_on_an_sms_step_fails(tmp_path: Path) -> None:
    root = project(tmp_path, "Hi!\n")
    path = root / "sequences" / "texts.yaml"
    path.write_text(path.read_text() + "    subject: \"Hello\"\n")
    result = check(root)
    assert result.exit_code == 1
    assert "sequences/texts.yaml:10: a text has no subject: 'subject' does not belong on an sms step" in result.stdout
