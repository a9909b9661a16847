"""`nurture check`: every problem in sequence files and templates, in one run, as `path:line: message`."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from nurture.cli import main
from nurture.content.checker import CONTEXT_NAMES
from nurture.content.loader import SEQUENCE_KEYS, STEP_KEYS, load_sequences
from tests.conftest import CONTENT

# The key lists the messages name, as the loader prints them.
SEQUENCE_ALLOWED = ", ".join(sorted(SEQUENCE_KEYS))
STEP_ALLOWED = ", ".join(sorted(STEP_KEYS))


@pytest.fixture(autouse=True)
def settings_outside_the_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SECRET_KEY", "x" * 32)
    monkeypatch.setenv("API_KEY", "k" * 32)
    for name in ("NURTURE_ROOT", "SEQUENCES_DIR", "TEMPLATES_DIR", "DATABASE_URL", "EMAIL_BACKEND", "SMTP_URL"):
        monkeypatch.delenv(name, raising=False)


def run_check(root: Path) -> Result:
    return CliRunner().invoke(main, ["check", "--root", str(root)])


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def project(tmp_path: Path, with_starter_sequences: bool = False) -> Path:
    """A project tree in tmp_path: the fixture templates, and an empty (or fixture) sequences folder."""
    root = tmp_path / "project"
    shutil.copytree(CONTENT / "email_templates", root / "email_templates")
    if with_starter_sequences:
        shutil.copytree(CONTENT / "sequences", root / "sequences")
    else:
        (root / "sequences").mkdir(parents=True)
    return root


def problem_lines(result: Result) -> list[str]:
    return [line for line in result.stdout.splitlines() if line]


# --- clean trees ----------------------------------------------------------------------------------------------


def test_a_copy_of_the_starter_project_passes_and_counts_what_it_checked(tmp_path: Path) -> None:
    root = project(tmp_path, with_starter_sequences=True)
    result = run_check(root)
    assert result.exit_code == 0, result.output
    templates = len([p for p in (root / "email_templates").rglob("*") if p.suffix in (".html", ".txt")])
    sequences, _ = load_sequences(root / "sequences")
    steps = sum(len(s.steps) for s in sequences.values())
    assert len(sequences) >= 3 and steps >= 12
    counts = f"{len(sequences)} sequences, {steps} steps, {templates} templates checked"
    assert result.stdout == f"ok: {counts}, no problems\n"


def test_check_does_not_write_into_the_project_folder(tmp_path: Path) -> None:
    root = project(tmp_path, with_starter_sequences=True)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    run_check(root)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


# --- a tree with many problems --------------------------------------------------------------------------------

MAIN_SEQUENCE = """
    id: main
    name: Main
    stage: nurture-prospects
    steps:
      - id: welcome
        kind: educate
        channel: email
        template: lead/edu-1
        subject: "Hi {{ contact.frist_name }}"
      - id: missing
        kind: educate
        channel: email
        template: lead/nope
        subject: Hello
      - id: welcome
        kind: offer
        channel: email
        template: lead/edu-2
        subject: Again
      - id: slow
        kind: educate
        channel: email
        wait: 2 days
        template: lead/edu-3
        subject: Later
        colour: blue
      - id: syntax
        kind: educate
        channel: email
        template: custom/bad-syntax
        subject: Syntax
      - id: typo
        kind: educate
        channel: email
        template: custom/typo
        subject: Typo
      - id: no-unsub
        kind: educate
        channel: email
        template: custom/no-unsub
        subject: No unsubscribe link
      - id: no-address
        kind: educate
        channel: email
        template: custom/no-address
        subject: No postal address
"""

BROKEN_SEQUENCE = """
    id: broken
    name: Broken
    stage: capture-leads
    steps:
      - id: a
        subject: Hi: there
"""

BAD_SYNTAX_HTML = """
    {% extends "_layout.html" %}
    {% block content %}
    <p>Hello</p>
    {% iff contact.first_name %}<p>Hi</p>{% endif %}
    {% endblock %}
