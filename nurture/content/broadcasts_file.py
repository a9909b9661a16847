"""Broadcast files (`broadcasts/*.yaml`) -> `BroadcastSpec`, every problem as `path:line: message`.

    id: spring-open-studio
    name: Spring open studio
    segment: engaged-leads          # segments/engaged-leads.yaml
    channel: email                  # email | sms
    template: open-studio           # email_templates/open-studio.html (+ .txt); sms: sms_templates/NAME.txt
    subject: "Open studio on Saturday: come and throw a pot"
    send_at: now                    # or an ISO time with its zone: 2027-03-20T10:00:00+01:00
    timing: own-window              # each contact in their own window (local time), or at-once
    window: {days: weekdays, hours: "09:00-17:00"}   # own-window only; default every day 09:00-17:00

The definition is also what a console-made broadcast stores (`definition_of` / `spec_from`), and its
`content_version` (the definition and its template's text) is what a test send is made for.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import datetime, time
from pathlib import Path

from yaml.nodes import Node, ScalarNode

from nurture.content.checker import SmsCheck, TemplateCheck, _Checker
from nurture.content.yaml_reader import NodeReader, Problem, compose
from nurture.content.yaml_reader import line as _line
from nurture.content.yaml_reader import value as _value
from nurture.rules.broadcasts import TIMINGS, BroadcastSpec, as_sequence
from nurture.rules.sequence import CHANNELS, Window, parse_days, parse_hours

BROADCAST_KEYS = {"id", "name", "segment", "channel", "template", "subject", "send_at", "timing", "window"}
MAX_ID = 54  # "broadcast:" + id must fit an enrollment's sequence_id (64)


def parse_send_at(value: object) -> datetime | None:
    """`now` -> None (the moment it is started); an ISO time with its zone -> that instant. Raises
    ValueError with what to write instead."""
    if isinstance(value, datetime):  # YAML reads an unquoted timestamp itself
        given = value
    else:
        text = str(value).strip()
        if text.lower() == "now":
            return None
        try:
            given = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"send_at {text!r} is not a time: write `now` or an ISO time with its zone, "
                             "like 2027-03-20T10:00:00+01:00") from None
    if given.tzinfo is None:
        raise ValueError("send_at needs its zone (like +01:00 or Z): whose 10:00 would it be otherwise?")
    return given


class _BroadcastReader(NodeReader):
    def broadcast(self, root: Node) -> tuple[BroadcastSpec | None, dict[str, int]]:
        fields = self.mapping(root, BROADCAST_KEYS, "broadcast")
        if not fields:
            return None, {}
        broadcast_id = self.identifier(fields, "id", root, "broadcast")
        if len(broadcast_id) > MAX_ID:
            self.problem(fields["id"], f"id is {len(broadcast_id)} characters; at most {MAX_ID}")
        channel = self.choice(fields, "channel", root, "broadcast", CHANNELS) if "channel" in fields else "email"
        if channel == "sms" and "subject" in fields:
            self.problem(fields["subject"], "a text has no subject: 'subject' does not belong on an sms broadcast")
        timing = self.choice(fields, "timing", root, "broadcast", TIMINGS) if "timing" in fields else "own-window"
        if timing == "at-once" and "window" in fields:
            self.problem(fields["window"], "timing at-once sends at one moment: a window does not belong here")
        spec = BroadcastSpec(
            id=broadcast_id,
            name=self.text(fields, "name", root, "broadcast"),
            segment=self.identifier(fields, "segment", root, "broadcast"),
            channel=channel,
            template=self.text(fields, "template", root, "broadcast"),
            subject=self.text(fields, "subject", root, "broadcast", required=channel == "email"),
            send_at=self.send_at(fields, root),
            timing=timing,
            window=self.window(fields.get("window")),
        )
        return (None if self.problems else spec), {key: _line(node) for key, node in fields.items()}

    def send_at(self, fields: dict[str, Node], root: Node) -> datetime | None:
        node = fields.get("send_at")
        if node is None:
            self.problem(root, "broadcast is missing required key 'send_at' (`now`, or an ISO time with its zone)")
            return None
        try:
            return parse_send_at(node.value if isinstance(node, ScalarNode) else _value(node))
        except ValueError as exc:
            self.problem(node, str(exc))
            return None

    def window(self, node: Node | None) -> Window | None:
        if node is None:
            return None
        fields = self.mapping(node, {"days", "hours"}, "window")
        try:
            days = parse_days(_value(fields["days"])) if "days" in fields else None
            start, end = parse_hours(fields["hours"].value if "hours" in fields else "09:00-17:00")
            return Window(start, end, days)
        except (ValueError, AttributeError) as exc:
            self.problem(node, f"window: {exc}")
            return None


def parse_broadcast(source: str, path: str) -> tuple[BroadcastSpec | None, list[Problem], dict[str, int]]:
    """One broadcast file's text -> the spec (only without problems), its problems, and each key's line."""
    root, problems = compose(source, path)
    if root is None:
        return None, problems or [Problem(path, 1, "file is empty")], {}
    reader = _BroadcastReader(path)
    spec, lines = reader.broadcast(root)
    return spec, reader.problems, lines


def broadcast_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.y*ml") if p.suffix in (".yaml", ".yml")) if directory.is_dir() else []


def check_templates(spec: BroadcastSpec, shown: str, lines: dict[str, int], check: TemplateCheck) -> list[Problem]:
    """What `nurture check` says about the templates a broadcast names: the very checks a sequence step's
    templates get (they exist, parse, use known names, carry the unsubscribe link and postal address)."""
    sequence = as_sequence(spec, "")
    step = replace(sequence.steps[0], line=lines.get("template", 1), key_lines=dict(lines))
    checker = _Checker(check.root, check.templates_dir, check.root)
    checker.check_sequence(replace(sequence, steps=(step,)), Path(shown), SmsCheck(check.sms_templates_dir), [])
    # The checker names the step ('send'); a broadcast file has none, so say which key instead.
    return [replace(p, path=shown, message=p.message.replace("step 'send': ", "")) for p in checker.problems]


def load_broadcasts(directory: Path, check: TemplateCheck, segments: set[str] | None = None,
                    ) -> tuple[dict[str, tuple[BroadcastSpec, Path]], list[Problem]]:
    """Every broadcast file in `directory` by id (with its file), and every problem: in the file, in the
    templates it names, a segment no file defines (when `segments` is given), a duplicate id."""
    found: dict[str, tuple[BroadcastSpec, Path]] = {}
    problems: list[Problem] = []
    for file in broadcast_files(directory):
        shown = _shown(file, check.root)
        spec, file_problems, lines = parse_broadcast(file.read_text(encoding="utf-8"), shown)
        problems += file_problems
        if spec is None:
            continue
        problems += (mine := check_templates(spec, shown, lines, check))
        if segments is not None and spec.segment not in segments:
            known = ", ".join(sorted(segments)) or "none"
            mine.append(Problem(shown, lines.get("segment", 1),
                                f"unknown segment {spec.segment!r} (segments: {known})"))
            problems.append(mine[-1])
        if spec.id in found:
            problems.append(Problem(shown, lines.get("id", 1), f"broadcast id {spec.id!r} is already used by "
                                                                f"{_shown(found[spec.id][1], check.root)}"))
            continue
        if not mine:
            found[spec.id] = (spec, file)
    return found, problems


def _shown(file: Path, root: Path) -> str:
    try:
        return str(file.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(file)


# --- the stored definition ------------------------------------------------------------------------------------

def _clock(value: time) -> str:
    return value.strftime("%H:%M")


def definition_of(spec: BroadcastSpec) -> dict:
    """The spec as plain JSON (what the broadcast row keeps)."""
    window = spec.window
    return {
        "name": spec.name, "segment": spec.segment, "channel": spec.channel, "template": spec.template,
        "subject": spec.subject, "send_at": spec.send_at.isoformat() if spec.send_at else "now",
        "timing": spec.timing,
        "window": None if window is None else {"days": sorted(window.days) if window.days is not None else None,
                                               "hours": f"{_clock(window.start)}-{_clock(window.end)}"},
    }


def spec_from(key: str, definition: dict) -> BroadcastSpec:
    """The spec a stored definition describes (the inverse of `definition_of`)."""
    window = definition.get("window")
    parsed = None
    if window:
        start, end = parse_hours(window["hours"])
        parsed = Window(start, end, frozenset(window["days"]) if window.get("days") is not None else None)
    return BroadcastSpec(id=key, name=definition["name"], segment=definition["segment"],
                         channel=definition["channel"], template=definition["template"],
                         subject=definition.get("subject", ""), send_at=parse_send_at(definition.get("send_at", "now")),
                         timing=definition.get("timing", "own-window"), window=parsed)


def template_files(spec: BroadcastSpec, check: TemplateCheck) -> list[Path]:
    if spec.channel == "sms":
        return [check.sms_templates_dir / f"{spec.template}.txt"]
    return [check.templates_dir / f"{spec.template}{suffix}" for suffix in (".html", ".txt")]


def content_version(spec: BroadcastSpec, check: TemplateCheck) -> str:
    """A hash of what the broadcast sends: its definition and its template files' text. A test send counts
    for one version; an edit to either needs a new one. (A layout the template extends is not in it.)"""
    digest = hashlib.sha256(json.dumps(definition_of(spec), sort_keys=True).encode())
    for file in template_files(spec, check):
        digest.update(file.read_bytes() if file.is_file() else b"(missing)")
    return digest.hexdigest()[:12]
