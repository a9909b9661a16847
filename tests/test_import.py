"""Importing contacts from CSV: each bad row reported as FILE:line: reason while the rest go in, the preview
that writes nothing, the merge rule, consent only with a text and a legal basis, suppressed and
unsubscribed addresses respected, and no sequence unless asked. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from nurture.people import importing
from nurture.people import suppression as suppressions
from nurture.people.import_file import UnreadableFile, parse_csv
from nurture.people.preferences import Origin, unsubscribe_all
from nurture.rules import import_mapping
from nurture.rules.import_mapping import BadMapping
from nurture.store.models import Consent, Contact, Event, Subscription
from tests.conftest import _postgres_database
from tests.helpers import add_contact, deliveries, send_due
from tests.import_support import LEADS, consents_of, contact, count, enrollments_of, run_cli, write_csv

# --- the mapping (pure) ---------------------------------------------------------------------------------------


def test_it_guesses_columns_from_headers_other_tools_write() -> None:
    headers = ["E-mail Address", "First Name", "Surname", "Mobile", "Company name", "Tags", "???"]
    assert import_mapping.guess(headers) == {0: "email", 1: "first_name", 2: "last_name", 3: "phone",
                                             4: "fields.company_name", 5: "tags"}


def test_a_given_mapping_wins_over_the_guess_and_bad_ones_are_refused_with_a_reason() -> None:
    headers = ["Mail", "Name", "Plan"]
    mapping = import_mapping.build(headers, import_mapping.parse_pairs(["Name=first_name,Plan=ignore"]))
    assert mapping.targets == {0: "email", 1: "first_name"}
    assert mapping.values(["a@b.c"]) == {"email": "a@b.c", "first_name": ""}  # a short row: empty cells
    with pytest.raises(BadMapping, match="no column 'Nope'"):
        import_mapping.build(headers, {"Nope": "email"})
    with pytest.raises(BadMapping, match="not a target"):
        import_mapping.build(headers, {"Plan": "fields.bad name"})
    with pytest.raises(BadMapping, match="both mapped to email"):
        import_mapping.build(headers, {"Name": "email"})
    with pytest.raises(BadMapping, match="no column is mapped to email"):
        import_mapping.build(headers, {"Mail": "ignore"})
    with pytest.raises(BadMapping, match="COLUMN=TARGET"):
        import_mapping.parse_pairs(["email"])


def test_tags_split_at_commas_and_semicolons() -> None:
    assert import_mapping.split_tags(" vip, wheel;;news |x ") == ("vip", "wheel", "news", "x")


def test_a_file_that_is_not_utf8_is_refused_with_its_line_before_anything_is_read() -> None:
    with pytest.raises(UnreadableFile, match=r"^old\.csv:3: not UTF-8"):
        parse_csv("email,name\nann@example.com,Ann\nbob@example.com,J\xfcrgen\n".encode("latin-1"), "old.csv")
    with pytest.raises(UnreadableFile, match="no header row"):
        parse_csv(b"\n\n", "empty.csv")
    semicolons = parse_csv("email;Vorname\nann@example.com;J\u00fcrgen\n".encode(), "de.csv")
    assert semicolons.headers == ("email", "Vorname")
    assert [r.cells for r in semicolons.rows()] == [["ann@example.com", "J\u00fcrgen"]]


# --- the CLI, on both databases --------------------------------------------------------------------------------


def test_it_imports_the_good_rows_and_reports_each_bad_one_as_file_line_reason(
        make_runtime, database_url: str, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = make_runtime(database_url)
    path = write_csv(tmp_path, LEADS)
    result = run_cli(monkeypatch, project, database_url, "contacts", "import", str(path))
    assert result.exit_code == 0, result.output
    assert f"{path}:3: email: An email address must have an @-sign." in result.output
    assert f"{path}:4: phone: '12' is not a valid phone number" in result.output
    assert f"{path}:5: the same address as line 2: skipped" in result.output
    assert "5 rows: 2 created, 0 updated, 0 unchanged, 3 skipped" in result.output
    ann = contact(rt, "ann@example.com")
    assert ann is not None and (ann.first_name, ann.phone, ann.tags) == ("Ann", "+14155552671", ["vip", "wheel"])
    assert ann.fields == {"company": "Kiln Co"} and ann.source == "import:leads.csv"
    # No consent was given: no marketing email, no consent record, no sequence.
    assert ann.email_status == Subscription.NONE and ann.sms_status == Subscription.NONE
    assert consents_of(rt, "ann@example.com") == [] and enrollments_of(rt, "ann@example.com") == []
    assert contact(rt, "carl@example.com") is None


def test_consent_needs_its_text_and_a_legal_basis_and_is_recorded_with_both(
        make_runtime, database_url: str, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = make_runtime(database_url)
    path = write_csv(tmp_path, LEADS)
    refused = run_cli(monkeypatch, project, database_url, "contacts", "import", str(path), "--consent", "Yes")
    assert refused.exit_code == 1 and "needs both the text" in refused.output
    assert count(rt, Contact) == 0  # refused before a row was read

    result = run_cli(monkeypatch, project, database_url, "contacts", "import", str(path),
                     "--consent", "Yes, send me the studio's news", "--consent-basis", "existing-customer")
    assert result.exit_code == 0, result.output
    assert "2 subscribed under the consent given" in result.output
    assert contact(rt, "dora@example.com").email_status == Subscription.SUBSCRIBED
    [record] = consents_of(rt, "dora@example.com")
    assert (record.method, record.action, record.legal_basis, record.consent_text) == (
        "import", "opt-in", "existing-customer", "Yes, send me the studio's news")
    assert len(record.consent_hash) == 64
    shown = run_cli(monkeypatch, project, database_url, "contacts", "consent", "dora@example.com")
    assert "email opt-in (all) via import, basis existing-customer" in shown.output, shown.output


def test_it_never_adds_a_suppressed_address_nor_resubscribes_an_unsubscribed_one(
        make_runtime, database_url: str, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = make_runtime(database_url)
    add_contact(rt, "ann@example.com", first_name="Ann")
    now = rt.clock()
    with Session(rt.db) as session:
        unsubscribe_all(session, session.get(Contact, 1), Origin(method="one-click"), now)
        suppressions.add(session, "Dora@Example.com", "complaint", now)
        session.commit()
    path = write_csv(tmp_path, LEADS)
    result = run_cli(monkeypatch, project, database_url, "contacts", "import", str(path), "--sequence",
                     "lead-nurture", "--consent", "Yes please", "--consent-basis", "consent")
    assert result.exit_code == 0, result.output
    assert f"{path}:6: address is suppressed (complaint): not imported" in result.output
    assert contact(rt, "dora@example.com") is None
    ann = contact(rt, "ann@example.com")
    assert ann.email_status == Subscription.UNSUBSCRIBED and ann.last_name == "Lee"  # merged, not resubscribed
    assert [c.action for c in consents_of(rt, "ann@example.com")] == ["opt-out"]
    assert enrollments_of(rt, "ann@example.com") == []
    assert send_due(rt) == {} and deliveries(rt) == []


def test_a_sequence_starts_only_when_asked_and_only_for_those_who_may_receive_it(make_runtime,  # noqa: ANN001
                                                                                 database_url: str) -> None:
    rt = make_runtime(database_url)
    csv_file = parse_csv(b"email,first_name\nann@example.com,Ann\nbob@example.com,Bob\n", "f.csv")
    mapping = import_mapping.build(csv_file.headers)
    lead_nurture = rt.sequences.get("lead-nurture")

    def run(**options: object) -> importing.Report:
        opts = importing.options("f.csv", stages=rt.sequences.lifecycle.stages, **options)  # type: ignore[arg-type]
        return importing.run(rt.db, csv_file, mapping, opts, rt.clock(), write=True)

    assert run().enrolled == 0 and enrollments_of(rt, "ann@example.com") == []
    # Asked, without consent: nobody may get a marketing sequence, so nobody is enrolled.
    report = run(sequence=lead_nurture)
    assert report.enrolled == 0 and report.sample[0].detail == "not enrolled: no marketing consent (email none)"
    # With consent: both are subscribed (they were never asked) and enrolled, and the worker sends the first step.
    report = run(sequence=lead_nurture, consent_text="Yes", legal_basis="consent")
    assert (report.consented, report.enrolled) == (2, 2)
    assert [e.step_id for e in enrollments_of(rt, "bob@example.com")] == ["edu-1"]
    assert send_due(rt).get("sent") == 2
    report = run(sequence=lead_nurture)
    assert report.enrolled == 0 and report.sample[1].detail == "not enrolled: already in lead-nurture"
    assert len(enrollments_of(rt, "bob@example.com")) == 1


def test_a_known_contact_is_merged_by_the_one_rule_filling_only_what_is_empty(
        make_runtime, database_url: str, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = make_runtime(database_url)
    add_contact(rt, "ann@example.com", first_name="Ann", tags=("old",), fields={"plan": "wheel"})
    path = write_csv(tmp_path, "email,first_name,last_name,tags,plan,stage\n"
                               "ann@example.com,Annie,Lee,new,glaze,customer\n")
    result = run_cli(monkeypatch, project, database_url, "contacts", "import", str(path), "--dry-run")
    assert "1 updated" in result.output and "dry run: nothing written" in result.output
    assert contact(rt, "ann@example.com").last_name == ""
    result = run_cli(monkeypatch, project, database_url, "contacts", "import", str(path))
    ann = contact(rt, "ann@example.com")
    assert (ann.first_name, ann.last_name, ann.tags, ann.fields, ann.stage) == (
        "Ann", "Lee", ["old", "new"], {"plan": "wheel"}, "lead")
    with Session(rt.db) as session:
        merged = list(session.exec(select(Event).where(Event.type == "contact.merged")))
    assert merged[0].data["filled"] == {"last_name": "Lee", "tags": ["new"]}
    assert set(merged[0].data["kept"]) == {"first_name", "fields.plan", "stage"}


# --- the engine: the preview is the import, batch after batch --------------------------------------------------


def test_the_preview_says_what_each_row_will_do_writes_nothing_and_the_import_then_does_it(
        make_runtime, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importing, "BATCH", 2)  # a duplicate and a merge across batches
    rt = make_runtime(database_url)
    add_contact(rt, "known@example.com")
    csv_file = parse_csv(b"email,name,stage\nann@example.com,Ann,customer\nknown@example.com,Kay,\n"
                         b"x@,X,\nann@example.com,Again,\nbea@example.com,Bea,nope\n", "f.csv")
    mapping = import_mapping.build(csv_file.headers, {"name": "first_name"})
    opts = importing.options("f.csv", stages=rt.sequences.lifecycle.stages)
    preview = importing.run(rt.db, csv_file, mapping, opts, rt.clock(), write=False)
    outcomes = [(r.line, r.outcome, r.detail) for r in preview.sample]
    assert outcomes == [
        (2, "created", ""), (3, "updated", "filled first_name"),
        (4, "skipped", "email: There must be something after the @-sign."),
        (5, "skipped", "the same address as line 2: skipped"),
        (6, "skipped", "stage: 'nope' is not a stage (known: lead, prospect, customer, repeat-customer, advocate)"),
    ]
    assert count(rt, Contact) == 1 and contact(rt, "known@example.com").first_name == ""
    done = importing.run(rt.db, csv_file, mapping, opts, rt.clock(), write=True)
    assert [(r.line, r.outcome, r.detail) for r in done.sample] == outcomes
    assert contact(rt, "ann@example.com").stage == "customer"
    assert contact(rt, "known@example.com").first_name == "Kay"
    assert count(rt, Consent) == 0


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _postgres_database()


def test_an_address_that_signs_up_while_its_batch_is_matched_is_merged_not_lost(
        make_runtime, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """The race, on PostgreSQL: the batch looks its addresses up, a sign-up commits one of them, the batch
    then inserts it and meets the unique key; it runs once more and finds the contact known. (On SQLite
    it cannot happen: a batch holds the write lock from its first statement, BEGIN IMMEDIATE, and the
    sign-up waits for its commit.)"""
    from nurture.store import importing as store

    rt = make_runtime(postgres_url)
    lookup = store.contacts_by_email
    raced: list[str] = []

    def lookup_then_a_signup_commits(session: Session, emails: list[str]) -> dict:
        found = lookup(session, emails)
        if not raced:
            raced.append(emails[0])
            add_contact(rt, emails[0], first_name="Signed")  # another session, committed
        return found

    monkeypatch.setattr(store, "contacts_by_email", lookup_then_a_signup_commits)
    csv_file = parse_csv(b"email,first_name,last_name\nann@example.com,Ann,Lee\nbob@example.com,Bob,Ode\n", "f.csv")
    opts = importing.options("f.csv", stages=rt.sequences.lifecycle.stages)
    report = importing.run(rt.db, csv_file, import_mapping.build(csv_file.headers), opts, rt.clock(), write=True)
    assert [(r.email, r.outcome) for r in report.sample] == [("ann@example.com", "updated"),
                                                             ("bob@example.com", "created")]
    ann = contact(rt, "ann@example.com")
    assert (ann.first_name, ann.last_name) == ("Signed", "Lee") and count(rt, Contact) == 2
