"""Sequence files: YAML text -> Sequence, and every problem as `path:line: message` with the right line."""

from __future__ import annotations

import textwrap
from datetime import time
from pathlib import Path

import pytest

from nurture.content.loader import SEQUENCE_KEYS, STEP_KEYS, Problem, SequenceFileError, load_sequences, parse_sequence
from nurture.rules.sequence import DAY_SETS, Delay, Sequence

CONTENT = Path(__file__).resolve().parent / "content"  # the tests' frozen copy of the starter content

# The key lists the messages name, as the loader prints them.
SEQUENCE_ALLOWED = ", ".join(sorted(SEQUENCE_KEYS))
STEP_ALLOWED = ", ".join(sorted(STEP_KEYS))


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def parse_ok(text: str, path: str = "sequences/test.yaml") -> Sequence:
    sequence, problems = parse_sequence(yaml_text(text), path)
    assert problems == []
    assert sequence is not None
    return sequence


def problems_of(text: str, path: str = "s.yaml") -> list[str]:
    sequence, problems = parse_sequence(yaml_text(text), path)
    assert problems, "expected at least one problem"
    assert sequence is None
    return sorted(str(p) for p in problems)


COMPLETE = """
    # A complete sequence using every key.
    id: welcome-flow
    name: Welcome flow
    stage: nurture-prospects
    description: >-
      For people who just joined
      the list.
    steps:
      - id: edu-1
        kind: educate
        channel: email
        wait: 0s
        template: lead/edu-1
        subject: "Welcome to {{ brand.name }}, {{ contact.first_name or 'friend' }}"

      - id: edu-2
        kind: educate
        channel: email
        wait: 2d 4h
        at: "10:00"
        on: weekdays
        template: lead/edu-2
        subject: Which class should you start with?

      - id: offer
        kind: offer
        channel: email
        wait: 90m
        at: 10:00
        on: [mon, fri]
        template: lead/offer
        subject: "15% off"

      - id: follow-up-2
        kind: feedback
        wait: 1d12h
        at: 9:05
        on:
          - tue
          - Thursday
        template: customer/feedback
        subject: How was it?
"""

# One valid step, used as the base of the one-problem files below (step on line 5).
VALID_HEAD = """\
id: demo
name: Demo
stage: capture-leads
steps:
"""


# --- a valid file ---------------------------------------------------------------------------------------------


def test_a_complete_file_with_every_key_loads_into_a_sequence() -> None:
    sequence = parse_ok(COMPLETE, path="sequences/welcome.yaml")
    assert sequence.id == "welcome-flow"
    assert sequence.name == "Welcome flow"
    assert sequence.stage == "nurture-prospects"
    assert sequence.description == "For people who just joined the list."
    assert sequence.path == "sequences/welcome.yaml"
    assert [s.id for s in sequence.steps] == ["edu-1", "edu-2", "offer", "follow-up-2"]
    first = sequence.steps[0]
    assert first.kind == "educate"
    assert first.channel == "email"
    assert first.template == "lead/edu-1"
    assert first.subject == "Welcome to {{ brand.name }}, {{ contact.first_name or 'friend' }}"
    assert first.wait.delay == Delay()
    assert first.wait.at is None
    assert first.wait.days is None
    assert sequence.steps[1].subject == "Which class should you start with?"


def test_a_bare_on_key_is_read_as_on_not_as_yaml_true() -> None:
    sequence = parse_ok(COMPLETE)
    assert sequence.steps[1].wait.days == DAY_SETS["weekdays"]
    assert sequence.steps[2].wait.days == frozenset({0, 4})
    assert sequence.steps[3].wait.days == frozenset({1, 3})


def test_a_quoted_and_an_unquoted_at_both_mean_that_clock_time() -> None:
    sequence = parse_ok(COMPLETE)
    assert sequence.steps[1].wait.at == time(10, 0)  # at: "10:00"
    assert sequence.steps[2].wait.at == time(10, 0)  # at: 10:00 (YAML 1.1 sexagesimal 600)
    assert sequence.steps[3].wait.at == time(9, 5)  # at: 9:05 (sexagesimal 545)


