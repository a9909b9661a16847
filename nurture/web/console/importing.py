"""Importing a CSV file in the console: upload, a preview of its first rows with the column mapping, what
each row will do (checked against the database, nothing written), then the import.

    GET  /import                 the upload form (and the export links)
    POST /import                 keep the file, go to its preview
    GET  /import/<token>         the first rows and the mapping; with ?check=1 what every row will do
    POST /import/<token>         queue its import, with the mapping and options the check showed
    GET  /import/<token>/status  how far the import got (the page refreshes itself), then its report

Uploading and importing are writes: owners only (auth.guard). The check runs the same code as the import
(people.importing.run with write=False), so what it shows is what the import then does. The check stays in
the request (it writes nothing, and a closed tab loses nothing); the import runs in the worker (jobs.
run_import): 600,000 rows take minutes, longer than a reverse proxy waits for a response. Its record
(people.import_runs, on disk beside the upload) is what the status page reads, not Redis.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from flask import abort, redirect, render_template, request, url_for
from flask_login import current_user
from redis.exceptions import RedisError
from werkzeug.wrappers import Response

from nurture import jobs
from nurture.people import import_runs, importing
from nurture.people import import_uploads as uploads
from nurture.people.import_file import CsvFile, UnreadableFile, parse_csv
from nurture.people.import_runs import Choices
from nurture.rules import import_mapping
from nurture.web import runtime
from nurture.web.console import bp

log = logging.getLogger(__name__)

PREVIEW_ROWS = 10
SHOWN_PROBLEMS = import_runs.KEPT_SKIPPED  # skipped rows listed on the page; the counts cover them all
REFRESH_SECONDS = 2  # the status page reloads itself while the import runs: no script needed


@bp.get("/import")
def import_start() -> str:
    return render_template("console/import.html", max_mb=uploads.MAX_BYTES // 2**20, error=None)


@bp.post("/import")
def import_upload() -> Response | tuple[str, int]:
    # The CSRF check has parsed the body by now (werkzeug spools a large file to disk, not memory): the
    # size is checked here, once, against what was sent.
    too_large = _upload_error(f"The file is larger than {uploads.MAX_BYTES // 2**20} MB. Split it in parts.")
    if (request.content_length or 0) > uploads.MAX_BYTES + 65536:
        return too_large, 413
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _upload_error("Choose a CSV file to upload."), 400
    data = upload.read(uploads.MAX_BYTES + 1)
    if len(data) > uploads.MAX_BYTES:
        return too_large, 413
    try:
        parse_csv(data, upload.filename)
    except UnreadableFile as exc:
        return _upload_error(str(exc)), 400
    token = uploads.save(runtime().settings.var_dir, data, upload.filename)
    return redirect(url_for("console.import_preview", token=token), code=303)


def _upload_error(text: str) -> str:
    return render_template("console/import.html", max_mb=uploads.MAX_BYTES // 2**20, error=text)


@bp.get("/import/<token>")
def import_preview(token: str) -> str | tuple[str, int]:
    csv_file = _upload(token)
    choices = _choices(request.args, len(csv_file.headers))
    report, error = None, None
    try:
        mapping = _mapping(csv_file, choices)
        opts = _options(csv_file, choices)
        if request.args.get("check"):
            report = importing.run(runtime().db, csv_file, mapping, opts, runtime().clock(), write=False)
    except (import_mapping.BadMapping, importing.ImportRefused) as exc:
        error = str(exc)
    return _page(token, csv_file, choices, report, error), 400 if error and request.args.get("check") else 200


@bp.post("/import/<token>")
def import_run(token: str) -> Response | tuple[str, int]:
    csv_file = _upload(token)
    choices = _choices(request.form, len(csv_file.headers))
    try:
        _mapping(csv_file, choices)
        _options(csv_file, choices)
    except (import_mapping.BadMapping, importing.ImportRefused) as exc:
        return _page(token, csv_file, choices, None, str(exc)), 400
    rt = runtime()
    try:
        uploads.claim(rt.settings.var_dir, token)
    except uploads.UnknownUpload:  # a second click while the first runs, or after it
        return _already_imported(token)
    import_runs.start(rt.settings.var_dir, token, csv_file.name, choices, rt.clock())
    _to_worker(token, first=True)
    return redirect(url_for("console.import_status", token=token), code=303)


def _already_imported(token: str) -> Response | tuple[str, int]:
    try:
        import_runs.load(runtime().settings.var_dir, token)
    except import_runs.UnknownRun:  # taken by something else than this page (an import run by hand)
        return render_template("console/message.html", title="Imported already",
                               text="This file is being imported or was imported already: see the contacts, "
                               "or upload it again to import it once more."), 409
    return redirect(url_for("console.import_status", token=token), code=303)


def _to_worker(token: str, first: bool) -> None:
    """Queue the import's job (`first`), or queue it again if no job carries it. Without Redis now the
    record still says queued, and the worker's tick queues it once Redis is back (jobs.keep_imports_going)."""
    rt = runtime()
    if not rt.settings.redis_url:
        return
    try:
        queue = jobs.dispatch_queue(rt)
        if first:
            jobs.enqueue_import(queue, token)
        else:
            jobs.keep_import_going(rt, queue, token)
    except RedisError as exc:
        log.warning("import %s: not queued now (%s): the worker's tick will", token, exc)


