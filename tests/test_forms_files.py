"""Form files (forms/*.yaml): loading with `path:line` problems, `nurture check`, the registry, and the pure
cleaning of what people type."""

from __future__ import annotations

import os
import shutil
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from nurture.cli import main
from nurture.content import forms as forms_module
from nurture.content.forms import FORM_KEYS, FieldSpec, FormRegistry, load_forms, parse_form
from nurture.people.contacts import InvalidContact
from nurture.people.submission import InvalidSignup, clean_attribution, clean_value, read_submission
from nurture.rules.tokens import BadToken, LinkSigner

CONTENT = Path(__file__).resolve().parent / "content"  # the tests' frozen copy of the starter content

VALID = """\
id: guide
name: Guide
sequence: lead-nurture
consent_text: Yes, email me.
fields:
  - name: email
"""


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the fixture content (sequences, templates, forms) for `nurture check --root`."""
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    for name in ("NURTURE_ROOT", "SEQUENCES_DIR", "TEMPLATES_DIR", "FORMS_DIR"):
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "project"
    for folder in ("sequences", "email_templates", "forms"):
        shutil.copytree(CONTENT / folder, root / folder)
    return root


def check(root: Path) -> list[str]:
    result = CliRunner().invoke(main, ["check", "--root", str(root)])
    return [line for line in result.stdout.splitlines() if line]


def test_the_starter_form_loads_with_its_defaults() -> None:
    forms, problems = load_forms(CONTENT / "forms", display_root=CONTENT)
    assert problems == []
    form = forms["beginners-guide"]
    assert form.sequence == "lead-nurture" and form.confirm_sequence == "confirm-email"
    assert form.double_opt_in is True and form.tags == ("guide",)
    assert [(f.name, f.type, f.required) for f in form.fields] == [
        ("email", "email", True), ("first_name", "text", False), ("phone", "tel", False),
        ("interest", "choice", False)]
    assert form.allowed_origins == ("https://juniperpottery.example", "https://www.juniperpottery.example")
    assert form.lead_magnet.url.endswith("beginners-guide.pdf") and form.path == "forms/beginners-guide.yaml"


def test_every_problem_in_a_form_file_is_reported_on_its_line() -> None:
    source = dedent("""
        id: Bad_Id
        name: Broken
        consent_text: ok
        colour: red
        double_opt_in: maybe
        allowed_origins:
          - https://example.com/signup
          - example.com
        redirect: /thanks
        fields:
          - name: first_name
            type: number
          - name: interest
            type: choice
          - name: interest
          - name: website
          - name: Nope
          - name: age
            type: decimal
        lead_magnet:
          title: Guide
          url: https://example.com/a.pdf
          file: guide.pdf
    """)
    _, problems = parse_form(source, "forms/broken.yaml")
    assert [str(p) for p in problems] == [
        "forms/broken.yaml:1: form is missing required key 'sequence'",
        "forms/broken.yaml:1: id 'Bad_Id' must use lowercase letters, digits and dashes",
        f"forms/broken.yaml:4: unknown key 'colour' in form (allowed: {', '.join(sorted(FORM_KEYS))})",
        "forms/broken.yaml:5: 'double_opt_in' must be true or false",
        "forms/broken.yaml:7: allowed origin 'https://example.com/signup' must be like https://www.example.com "
        "(scheme and host, no path), or *",
        "forms/broken.yaml:8: allowed origin 'example.com' must be like https://www.example.com "
        "(scheme and host, no path), or *",
        "forms/broken.yaml:9: redirect '/thanks' must be an absolute http(s) URL",
        "forms/broken.yaml:11: 'fields' must include the email field (- name: email)",
        "forms/broken.yaml:12: field 'first_name' has a fixed type; remove 'type'",
        "forms/broken.yaml:13: field 'interest': a choice field needs a list of choices",
        "forms/broken.yaml:15: duplicate field 'interest' (first on line 13)",
        "forms/broken.yaml:16: field name 'website' is reserved (nurture uses it itself)",
        "forms/broken.yaml:17: field name 'Nope' must use lowercase letters, digits and _",
        "forms/broken.yaml:19: unknown type 'decimal' (expected one of: text, number, choice, checkbox, date)",
        "forms/broken.yaml:21: lead_magnet needs exactly one of 'url' or 'file'",
    ]


@pytest.mark.parametrize(("source", "expected"), [
    ("id: [\n", "forms/f.yaml:2: YAML syntax error: expected the node content, but found '<stream end>'"),
    ("", "forms/f.yaml:1: file is empty"),
    ("- a\n- b\n", "forms/f.yaml:1: a form file must be a mapping of keys to values"),
    (VALID.replace("Yes, email me.", '""'), "forms/f.yaml:4: 'consent_text' must be a non-empty text"),
])
def test_a_broken_file_gets_one_clear_problem(source: str, expected: str) -> None:
    assert [str(p) for p in parse_form(source, "forms/f.yaml")[1]] == [expected]


def test_the_real_repository_passes_check_and_counts_its_form(tree: Path) -> None:
    lines = check(tree)
    assert len(lines) == 1 and lines[0].startswith("ok: ") and " 1 form, " in lines[0]


def test_check_reports_what_a_form_refers_to_that_is_missing(tree: Path) -> None:
    (tree / "forms" / "b.yaml").write_text(dedent("""
        id: b
        name: B
        sequence: customer
        confirm_sequence: lead-nurture
        consent_text: ok
        fields:
          - name: email
        lead_magnet:
          title: The chart
          file: files/chart.pdf
    """))
    (tree / "forms" / "c.yaml").write_text(VALID.replace("guide", "beginners-guide").replace("lead-nurture",
                                                                                            "confirm-email"))
    assert check(tree) == [
        "forms/b.yaml:4: confirmation sequence 'lead-nurture' must be transactional: true",
        "forms/b.yaml:8: lead_magnet file 'files/chart.pdf' not found in forms/",
        "forms/b.yaml:8: the first email of sequence 'customer' never shows the lead magnet (use "
        "contact.fields.lead_magnet in its template; see docs/forms.md)",
        "forms/c.yaml:1: form id 'beginners-guide' is already used by forms/beginners-guide.yaml",
    ]
    (tree / "forms" / "c.yaml").unlink()
    (tree / "forms" / "d.yaml").write_text(VALID.replace("lead-nurture", "nowhere"))
    assert any(line.startswith("forms/d.yaml:3: unknown sequence 'nowhere' (known: ") for line in check(tree))


def test_check_refuses_a_transactional_sequence_as_a_forms_nurture_sequence(tree: Path) -> None:
    (tree / "forms" / "e.yaml").write_text(VALID.replace("lead-nurture", "confirm-email"))
    assert ("forms/e.yaml:3: sequence 'confirm-email' is transactional; a form's sequence is its nurture sequence"
            in check(tree))


def test_a_form_file_with_errors_never_replaces_the_running_version(tmp_path: Path) -> None:
    path = tmp_path / "guide.yaml"
    path.write_text(VALID)
    registry = FormRegistry(tmp_path)
    assert registry.get("guide").consent_text == "Yes, email me."
    path.write_text(VALID.replace("Yes, email me.", "Changed.") + "colour: red\n")
    assert registry.get("guide").consent_text == "Yes, email me."
    path.write_text(VALID.replace("Yes, email me.", "Changed, properly.") + "\n")
    assert registry.get("guide").consent_text == "Changed, properly."
    path.unlink()
    assert registry.get("guide") is None and registry.all() == []


def test_the_registry_follows_a_folder_made_filled_and_emptied_while_it_runs(tmp_path: Path) -> None:
    folder = tmp_path / "forms"
    registry = FormRegistry(folder)
    assert registry.get("guide") is None and registry.all() == []  # no folder yet: no forms, no error
    folder.mkdir()
    (folder / "guide.yaml").write_text(VALID)
    (folder / "notes.txt").write_text("id: not-a-form\n")  # not a form file
    assert registry.get("guide").consent_text == "Yes, email me."
    (folder / "other.yml").write_text(VALID.replace("id: guide", "id: other"))
    assert [f.id for f in registry.all()] == ["guide", "other"]
    (folder / "guide.yaml").unlink()
    assert registry.get("guide") is None and [f.id for f in registry.all()] == ["other"]
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()
    assert registry.all() == []


def test_a_settled_folder_is_not_listed_again_and_every_change_in_it_is_still_seen(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sign-up asks the registry: a folder unchanged since a listing made once it had settled is not
    listed again (its files are stat'ed), and an edit in place or a new file is live at once all the same."""
    listings: list[Path] = []
    listing = forms_module._stamped_form_files
    monkeypatch.setattr(forms_module, "_stamped_form_files", lambda folder: listings.append(folder) or listing(folder))
    folder = tmp_path / "forms"
    folder.mkdir()
    guide = folder / "guide.yaml"
    guide.write_text(VALID)
    a_minute_ago = time.time() - 60
    os.utime(folder, (a_minute_ago, a_minute_ago))
    registry = FormRegistry(folder)
    for _ in range(3):
        assert registry.get("guide").consent_text == "Yes, email me."
    assert len(listings) == 1
    guide.write_text(VALID.replace("Yes, email me.", "Changed in place."))  # the folder's time stays
    assert registry.get("guide").consent_text == "Changed in place." and len(listings) == 1
    (folder / "other.yaml").write_text(VALID.replace("id: guide", "id: other"))  # the folder's time moves
    assert [f.id for f in registry.all()] == ["guide", "other"] and len(listings) == 2