"""

TYPO_TXT = """
    {% extends "_layout.txt" %}
    {% block content %}Hi {{ contact.first_name or "there" }},

    We spelled your name {{ nme }}.
    {% endblock %}
"""

# Neither extends the layout; each has one of the two required footer items but not the other.
NO_UNSUBSCRIBE_HTML = """
    <html><body>
    <p>Hello {{ contact.first_name or "there" }}</p>
    <p>{{ brand.name }}, {{ postal_address }}</p>
    </body></html>
"""

NO_ADDRESS_TXT = """
    Hello {{ contact.first_name or "there" }},

    Unsubscribe: {{ unsubscribe_url }}
"""

EXTENDS_HTML = '{% extends "_layout.html" %}\n{% block content %}<p>ok</p>{% endblock %}\n'
EXTENDS_TXT = '{% extends "_layout.txt" %}\n{% block content %}ok{% endblock %}\n'

KNOWN = ", ".join(sorted(CONTEXT_NAMES))  # the names templates may use, as the message lists them

EXPECTED_PROBLEMS = [
    "email_templates/custom/bad-syntax.html:4: template syntax error: Encountered unknown tag 'iff'. "
    "Jinja was looking for the following tags: 'endblock'. The innermost block that needs to be closed is "
    "'block'.",
    "email_templates/custom/no-address.txt:1: email template has no postal address ({{ postal_address }}); "
    "CAN-SPAM requires one in every email",
    "email_templates/custom/no-unsub.html:1: email template has no unsubscribe link ({{ unsubscribe_url }}); "
    "every marketing email needs one",
    f"email_templates/custom/typo.txt:4: undefined template variable 'nme' (known: {KNOWN})",
    "sequences/broken.yaml:6: YAML syntax error: mapping values are not allowed here",
    "sequences/main.yaml:9: step 'welcome': subject: undefined template variable 'contact.frist_name'",
    "sequences/main.yaml:13: step 'missing': unknown template 'lead/nope' (no email_templates/lead/nope.html)",
    "sequences/main.yaml:13: step 'missing': unknown template 'lead/nope' (no email_templates/lead/nope.txt)",
    "sequences/main.yaml:15: duplicate step id 'welcome' (first used on line 5)",
    "sequences/main.yaml:23: bad duration '2 days': use numbers with d, h, m or s, like '2d 4h' or '90m'",
    "sequences/main.yaml:26: unknown key 'colour' in step "
    f"(allowed: {STEP_ALLOWED})",
]


def many_problems_tree(tmp_path: Path) -> Path:
    root = project(tmp_path)
    write(root / "sequences" / "main.yaml", MAIN_SEQUENCE)
    write(root / "sequences" / "broken.yaml", BROKEN_SEQUENCE)
    templates = root / "email_templates" / "custom"
    write(templates / "bad-syntax.html", BAD_SYNTAX_HTML)
    write(templates / "bad-syntax.txt", EXTENDS_TXT)
    write(templates / "typo.html", EXTENDS_HTML)
    write(templates / "typo.txt", TYPO_TXT)
    write(templates / "no-unsub.html", NO_UNSUBSCRIBE_HTML)
    write(templates / "no-unsub.txt", EXTENDS_TXT)
    write(templates / "no-address.html", EXTENDS_HTML)
    write(templates / "no-address.txt", NO_ADDRESS_TXT)
    return root


def test_every_problem_in_the_tree_is_reported_in_one_run(tmp_path: Path) -> None:
    result = run_check(many_problems_tree(tmp_path))
    assert result.exit_code != 0
    assert sorted(problem_lines(result)) == sorted(EXPECTED_PROBLEMS)


def test_problems_are_printed_in_path_then_line_order(tmp_path: Path) -> None:
    result = run_check(many_problems_tree(tmp_path))
    lines = problem_lines(result)

    def key(line: str) -> tuple[str, int]:
        path, number, _ = line.split(":", 2)
        return path, int(number)

    assert lines == sorted(lines, key=key)


def test_a_failed_check_says_how_many_problems_on_stderr_and_exits_one(tmp_path: Path) -> None:
    result = run_check(many_problems_tree(tmp_path))
    assert result.exit_code == 1
    assert result.stderr == f"nurture: {len(EXPECTED_PROBLEMS)} problem(s) found\n"
    assert "ok:" not in result.output


@pytest.mark.parametrize(
    ("template_file", "source", "expected"),
    [
        pytest.param(
            "lead/edu-1.html",
            EXTENDS_HTML.replace("<p>ok</p>", "\n<p>{{ contact.frist_name }}</p>\n"),
            "email_templates/lead/edu-1.html:3: undefined template variable 'contact.frist_name'",
            id="bad-attribute-in-template",
        ),
        pytest.param(
            "lead/edu-1.txt",
            "{% extends \"_layout.txt\" %}\n{% block content %}\n{% for x in items %}{{ x }}{% endfor %}\n"
            "{% endblock %}\n",
            f"email_templates/lead/edu-1.txt:3: undefined template variable 'items' (known: {KNOWN})",
            id="undefined-loop-source",
        ),
        pytest.param(
            "lead/edu-1.txt",
            "{% extends \"_layout.txt\" %}\n{% block content %}{{ contact.first_name }\n{% endblock %}\n",
            "email_templates/lead/edu-1.txt:2: template syntax error: unexpected '}'",
            id="unclosed-expression",
        ),
    ],
)
def test_a_single_template_problem_is_reported_with_its_line(
    tmp_path: Path, template_file: str, source: str, expected: str
) -> None:
    root = project(tmp_path, with_starter_sequences=True)
    (root / "email_templates" / template_file).write_text(source, encoding="utf-8")
    result = run_check(root)
    assert result.exit_code != 0
    assert problem_lines(result) == [expected]


def test_variables_set_inside_a_template_are_not_reported(tmp_path: Path) -> None:
    root = project(tmp_path, with_starter_sequences=True)
    (root / "email_templates" / "lead" / "edu-1.txt").write_text(
        "{% extends \"_layout.txt\" %}\n{% block content %}{% set greeting = 'Hi' %}{{ greeting }}\n"
        "{% for tag in contact.tags %}{{ tag }}{% endfor %}\n{% endblock %}\n",
        encoding="utf-8",
    )
    result = run_check(root)
    assert result.exit_code == 0, result.output


def test_a_subject_syntax_error_is_reported_at_the_subject_line(tmp_path: Path) -> None:
    root = project(tmp_path)
    write(root / "sequences" / "one.yaml", """
        id: one
        name: One
        stage: capture-leads
        steps:
          - id: hello
            kind: educate
            channel: email
            template: lead/edu-1
            subject: "Hi {{ contact.first_name "
    """)
    result = run_check(root)
    assert result.exit_code != 0
    lines = problem_lines(result)
    assert len(lines) == 1
    assert lines[0].startswith("sequences/one.yaml:9: step 'hello': subject: template syntax error: ")


def test_a_template_that_extends_a_missing_layout_is_reported(tmp_path: Path) -> None:
    # Rendering would fail at send time (TemplateNotFound -> RenderError), so check must catch it first.
    root = project(tmp_path)
    write(root / "sequences" / "one.yaml", """
        id: one
        name: One
        stage: capture-leads
        steps:
          - id: hello
            kind: educate
            channel: email
            template: custom/orphan
            subject: Hello
    """)
    write(root / "email_templates" / "custom" / "orphan.html", EXTENDS_HTML.replace("_layout.html", "_missing.html"))
    write(root / "email_templates" / "custom" / "orphan.txt", EXTENDS_TXT)
    result = run_check(root)
    assert result.exit_code != 0, result.output
    lines = problem_lines(result)
    assert any(line.startswith("email_templates/custom/orphan.html:") and "_missing.html" in line for line in lines)


def words_only_layouts(root: Path, base_html: str) -> None:
    """The look in `_base.html` / `_base.txt`, each language's `_layout` file only its words (as the starter
    content ships them), and a one-step sequence whose email is in English and French."""
    templates = root / "email_templates"
    write(templates / "_base.html", base_html)
    write(templates / "_base.txt", "{% block content %}{% endblock %}\n{{ postal_address }}\n"
                                   "{% block unsubscribe %}{% endblock %} {{ unsubscribe_url }}\n")
    for name, word in (("_layout", "Unsubscribe"), ("_layout.fr", "Se désabonner")):
        for suffix in (".html", ".txt"):
            write(templates / f"{name}{suffix}", f'{{# The words only; the look is _base{suffix}. #}}\n'
                                                 f'{{% extends "_base{suffix}" %}}\n'
                                                 f"{{% block unsubscribe %}}{word}{{% endblock %}}\n")
    for name in ("custom/hello", "custom/hello.fr"):
        write(templates / f"{name}.html", EXTENDS_HTML)
        write(templates / f"{name}.txt", EXTENDS_TXT)
    write(root / "sequences" / "one.yaml", """
        id: one
        name: One
        stage: capture-leads
        steps:
          - id: hello
            kind: educate
            channel: email
            template: custom/hello
            subject: {en: Hello, fr: Bonjour}
    """)


BASE_HTML = """
    <html><body>{% block content %}{% endblock %}
    <a href="{{ unsubscribe_url }}">{% block unsubscribe %}{% endblock %}</a> {{ postal_address }}
    </body></html>
