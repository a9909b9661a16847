"""A template edited while a worker runs is what the worker's next batch sends, though the send path looks
at the template files at most once a second of its clock rather than for every message
(nurture.content.rendering.TemplateCatalog.email)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from nurture.delivery.channels.email import compose_email
from nurture.store.models import Contact
from tests.conftest import FakeClock
from tests.helpers import add_contact, send_due


def edit(path: Path, old: str, new: str) -> None:
    """Edit a file and move its mtime on: a rewrite within the filesystem's timestamp tick looks unchanged."""
    stat = path.stat()
    path.write_text(path.read_text().replace(old, new))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))


def test_the_next_batch_sends_a_template_edited_while_the_worker_runs(make_runtime, sqlite_url, smtp_server,
                                                                      project: Path, clock: FakeClock) -> None:
    rt = make_runtime(sqlite_url, EMAIL_BACKEND="smtp", SMTP_URL=smtp_server.url)
    add_contact(rt, "ann@example.com", "lead-nurture", first_name="Ann")
    assert send_due(rt) == {"sent": 1}
    folder = project / "email_templates" / "lead"
    edit(folder / "edu-1.txt", "Over the next week", "Over the next fortnight")
    edit(folder / "edu-1.html", "Over the next week", "Over the next fortnight")
    clock.advance(seconds=1)  # the next tick, at the soonest
    add_contact(rt, "bo@example.com", "lead-nurture", first_name="Bo")
    assert send_due(rt) == {"sent": 1}
    first, second = (r.message for r in smtp_server.received)
    assert "Over the next week" in str(first) and "fortnight" not in str(first)
    assert "Over the next fortnight" in second.get_body(("plain",)).get_content()
    assert "Over the next fortnight" in second.get_body(("html",)).get_content()


def test_the_files_are_looked_at_once_a_second_of_the_clock_the_send_path_reads(make_runtime, sqlite_url, project: Path,
                                                                                clock: FakeClock) -> None:
    rt = make_runtime(sqlite_url)
    sequence = rt.sequences.get("lead-nurture")
    assert sequence is not None
    step = sequence.steps[0]
    now = clock()
    contact = Contact(id=1, email="ann@example.com", first_name="Ann", last_name="", created_at=now, updated_at=now)

    def text(delivery_id: int, at: timedelta) -> str:
        return compose_email(rt, contact, sequence, step, delivery_id, now + at).data.decode()

    assert "Over the next week" in text(1, timedelta(0))
    edit(project / "email_templates" / "lead" / "edu-1.txt", "Over the next week", "Over the next fortnight")
    assert "Over the next week" in text(2, timedelta(milliseconds=500))  # looked at less than a second ago
    assert "Over the next fortnight" in text(3, timedelta(seconds=1))
    edit(project / "email_templates" / "lead" / "edu-1.txt", "fortnight", "month")
    assert "Over the next month" in text(4, timedelta(seconds=1))  # the same reading again: looked at anew
    version = rt.catalog.email(step.template).version
    edit(project / "email_templates" / "lead" / "edu-1.txt", "month", "year")
    assert rt.catalog.email(step.template).version != version  # without a clock reading: looked at every time