def test_waits_are_parsed_into_days_and_seconds() -> None:
    sequence = parse_ok(COMPLETE)
    assert sequence.steps[1].wait.delay == Delay(days=2, seconds=4 * 3600)
    assert sequence.steps[2].wait.delay == Delay(seconds=90 * 60)
    assert sequence.steps[3].wait.delay == Delay(days=1, seconds=12 * 3600)


def test_a_step_without_wait_waits_zero_and_without_channel_is_email() -> None:
    sequence = parse_ok(COMPLETE)
    assert sequence.steps[3].channel == "email"
    minimal = parse_ok(VALID_HEAD + "  - {id: a, kind: educate, template: t, subject: s}\n")
    assert minimal.steps[0].wait.delay == Delay()
    assert minimal.description == ""


def test_each_step_remembers_the_line_of_each_key() -> None:
    sequence = parse_ok(COMPLETE)
    edu_2 = sequence.steps[1]
    assert edu_2.line == 16
    assert edu_2.line_of("id") == 16
    assert edu_2.line_of("at") == 20
    assert edu_2.line_of("on") == 21
    assert edu_2.line_of("subject") == 23
    assert sequence.steps[3].line_of("on") == 39  # a block list: the line of its first item
    assert edu_2.line_of("not-a-key") == 16