def test_a_folder_changed_just_before_its_listing_is_listed_again_until_it_settles(tmp_path: Path) -> None:
    """A file added within the clock's grain of the listing leaves the folder's time as it was: a folder
    that had just changed when it was listed is never trusted to show the next change by its time."""
    folder = tmp_path / "forms"
    folder.mkdir()
    (folder / "guide.yaml").write_text(VALID)
    registry = FormRegistry(folder)
    assert [f.id for f in registry.all()] == ["guide"]  # listed at once: the folder changed a moment ago
    before = os.stat(folder)
    (folder / "other.yaml").write_text(VALID.replace("id: guide", "id: other"))
    os.utime(folder, ns=(before.st_atime_ns, before.st_mtime_ns))  # as if in the same tick of the clock
    assert [f.id for f in registry.all()] == ["guide", "other"]


# --- what people type -----------------------------------------------------------------------------------------

FORM, _ = parse_form(VALID + "  - name: phone\n  - name: size\n    type: number\n", "f.yaml")


@pytest.mark.parametrize(("spec", "raw", "expected"), [
    (FieldSpec("email", "Email", "email", True), "  Ann@Example.COM ", "ann@example.com"),
    (FieldSpec("phone", "Phone", "tel"), "(415) 555-2671", "+14155552671"),
    (FieldSpec("phone", "Phone", "tel"), "+44 20 7946 0958", "+442079460958"),
    (FieldSpec("phone", "Phone", "tel"), "", None),
    (FieldSpec("n", "N", "number"), "3", 3),
    (FieldSpec("n", "N", "number"), "2,5", 2.5),
    (FieldSpec("n", "N", "number"), 4, 4),
    (FieldSpec("c", "C", "checkbox"), "on", True),
    (FieldSpec("c", "C", "checkbox"), None, False),
    (FieldSpec("c", "C", "checkbox"), True, True),
    (FieldSpec("d", "D", "date"), "2026-05-31", "2026-05-31"),
    (FieldSpec("first_name", "First", "text"), "  <b>Ann</b> ", "<b>Ann</b>"),
])
def test_values_are_cleaned_and_typed(spec: FieldSpec, raw: object, expected: object) -> None:
    assert clean_value(spec, raw) == expected


