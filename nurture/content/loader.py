"""Sequence files (YAML) -> `Sequence` objects, with every problem reported as `path:line: message`
(read with line numbers by nurture.content.yaml_reader, like form and lifecycle files)."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from pathlib import Path

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from nurture.content.yaml_reader import NodeReader, Problem, compose
from nurture.content.yaml_reader import line as _line
from nurture.content.yaml_reader import value as _value
from nurture.rules.conditions import Condition, parse_condition
from nurture.rules.locales import InvalidLocale, normalise_locale
from nurture.rules.sequence import (
    CHANNELS,
    JUDGES,
    LIFECYCLE_STAGES,
    MESSAGE_KINDS,
    Delay,
    Offer,
    Reentry,
    Sequence,
    Step,
    Trigger,
    Variant,
    Wait,
    WaitFor,
    Window,
    parse_clock,
    parse_days,
    parse_duration,
    parse_hours,
)

SEQUENCE_KEYS = {"id", "name", "stage", "description", "transactional", "trigger", "enter", "reentry", "goals",
                 "window", "utm", "holdout", "steps"}
STEP_KEYS = {"id", "kind", "channel", "wait", "at", "on", "template", "subject", "if", "goto", "wait_for",
             "set_stage", "offers", "variants", "judge"}
OFFER_KEYS = {"after", "offer", "template", "subject"}
VARIANT_KEYS = {"id", "weight", "template", "subject"}
_VARIANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
MAX_HOLDOUT = 0.5  # past half, the "holdout" is the sequence and the sequence a sample
WAIT_FOR_KEYS = {"event", "timeout", "then", "else"}
TRIGGER_KINDS = ("event", "tag", "form", "stage", "inactive", "segment")


class SequenceFileError(Exception):
    """One or more sequence files cannot be used; `problems` says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class _SequenceReader(NodeReader):
    """Turns one sequence file's node tree into a Sequence, collecting its problems."""

    def triggers(self, node: Node | None) -> tuple[Trigger, ...]:
        if node is None:
            return ()
        items = node.value if isinstance(node, SequenceNode) else [node]
        triggers = []
        for item in items:
            value = _value(item)
            kinds = [k for k in TRIGGER_KINDS if isinstance(value, dict) and k in value]
            if not isinstance(value, dict) or len(value) != 1 or len(kinds) != 1 or not value[kinds[0]]:
                self.problem(item, "a trigger is one of {event: NAME}, {tag: NAME}, {form: ID}, {stage: NAME}, "
                                   f"{{inactive: 90d}}, {{segment: ID}}; got {value!r}")
                continue
            if kinds[0] == "inactive":
                try:
                    parse_duration(value["inactive"])
                except ValueError as exc:
                    self.problem(item, f"inactive: {exc}")
                    continue
            triggers.append(Trigger(kinds[0], str(value[kinds[0]])))
        return tuple(triggers)

    def entered_from(self, node: Node | None) -> tuple[Trigger, ...]:
        """`enter: {segment: ID}`: a segment's own way to say `trigger: [{segment: ID}]` — the contacts who come
        into the segment enter (docs/segments.md). Only a segment: the other triggers are events, not states."""
        if node is None:
            return ()
        value = _value(node)
        if not isinstance(value, dict) or set(value) != {"segment"} or not value["segment"]:
            self.problem(node, f"enter takes {{segment: ID}} (those coming into the segment enter); got {value!r}")
            return ()
        return (Trigger("segment", str(value["segment"])),)

    def reentry(self, node: Node | None) -> Reentry:
        if node is None:
            return Reentry()
        value = str(_value(node)).strip()
        if value in ("once", "always"):
            return Reentry(value)
        if value.startswith("after "):
            try:
                delay = parse_duration(value.removeprefix("after "))
                return Reentry("after", timedelta(days=delay.days, seconds=delay.seconds))
            except ValueError:
                pass
        self.problem(node, f"reentry is once, always, or 'after 30d' (not again within that long); got {value!r}")
        return Reentry()

    def goals(self, node: Node | None) -> tuple[Condition, ...]:
        if node is None:
            return ()
        if not isinstance(node, SequenceNode) or not node.value:
            self.problem(node, "goals take a list of conditions, like - {event: purchase}")
            return ()
        return tuple(c for c in (self.condition(item) for item in node.value) if c is not None)

    def window(self, node: Node | None) -> Window | None:
        if node is None:
            return None
        fields = self.mapping(node, {"days", "hours"}, "window")
        try:
            days = parse_days(_value(fields["days"])) if "days" in fields else None
            hours = fields["hours"].value if "hours" in fields else "00:00-23:59"
            start, end = parse_hours(hours)
            return Window(start, end, days)
        except (ValueError, AttributeError) as exc:
            self.problem(node, f"window: {exc}")
            return None

    def utm(self, node: Node | None) -> dict[str, str]:
        if node is None:
            return {}
        value = _value(node)
        allowed = {"source", "medium", "campaign", "content", "term"}
        if not isinstance(value, dict) or not set(value) <= allowed:
            self.problem(node, f"utm takes a mapping with keys among {', '.join(sorted(allowed))}")
            return {}
        return {str(k): str(v) for k, v in value.items()}

    def cross_references(self, steps: list[Step]) -> None:
        """goto, then and else must name steps of this sequence."""
        ids = {s.id for s in steps} | {"end"}  # "end" finishes the sequence
        for step in steps:
            targets = [("goto", step.goto)]
            if step.wait_for:
                targets += [("wait_for", step.wait_for.then), ("wait_for", step.wait_for.otherwise)]
            for key, target in targets:
                if target and target not in ids:
                    self.problem(step.line_of(key), f"step {step.id!r}: {key} names unknown step {target!r}")

    def wait(self, fields: dict[str, Node]) -> Wait:
        parsed: dict[str, object] = {}
        for key, parse in (("wait", parse_duration), ("at", parse_clock), ("on", parse_days)):
            if key in fields:
                node = fields[key]
                # `at` is read from the raw text: YAML 1.1 turns an unquoted 25:00 into the number 1500.
                raw = node.value if key == "at" and isinstance(node, ScalarNode) else _value(node)
                try:
                    parsed[key] = parse(raw)
                except ValueError as exc:
                    self.problem(fields[key], str(exc))
        return Wait(delay=parsed.get("wait", Delay()), at=parsed.get("at"), days=parsed.get("on"))

    def step(self, node: Node, seen: dict[str, int]) -> Step | None:
        fields = self.mapping(node, STEP_KEYS, "step")
        if not fields:
            return None
        step_id = self.identifier(fields, "id", node, "step")
        if step_id in seen:
            self.problem(fields["id"], f"duplicate step id {step_id!r} (first used on line {seen[step_id]})")
        elif step_id:
            seen[step_id] = _line(fields["id"])
        wait_for = self.wait_for(fields["wait_for"]) if "wait_for" in fields else None
        sends = "wait_for" not in fields
        if not sends:
            for key in sorted({"template", "subject", "kind", "channel", "wait", "at", "on", "variants", "judge"}
                              & set(fields)):
                self.problem(fields[key], f"a wait_for step sends nothing: {key!r} does not belong here")
        channel = self.choice(fields, "channel", node, "step", CHANNELS) if "channel" in fields else "email"
        if "offers" in fields and {"template", "subject"} & set(fields):
            self.problem(fields["offers"], "a step with offers takes template and subject from each offer")
        if channel == "sms" and "subject" in fields:
            self.problem(fields["subject"], "a text has no subject: 'subject' does not belong on an sms step")
        variants = self.variants(fields["variants"], channel) if "variants" in fields and sends else ()
        if variants and "offers" in fields:
            self.problem(fields["variants"], "a step with offers cannot have variants too: each offer is its own "
                                             "message already")
        # A step whose every variant brings its own template (or subject) needs none itself.
        own_template = "offers" not in fields and not (variants and all(v.template for v in variants))
        own_subject = "offers" not in fields and not (variants and all(v.subject for v in variants))
        return Step(
            id=step_id,
            kind=self.choice(fields, "kind", node, "step", MESSAGE_KINDS) if sends else "",
            channel=channel,
            # An upsell with offers takes its template and subject from the offer it picks.
            template=self.text(fields, "template", node, "step", required=own_template) if sends else "",
            **self.subjects(fields, node, required=sends and channel == "email" and own_subject),
            wait=self.wait(fields),
            condition=self.condition(fields.get("if")),
            goto=self.identifier(fields, "goto", node, "step") if "goto" in fields else None,
            wait_for=wait_for,
            set_stage=self.identifier(fields, "set_stage", node, "step") if "set_stage" in fields else None,
            offers=self.offers(fields["offers"]) if "offers" in fields else (),
            variants=variants,
            judge=self.choice(fields, "judge", node, "step", JUDGES) if "judge" in fields else "clicks",
            line=_line(node),
            key_lines={key: _line(value) for key, value in fields.items()},
        )

    def subjects(self, fields: dict[str, Node], step: Node, required: bool) -> dict:
        """`subject: "..."`, or one per language: `subject: {en: "...", fr: "..."}`. The first entry of a
        mapping is what a contact gets whose language has none (docs/locales.md)."""
        node = fields.get("subject")
        if not isinstance(node, MappingNode):
            return {"subject": self.text(fields, "subject", step, "step", required=required)}
        subjects: list[tuple[str, str]] = []
        for key_node, value_node in node.value:
            try:
                locale = normalise_locale(str(_value(key_node)))
            except InvalidLocale as exc:
                self.problem(key_node, f"subject: {exc}")
                continue
            text = self.text({"subject": value_node}, "subject", node, "step")
            if locale in dict(subjects):
                self.problem(key_node, f"subject: {locale!r} is given twice")
            elif text:
                subjects.append((locale, text))
        if not subjects:
            self.problem(node, "subject: give at least one, like {en: \"Welcome\", fr: \"Bienvenue\"}")
            return {"subject": ""}
        return {"subject": subjects[0][1], "subjects": tuple(subjects)}

    def offers(self, node: Node) -> tuple[Offer, ...]:
        if not isinstance(node, SequenceNode) or not node.value:
            self.problem(node, "offers take a list like - {after: wheel-course, offer: glaze-kit, template: ..., "
                               "subject: ...}")
            return ()
        offers = []
        for item in node.value:
            fields = self.mapping(item, OFFER_KEYS, "offer")
            values = [self.text(fields, key, item, "offer") for key in ("after", "offer", "template", "subject")]
            if all(values):
                offers.append(Offer(*values))
        return tuple(offers)

    def variants(self, node: Node, channel: str) -> tuple[Variant, ...]:
        """An experiment: two or more variants, each with an id, a weight and its template and/or subject."""
        if not isinstance(node, SequenceNode) or len(node.value) < 2:
            self.problem(node, "variants take a list of two or more, like - {id: a, weight: 50%, subject: ...}; "
                               "one variant is no experiment")
            return ()
        variants: list[Variant] = []
        for item in node.value:
            variant = self.variant(item, channel, {v.id for v in variants})
            if variant is not None:
                variants.append(variant)
        self.weights_add_up(node, variants)
        return tuple(variants) if len(variants) == len(node.value) else ()

    def variant(self, node: Node, channel: str, taken: set[str]) -> Variant | None:
        fields = self.mapping(node, VARIANT_KEYS, "variant")
        if not fields:
            return None
        variant_id = self.text(fields, "id", node, "variant")
        if variant_id and not _VARIANT_ID.match(variant_id):
            self.problem(fields["id"], f"variant id {variant_id!r} must use letters, digits and dashes")
        if variant_id in taken:
            self.problem(fields["id"], f"duplicate variant id {variant_id!r}")
        if not {"template", "subject"} & set(fields):
            self.problem(node, f"variant {variant_id!r} changes nothing: give it a template, a subject, or both")
        if channel == "sms" and "subject" in fields:
            self.problem(fields["subject"], "a text has no subject: 'subject' does not belong on an sms variant")
        weight = self.weight(fields["weight"]) if "weight" in fields else 1.0
        template = self.text(fields, "template", node, "variant", required=False)
        subject = self.text(fields, "subject", node, "variant", required=False)
        if not variant_id or weight is None:
            return None
        return Variant(variant_id, weight, template, subject, line=_line(node))

    def weight(self, node: Node) -> float | None:
        """50% or 50 or 0.5: a share relative to the others' (percentages must add up to 100%)."""
        raw = str(_value(node)).strip()
        try:
            weight = float(raw.removesuffix("%"))
        except ValueError:
            weight = -1.0
        if not weight > 0 or weight == float("inf"):
            self.problem(node, f"weight {raw!r} must be a number above 0, like 50% or 1")
            return None
        return weight

    def weights_add_up(self, node: SequenceNode, variants: list[Variant]) -> None:
        """Weights written as percentages must add up to 100%: 50% and 40% is a mistake, not a 5:4 split."""
        written = [_value(f) for item in node.value for k, f in getattr(item, "value", [])
                   if getattr(k, "value", None) == "weight"]
        percents = [str(w).strip() for w in written if str(w).strip().endswith("%")]
        if percents and len(variants) == len(node.value):
            total = sum(v.weight for v in variants)
            if len(percents) != len(variants) or abs(total - 100) > 1e-6:
                self.problem(node, f"variant weights in % must all be percentages adding up to 100%, "
                                   f"got {', '.join(str(w) for w in written)}")

    def holdout(self, node: Node | None) -> float:
        """`holdout: 10%` (or 0.1): the share of entering contacts that get nothing, from 0 to 50%."""
        if node is None:
            return 0.0
        raw = str(_value(node)).strip()
        try:
            share = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
        except ValueError:
            share = -1.0
        if not 0 <= share <= MAX_HOLDOUT:
            self.problem(node, f"holdout {raw!r} must be a share from 0% to 50%, like 10%")
            return 0.0
        return share

    def condition(self, node: Node | None) -> Condition | None:
        if node is None:
            return None
        try:
            return parse_condition(_value(node))
        except (ValueError, TypeError) as exc:
            self.problem(node, str(exc))
            return None

    def wait_for(self, node: Node) -> WaitFor | None:
        fields = self.mapping(node, WAIT_FOR_KEYS, "wait_for")
        if not fields:
            return None
        event = self.text(fields, "event", node, "wait_for")
        timeout_node = fields.get("timeout")
        if timeout_node is None:
            self.problem(node, "wait_for needs a timeout, like `timeout: 3d` (nothing waits forever)")
            return None
        try:
            timeout = parse_duration(_value(timeout_node))
        except ValueError as exc:
            self.problem(timeout_node, str(exc))
            return None
        then = self.identifier(fields, "then", node, "wait_for") if "then" in fields else None
        otherwise = self.identifier(fields, "else", node, "wait_for") if "else" in fields else None
        return WaitFor(event, timeout, then=then, otherwise=otherwise) if event else None

    def sequence(self, root: Node, version: str, source: str = "") -> Sequence | None:
        fields = self.mapping(root, SEQUENCE_KEYS, "sequence")
        if not fields:
            return None
        steps_node = fields.get("steps")
        steps: list[Step] = []
        if steps_node is None:
            self.problem(root, "sequence is missing required key 'steps'")
        elif not isinstance(steps_node, SequenceNode) or not steps_node.value:
            self.problem(steps_node, "'steps' must be a non-empty list of steps")
        else:
            seen: dict[str, int] = {}
            steps = [s for s in (self.step(n, seen) for n in steps_node.value) if s is not None]
            self.cross_references(steps)
        return Sequence(
            id=self.identifier(fields, "id", root, "sequence"),
            name=self.text(fields, "name", root, "sequence"),
            stage=self.choice(fields, "stage", root, "sequence", LIFECYCLE_STAGES),
            description=self.text(fields, "description", root, "sequence", required=False),
            transactional=self.flag(fields, "transactional"),
            triggers=self.triggers(fields.get("trigger")) + self.entered_from(fields.get("enter")),
            reentry=self.reentry(fields.get("reentry")),
            goals=self.goals(fields.get("goals")),
            window=self.window(fields.get("window")),
            utm=self.utm(fields.get("utm")),
            holdout=self.holdout(fields.get("holdout")),
            steps=tuple(steps),
            path=self.path,
            version=version,
            source=source,
        )

    def judged_on_goal(self, sequence: Sequence) -> None:
        """`judge: goal` needs a goal to judge by; a message the contact asked for is never held out."""
        if sequence.holdout and sequence.transactional:
            self.problem(1, "a transactional sequence cannot have a holdout: the contact asked for its message")
        for step in sequence.steps:
            if step.judge == "goal" and not sequence.goals:
                self.problem(step.line_of("judge"), f"step {step.id!r}: judge: goal, but the sequence has no goals")
            elif "judge" in step.key_lines and not step.variants:
                self.problem(step.line_of("judge"), f"step {step.id!r}: judge is for a step with variants")