"""


def test_layouts_of_only_words_over_one_base_pass(tmp_path: Path) -> None:
    root = project(tmp_path)
    words_only_layouts(root, BASE_HTML)
    result = run_check(root)
    assert result.exit_code == 0, result.output


def test_a_base_without_the_unsubscribe_link_is_reported_for_every_language_whose_words_extend_it(
        tmp_path: Path) -> None:
    root = project(tmp_path)
    words_only_layouts(root, BASE_HTML.replace('<a href="{{ unsubscribe_url }}">', "<a>"))
    result = run_check(root)
    assert result.exit_code != 0
    assert problem_lines(result) == [
        f"email_templates/custom/{name}.html:1: email template has no unsubscribe link ({{{{ unsubscribe_url }}}}); "
        "every marketing email needs one" for name in ("hello.fr", "hello")]


def test_a_language_layout_that_extends_the_default_name_is_reported_not_a_crash(tmp_path: Path) -> None:
    """For a French contact `_layout.html` is `_layout.fr.html`: extending it from there would be a loop."""
    root = project(tmp_path)
    words_only_layouts(root, BASE_HTML)
    french = root / "email_templates" / "_layout.fr.html"
    french.write_text(french.read_text().replace("_base.html", "_layout.html"))
    result = run_check(root)
    assert result.exit_code != 0
    why = ("a template cannot extend itself (for 'fr' contacts _layout.html is _layout.fr.html, which must extend "
           "another file, such as _base.html, the look every language shares)")
    assert problem_lines(result) == [  # at the layout at fault, and at the French template it breaks
        f"email_templates/_layout.fr.html:2: _layout.html extends _layout.html: {why}",
        f"email_templates/custom/hello.fr.html:1: custom/hello.html extends _layout.html extends _layout.html: {why}"]


def german_layout_problems(tmp_path: Path, layout: str) -> list[str]:
    """`nurture check`'s problems with `layout` as `_layout.de.html`, no template being in German; it fails."""
    root = project(tmp_path)
    words_only_layouts(root, BASE_HTML)
    write(root / "email_templates" / "_layout.de.html", layout)
    result = run_check(root)
    assert result.exit_code != 0
    return problem_lines(result)


