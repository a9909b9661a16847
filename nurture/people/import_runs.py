"""A console import run by the worker: what the owner chose, how far it got and how it ended, kept in
VAR_DIR/imports/<token>.run.json beside its upload (people.import_uploads).

On disk, not in Redis: Redis only carries the job, and a flushed Redis or a worker killed mid-import must
lose neither what the owner asked for nor how it ended (jobs.keep_import_going queues it again from this
record). Not a table: the upload it describes is a file in the same folder, which the worker reads anyway,
and both are cleared after a day (import_uploads.KEEP_SECONDS).

    queued (claimed, waiting for the worker) -> running (rows done of total, written after each batch's
    commit) -> done (the report) | failed (the error; the batches before it were written)

Each write replaces the file whole (a temporary file renamed over it): a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nurture.people import import_uploads, importing
from nurture.people.import_file import CsvFile, parse_csv
from nurture.rules import import_mapping

if TYPE_CHECKING:
    from nurture.content.registry import SequenceRegistry
    from nurture.runtime import Runtime

KEPT_SKIPPED = 1000  # skipped rows kept for the report page (each with its reason); the counts cover them all


class State(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class UnknownRun(LookupError):
    """No import was started from this token (or it was cleared after a day)."""


@dataclass(frozen=True)
class Choices:
    """What the form chose: a target per column (None before the first check: the guess), the options."""

    targets: dict[int, str] | None
    sequence_id: str
    consent_text: str
    legal_basis: str


@dataclass(frozen=True)
class Run:
    token: str
    file_name: str
    choices: Choices
    state: State
    updated_at: str  # ISO 8601, from the runtime's clock
    done: int = 0  # rows imported (and committed) so far
    total: int = 0  # rows in the file, counted when the run starts
    starts: int = 0  # runs started: more than one when the worker was lost in the middle
    report: dict[str, Any] | None = field(default=None)  # report_to_json's, when done
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in (State.DONE, State.FAILED)


def mapping_for(csv_file: CsvFile, choices: Choices) -> import_mapping.ColumnMapping:
    """The column mapping chosen, or the guess from the headers. Raises import_mapping.BadMapping."""
    if choices.targets is None:
        return import_mapping.by_index(csv_file.headers, import_mapping.guess(csv_file.headers))
    return import_mapping.by_index(csv_file.headers, choices.targets)


def options_for(csv_file: CsvFile, choices: Choices, sequences: SequenceRegistry) -> importing.ImportOptions:
    """The checked options. Raises importing.ImportRefused (a sequence that is not there is refused too)."""
    sequence = sequences.get(choices.sequence_id) if choices.sequence_id else None
    if choices.sequence_id and sequence is None:
        raise importing.ImportRefused(f"there is no sequence {choices.sequence_id!r}")
    return importing.options(csv_file.name, sequence, choices.consent_text, choices.legal_basis,
                             sequences.lifecycle.stages)


# --- the record on disk --------------------------------------------------------------------------------------

def _path(var_dir: Path, token: str) -> Path:
    if not import_uploads.TOKEN.match(token):  # the token names a file: only the pattern's characters
        raise UnknownRun(token)
    return import_uploads.folder(var_dir) / f"{token}.run.json"


def start(var_dir: Path, token: str, file_name: str, choices: Choices, now: datetime) -> Run:
    """Record a claimed upload's import as queued, with the choices it is to run with."""
    return save(var_dir, Run(token, file_name, choices, State.QUEUED, now.isoformat()))


def save(var_dir: Path, run: Run) -> Run:
    path = _path(var_dir, run.token)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(asdict(run)), encoding="utf-8")
    os.replace(partial, path)  # atomic: the page reads the old record or the new one
    return run


