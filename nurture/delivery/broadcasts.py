"""Broadcasts on the one send path (docs/broadcasts.md): files read into rows, the test send to the owner,
start, cancel, and writing a started broadcast's enrollments a page of segment members at a time.

What happens after the enrollments are written is not here: the tick claims them like any sequence's, and
`dispatch` sends them through consent, suppression, the frequency cap, quiet hours, the send window,
pacing and the reputation guard, writing one delivery row per contact. `sequence_for` is how dispatch finds
the one-step sequence a broadcast runs as.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import Session

from nurture.content.broadcasts_file import content_version, definition_of, load_broadcasts, spec_from
from nurture.content.checker import TemplateCheck
from nurture.content.rendering import RenderError
from nurture.content.segments_file import load_segments
from nurture.content.yaml_reader import Problem
from nurture.delivery.channels import channel_for
from nurture.delivery.transports import TransportError
from nurture.rules.broadcasts import BroadcastError, BroadcastSpec, as_sequence, broadcast_id_of, due_at, due_for
from nurture.rules.segments import Segment
from nurture.rules.sequence import Sequence
from nurture.store import broadcasts as store
from nurture.store import segments as segment_store
from nurture.store.models import Broadcast, Contact

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime

log = logging.getLogger(__name__)

PAGE = 1000  # members written per statement: 100,000 members are never loaded at once
TEST_MARK = "[TEST] "


def template_check(rt: Runtime) -> TemplateCheck:
    return TemplateCheck.for_settings(rt.settings)


def segments(rt: Runtime) -> tuple[dict[str, Segment], list[Problem]]:
    return load_segments(rt.settings.segments_dir, display_root=rt.settings.root)


# --- files -> rows -------------------------------------------------------------------------------------------

def read_files(rt: Runtime, session: Session, now: datetime) -> list[Problem]:
    """Bring every broadcast file's definition into its row: a new file makes a draft, an edited one
    updates its draft (and its content version: a new test send is needed); a started or cancelled
    broadcast keeps what it was started with. Returns the files' problems (a file with any is not read)."""
    found, problems = _files(rt)
    for row in store.every(session):  # a draft whose file is gone is gone too (nothing of it was sent)
        if (row.origin == "file" and row.status == store.DRAFT and row.key not in found and row.path
                and not Path(row.path).is_file()):
            session.delete(row)
    for key, (spec, path) in found.items():
        row = store.by_key(session, key)
        if row is not None and (row.status != store.DRAFT or row.origin != "file"):
            continue
        version = content_version(spec, template_check(rt))
        if row is None:
            row = Broadcast(key=key, origin="file", created_at=now, updated_at=now, name=spec.name)
        if row.version != version or row.path != str(path):
            row.name, row.path, row.definition, row.version, row.updated_at = (
                spec.name, str(path), definition_of(spec), version, now)
            session.add(row)
    session.flush()
    return problems


def _files(rt: Runtime) -> tuple[dict[str, tuple[BroadcastSpec, Path]], list[Problem]]:
    return load_broadcasts(rt.settings.broadcasts_dir, template_check(rt), set(segments(rt)[0]))


def _file_as_checked(rt: Runtime, row: Broadcast) -> None:
    """A file's broadcast starts only as its file says now: not from a draft whose file since got a
    problem (its row still holds the last good text) or was removed."""
    found = _files(rt)[0].get(row.key)
    if found is None or content_version(found[0], template_check(rt)) != row.version:
        raise BroadcastError(f"{row.path or row.key} is missing or has problems now (run nurture check); "
                             "fix it, then send a test of it and start again")