# --- one problem, on the right line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            VALID_HEAD + "  - id: a\n    kind: educate\n    template: t\n    subject: s\ncolour: red\n",
            f"s.yaml:9: unknown key 'colour' in sequence (allowed: {SEQUENCE_ALLOWED})",
            id="unknown-sequence-key",
        ),
        pytest.param(
            VALID_HEAD + "  - id: a\n    kind: educate\n    template: t\n    subjet: s\n    subject: s\n",
            f"s.yaml:8: unknown key 'subjet' in step (allowed: {STEP_ALLOWED})",
            id="unknown-step-key",
        ),
        pytest.param(
            VALID_HEAD + "  - id: a\n    template: t\n    subject: s\n",
            "s.yaml:5: step is missing required key 'kind'",
            id="missing-step-key",
        ),
        pytest.param(
            "id: demo\nname: Demo\nsteps:\n  - id: a\n    kind: educate\n    template: t\n    subject: s\n",
            "s.yaml:1: sequence is missing required key 'stage'",
            id="missing-sequence-key",
        ),
        pytest.param(
            "# header\n\nid: demo\nname: Demo\nstage: capture-leads\n",
            "s.yaml:3: sequence is missing required key 'steps'",
            id="missing-steps",
        ),
        pytest.param(
            VALID_HEAD + "  - id: a\n    kind: educate\n    wait: 2 days\n    template: t\n    subject: s\n",
            "s.yaml:7: bad duration '2 days': use numbers with d, h, m or s, like '2d 4h' or '90m'",
            id="bad-duration",
        ),
        pytest.param(
            VALID_HEAD + "  - id: a\n    kind: educate\n    wait: 2\n    template: t\n    subject: s\n",
            "s.yaml:7: bad duration 2: use numbers with d, h, m or s, like '2d 4h' or '90m'",
            id="duration-without-unit",
        ),
        pytest.param(
            VALID_HEAD + "  - id: a\n    kind: shout\n    template: t\n    subject: s\n",
            "s.yaml:6: unknown kind 'shout' "
            "(expected one of: educate, offer, thank-you, feedback, referral-request, upsell)",
            id="bad-kind",
        ),
        pytest.param(
            "id: demo\nname: Demo\nstage: nowhere\nsteps:\n  - {id: a, kind: educate, template: t, subject: s}\n",
            "s.yaml:3: unknown stage 'nowhere' (expected one of: attract-traffic, capture-leads, "
            "nurture-prospects, convert-sales, deliver-satisfy, upsell-customers, get-referrals)",
            id="bad-stage",
        ),
        pytest.param(
            VALID_HEAD + "  - id: a\n    kind: educate\n    channel: fax\n    template: t\n    subject: s\n",
            "s.yaml:7: unknown channel 'fax' (expected one of: email, sms)",
            id="bad-channel",
        ),
        pytest.param(
            VALID_HEAD + "  - id: a\n    kind: educate\n    on: funday\n    template: t\n    subject: s\n",
            "s.yaml:7: unknown day 'funday': use mon, tue, wed, thu, fri, sat, sun",
            id="bad-on",
        ),
        pytest.param(
            VALID_HEAD + "  - id: a\n    kind: educate\n    on: []\n    template: t\n    subject: s\n",
            "s.yaml:7: `on` takes weekdays, weekends, every day, or a list like [mon, wed, fri]",
            id="empty-on",
        ),
        pytest.param(
            VALID_HEAD + "  - id: a\n    kind: educate\n    at: noon\n    template: t\n    subject: s\n",
            "s.yaml:7: bad time of day 'noon': use HH:MM, like \"10:00\"",
            id="bad-at",
        ),
        pytest.param(
            VALID_HEAD + "  - id: a\n    kind: educate\n    at: \"25:00\"\n    template: t\n    subject: s\n",
            "s.yaml:7: bad time of day '25:00': use HH:MM, like \"10:00\"",
            id="bad-quoted-at",
        ),
        pytest.param(
            "id: demo\nname: Demo\nstage: capture-leads\nsteps: []\n",
            "s.yaml:4: 'steps' must be a non-empty list of steps",
            id="empty-steps-list",
        ),
        pytest.param(
            "id: demo\nname: Demo\nstage: capture-leads\nsteps:\n",
            "s.yaml:4: 'steps' must be a non-empty list of steps",
            id="steps-without-value",
        ),
        pytest.param(
            "id: Demo_Seq\nname: Demo\nstage: capture-leads\nsteps:\n"
            "  - {id: a, kind: educate, template: t, subject: s}\n",
            "s.yaml:1: id 'Demo_Seq' must use lowercase letters, digits and dashes",
            id="bad-sequence-id",
        ),
        pytest.param(
            VALID_HEAD + "  - id: a\n    kind: educate\n    template: t\n    subject: \"\"\n",
            "s.yaml:8: 'subject' must be a non-empty text",
            id="empty-subject",
        ),
        pytest.param(
            VALID_HEAD + "  - id: a\n    kind: educate\n    template: t\n    subject: s\n    kind: offer\n",
            "s.yaml:9: duplicate key 'kind' in step",
            id="duplicate-key",
        ),
        pytest.param(
            "- id: demo\n- name: Demo\n",
            "s.yaml:1: sequence must be a mapping of keys to values",
            id="not-a-mapping",
        ),
        pytest.param(
            VALID_HEAD + "  - just a string\n",
            "s.yaml:5: step must be a mapping of keys to values",
            id="step-not-a-mapping",
        ),
    ],
)
def test_each_problem_is_reported_on_its_line(text: str, expected: str) -> None:
    assert problems_of(text) == [expected]


def test_an_unquoted_out_of_range_at_is_reported_on_its_line() -> None:
    # YAML 1.1 reads an unquoted 25:00 as the number 1500 before the loader sees it.
    text = VALID_HEAD + "  - id: a\n    kind: educate\n    at: 25:00\n    template: t\n    subject: s\n"
    problems = problems_of(text)
    assert len(problems) == 1
    assert problems[0].startswith("s.yaml:7: bad time of day ")


def test_a_null_subject_is_reported_instead_of_becoming_the_text_none() -> None:
    # `subject: ~` (or `null`) is a YAML null: it must not be sent as the subject "None".
    assert problems_of(VALID_HEAD + "  - id: a\n    kind: educate\n    template: t\n    subject: ~\n") == [
        "s.yaml:8: 'subject' must be a non-empty text"
    ]


def test_a_duplicate_step_id_points_to_its_line_and_mentions_the_first_one() -> None:
    text = VALID_HEAD + (
        "  - id: welcome\n    kind: educate\n    template: t\n    subject: s\n"
        "\n"
        "  - id: welcome\n    kind: offer\n    template: u\n    subject: s\n"
    )
    assert problems_of(text) == ["s.yaml:10: duplicate step id 'welcome' (first used on line 5)"]