def test_a_language_layout_that_loops_is_reported_though_no_template_is_in_that_language(tmp_path: Path) -> None:
    """Every German contact's email reads `_layout.de.html` for `_layout.html`: with no German template at
    all, the loop would still fail each of their sends."""
    layout = '{% extends "_layout.html" %}\n{% block unsubscribe %}Abmelden{% endblock %}\n'
    assert german_layout_problems(tmp_path, layout) == [
        "email_templates/_layout.de.html:1: _layout.html extends _layout.html: a template cannot extend itself "
        "(for 'de' contacts _layout.html is _layout.de.html, which must extend another file, such as _base.html, "
        "the look every language shares)"]


def test_a_language_layout_without_the_postal_address_is_reported_though_no_template_is_in_that_language(
        tmp_path: Path) -> None:
    layout = ('<html><body>{% block content %}{% endblock %}\n'
              '<a href="{{ unsubscribe_url }}">Abmelden</a></body></html>\n')
    assert german_layout_problems(tmp_path, layout) == [
        "email_templates/_layout.de.html:1: email template has no postal address ({{ postal_address }}); CAN-SPAM "
        "requires one in every email"]


def test_a_word_block_a_language_layout_leaves_empty_is_an_error_in_a_link_and_a_warning_elsewhere(
        tmp_path: Path) -> None:
    """Left out, a block gets the base's words; empty, it gets nothing: an unsubscribe link no one can see."""
    root = project(tmp_path)
    words_only_layouts(root, BASE_HTML.replace("{% block unsubscribe %}{% endblock %}",
                                               "{% block unsubscribe %}Unsubscribe{% endblock %}\n"
                                               "<p>{% block reason %}You signed up with us.{% endblock %}</p>"))
    write(root / "email_templates" / "_layout.de.html", """
        {% extends "_base.html" %}
        {% block unsubscribe %}{% endblock %}
        {% block reason %} {# to translate #} {% endblock %}
    """)
    result = run_check(root)
    assert result.exit_code != 0
    assert problem_lines(result) == [
        "email_templates/_layout.de.html:2: block 'unsubscribe' is empty: emails to 'de' contacts get a link with "
        "no text, which no one can see or click (_base.html has 'Unsubscribe'); write the words, or leave the "
        "block out to get _base.html's",
        "email_templates/_layout.de.html:3: warning: block 'reason' is empty: emails to 'de' contacts get no "
        "words there (_base.html has 'You signed up with us.'); write the words, or leave the block out to get "
        "_base.html's"]


