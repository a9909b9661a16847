"""Contacts, deliveries and consent records as CSV downloads: /export/contacts.csv, deliveries.csv,
consent.csv. Streamed: the response starts at once and a page of rows at a time follows (store.exports),
so a million contacts cost a page of memory, not the table.

Owners only, though these are GETs: a viewer may look at pages, but taking the whole list of people away
is the act GDPR asks to keep to those responsible for it (docs/console.md).
"""

from __future__ import annotations

from flask import Response, abort, stream_with_context
from flask_login import current_user

from nurture.people import export
from nurture.web import runtime
from nurture.web.console import bp


@bp.get("/export/<table>.csv")
def export_csv(table: str) -> Response:
    if not current_user.may_write:
        abort(403)
    if table not in export.TABLES:
        abort(404)
    stamp = runtime().clock().strftime("%Y%m%d-%H%M")
    return Response(stream_with_context(export.csv_lines(runtime().db, table)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="nurture-{table}-{stamp}.csv"'})