def create(rt: Runtime, session: Session, spec: BroadcastSpec, now: datetime) -> Broadcast:
    """A broadcast made in the console: stored in the database only (origin "console"). Raises
    BroadcastError when the id is taken or the segment or template does not exist."""
    if store.by_key(session, spec.id) is not None:
        raise BroadcastError(f"a broadcast {spec.id!r} exists already: choose another id")
    _check_spec(rt, spec)
    row = Broadcast(key=spec.id, name=spec.name, origin="console", definition=definition_of(spec),
                    version=content_version(spec, template_check(rt)), created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    return row


def _check_spec(rt: Runtime, spec: BroadcastSpec) -> None:
    from nurture.content.broadcasts_file import check_templates

    if spec.segment not in segments(rt)[0]:
        raise BroadcastError(f"unknown segment {spec.segment!r}")
    problems = check_templates(spec, "(console)", {}, template_check(rt))
    if problems:
        raise BroadcastError("; ".join(p.message for p in problems))


def spec_of(row: Broadcast) -> BroadcastSpec:
    return spec_from(row.key, row.definition)


def get(rt: Runtime, session: Session, key: str) -> Broadcast:
    row = store.by_key(session, key)
    if row is None:
        known = ", ".join(r.key for r in store.every(session)) or "none"
        raise BroadcastError(f"unknown broadcast {key!r} (known: {known})")
    return row


# --- the sequence the send path runs --------------------------------------------------------------------------

_SEQUENCES: dict[tuple[str, str], Sequence] = {}  # (database, broadcast key) -> what it was started with
_LOCK = threading.Lock()


def sequence_for(session: Session, sequence_id: str) -> Sequence | None:
    """The one-step sequence a started broadcast runs as (None: not a broadcast's, or not started): made
    from the definition it was started with. A started broadcast's version never changes, so a process
    reads its row once, not once a message."""
    key = broadcast_id_of(sequence_id)
    if key is None:
        return None
    # .engine: a batch's session is bound to one Connection (dispatch), the web's to the Engine.
    cache_key = (str(session.get_bind().engine.url), key)
    with _LOCK:
        made = _SEQUENCES.get(cache_key)
    if made is not None:
        return made
    row = store.by_key(session, key)
    if row is None or row.status == store.DRAFT:
        return None
    made = as_sequence(spec_of(row), row.version)
    with _LOCK:
        _SEQUENCES[cache_key] = made
    return made


# --- test, start, cancel -------------------------------------------------------------------------------------

def test_send(rt: Runtime, session: Session, key: str, to: str, now: datetime) -> str:
    """Send the broadcast once to `to` (the owner), marked as a test: no delivery row, not counted for
    anybody's cap, nothing in any contact's timeline. Records which content version was tested (the
    caller commits that; what the session held before is committed first). Returns the provider's id.
    Raises BroadcastError when it cannot be rendered or sent."""
    row = get(rt, session, key)
    spec = spec_of(row)
    channel = channel_for(spec.channel)
    sequence = as_sequence(spec, row.version, subject_prefix=TEST_MARK)
    owner = _test_contact(spec.channel, to, now)
    # Nothing held while the message is made and sent: on SQLite an open write would lock out the
    # channel's own reads (is this the number's first text?) and every worker for the length of a send.
    session.commit()
    try:
        message = channel.compose(rt, owner, sequence, sequence.steps[0], 0, now)
        if spec.channel == "sms":  # a text has no subject: the mark goes before its words
            message = replace(message, body=TEST_MARK + message.body)
        transport = channel.open_transport(rt)
        try:
            provider_id = transport.send(message)
        finally:
            transport.close()
    except (RenderError, TransportError) as exc:
        raise BroadcastError(f"the test send failed: {exc}") from exc
    row.test_version, row.test_to, row.test_sent_at, row.updated_at = row.version, to, now, now
    session.add(row)
    return provider_id


def _test_contact(channel: str, to: str, now: datetime) -> Contact:
    """A made-up contact for the test: never stored (id 0), named so the owner sees how a name renders."""
    email, phone = (to, None) if channel == "email" else ("owner@test.invalid", to)
    return Contact(id=0, email=email, phone=phone, first_name="Test", last_name="Owner", created_at=now,
                   updated_at=now)


@dataclass(frozen=True)
class Started:
    broadcast: Broadcast
    already: bool  # it had been started before: this call changed nothing


def start(rt: Runtime, session: Session, key: str, by: str, now: datetime, skip_test: bool = False) -> Started:
    """Start the broadcast: its enrollments are written by the tick once `send_at` comes (now, for
    "now"). Refused until a test send was made for the current content version, unless `skip_test`.
    Starting again changes nothing. Raises BroadcastError with what to do first."""
    row = get(rt, session, key)
    if row.status != store.DRAFT:
        if row.status == store.CANCELLED:
            raise BroadcastError(f"broadcast {key!r} was cancelled; it cannot be started again")
        return Started(row, already=True)
    spec = spec_of(row)
    _check_spec(rt, spec)
    if row.origin == "file":
        _file_as_checked(rt, row)
    if not skip_test and row.test_version != row.version:
        why = "no test send was made" if row.test_version is None else "it changed since its test send"
        raise BroadcastError(f"{why}: send a test to the owner first (nurture broadcasts test {key}), "
                             "or start with --skip-test")
    if not store.start(session, row.id, row.version, due_at(spec, now), by, now):
        session.rollback()
        row = get(rt, session, key)
        if row.status == store.STARTED:
            return Started(row, already=True)
        raise BroadcastError(f"broadcast {key!r} changed while starting; look at it again")
    session.refresh(row)
    log.info("broadcast %s started by %s, due %s", key, by, row.send_at)
    return Started(row, already=False)


def cancel(rt: Runtime, session: Session, key: str, now: datetime) -> int:
    """Cancel: nothing more of it is sent; what was sent stays on the record. Returns the enrollments
    stopped."""
    row = get(rt, session, key)
    if row.status == store.CANCELLED:
        return 0
    return store.cancel(session, row.id, spec_of(row).sequence_id, now)


# --- the tick: members -> enrollments -------------------------------------------------------------------------

def materialise_due(rt: Runtime, max_pages: int = 50) -> int:
    """Write the enrollments of started broadcasts whose time has come, a page of segment members at a
    time, each page committed with the cursor: a crash or a second worker resumes, and writing a page
    twice adds nothing (one enrollment per contact × broadcast). Returns how many enrollments were new.
    At most `max_pages` pages a run; the next tick goes on."""
    now = rt.clock()
    with Session(rt.db) as session:
        pending = store.to_materialise(session, now)
        if not pending:
            return 0
        known = segments(rt)[0]
        written = 0
        for row in pending:
            segment = known.get(spec_of(row).segment)
            if segment is None:
                log.error("broadcast %s: segment %r is not defined (or its file has errors); its members wait",
                          row.key, spec_of(row).segment)
                continue
            key = row.key
            try:
                count, max_pages = _materialise(rt, session, row, segment, now, max_pages)
            except Exception:
                # One broadcast's trouble (its segment's SQL, the database going away) must not stop the
                # tick that runs it, nor the other broadcasts: its cursor holds, the next tick tries again.
                session.rollback()
                log.exception("broadcast %s: writing its members failed; tried again at the next tick", key)
                continue
            written += count
            if max_pages <= 0:
                break
    return written


def _materialise(rt: Runtime, session: Session, row: Broadcast, segment: Segment, now: datetime,
                 pages: int) -> tuple[int, int]:
    spec, written = spec_of(row), 0
    cursor, going = row.materialised_to, max(store.aware(row.send_at) or now, now)
    scoring = rt.sequences.lifecycle.scoring
    while pages > 0:
        ids = segment_store.member_ids(session, segment, now, after_id=cursor, limit=PAGE, scoring=scoring)
        zones = store.timezones(session, ids) if spec.send_window is not None else {}
        due = {cid: due_for(spec, going, zones.get(cid)) for cid in ids}
        written += store.write_enrollments(session, spec.sequence_id, row.version, due, now)
        pages -= 1
        if ids:
            cursor = ids[-1]
            store.move_cursor(session, row.id, cursor, now)
        if len(ids) < PAGE:
            store.finish_materialising(session, row.id, now)
            session.commit()
            log.info("broadcast %s: every member of %s written", row.key, segment.id)
            break
        session.commit()
    return written, pages