@pytest.mark.parametrize(("spec", "raw", "message"), [
    (FieldSpec("n", "N", "number"), "nan", "Please enter a number."),
    (FieldSpec("n", "N", "number"), "inf", "Please enter a number."),
    (FieldSpec("c", "C", "checkbox"), "perhaps", "Please tick the box or leave it empty."),
    (FieldSpec("c", "C", "checkbox", required=True), "", "This field is required."),
    (FieldSpec("t", "T", "text"), "a\x00b", "This contains characters that aren't allowed."),
    (FieldSpec("t", "T", "text"), "a\rb", "Please keep this on one line."),
    (FieldSpec("t", "T", "text", max_length=5), "abcdef", "Please use at most 5 characters."),
    (FieldSpec("t", "T", "text"), {"a": 1}, "Please give a single value."),
])
def test_bad_values_get_a_message_for_the_person(spec: FieldSpec, raw: object, message: str) -> None:
    with pytest.raises(InvalidContact) as caught:
        clean_value(spec, raw)
    assert caught.value.message == message


def test_a_submission_keeps_custom_fields_and_drops_a_bad_timezone() -> None:
    submission = read_submission(FORM, {"email": "a@example.com", "size": "12", "timezone": "Mars/Olympus"})
    assert submission.fields == {"size": 12} and submission.timezone is None
    assert read_submission(FORM, {"email": "a@example.com", "timezone": "Europe/Paris"}).timezone == "Europe/Paris"


def test_a_submission_lists_every_bad_field() -> None:
    with pytest.raises(InvalidSignup) as caught:
        read_submission(FORM, {"email": "x", "phone": "1", "size": "big", "extra": "1"})
    assert set(caught.value.errors) == {"email", "phone", "size", "_form"}


def test_attribution_prefers_hidden_fields_and_never_refuses_a_value() -> None:
    kept = clean_attribution({"utm_source": "form", "ref": 42, "utm_term": ["x"], "landing_page": "a" * 900},
                             {"utm_source": "query", "utm_medium": "cpc\x00\n", "other": "x"})
    assert kept == {"utm_source": "form", "utm_medium": "cpc", "ref": "42", "landing_page": "a" * 500}


def test_a_form_token_carries_the_time_and_only_fits_its_own_form() -> None:
    signer = LinkSigner("k" * 32)
    issued = datetime(2026, 11, 23, 9, 0, 5, tzinfo=UTC)
    token = signer.form_token("guide", issued)
    assert signer.form_issued(token, "guide") == issued
    for bad, form_id in ((token, "other"), (token[:-4], "guide"), ("x.y", "guide"),
                         (LinkSigner("z" * 32).form_token("guide", issued), "guide")):
        with pytest.raises(BadToken):
            signer.form_issued(bad, form_id)


def test_an_sms_consent_text_without_a_phone_field_is_reported_at_its_line() -> None:
    source = ("id: texts\nname: Texts\nsequence: lead-nurture\nconsent_text: Emails, weekly.\n"
              "sms_consent_text: Texts too.\nfields:\n  - name: email\n")
    _, problems = parse_form(source, "forms/texts.yaml")
    assert [str(p) for p in problems] == ["forms/texts.yaml:5: sms_consent_text needs a phone field to text"]
