"""The bounce mailbox: a local maildir or an IMAP folder, read by the worker (the `read_bounces` job the
tick queues) or by `nurture bounces read`. Each message is parsed (nurture.content.reports) and applied
(nurture.people.bounces) in its own transaction, then taken out of the way so the next read skips it.
"""

from __future__ import annotations

import imaplib
import logging
import mailbox
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from sqlmodel import Session

from nurture.content.reports import parse_report
from nurture.people.bounces import Outcome, apply_report

if TYPE_CHECKING:  # the runtime is handed in; importing it would run an arrow back up
    from nurture.runtime import Runtime

log = logging.getLogger(__name__)


def take(rt: Runtime, data: bytes, envelope_recipients: tuple[str, ...] = ()) -> Outcome:
    """Parse and apply one returned message, committed. Raises only when the database does."""
    report = parse_report(data, envelope_recipients)
    with Session(rt.db) as session:
        outcome = apply_report(session, rt.signer, rt.settings.bounces, report, rt.clock())
        session.commit()
    log.info("bounce: %s (delivery %s) %s", outcome.what, outcome.delivery_id, outcome.detail)
    return outcome


def read_mailbox(rt: Runtime) -> Counter[str]:
    """Read every configured bounce mailbox once. Returns how many messages had each outcome."""
    counts: Counter[str] = Counter()
    if rt.settings.bounces.maildir is not None:
        counts += read_maildir(rt, rt.settings.bounces.maildir)
    if rt.settings.bounces.imap_url:
        counts += read_imap(rt, rt.settings.bounces.imap_url)
    return counts


def read_maildir(rt: Runtime, path: Path) -> Counter[str]:
    """Every message in the maildir, moved afterwards to its `.processed` folder (kept, for a look)."""
    box = mailbox.Maildir(path, factory=None, create=True)
    done = box.add_folder("processed")
    counts: Counter[str] = Counter()
    for key in list(box.iterkeys()):
        data = box.get_bytes(key)
        counts[take(rt, data).what] += 1
        done.add(data)
        box.discard(key)
    return counts


def read_imap(rt: Runtime, url: str) -> Counter[str]:
    """Every message in the IMAP folder of `url` (imaps://user:password@host[:port]/MAILBOX), deleted
    once applied: the events on the contacts are the record."""
    parts = urlsplit(url)
    secure = parts.scheme == "imaps"
    port = parts.port or (993 if secure else 143)
    client = (imaplib.IMAP4_SSL if secure else imaplib.IMAP4)(parts.hostname or "", port)
    counts: Counter[str] = Counter()
    try:
        client.login(unquote(parts.username or ""), unquote(parts.password or ""))
        client.select(unquote(parts.path.strip("/")) or "INBOX")
        _, found = client.uid("SEARCH", "UNDELETED")
        for uid in (found[0] or b"").split():
            _, fetched = client.uid("FETCH", uid, "(RFC822)")
            data = next(item[1] for item in fetched if isinstance(item, tuple))
            counts[take(rt, data).what] += 1
            client.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
        client.expunge()
    finally:
        client.logout()
    return counts
