"""`nurture broadcasts plan ID` and the console's figures: how many of the segment will get a broadcast when
it goes, and how many are held back by what — each member decided by the worker's own functions
(`decisions.consent_block`, `decisions.quiet_hours`, `decisions.send_hold`), a page of members at a time.

Read only: it sends nothing and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlmodel import Session

from nurture.delivery import broadcasts
from nurture.delivery.broadcasts import PAGE
from nurture.delivery.channels import channel_for
from nurture.rules import decisions, engine
from nurture.rules.broadcasts import STEP_ID, BroadcastSpec, Tally, due_at
from nurture.rules.segments import Segment
from nurture.store import broadcasts as store
from nurture.store import deliverability as guard_store
from nurture.store import funnel
from nurture.store import segments as segment_store
from nurture.store.models import Broadcast

if TYPE_CHECKING:
    from nurture.runtime import Runtime


@dataclass(frozen=True)
class Plan:
    broadcast: Broadcast
    spec: BroadcastSpec
    at: datetime  # the moment the figures are for: when it goes (or now, once it is going)
    tally: Tally | None  # None: its segment is not defined
    paused: str | None  # the reputation guard holds marketing email: why
    progress: store.Progress
    # Once started, what its messages did, counted as a sequence step's funnel is (store.funnel): people
    # who clicked (a link scanner's click is not a person's), unsubscribed from its link, bounced.
    engagement: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        spec, row = self.spec, self.broadcast
        timing = "at once" if spec.timing == "at-once" else "in each contact's own window"
        window = spec.send_window
        if window is not None:
            timing += f" ({window.start:%H:%M}-{window.end:%H:%M} local time)"
        out = [f"broadcast {row.key}: {row.name} ({spec.channel}, template {spec.template}, {row.status}, "
               f"{row.origin})",
               f"  segment {spec.segment}, sends {self.at:%Y-%m-%d %H:%M} UTC, {timing}"]
        if self.tally is None:
            return out + [f"  segment {spec.segment!r} is not defined: nobody would get it"]
        held = self.tally.held or {}
        out += [f"  segment members:        {self.tally.members}",
                f"  will get it:            {self.tally.will_get}",
                f"  held back:              {self.tally.held_back}, by:"]
        out += [f"    {reason + ':':<24}{count}" + _note(reason) for reason, count in held.items()
                if reason != "already sent"]
        out.append(f"  sent already:           {held['already sent']}")
        if self.paused:
            out.append(f"  marketing email is paused by the reputation guard ({self.paused}): nothing goes until "
                       "`nurture resume-sending`")
        if row.status != store.DRAFT:
            done = self.progress
            out.append(f"  progress: {done.count('sent')} sent, {done.count('skipped')} skipped, "
                       f"{done.count('failed')} failed, {done.waiting} waiting (of {done.written} written)")
            seen = self.engagement
            out.append(f"  since: {seen.get('clicked', 0)} clicked (people, not link scanners), "
                       f"{seen.get('unsubscribed', 0)} unsubscribed, {seen.get('bounced', 0)} bounced")
        return out


def _note(reason: str) -> str:
    return {"cap reached": "  (deferred, not dropped)", "window or quiet hours": "  (deferred, not dropped)"}.get(
        reason, "")


def make_plan(rt: Runtime, session: Session, key: str) -> Plan:
    row = broadcasts.get(rt, session, key)
    spec = broadcasts.spec_of(row)
    now = rt.clock()
    at = max(store.aware(row.send_at) or due_at(spec, now), now)
    segment = broadcasts.segments(rt)[0].get(spec.segment)
    tally = None if segment is None else _tally(rt, session, spec, segment, at)
    pause = guard_store.open_pause(session) if spec.channel == "email" else None
    engagement = {}
    if row.started_at is not None:
        counted = funnel.count_funnel(session, spec.sequence_id, store.aware(row.started_at) or now)
        engagement = dict(counted.steps.get(STEP_ID, {}))
    return Plan(row, spec, at, tally, pause.reason if pause else None, store.progress(session, spec.sequence_id),
                engagement)


def _tally(rt: Runtime, session: Session, spec: BroadcastSpec, segment: Segment, at: datetime) -> Tally:
    tally, cursor = Tally(), None
    scoring = rt.sequences.lifecycle.scoring
    while True:
        ids = segment_store.member_ids(session, segment, at, after_id=cursor, limit=PAGE, scoring=scoring)
        for reason in _reasons(rt, session, spec, ids, at):
            tally.add(reason)
        if len(ids) < PAGE:
            return tally
        cursor = ids[-1]


def _reasons(rt: Runtime, session: Session, spec: BroadcastSpec, ids: list[int], at: datetime) -> list[str | None]:
    """Why each of these members would not get the broadcast at `at` (None: it goes), in the worker's
    order: already sent; consent_block (consent, suppression, address); then send_hold (quiet hours for a
    text, the window, the frequency cap)."""
    if not ids:
        return []
    channel = channel_for(spec.channel)
    members = store.members(session, ids, spec.channel, spec.sequence_id)
    lifecycle, sms = rt.sequences.lifecycle, rt.settings.sms
    transactional = {s.id for s in rt.sequences.all() if s.transactional}
    sent = store.sent_times(session, ids, at - timedelta(days=7), transactional)
    reasons: list[str | None] = []
    for m in members:
        if m.done:
            reasons.append("already sent")
            continue
        address = m.phone if spec.channel == "sms" else m.email
        blocked = decisions.consent_block(channel.name, address, m.statuses[channel.status_field], m.suppressed,
                                          False)
        if blocked:
            reasons.append(blocked)
            continue
        quiet = decisions.quiet_hours(at, m.phone, m.timezone, sms.hours, sms.hours_by_region) \
            if spec.channel == "sms" else None
        hold = decisions.send_hold(at, quiet, False, spec.send_window, engine.contact_zone(m.timezone),
                                   sent.get(m.id, []), lifecycle.per_day, lifecycle.per_week)
        reasons.append(hold[1] if hold else None)
    return reasons
