"""`nurture segments list|count`, `nurture check` on segment files and on sequences naming segments, and
`simulate`/`why` explaining a segment condition."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner
from sqlmodel import Session

from nurture.cli import main
from nurture.insight import simulate, why
from nurture.rules.conditions import EventFact
from nurture.rules.lifecycle import Lifecycle
from nurture.runtime import Runtime
from tests.conftest import worker_env, write_sequence
from tests.helpers import add_contact, send_due
from tests.segments_support import segment
from tests.test_segment_trigger import sequence_text, write_segment


def test_list_and_count_say_how_many_are_in_each_segment_now(make_runtime, sqlite_url: str, project: Path) -> None:  # noqa: ANN001
    write_segment(project, "vips", "{tag: vip}")
    write_segment(project, "vip-leads", "{all: [{segment: vips}, {stage: lead}]}")
    rt: Runtime = make_runtime(sqlite_url)
    for n in range(5):
        add_contact(rt, f"p{n}@example.com", tags=("vip",) if n < 3 else ())
    env = worker_env(project, sqlite_url)
    runner = CliRunner()
    listed = runner.invoke(main, ["segments", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines() == ["vip-leads\t3\tVip-Leads\tin segment vips and at stage lead",
                                          "vips\t3\tVips\ttagged “vip”"]
    counted = runner.invoke(main, ["segments", "count", "vips"], env=env)
    assert (counted.exit_code, counted.output) == (0, "3\n")
    unknown = runner.invoke(main, ["segments", "count", "nope"], env=env)
    assert (unknown.exit_code, unknown.output) == (1, "nurture: unknown segment 'nope' (known: vip-leads, vips)\n")


def test_check_reports_each_segment_problem_at_its_line(project: Path, tmp_path: Path) -> None:
    write_segment(project, "a", "{all: [{segment: b}, {tag: x}]}")
    write_segment(project, "b", "{any: [{segment: a}, {tag: y}]}")
    write_segment(project, "c", "{opened: edu-1}")
    (project / "segments" / "d.yaml").write_text("id: d\nname: D\nsize: big\ncondition: {tag: x}\n")
    write_segment(project, "e", "{field: {plan: [a, b]}}")
    write_segment(project, "f", "{stage: [lead, custmer]}")
    write_sequence(project, "uses", sequence_text("uses", "{segment: nowhere}", step_if="{segment: a}"))
    result = CliRunner().invoke(main, ["check", "--root", str(project)],
                                env={"VAR_DIR": str(tmp_path / "var"), "SECRET_KEY": "x" * 32, "API_KEY": "k" * 32})
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if "segment" in line]
    assert lines == [
        "segments/c.yaml:3: opened names a step of a sequence, and a segment has none: use "
        "{event: email.opened, where: {sequence: ID, step: ID}}",
        "segments/d.yaml:3: unknown key 'size' in segment (allowed: condition, description, id, name)",
        "segments/e.yaml:3: field 'plan' is compared with a text, a number, true/false or null; got ['a', 'b']",
        "segments/a.yaml:3: segments refer to each other in a circle: a -> b -> a",
        "segments/b.yaml:3: segments refer to each other in a circle: b -> a -> b",
        "segments/f.yaml:3: unknown stage 'custmer' (stages: lead, prospect, customer, repeat-customer, advocate)",
        "sequences/uses.yaml:4: sequence 'uses' names unknown segment 'nowhere' (no segments/*.yaml has that id)",
    ]


def test_simulate_says_what_a_segment_means_and_whether_the_contact_is_in_it(project: Path) -> None:
    buyers = segment("buyers", {"event": "purchase", "within": "30d"})
    write_sequence(project, "for-buyers", sequence_text("for-buyers", step_if="{segment: buyers}"))
    from nurture.content.loader import parse_sequence

    sequence, problems = parse_sequence((project / "sequences" / "for-buyers.yaml").read_text(), "for-buyers.yaml")
    assert sequence is not None and not problems
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    contact = simulate.parse_contact("", Lifecycle())
    bought = EventFact("purchase", datetime(2026, 11, 20, tzinfo=UTC), {})
    skipped = simulate.simulate(sequence, contact, start, [], segments={"buyers": buyers})
    sent = simulate.simulate(sequence, contact, start, [bought], segments={"buyers": buyers})
    assert [e.what for e in skipped.entries] == ["skipped", "completed"]
    assert "sent" in [e.what for e in sent.entries]
    assert skipped.notes == ("segment buyers (buyers): had a purchase event in the last 30 days — not in it "
                             "at the start",)
    assert sent.notes == ("segment buyers (buyers): had a purchase event in the last 30 days — in it at the start",)
    assert simulate.format_timeline(skipped)[-1] == "  " + skipped.notes[0]
    assert simulate.timeline_json(sent)["segments"] == list(sent.notes)


def test_why_explains_a_step_skipped_for_a_segment(make_runtime, sqlite_url: str, project: Path) -> None:  # noqa: ANN001
    write_segment(project, "vips", "{tag: vip}")
    write_sequence(project, "vip-only", sequence_text("vip-only", step_if="{segment: vips}"))
    rt: Runtime = make_runtime(sqlite_url)
    add_contact(rt, "ann@example.com", "vip-only")
    send_due(rt)
    with Session(rt.db) as session:
        story = why.explain(session, "ann@example.com", rt.sequences, rt.clock())
    assert [(line.what, line.reason) for line in story.runs[0].lines][0] == (
        "skipped", "condition false: segment vips; segment vips (Vips): tagged “vip”")
    assert json.dumps(why.story_json(story))  # the JSON form carries it too
