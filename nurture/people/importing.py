"""Importing contacts from a CSV file: what each row will do (created, updated, unchanged, skipped and why),
and doing it — the same code for both, so the preview is what the import then does.

The rules an import keeps, whatever the file says:
- every address is checked by email-validator and every number by phonenumbers (people.contacts); a bad
  row is skipped with `FILE:line: reason` and the import goes on;
- an address on the suppression list (a bounce, a complaint, an erased person) is skipped, never added;
- a known contact is merged by the one merge rule (`merge_into`: fills what is empty, never overwrites) and
  keeps its consent: an unsubscribed contact stays unsubscribed;
- without `consent_text` and a `legal_basis`, new contacts get email status `none` (no marketing email);
  with them, new contacts and known ones never asked (`none`) are subscribed and each gets a consent row
  naming the text and the basis. Texts are never turned on by an import (SMS consent is the person's own);
- no sequence is started unless one is named, and then only for contacts who may receive it.

Rows are taken in batches of BATCH: a few selects and multi-row INSERTs each, one transaction per batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import islice
from types import SimpleNamespace

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from nurture.people import import_enroll, suppression
from nurture.people.contacts import UNSTORABLE, ContactInput, InvalidContact, check_text, merge_into, validated
from nurture.people.import_file import CsvFile, CsvRow
from nurture.rules.import_mapping import FIELD_PREFIX, ColumnMapping, split_tags
from nurture.rules.lifecycle import DEFAULT_STAGES
from nurture.rules.sequence import Sequence
from nurture.store import importing as store
from nurture.store.models import Subscription

Known = SimpleNamespace  # a known contact as store.importing reads it: id, email, the merged fields, statuses

WRITERS = 2  # batches written at once on PostgreSQL (see run)
BATCH = 2000  # rows per transaction: big enough that the per-statement cost vanishes, small enough to lock briefly
SAMPLE = 200  # results kept for the preview, besides every skipped row
LEGAL_BASES = ("consent", "contract", "legitimate-interest", "existing-customer")
MAX_CONSENT_TEXT = 2000  # the consent column's size


class ImportRefused(ValueError):
    """Options that cannot be used (consent text without a basis ...): nothing was read or written."""


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class ImportOptions:
    source: str  # recorded as each new contact's source: "import:FILE"
    sequence: Sequence | None = None
    consent_text: str | None = None
    legal_basis: str | None = None
    stages: tuple[str, ...] = tuple(DEFAULT_STAGES)  # the contact stages a `stage` column may name


def options(file_name: str, sequence: Sequence | None = None, consent_text: str | None = None,
            legal_basis: str | None = None, stages: Iterable[str] = DEFAULT_STAGES) -> ImportOptions:
    """Checked options. Raises ImportRefused: consent needs both its text and a basis from LEGAL_BASES."""
    consent_text = (consent_text or "").strip() or None
    legal_basis = (legal_basis or "").strip() or None
    if (consent_text is None) != (legal_basis is None):
        raise ImportRefused("consent needs both the text the people agreed to and its legal basis "
                            "(--consent TEXT --consent-basis BASIS), or neither")
    if legal_basis is not None and legal_basis not in LEGAL_BASES:
        raise ImportRefused(f"legal basis {legal_basis!r}: use one of {', '.join(LEGAL_BASES)}")
    if consent_text is not None and len(consent_text) > MAX_CONSENT_TEXT:
        raise ImportRefused(f"the consent text must be at most {MAX_CONSENT_TEXT} characters")
    if consent_text is not None and UNSTORABLE.search(consent_text):
        raise ImportRefused("the consent text contains a control character or an unpaired surrogate")
    name = "".join(ch if ch.isprintable() else "?" for ch in file_name)[:190]
    return ImportOptions(source=check_text(f"import:{name}", "source", 200), sequence=sequence,
                         consent_text=consent_text, legal_basis=legal_basis, stages=tuple(stages))


@dataclass(frozen=True)
class RowResult:
    line: int
    email: str  # normalised when it passed the checks, else as given
    outcome: Outcome
    detail: str = ""  # why a row is skipped; what an update filled and kept; enrolled or not


@dataclass
class Report:
    file_name: str
    written: bool  # False: a preview, nothing was written
    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    skipped: list[RowResult] = field(default_factory=list)
    sample: list[RowResult] = field(default_factory=list)  # the first SAMPLE rows' results
    consented: int = 0  # contacts subscribed under the import's consent
    enrolled: int = 0

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def add(self, results: Iterable[RowResult]) -> None:
        for result in results:
            self.counts[result.outcome] += 1
            if result.outcome == Outcome.SKIPPED:
                self.skipped.append(result)
            if len(self.sample) < SAMPLE:
                self.sample.append(result)

    def problem_lines(self) -> list[str]:
        """Each skipped row as `FILE:line: reason`."""
        return [f"{self.file_name}:{r.line}: {r.detail}" for r in self.skipped]


@dataclass(frozen=True)
class _Checked:
    """A row that passed every check, ready to be matched against the database."""

    line: int
    data: ContactInput
    stage: str | None


def run(engine: Engine, csv_file: CsvFile, mapping: ColumnMapping, opts: ImportOptions, now: datetime,
        write: bool, progress: Callable[[int, int], None] | None = None) -> Report:
    """Import the file (`write`), or say what importing it would do without writing anything. `progress`
    is called after each batch's commit with (rows done, rows in the file): a caller recording it writes
    once a batch, and what it recorded was written.

    Each batch's rows are checked (email-validator, phonenumbers: all in this process), then written by a
    writer thread in a transaction of its own, while the next batch is checked; on PostgreSQL two batches
    are written at once, on two connections. There the server and the importer took turns, each waiting for
    the other (64 s for 100,000 rows where each needed ~35 s of CPU, bench/README.md, P6). Two batches never
    touch the same contact: checking reads nothing from the database, and a second row with an address is
    skipped by `seen`, in file order, whichever batch the first one is in. Results are taken in file order,
    and `progress` reports a batch only once it and every batch before it are written. A batch that fails
    stops the import, and the one written beside it still commits: run again, an import merges by address.
    (On SQLite one writer: its transactions take turns anyway.)"""
    report = Report(csv_file.name, write)
    seen: dict[str, int] = {}  # address -> the line it was first met on: a second row is a duplicate
    # Counting the rows reads the file once more (about a second for 50 MB): only when someone shows it.
    total = sum(1 for _ in csv_file.rows()) if progress is not None else 0

    def done(written: Future[_Written]) -> None:
        results, consented, enrolled = written.result()  # raises what the writer raised
        report.add(results)
        report.consented += consented
        report.enrolled += enrolled
        if progress is not None:
            progress(report.rows, total)

    writers = WRITERS if engine.dialect.name == "postgresql" else 1
    with ThreadPoolExecutor(max_workers=writers, thread_name_prefix="nurture-import") as writer:
        writing: deque[Future[_Written]] = deque()
        for batch in _batches(csv_file.rows(), BATCH):
            checked = _check_batch(batch, mapping, opts, seen)  # while the batches before are written
            if len(writing) == writers:
                done(writing.popleft())
            writing.append(writer.submit(_write_batch, engine, checked, opts, now, write))
        while writing:
            done(writing.popleft())
    return report


_Checks = tuple[dict[int, RowResult], list["_Checked"]]  # the rows skipped (by line), the rows to match
_Written = tuple[list[RowResult], int, int]  # every row's result, how many were subscribed, enrolled


def _check_batch(rows: list[CsvRow], mapping: ColumnMapping, opts: ImportOptions, seen: dict[str, int]) -> _Checks:
    skipped: dict[int, RowResult] = {}
    checked: list[_Checked] = []
    for row in rows:
        outcome = check_row(row, mapping, opts, seen)
        if isinstance(outcome, RowResult):
            skipped[row.line] = outcome
        else:
            checked.append(outcome)
    return skipped, checked


def _write_batch(engine: Engine, checks: _Checks, opts: ImportOptions, now: datetime, write: bool) -> _Written:
    try:
        return _in_session(engine, checks, opts, now, write)
    except IntegrityError:  # a sign-up took one of these addresses meanwhile: once more, it is known now
        return _in_session(engine, checks, opts, now, write)


def _in_session(engine: Engine, checks: _Checks, opts: ImportOptions, now: datetime, write: bool) -> _Written:
    """One batch in one transaction: committed when `write`, else rolled back (nothing was written)."""
    with Session(engine) as session:
        store.plan_for_growth(session)
        outcome = _batch(session, checks, opts, now, write)
        if write:
            session.commit()
        else:
            session.rollback()
        return outcome


def _batches(rows: Iterator[CsvRow], size: int) -> Iterator[list[CsvRow]]:
    while batch := list(islice(rows, size)):
        yield batch


def _batch(session: Session, checks: _Checks, opts: ImportOptions, now: datetime, write: bool) -> _Written:
    results, checked = dict(checks[0]), checks[1]  # a copy: a retry starts again from the checks
    emails = [c.data.email for c in checked]
    barred = suppression.suppressed_among(session, emails)
    known = store.contacts_by_email(session, emails)
    new = [c for c in checked if c.data.email not in barred and c.data.email not in known]
    for c in checked:
        if c.data.email in barred:
            results[c.line] = RowResult(c.line, c.data.email, Outcome.SKIPPED,
                                        f"address is suppressed ({barred[c.data.email]}): not imported")
    merged = _merge_known([c for c in checked if c.data.email in known], known, opts, now, write, session)
    ids = _create(session, new, opts, now) if write else {}
    consented = _consent(session, new, ids, [contact for _, contact, _ in merged], opts, now, write)
    targets = [import_enroll.Target(c.line, ids.get(c.data.email), c.data.email, c.data.timezone, None)
               for c in new]
    targets += [import_enroll.Target(c.line, contact.id, contact.email, contact.timezone, contact)
                for c, contact, _ in merged]
    notes, enrolled = import_enroll.enroll_all(session, targets, opts, consented, now, write)
    for c in new:
        results[c.line] = RowResult(c.line, c.data.email, Outcome.CREATED, _join(notes.get(c.line)))
    for c, _, merge in merged:
        results[c.line] = _merge_result(c, merge, notes.get(c.line))
    return [results[line] for line in sorted(results)], len(consented), enrolled


def check_row(row: CsvRow, mapping: ColumnMapping, opts: ImportOptions, seen: dict[str, int]) -> _Checked | RowResult:
    """The row's contact, cleaned, or its SKIPPED result with the reason."""
    if row.error is not None:
        return RowResult(row.line, "", Outcome.SKIPPED, row.error)
    values = mapping.values(row.cells)
    given = values.get("email", "")
    fields = {t[len(FIELD_PREFIX):]: v for t, v in values.items() if t.startswith(FIELD_PREFIX) and v}
    try:
        data = validated(ContactInput(
            email=given, first_name=values.get("first_name", ""), last_name=values.get("last_name", ""),
            phone=values.get("phone") or None, timezone=values.get("timezone") or None, fields=fields,
            tags=split_tags(values.get("tags", "")), source=opts.source, locale=values.get("locale") or None))
    except InvalidContact as exc:
        return RowResult(row.line, given, Outcome.SKIPPED, str(exc))
    stage = values.get("stage") or None
    if stage is not None and stage not in opts.stages:
        return RowResult(row.line, data.email, Outcome.SKIPPED,
                         f"stage: {stage!r} is not a stage (known: {', '.join(opts.stages)})")
    first = seen.setdefault(data.email, row.line)
    if first != row.line:
        return RowResult(row.line, data.email, Outcome.SKIPPED, f"the same address as line {first}: skipped")
    return _Checked(row.line, data, stage)