def test_a_step_id_used_three_times_always_refers_to_the_first() -> None:
    step = "  - id: x\n    kind: educate\n    template: t\n    subject: s\n"
    assert problems_of(VALID_HEAD + step * 3) == [
        "s.yaml:13: duplicate step id 'x' (first used on line 5)",
        "s.yaml:9: duplicate step id 'x' (first used on line 5)",
    ]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("id: demo\nname: [unclosed\nstage: capture-leads\n", 3, "expected ',' or ']'"),
        ("id: demo\n  name: indented\n", 2, "mapping values are not allowed here"),
        ("id: demo\nname: Demo\nsteps:\n  - id: a\n    subject: Hi: there\n", 5, "mapping values are not allowed here"),
        ("id: demo\nname: Demo\n\tstage: capture-leads\n", 3, "found character '\\t'"),
    ],
)
def test_a_yaml_syntax_error_is_reported_on_its_line(text: str, line: int, reason: str) -> None:
    sequence, problems = parse_sequence(text, "s.yaml")
    assert sequence is None
    assert len(problems) == 1
    assert problems[0].line == line
    assert problems[0].message.startswith("YAML syntax error: ")
    assert reason in problems[0].message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_an_empty_file_is_reported_on_line_one(text: str) -> None:
    sequence, problems = parse_sequence(text, "s.yaml")
    assert sequence is None
    assert [str(p) for p in problems] == ["s.yaml:1: file is empty"]


# --- many problems at once ------------------------------------------------------------------------------------

MANY_PROBLEMS = """\
id: Bad_Id
name: Demo
stage: nowhere
colour: red
steps:
  - id: a
    kind: educate
    channel: email
    wait: 2 days
    at: noon
    on: funday
    template: lead/edu-1
    subject: "x"
    subjet: typo
  - id: a
    kind: shout
    channel: fax
    template: t
  - id: b
    kind: offer
    template: t
    subject: s
    on: [mon, frx]
  - id: c
    template: t
    subject: s
"""


def test_every_problem_in_a_file_is_reported_in_one_call() -> None:
    sequence, problems = parse_sequence(MANY_PROBLEMS, "sequences/many.yaml")
    assert sequence is None
    assert sorted(str(p) for p in problems) == sorted([
        "sequences/many.yaml:1: id 'Bad_Id' must use lowercase letters, digits and dashes",
        "sequences/many.yaml:3: unknown stage 'nowhere' (expected one of: attract-traffic, capture-leads, "
        "nurture-prospects, convert-sales, deliver-satisfy, upsell-customers, get-referrals)",
        "sequences/many.yaml:4: unknown key 'colour' in sequence "
        f"(allowed: {SEQUENCE_ALLOWED})",
        "sequences/many.yaml:9: bad duration '2 days': use numbers with d, h, m or s, like '2d 4h' or '90m'",
        "sequences/many.yaml:10: bad time of day 'noon': use HH:MM, like \"10:00\"",
        "sequences/many.yaml:11: unknown day 'funday': use mon, tue, wed, thu, fri, sat, sun",
        "sequences/many.yaml:14: unknown key 'subjet' in step "
        f"(allowed: {STEP_ALLOWED})",
        "sequences/many.yaml:15: duplicate step id 'a' (first used on line 6)",
        "sequences/many.yaml:16: unknown kind 'shout' "
        "(expected one of: educate, offer, thank-you, feedback, referral-request, upsell)",
        "sequences/many.yaml:17: unknown channel 'fax' (expected one of: email, sms)",
        "sequences/many.yaml:23: unknown day 'frx': use mon, tue, wed, thu, fri, sat, sun",
        "sequences/many.yaml:24: step is missing required key 'kind'",
    ])


def test_partial_parsing_returns_the_sequence_along_with_its_problems() -> None:
    sequence, problems = parse_sequence(MANY_PROBLEMS, "many.yaml", partial=True)
    assert sequence is not None
    assert len(problems) == 12
    assert [s.id for s in sequence.steps] == ["a", "a", "b", "c"]