@bp.get("/import/<token>/status")
def import_status(token: str) -> str:
    if not current_user.may_write:  # a report lists addresses: as the preview, owners only
        abort(403)
    var_dir = runtime().settings.var_dir
    try:
        run = import_runs.load(var_dir, token)
    except import_runs.UnknownRun:
        abort(404)
    if not run.finished:  # lost with Redis or with its worker: queued again (see jobs.keep_import_going)
        _to_worker(token, first=False)
        run = import_runs.load(var_dir, token)  # as that left it (given up on: failed)
    report = import_runs.report_from_json(run.report) if run.report is not None else None
    return render_template("console/import_status.html", run=run, report=report, shown=SHOWN_PROBLEMS,
                           sequence_id=run.choices.sequence_id, refresh=REFRESH_SECONDS)


def _upload(token: str) -> CsvFile:
    """The uploaded file, for owners only: a viewer never uploads, and a preview shows personal data."""
    if not current_user.may_write:
        abort(403)
    try:
        data, name = uploads.load(runtime().settings.var_dir, token)
        return parse_csv(data, name)
    except (uploads.UnknownUpload, UnreadableFile):
        abort(404)


def _choices(values: Mapping[str, str], columns: int) -> Choices:
    targets = None
    if any(key.startswith("col-") for key in values):
        targets = {}
        for i in range(columns):
            targets[i] = values.get(f"col-{i}", import_mapping.IGNORE)
    return Choices(targets, values.get("sequence", ""), values.get("consent", ""), values.get("basis", ""))


def _mapping(csv_file: CsvFile, choices: Choices) -> import_mapping.ColumnMapping:
    return import_runs.mapping_for(csv_file, choices)


def _options(csv_file: CsvFile, choices: Choices) -> importing.ImportOptions:
    return import_runs.options_for(csv_file, choices, runtime().sequences)


def _page(token: str, csv_file: CsvFile, choices: Choices, report: importing.Report | None, error: str | None) -> str:
    chosen = choices.targets if choices.targets is not None else import_mapping.guess(csv_file.headers)
    columns = [Column(i, header, chosen.get(i, import_mapping.IGNORE), _targets_for(header, chosen.get(i)))
               for i, header in enumerate(csv_file.headers)]
    sequences = sorted(runtime().sequences.all(), key=lambda s: s.name)
    return render_template(
        "console/import_preview.html", token=token, file=csv_file, rows=csv_file.first_rows(PREVIEW_ROWS),
        columns=columns, choices=choices, sequences=sequences, bases=importing.LEGAL_BASES, report=report,
        error=error, shown=SHOWN_PROBLEMS, Outcome=importing.Outcome)


@dataclass(frozen=True)
class Column:
    index: int
    header: str
    target: str
    choices: list[str]


def _targets_for(header: str, chosen: str | None) -> list[str]:
    """What a column's menu offers: the contact's fields, a custom field named after the column, ignore
    (and the current choice, whatever it is, so that a bad one is shown as chosen)."""
    own = import_mapping.custom_field(header)
    choices = [*import_mapping.TARGETS, *([own] if own else []), import_mapping.IGNORE]
    return choices if chosen is None or chosen in choices else [*choices, chosen]