def test_a_link_text_no_file_writes_is_an_error_at_the_base(tmp_path: Path) -> None:
    """The base leaves the unsubscribe link's words to the layouts (as the starter's does); a layout that
    leaves the block out too gives every email through it a link with no text."""
    root = project(tmp_path)
    words_only_layouts(root, BASE_HTML)
    write(root / "email_templates" / "_layout.fr.html", """
        {% extends "_base.html" %}
        {% block lang %}fr{% endblock %}
    """)
    result = run_check(root)
    assert result.exit_code != 0
    assert problem_lines(result) == [
        "email_templates/_base.html:2: block 'unsubscribe' is the whole text of a link and nothing writes it: "
        "emails to 'fr' contacts through _layout.fr.html get a link no one can see or click; write its words "
        "here or in _layout.fr.html"]


def test_a_project_without_a_sequences_folder_is_a_problem(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "sequences").rmdir()
    result = run_check(root)
    assert result.exit_code != 0
    assert problem_lines(result) == ["sequences:1: sequences directory not found"]


def test_a_duplicate_sequence_id_across_files_fails_the_check(tmp_path: Path) -> None:
    root = project(tmp_path, with_starter_sequences=True)
    shutil.copy(root / "sequences" / "customer.yaml", root / "sequences" / "customer-copy.yaml")
    result = run_check(root)
    assert result.exit_code != 0
    assert problem_lines(result) == [
        "sequences/customer.yaml:1: sequence id 'customer' is already used by sequences/customer-copy.yaml"
    ]
