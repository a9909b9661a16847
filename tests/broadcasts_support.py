"""Helpers for the broadcast tests: a segment, a broadcast file and its template in the test project, and
many contacts written at once (with the suppressed, the unconsented and the capped among them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlmodel import Session

from nurture.runtime import Runtime
from nurture.store.models import Contact, Delivery, DeliveryStatus, Enrollment, EnrollmentStatus, Suppression
from tests.conftest import ROOT

SEGMENT = """\
id: leads
name: Leads
condition: {stage: lead}
"""


def broadcast_file(key: str = "spring", timing: str = "at-once", send_at: str = "now", extra: str = "") -> str:
    return (f"id: {key}\nname: Spring news\nsegment: leads\nchannel: email\ntemplate: broadcasts/open-studio\n"
            f"subject: \"Open studio, {{{{ contact.first_name or 'friend' }}}}\"\nsend_at: {send_at}\n"
            f"timing: {timing}\n{extra}")


def add_broadcast_files(project: Path, text: str | None = None, key: str = "spring") -> Path:
    """The `leads` segment, the starter broadcast template, and broadcasts/KEY.yaml in the test project."""
    (project / "segments").mkdir(exist_ok=True)
    (project / "segments" / "leads.yaml").write_text(SEGMENT)
    templates = project / "email_templates" / "broadcasts"
    templates.mkdir(parents=True, exist_ok=True)
    for suffix in (".html", ".txt"):
        source = ROOT / "email_templates" / "broadcasts" / f"open-studio{suffix}"
        (templates / f"open-studio{suffix}").write_text(source.read_text())
    (project / "broadcasts").mkdir(exist_ok=True)
    path = project / "broadcasts" / f"{key}.yaml"
    path.write_text(text or broadcast_file(key))
    return path


@dataclass
class Crowd:
    """Who is who among the contacts written by `crowd`."""

    everyone: list[str] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)
    unconsented: list[str] = field(default_factory=list)
    capped: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)  # not in the segment (customers)

    @property
    def should_get(self) -> set[str]:
        return set(self.everyone) - set(self.suppressed) - set(self.unconsented) - set(self.capped)


def crowd(rt: Runtime, total: int, suppressed: int, unconsented: int, capped: int, outsiders: int = 0) -> Crowd:
    """`total` leads (the segment), of whom the first `suppressed` are on the suppression list, the next
    `unconsented` have no email consent and the next `capped` had two marketing emails in the last day
    (the test lifecycle's cap is 2 a day); and `outsiders` customers, not in the segment. One INSERT each."""
    now = rt.clock()
    who = Crowd()
    rows = []
    for n in range(total + outsiders):
        email = f"p{n:05d}@example.com"
        status = "none" if suppressed <= n < suppressed + unconsented else "subscribed"
        stage = "lead" if n < total else "customer"
        rows.append(dict(email=email, first_name=f"P{n}", last_name="", fields={}, tags=[], attribution={},
                         stage=stage, score=0.0, email_status=status, sms_status="none", created_at=now,
                         updated_at=now))
        (who.everyone if n < total else who.others).append(email)
    who.suppressed = who.everyone[:suppressed]
    who.unconsented = who.everyone[suppressed:suppressed + unconsented]
    who.capped = who.everyone[suppressed + unconsented:suppressed + unconsented + capped]
    with Session(rt.db) as session:
        session.execute(insert(Contact.__table__), rows)  # type: ignore[attr-defined]
        if who.suppressed:
            session.execute(insert(Suppression.__table__), [  # type: ignore[attr-defined]
                dict(address=a, channel="email", reason="hard bounce", created_at=now) for a in who.suppressed])
        if who.capped:
            _two_sends_today(session, who.capped, now)
        session.commit()
    return who


def _two_sends_today(session: Session, emails: list[str], now: datetime) -> None:
    ids = session.execute(select(Contact.id).where(Contact.email.in_(emails))).scalars().all()  # type: ignore[attr-defined]
    session.execute(insert(Enrollment.__table__), [  # type: ignore[attr-defined]
        dict(contact_id=cid, sequence_id="lead-nurture", sequence_version="", entry=1, step_id=None, due_at=None,
             status=EnrollmentStatus.COMPLETED, attempts=0, created_at=now, updated_at=now) for cid in ids])
    enrollments = dict(session.execute(select(Enrollment.contact_id, Enrollment.id)
                                       .where(Enrollment.contact_id.in_(ids))).all())  # type: ignore[attr-defined]
    sent_at = now - timedelta(hours=2)
    session.execute(insert(Delivery.__table__), [  # type: ignore[attr-defined]
        dict(contact_id=cid, enrollment_id=enrollments[cid], sequence_id="lead-nurture", sequence_version="",
             step_id=step, channel="email", kind="educate", recipient="", status=DeliveryStatus.SENT, attempts=1,
             created_at=sent_at, updated_at=sent_at, sent_at=sent_at) for cid in ids for step in ("edu-1", "edu-2")])


def broadcast_deliveries(rt: Runtime, key: str = "spring") -> dict[str, int]:
    """The broadcast's delivery rows by status."""
    with Session(rt.db) as session:
        rows = session.execute(select(Delivery.status, func.count()).where(Delivery.sequence_id == f"broadcast:{key}")
                               .group_by(Delivery.status)).all()
    return {str(status): count for status, count in rows}


def broadcast_enrollments(rt: Runtime, key: str = "spring") -> dict[str, int]:
    with Session(rt.db) as session:
        rows = session.execute(select(Enrollment.status, func.count())
                               .where(Enrollment.sequence_id == f"broadcast:{key}").group_by(Enrollment.status)).all()
    return {str(status): count for status, count in rows}
