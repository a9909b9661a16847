"""Showing a simulated timeline: fixed-width lines (the same input gives the same lines, so they can serve
as a snapshot in tests) or JSON."""

from __future__ import annotations

from datetime import tzinfo

from nurture.insight.timeline import Entry, SimContact, Timeline
from nurture.insight.times import is_utc, iso_utc, stamp, utc_stamp
from nurture.rules import experiments
from nurture.rules.statuses import Subscription


def describe(entry: Entry, zone: tzinfo) -> str:
    """The text after the `what` column."""
    reason = entry.reason or ""
    if entry.what == "sent":
        text = f"{entry.kind} {entry.template}" + (f" by {entry.channel}" if entry.channel != "email" else "")
        text += f", variant {entry.variant}" if entry.variant else ""
    elif entry.what == "deferred" and entry.until is not None:
        text = f"{reason} -> {stamp(entry.until, zone)}"
    elif entry.what == "branched":
        text = f"-> {entry.target}: {reason}"
    elif entry.what == "event" and entry.event is not None:
        text = " ".join([entry.event.type, *(f"{k}={v}" for k, v in entry.event.data.items())])
    elif entry.what == "goal":
        text = reason.removeprefix("goal reached: ") + " reached; the sequence ends"
    else:
        text = "" if entry.what == "completed" else reason
    return f"{text} ({'; '.join(entry.changes)})" if entry.changes else text


def _who(contact: SimContact) -> str:
    parts = [f"stage {contact.stage}"]
    if contact.tags:
        parts.append(f"tags {', '.join(sorted(contact.tags))}")
    if contact.score:
        parts.append(f"score {contact.score:g}")
    parts += [f"{key}={value}" for key, value in sorted(contact.fields.items())]
    if contact.phone:
        parts.append(f"phone {contact.phone} (texts {contact.sms_status})")
    if contact.email_status != Subscription.SUBSCRIBED:
        parts.append(f"email {contact.email_status}")
    return ", ".join(parts)


def _heading(timeline: Timeline) -> str:
    contact = timeline.contact
    where = f"in {contact.timezone} ({_who(contact)})" if contact.timezone else \
        f"with no timezone ({_who(contact)}), times in UTC"
    return f"{timeline.sequence.id}: a contact {where}, entering {stamp(timeline.start, contact.zone)}" + \
        _experiments(timeline)


def _experiments(timeline: Timeline) -> str:
    """Which variants and holdout a contact gets depends on its id: say whose, or that none was given."""
    sequence, contact_id = timeline.sequence, timeline.contact.id
    if not (sequence.holdout or any(step.variants for step in sequence.steps)):
        return ""
    if contact_id is None:
        return "; variants and holdout go by contact id: none given (id=N), so the first variant, not held out"
    held = experiments.held_out(sequence, contact_id) if sequence.holdout else False
    return f"; as contact id {contact_id}" + (", held out" if held else "")


def format_timeline(timeline: Timeline) -> list[str]:
    """Fixed-width lines: local time, UTC (left out when local time is UTC: it would say the same twice),
    step, what happened and why."""
    zone, entries = timeline.contact.zone, timeline.entries
    columns = [[stamp(entry.at, zone) for entry in entries]]
    if not is_utc(zone):
        columns.append([utc_stamp(entry.at) for entry in entries])
    widths = [max(map(len, column), default=0) + 2 for column in columns]
    width = max([4, *(len(s.id) for s in timeline.sequence.steps)]) + 2
    lines = [_heading(timeline)]
    for n, entry in enumerate(entries):
        times = "".join(f"{column[n]:<{w}}" for column, w in zip(columns, widths, strict=True))
        lines.append(f"{times}{entry.step or '-':<{width}}{entry.what:<10}{describe(entry, zone)}".rstrip())
    return lines + [f"  {note}" for note in timeline.notes]


def timeline_json(timeline: Timeline) -> dict:
    zone, contact = timeline.contact.zone, timeline.contact
    return {
        "sequence": timeline.sequence.id,
        "version": timeline.sequence.version,
        "contact": {"timezone": contact.timezone, "tags": sorted(contact.tags), "fields": dict(contact.fields),
                    "stage": contact.stage, "score": contact.score, "phone": contact.phone,
                    "email_status": contact.email_status, "sms_status": contact.sms_status,
                    **({"id": contact.id} if contact.id is not None else {})},
        "start": iso_utc(timeline.start),
        "entries": [_entry_json(entry, zone) for entry in timeline.entries],
        **({"segments": list(timeline.notes)} if timeline.notes else {}),
    }


def _entry_json(entry: Entry, zone: tzinfo) -> dict:
    data = {
        "at": iso_utc(entry.at), "local": entry.at.astimezone(zone).isoformat(), "what": entry.what,
        "step": entry.step, "reason": entry.reason, "until": iso_utc(entry.until) if entry.until else None,
        "target": entry.target, "channel": entry.channel, "kind": entry.kind, "template": entry.template,
        "variant": entry.variant,
        "event": {"type": entry.event.type, "data": dict(entry.event.data)} if entry.event else None,
        "changes": list(entry.changes) or None, "text": describe(entry, zone),
    }
    return {key: value for key, value in data.items() if value is not None}