@dataclass(frozen=True)
class _Merged:
    filled: tuple[str, ...]
    kept: tuple[str, ...]
    status: Subscription


def _merge_known(rows: list[_Checked], known: dict[str, Known], opts: ImportOptions, now: datetime,
                 write: bool, session: Session) -> list[tuple[_Checked, Known, _Merged]]:
    """Merge each row into its known contact by the one merge rule, `merge_into` (on the plain row the
    store read; written back when `write`): each row with its contact and what the merge did."""
    merged: list[tuple[_Checked, Known, _Merged]] = []
    updates, events = [], []
    for row in rows:
        contact = known[row.data.email]
        merge = merge_into(contact, row.data)  # type: ignore[arg-type]  # a plain row with Contact's merged fields
        kept = list(merge.kept) + (["stage"] if row.stage and row.stage != contact.stage else [])
        if merge.filled:
            updates.append({"contact_id": contact.id, "updated_at": now,
                            **{name: getattr(contact, name) for name in store.MERGED}})
        if merge.filled or kept:
            events.append(_event(contact.id, "contact.merged", now,
                                 {"source": opts.source, "filled": merge.filled, "kept": kept}))
        merged.append((row, contact, _Merged(tuple(merge.filled), tuple(kept), contact.email_status)))
    if write:
        store.update_merged(session, updates)
        store.insert_events(session, events)
    return merged


