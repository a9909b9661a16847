"""`sequences/_lifecycle.yaml` → the Lifecycle rules, with `path:line` problems."""

from __future__ import annotations

from datetime import timedelta

from yaml.nodes import MappingNode, Node

from nurture.content.yaml_reader import NodeReader, Problem, compose
from nurture.content.yaml_reader import value as _value
from nurture.rules.lifecycle import DEFAULT_STAGES, Lifecycle, Scoring
from nurture.rules.sequence import LIFECYCLE_STAGES, parse_duration

LIFECYCLE_FILE = "_lifecycle.yaml"  # beside the sequence files; its leading _ keeps it from being read as one
LIFECYCLE_KEYS = {"stages", "events", "scoring", "caps", "alerts"}


class _LifecycleReader(NodeReader):
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
    root, problems = compose(source, path)
    if root is None:
        return Lifecycle(), problems  # an empty file: the defaults
    reader = _LifecycleReader(path)
    lifecycle = reader.lifecycle(root)
    return (Lifecycle() if reader.problems else lifecycle), sorted(reader.problems)
