"""The console's home page, the lifecycle map, from real rows on SQLite and PostgreSQL: where contacts are,
who moved on, who is parked; the same picture as SVG and PDF, in the page and from `nurture map`."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner
from sqlmodel import Session

from nurture.cli import main
from nurture.insight.map_sheet import current_map
from nurture.people import automation
from nurture.store.models import Contact
from tests.conftest import ROOT, worker_env
from tests.console_support import logged_in
from tests.helpers import add_contact, send_due

AUTH = {"Authorization": "Bearer test-api-key-0123456789"}


def stages(rt) -> dict:  # noqa: ANN001
    return {stage.stage: stage for stage in current_map(rt).stages}


def sequence_of(rt, sequence_id: str):  # noqa: ANN001, ANN201
    return next(s for stage in current_map(rt).stages for s in stage.sequences if s.id == sequence_id)


def purchase(rt, contact_id: int) -> None:  # noqa: ANN001
    with Session(rt.db) as session:
        automation.record(session, rt, session.get(Contact, contact_id), "purchase", {}, rt.clock(), None)
        session.commit()


def test_leads_in_lead_nurture_count_at_their_stage_and_in_the_sequence(make_runtime, database_url) -> None:
    """The old overview put 2 contacts under capture-leads and showed Lead nurture's row with 0."""
    rt = make_runtime(database_url)
    for email in ("ann@example.com", "bob@example.com"):
        add_contact(rt, email, "lead-nurture")
    by_stage = stages(rt)
    assert by_stage["capture-leads"].at_stage == 2 and by_stage["capture-leads"].in_sequences == 0
    assert by_stage["nurture-prospects"].in_sequences == 2
    lead_nurture = sequence_of(rt, "lead-nurture")
    assert lead_nurture.in_sequence == 2 and lead_nurture.steps[0].waiting == 2
    send_due(rt)
    assert [s.waiting for s in sequence_of(rt, "lead-nurture").steps] == [0, 2, 0, 0]


def test_a_purchase_moves_a_contact_on_for_thirty_days(make_runtime, database_url, clock) -> None:
    rt = make_runtime(database_url)
    ann = add_contact(rt, "ann@example.com", "lead-nurture")
    add_contact(rt, "bob@example.com")
    purchase(rt, ann)
    by_stage = stages(rt)
    assert by_stage["capture-leads"].moved_on == 1 and by_stage["capture-leads"].at_stage == 1
    assert by_stage["deliver-satisfy"].at_stage == 1 and by_stage["deliver-satisfy"].in_sequences == 1
    clock.advance(days=31)
    assert stages(rt)["capture-leads"].moved_on == 0


def test_contacts_in_a_step_a_day_past_its_wait_are_parked(make_runtime, database_url, clock) -> None:
    rt = make_runtime(database_url)
    add_contact(rt, "ann@example.com", "lead-nurture")  # edu-1 is due at once
    clock.advance(hours=23)
    assert sequence_of(rt, "lead-nurture").steps[0].parked == 0
    clock.advance(hours=2)  # nothing sent it: the worker is down, say
    lifecycle_map = current_map(rt)
    assert [(g.kind, g.sequence, g.step) for g in lifecycle_map.gaps if g.kind == "parked"] == [
        ("parked", "lead-nurture", "edu-1")]
    send_due(rt)
    assert not [g for g in current_map(rt).gaps if g.kind == "parked"]


def test_the_map_page_shows_each_sequence_and_where_contacts_wait(make_runtime, database_url) -> None:
    rt = make_runtime(database_url)
    client = logged_in(rt)
    client.post("/api/contacts", headers=AUTH, json={"email": "a@example.com", "sequence": "lead-nurture"})
    page = client.get("/").get_data(as_text=True)
    assert "Lead nurture" in page and "New customer" in page and "edu-1" in page
    assert "<svg " in page and "The lifecycle map" in page


def test_a_name_with_markup_is_escaped_on_the_map(make_runtime, sqlite_url) -> None:
    rt = make_runtime(sqlite_url)
    client = logged_in(rt)
    client.post("/api/contacts", headers=AUTH, json={"email": "a@example.com", "first_name": "<script>x</script>"})
    assert "<script>x" not in client.get("/").get_data(as_text=True)


def test_the_map_shows_the_lifecycle_and_its_gaps_to_a_logged_in_user_only(make_runtime, sqlite_url) -> None:
    rt = make_runtime(sqlite_url)
    client = logged_in(rt, "viewer")
    page = client.get("/").get_data(as_text=True)
    assert "deliver-satisfy" in page and "New customer" in page
    assert page.count('data-gap="no-sequence"') == 1  # attract-traffic: nothing automates it
    assert 'data-gap="no-sequence" data-stage="attract-traffic"' in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing from elsewhere
    assert "https://" not in page


def test_the_map_comes_as_svg_and_as_a_one_page_pdf(make_runtime, sqlite_url) -> None:
    rt = make_runtime(sqlite_url)
    client = logged_in(rt, "viewer")
    svg = client.get("/map.svg")
    assert svg.mimetype == "image/svg+xml" and svg.get_data(as_text=True).startswith("<svg ")
    for paper in ("a4", "letter"):
        pdf = client.get(f"/map.pdf?paper={paper}")
        assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
        assert pdf.data.count(b"/Type /Page\n") + pdf.data.count(b"/Type /Page ") + \
            pdf.data.count(b"/Type /Page>") == 1


def test_nurture_map_writes_the_same_sheet(sqlite_url, project: Path, tmp_path: Path,
                                           monkeypatch) -> None:
    shutil.copytree(ROOT / "forms", project / "forms")
    for key, value in worker_env(project, sqlite_url).items():
        monkeypatch.setenv(key, value)
    added = CliRunner().invoke(main, ["contacts", "add", "ann@example.com", "--sequence", "lead-nurture"])
    assert added.exit_code == 0, added.output
    out_pdf, out_svg = tmp_path / "map.pdf", tmp_path / "map.svg"
    result = CliRunner().invoke(main, ["map", "--pdf", str(out_pdf), "--svg", str(out_svg), "--paper", "letter"])
    assert result.exit_code == 0, result.output
    assert "1 contacts, 1 gap(s)" in result.output and "attract-traffic" in result.output
    assert out_pdf.read_bytes().startswith(b"%PDF")
    svg = out_svg.read_text()
    assert "Lead nurture" in svg and ">1<" in svg
    assert CliRunner().invoke(main, ["map"]).exit_code == 1