def _merge_result(row: _Checked, merge: _Merged, notes: list[str] | None) -> RowResult:
    parts = []
    if merge.filled:
        parts.append("filled " + ", ".join(merge.filled))
    if merge.kept:
        parts.append("kept " + ", ".join(merge.kept) + " on record")
    if merge.status == Subscription.UNSUBSCRIBED:
        parts.append("stays unsubscribed")
    outcome = Outcome.UPDATED if merge.filled else Outcome.UNCHANGED
    return RowResult(row.line, row.data.email, outcome, _join(parts + (notes or [])))


def _create(session: Session, rows: list[_Checked], opts: ImportOptions, now: datetime) -> dict[str, int]:
    """Insert the new contacts, many per statement; email -> id. Their `contact.created` events too."""
    status = Subscription.SUBSCRIBED if opts.consent_text else Subscription.NONE
    ids = store.insert_contacts(session, [{
        "email": r.data.email, "phone": r.data.phone, "first_name": r.data.first_name,
        "last_name": r.data.last_name, "timezone": r.data.timezone, "locale": r.data.locale,
        "fields": r.data.fields or {},
        "tags": list(r.data.tags), "stage": r.stage or opts.stages[0], "score": 0.0, "score_at": None,
        "email_status": status, "sms_status": Subscription.NONE, "source": opts.source,
        "attribution": {"source": opts.source}, "pending_form": None, "pending_since": None,
        "created_at": now, "updated_at": now} for r in rows])
    store.insert_events(session, [_event(ids[r.data.email], "contact.created", now, {"source": opts.source})
                                  for r in rows])
    return ids


