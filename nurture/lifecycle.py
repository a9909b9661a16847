"""The business's lifecycle rules, from `sequences/_lifecycle.yaml`: contact stages and how events move
contacts through them, lead scoring, the frequency cap, and where alerts go.

Pure model and parsing (the file is read by the caller); the rules are applied by nurture.automation with
the help of the pure functions at the bottom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import yaml
from yaml.nodes import MappingNode, Node

from nurture.loader import Problem, _FileReader, _value
from nurture.sequence import LIFECYCLE_STAGES, parse_duration

LIFECYCLE_KEYS = {"stages", "events", "scoring", "caps", "alerts"}


@dataclass(frozen=True)
class Scoring:
    points: dict[str, float] = field(default_factory=dict)  # event type -> points
    decay_points: float = 0.0
    decay_every: timedelta | None = None
    threshold: float | None = None
    sequence: str | None = None  # entered when the score passes the threshold
    alert: bool = False  # email the sales contact when it does


@dataclass(frozen=True)
class Lifecycle:
    # Contact stages in order, each mapped to the lifecycle stage it belongs to.
    stages: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_STAGES))
    # Event type -> stages: the first occurrence moves the contact to the first, later ones to the last.
    events: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_EVENTS))
    scoring: Scoring = Scoring()
    per_day: int = 0  # marketing messages per contact per rolling day, 0 = no cap
    per_week: int = 0
    sales_email: str | None = None  # hot-lead alerts
    owner_email: str | None = None  # unhappy-customer alerts

    def rank(self, stage: str) -> int:
        order = list(self.stages)
        return order.index(stage) if stage in order else -1


DEFAULT_EVENTS = {"purchase": ("customer", "repeat-customer"), "referral": ("advocate",)}
DEFAULT_STAGES = {
    "lead": "capture-leads",
    "prospect": "nurture-prospects",
    "customer": "deliver-satisfy",
    "repeat-customer": "upsell-customers",
    "advocate": "get-referrals",
}


class _LifecycleReader(_FileReader):
    def stages(self, node: Node) -> dict[str, str]:
        if not isinstance(node, MappingNode):
            self.problem(node, "stages map each contact stage, in order, to its lifecycle stage")
            return dict(DEFAULT_STAGES)
        stages: dict[str, str] = {}
        for key_node, value_node in node.value:
            value = str(_value(value_node))
            if value not in LIFECYCLE_STAGES:
                self.problem(value_node, f"unknown lifecycle stage {value!r} (expected one of: "
                                         f"{', '.join(LIFECYCLE_STAGES)})")
            stages[str(key_node.value)] = value
        return stages

    def events(self, node: Node, stages: dict[str, str]) -> dict[str, tuple[str, ...]]:
        if not isinstance(node, MappingNode):
            self.problem(node, "events map an event type to a stage, like `purchase: customer`")
            return {}
        rules = {}
        for key_node, value_node in node.value:
            value = _value(value_node)
            names = tuple(value) if isinstance(value, list) else (value,)
            for name in names:
                if name not in stages:
                    self.problem(value_node, f"unknown contact stage {name!r} (stages: {', '.join(stages)})")
            rules[str(key_node.value)] = tuple(str(n) for n in names)
        return rules

    def scoring(self, node: Node) -> Scoring:
        fields = self.mapping(node, {"points", "decay", "threshold", "sequence", "alert"}, "scoring")
        points: dict[str, float] = {}
        if "points" in fields:
            raw = _value(fields["points"])
            if not isinstance(raw, dict) or not all(isinstance(v, int | float) for v in raw.values()):
                self.problem(fields["points"], "points map an event type to a number, like `email.clicked: 3`")
            else:
                points = {str(k): float(v) for k, v in raw.items()}
        decay_points, decay_every = 0.0, None
        if "decay" in fields:
            raw = _value(fields["decay"])
            try:
                decay_points = float(raw["points"])
                delay = parse_duration(raw["every"])
                decay_every = timedelta(days=delay.days, seconds=delay.seconds)
            except (TypeError, KeyError, ValueError):
                self.problem(fields["decay"], "decay takes {points: 1, every: 7d}")
        threshold = _value(fields["threshold"]) if "threshold" in fields else None
        if threshold is not None and not isinstance(threshold, int | float):
            self.problem(fields["threshold"], "threshold is a number")
            threshold = None
        sequence = str(_value(fields["sequence"])) if "sequence" in fields else None
        alert = bool(_value(fields["alert"])) if "alert" in fields else False
        return Scoring(points, decay_points, decay_every, threshold, sequence, alert)

    def caps(self, node: Node) -> tuple[int, int]:
        fields = self.mapping(node, {"per_day", "per_week"}, "caps")
        values = []
        for key in ("per_day", "per_week"):
            value = _value(fields[key]) if key in fields else 0
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                self.problem(fields[key], f"{key} is a whole number (0 for no cap)")
                value = 0
            values.append(value)
        return values[0], values[1]

    def lifecycle(self, root: Node) -> Lifecycle:
        fields = self.mapping(root, LIFECYCLE_KEYS, "lifecycle file")
        stages = self.stages(fields["stages"]) if "stages" in fields else dict(DEFAULT_STAGES)
        alerts = _value(fields["alerts"]) if "alerts" in fields else {}
        if not isinstance(alerts, dict) or not set(alerts) <= {"sales", "owner"}:
            self.problem(fields.get("alerts", root), "alerts take {sales: ADDRESS, owner: ADDRESS}")
            alerts = {}
        per_day, per_week = self.caps(fields["caps"]) if "caps" in fields else (0, 0)
        return Lifecycle(
            stages=stages,
            events=self.events(fields["events"], stages) if "events" in fields else Lifecycle().events,
            scoring=self.scoring(fields["scoring"]) if "scoring" in fields else Scoring(),
            per_day=per_day, per_week=per_week,
            sales_email=alerts.get("sales"), owner_email=alerts.get("owner"),
        )


def parse_lifecycle(source: str, path: str) -> tuple[Lifecycle, list[Problem]]:
    """The rules in `source`, or the defaults (and the problems) when it has errors."""
    reader = _LifecycleReader(path)
    try:
        root = yaml.compose(source, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return Lifecycle(), [Problem(path, mark.line + 1 if mark else 1, f"YAML syntax error: {exc}")]
    if root is None:
        return Lifecycle(), []
    lifecycle = reader.lifecycle(root)
    return (Lifecycle() if reader.problems else lifecycle), sorted(reader.problems)


# --- pure rules --------------------------------------------------------------------------------------------

def stage_after_event(rules: Lifecycle, current: str, event_type: str, earlier_occurrences: int) -> str | None:
    """The stage an event moves a contact to, or None. Events only move contacts forward: a purchase makes
    a lead a customer, a later purchase a repeat customer, and never turns an advocate back into either."""
    targets = rules.events.get(event_type)
    if not targets:
        return None
    target = targets[0] if earlier_occurrences == 0 else targets[-1]
    return target if rules.rank(target) > rules.rank(current) else None


def decayed_score(score: float, since: datetime | None, now: datetime, scoring: Scoring) -> float:
    """`score` less the decay earned since `since` (never below zero)."""
    if since is None or not scoring.decay_every or not scoring.decay_points:
        return score
    periods = math.floor((now - since) / scoring.decay_every)
    return max(0.0, score - periods * scoring.decay_points)