def load(var_dir: Path, token: str) -> Run:
    """The import's record. Raises UnknownRun."""
    try:
        data = json.loads(_path(var_dir, token).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UnknownRun(token) from None
    chosen = data.pop("choices")
    targets = chosen["targets"]
    choices = Choices(**{**chosen, "targets": None if targets is None else {int(k): v for k, v in targets.items()}})
    return Run(**{**data, "choices": choices, "state": State(data["state"])})


def unfinished(var_dir: Path) -> list[Run]:
    """Every import queued or running by its record: what the tick checks is still carried by a job."""
    runs = []
    for path in sorted(import_uploads.folder(var_dir).glob("*.run.json")):
        try:
            run = load(var_dir, path.name.removesuffix(".run.json"))
        except UnknownRun:  # cleared meanwhile
            continue
        if not run.finished:
            runs.append(run)
    return runs


def report_to_json(report: importing.Report) -> dict[str, Any]:
    """What the report page shows: the counts and the first KEPT_SKIPPED skipped rows (600,000 bad rows
    would otherwise make a record of tens of MB, rewritten for a page that lists 1,000)."""
    return {"file_name": report.file_name, "counts": {str(o): n for o, n in report.counts.items()},
            "skipped": [[r.line, r.email, r.detail] for r in report.skipped[:KEPT_SKIPPED]],
            "consented": report.consented, "enrolled": report.enrolled}


def report_from_json(data: dict[str, Any]) -> importing.Report:
    """The report as importing.run returned it, but with only the first KEPT_SKIPPED skipped rows."""
    report = importing.Report(data["file_name"], True, consented=data["consented"], enrolled=data["enrolled"])
    report.counts = {importing.Outcome(o): n for o, n in data["counts"].items()}
    report.skipped = [importing.RowResult(line, email, importing.Outcome.SKIPPED, detail)
                      for line, email, detail in data["skipped"]]
    return report


# --- the run ---------------------------------------------------------------------------------------------------

def execute(rt: Runtime, token: str) -> Run:
    """Import the claimed upload `token` with the choices recorded when it was started; the record as it
    ended. A run finished already is left as it is, so a job queued twice imports once.

    A run that was lost in the middle (its worker killed) is started again from the first row, which is
    safe: importing.run matches every row to the contacts on record by email (a unique key), so the rows
    the lost run wrote are merged into the contacts it created, not added again. The merge fills only what
    is empty, and a contact subscribed by the lost run is no longer `none`, so it gets no second consent
    row; an enrollment it started is running, so it is not started twice. The report of such a run counts
    those rows as unchanged.
    """
    var_dir = rt.settings.var_dir
    run = load(var_dir, token)
    if run.finished:
        return run
    run = save(var_dir, replace(run, state=State.RUNNING, starts=run.starts + 1, done=0,
                                updated_at=rt.clock().isoformat()))
    try:
        report = _import(rt, run)
    except Exception as exc:  # recorded for the page, then raised for RQ's failed registry and the log
        save(var_dir, replace(load(var_dir, token), state=State.FAILED, error=_error_text(exc),
                              updated_at=rt.clock().isoformat()))
        raise
    import_uploads.remove(var_dir, token)
    return save(var_dir, replace(load(var_dir, token), state=State.DONE, report=report_to_json(report),
                                 updated_at=rt.clock().isoformat()))


def _import(rt: Runtime, run: Run) -> importing.Report:
    var_dir = rt.settings.var_dir
    data, name = import_uploads.load(var_dir, run.token)
    csv_file = parse_csv(data, name)
    mapping = mapping_for(csv_file, run.choices)
    opts = options_for(csv_file, run.choices, rt.sequences)

    def progress(done: int, total: int) -> None:  # after each batch's commit: what it says was written
        save(var_dir, replace(run, done=done, total=total, updated_at=rt.clock().isoformat()))

    return importing.run(rt.db, csv_file, mapping, opts, rt.clock(), write=True, progress=progress)


def _error_text(exc: Exception) -> str:
    if isinstance(exc, import_uploads.UnknownUpload):
        return "the uploaded file is gone (uploads are cleared after a day): upload it again"
    return str(exc) or type(exc).__name__


def give_up(var_dir: Path, run: Run, now: datetime) -> Run:
    """Record a run that keeps being lost in the middle as failed, rather than start it forever."""
    error = (f"the worker stopped {run.starts} times in the middle of this import (out of memory, or "
             "restarted): see the worker's log")
    return save(var_dir, replace(run, state=State.FAILED, error=error, updated_at=now.isoformat()))