def _consent(session: Session, new: list[_Checked], ids: dict[str, int], known: list[Known],
             opts: ImportOptions, now: datetime, write: bool) -> set[str]:
    """Subscribe under the import's consent the new contacts and the known ones never asked; a consent
    row and an event for each. The addresses subscribed (in a preview: that would be)."""
    if opts.consent_text is None:
        return set()
    unasked = [c for c in known if c.email_status == Subscription.NONE]
    if not write:
        return {c.data.email for c in new} | {c.email for c in unasked}
    changed = set(store.subscribe_unasked(session, [c.id for c in unasked], now))
    subscribed = [(ids[c.data.email], c.data.email) for c in new] + [(c.id, c.email) for c in unasked
                                                                    if c.id in changed]
    store.insert_consents(session, [import_enroll.consent_row(contact_id, opts, now) for contact_id, _ in subscribed])
    store.insert_events(session, [_event(contact_id, "email.subscribed", now,
                                         {"via": "import", "basis": opts.legal_basis, "source": opts.source})
                                  for contact_id, _ in subscribed])
    return {email for _, email in subscribed}


def _event(contact_id: int, type_: str, now: datetime, data: dict) -> dict:
    return {"contact_id": contact_id, "type": type_, "data": data, "idempotency_key": None, "delivery_id": None,
            "occurred_at": now, "created_at": now}


def _join(parts: list[str] | None) -> str:
    return "; ".join(parts or [])