def test_a_file_with_problems_gives_no_sequence_by_default() -> None:
    sequence, problems = parse_sequence(MANY_PROBLEMS, "many.yaml")
    assert sequence is None
    assert problems


# --- Problem --------------------------------------------------------------------------------------------------


def test_a_problem_prints_as_path_line_message() -> None:
    assert str(Problem("sequences/lead.yaml", 12, "unknown key 'x'")) == "sequences/lead.yaml:12: unknown key 'x'"


def test_problems_sort_by_path_then_line() -> None:
    problems = [Problem("b.yaml", 1, "z"), Problem("a.yaml", 10, "y"), Problem("a.yaml", 2, "x")]
    assert sorted(problems) == [Problem("a.yaml", 2, "x"), Problem("a.yaml", 10, "y"), Problem("b.yaml", 1, "z")]


def test_a_sequence_file_error_lists_every_problem_one_per_line() -> None:
    error = SequenceFileError([Problem("a.yaml", 1, "first"), Problem("b.yaml", 3, "second")])
    assert str(error) == "a.yaml:1: first\nb.yaml:3: second"
    assert len(error.problems) == 2


# --- load_sequences on a directory ----------------------------------------------------------------------------


def write_sequence(directory: Path, filename: str, sequence_id: str, header: str = "") -> Path:
    path = directory / filename
    path.write_text(
        header
        + f"id: {sequence_id}\nname: {sequence_id.title()}\nstage: capture-leads\nsteps:\n"
        + "  - id: first\n    kind: educate\n    template: lead/edu-1\n    subject: Hello\n",
        encoding="utf-8",
    )
    return path


def test_every_sequence_file_in_a_directory_is_loaded_by_id(tmp_path: Path) -> None:
    write_sequence(tmp_path, "one.yaml", "one")
    write_sequence(tmp_path, "two.yml", "two")
    (tmp_path / "notes.txt").write_text("id: not-a-sequence\n", encoding="utf-8")
    (tmp_path / "old.yaml.bak").write_text("id: [broken\n", encoding="utf-8")
    sequences, problems = load_sequences(tmp_path, display_root=tmp_path)
    assert problems == []
    assert sorted(sequences) == ["one", "two"]
    assert sequences["one"].path == "one.yaml"
    assert sequences["two"].path == "two.yml"


def test_paths_are_shown_relative_to_the_display_root(tmp_path: Path) -> None:
    directory = tmp_path / "sequences"
    directory.mkdir()
    (directory / "bad.yaml").write_text("id: x\nname: X\nstage: capture-leads\nsteps: []\n", encoding="utf-8")
    _, problems = load_sequences(directory, display_root=tmp_path)
    assert [str(p) for p in problems] == ["sequences/bad.yaml:4: 'steps' must be a non-empty list of steps"]
    _, problems = load_sequences(directory)
    assert [str(p) for p in problems] == [f"{directory / 'bad.yaml'}:4: 'steps' must be a non-empty list of steps"]


def test_a_duplicate_sequence_id_across_two_files_is_a_problem_naming_the_first_file(tmp_path: Path) -> None:
    write_sequence(tmp_path, "a-first.yaml", "welcome")
    write_sequence(tmp_path, "b-second.yaml", "welcome")
    sequences, problems = load_sequences(tmp_path, display_root=tmp_path)
    assert [str(p) for p in problems] == [
        "b-second.yaml:1: sequence id 'welcome' is already used by a-first.yaml"
    ]
    assert list(sequences) == ["welcome"]
    assert sequences["welcome"].path == "a-first.yaml"


def test_a_broken_file_does_not_stop_the_others_from_loading(tmp_path: Path) -> None:
    write_sequence(tmp_path, "good.yaml", "good")
    (tmp_path / "broken.yaml").write_text("id: broken\nname: [oops\n", encoding="utf-8")
    (tmp_path / "empty.yaml").write_text("", encoding="utf-8")
    sequences, problems = load_sequences(tmp_path, display_root=tmp_path)
    assert list(sequences) == ["good"]
    assert [(p.path, p.line) for p in problems] == [("broken.yaml", 3), ("empty.yaml", 1)]
    assert problems[0].message.startswith("YAML syntax error")
    assert problems[1].message == "file is empty"