def parse_sequence(source: str, path: str, partial: bool = False) -> tuple[Sequence | None, list[Problem]]:
    """Parse one sequence file's text. Returns the sequence only when there are no problems, unless
    `partial` (for `nurture check`, which goes on to check the templates of a file with other errors)."""
    root, problems = compose(source, path)
    if root is None:
        return None, problems or [Problem(path, 1, "file is empty")]
    reader = _SequenceReader(path)
    version = hashlib.sha256(source.encode()).hexdigest()[:12]
    sequence = reader.sequence(root, version, source)
    if sequence is not None:
        reader.judged_on_goal(sequence)
    return (None if reader.problems and not partial else sequence), reader.problems


def sequence_files(directory: Path) -> list[Path]:
    """The sequence files in `directory`. Files starting with `_` are not sequences (`_lifecycle.yaml`)."""
    return sorted(p for p in directory.glob("*.y*ml") if p.suffix in (".yaml", ".yml") and not p.name.startswith("_"))


def load_sequences(directory: Path, display_root: Path | None = None,
                   partial: bool = False) -> tuple[dict[str, Sequence], list[Problem]]:
    """Every sequence in `directory`, keyed by id, and every problem found (including duplicate ids)."""
    sequences: dict[str, Sequence] = {}
    problems: list[Problem] = []
    for file in sequence_files(directory):
        shown = _display(file, display_root)
        sequence, found = parse_sequence(file.read_text(encoding="utf-8"), shown, partial)
        problems += found
        if sequence is None:
            continue
        if sequence.id in sequences and sequence.id:
            problems.append(Problem(shown, 1, f"sequence id {sequence.id!r} is already used by "
                                              f"{sequences[sequence.id].path}"))
            continue
        sequences[sequence.id] = sequence
    return sequences, problems


def _display(file: Path, root: Path | None) -> str:
    try:
        return str(file.relative_to(root)) if root else str(file)
    except ValueError:
        return str(file)