def test_problems_in_several_files_are_all_reported_in_one_call(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VALID_HEAD + "  - id: x\n    kind: nope\n    template: t\n    subject: s\n",
                                     encoding="utf-8")
    (tmp_path / "b.yaml").write_text(VALID_HEAD.replace("demo", "other") + "  - id: y\n    kind: educate\n"
                                     "    template: t\n    subject: s\n    wait: soon\n", encoding="utf-8")
    _, problems = load_sequences(tmp_path, display_root=tmp_path)
    assert [(p.path, p.line) for p in problems] == [("a.yaml", 6), ("b.yaml", 9)]


def test_an_empty_directory_loads_nothing_without_problems(tmp_path: Path) -> None:
    assert load_sequences(tmp_path) == ({}, [])


def test_the_starter_sequence_files_load_with_no_problems() -> None:
    sequences, problems = load_sequences(CONTENT / "sequences", display_root=CONTENT)
    assert problems == []
    assert {"customer", "lead-nurture", "hot-lead"} <= set(sequences)
    lead = sequences["lead-nurture"]
    assert [s.id for s in lead.steps] == ["edu-1", "edu-2", "edu-3", "offer"]
    assert lead.steps[1].wait.at == time(10, 0)
    assert lead.steps[1].wait.days == DAY_SETS["weekdays"]
    customer = sequences["customer"]
    assert [s.id for s in customer.steps] == ["thank-you", "feedback", "wait-rating", "referral-request", "upsell"]
    assert customer.steps[4].wait.delay == Delay(days=14)
    assert customer.steps[3].condition is not None and customer.steps[2].wait_for is not None
    assert [o.product for o in customer.steps[4].offers] == ["glaze-kit", "wheel-6-week", "wheel-6-week"]
    message_steps = [s for seq in sequences.values() for s in seq.steps if s.sends and not s.offers]
    assert all(s.template and s.subject for s in message_steps)


# --- version --------------------------------------------------------------------------------------------------


def test_the_version_is_a_short_hash_of_the_file_text() -> None:
    version = parse_ok(COMPLETE).version
    assert len(version) == 12
    assert int(version, 16) >= 0
    assert parse_ok(COMPLETE).version == version


def test_the_version_changes_when_the_file_text_changes() -> None:
    original = parse_ok(COMPLETE).version
    assert parse_ok(COMPLETE.replace("15% off", "20% off")).version != original
    assert parse_ok(COMPLETE + "\n# a trailing comment\n").version != original


def test_the_version_of_a_file_on_disk_changes_when_it_is_edited(tmp_path: Path) -> None:
    path = write_sequence(tmp_path, "one.yaml", "one")
    before = load_sequences(tmp_path)[0]["one"].version
    path.write_text(path.read_text(encoding="utf-8").replace("Hello", "Hello again"), encoding="utf-8")
    after = load_sequences(tmp_path)[0]["one"].version
    assert before != after


def test_enter_segment_is_a_segment_trigger_and_anything_else_is_refused_at_its_line() -> None:
    sequence = parse_ok("""
        id: come-back
        name: Come back
        stage: upsell-customers
        enter: {segment: lapsed}
        trigger:
          - {tag: vip}
        steps:
          - {id: hello, kind: educate, template: t, subject: Hi}
    """)
    assert [(t.kind, t.value) for t in sequence.triggers] == [("tag", "vip"), ("segment", "lapsed")]
    assert problems_of("""
        id: come-back
        name: Come back
        stage: upsell-customers
        enter: {tag: vip}
        steps:
          - {id: hello, kind: educate, template: t, subject: Hi}
    """) == ["s.yaml:4: enter takes {segment: ID} (those coming into the segment enter); got {'tag': 'vip'}"]
