"""`integrations.yaml` → the Integrations mapping (Stripe prices to our products, generic inbound hooks, the
attribution windows), with `path:line` problems for `nurture check`; and the holder that re-reads the file
when it changes while the service runs (a file with errors keeps the mapping already loaded)."""

from __future__ import annotations

import logging
import re
import threading
from datetime import timedelta
from pathlib import Path

from yaml.nodes import MappingNode, Node, ScalarNode

from nurture.content.yaml_reader import NodeReader, Problem, compose
from nurture.rules.durations import parse_duration
from nurture.rules.inbound import SIGNATURE_STYLES, Attribution, Hook, Integrations

log = logging.getLogger(__name__)

INTEGRATIONS_FILE = "integrations.yaml"  # at the top of the project, beside sequences/
HOOK_KEYS = {"secret", "signature", "event", "fields", "id", "when", "products"}
EVENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")  # what POST /api/events accepts as a type
SECRET_NAME = re.compile(r"^[A-Z][A-Z0-9_]*_WEBHOOK_SECRET$")
DOTTED = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


class _IntegrationsReader(NodeReader):
    def names(self, node: Node, what: str, value_check: re.Pattern[str] | None = None) -> dict[str, str]:
        """A mapping of plain texts to plain texts (a product map, a field map)."""
        if not isinstance(node, MappingNode):
            self.problem(node, f"{what} must be a mapping, like `key: value`")
            return {}
        found: dict[str, str] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or not isinstance(value_node, ScalarNode) or not value_node.value:
                self.problem(key_node, f"{what}: each entry maps one text to one text")
                continue
            if value_check is not None and not value_check.match(value_node.value):
                # Kept in the mapping all the same: one message about it, not a second one that it is missing.
                self.problem(value_node, f"{what}: {value_node.value!r} is not a dotted path like customer.email")
            if key_node.value in found:
                self.problem(key_node, f"duplicate key {key_node.value!r} in {what}")
            found[str(key_node.value)] = str(value_node.value)
        return found

    def stripe(self, node: Node) -> dict[str, str]:
        fields = self.mapping(node, {"products"}, "stripe")
        return self.names(fields["products"], "stripe products") if "products" in fields else {}

    def hook(self, name: str, node: Node) -> Hook | None:
        what = f"hook {name!r}"
        fields = self.mapping(node, HOOK_KEYS, what)
        if not fields:
            return None
        secret = self.text(fields, "secret", node, what)
        if secret and not SECRET_NAME.match(secret):
            self.problem(fields["secret"], f"secret names the variable that holds it, like "
                                           f"{name.upper().replace('-', '_')}_WEBHOOK_SECRET (never the secret itself)")
        signature = "nurture"
        if "signature" in fields:
            signature = self.choice(fields, "signature", node, what, SIGNATURE_STYLES) or signature
        event = self.text(fields, "event", node, what)
        if event and not EVENT_TYPE.match(event):
            self.problem(fields["event"], "event is a type like purchase or class-booked (lowercase, digits, . _ -)")
        mapped = self.names(fields["fields"], f"{what} fields", DOTTED) if "fields" in fields else {}
        if "source" in mapped:  # every event from a hook says which one it came from
            self.problem(fields["fields"], f"{what} fields: 'source' is set by nurture (hook:{name}); rename it")
        if "email" not in mapped:
            self.problem(fields.get("fields", node), f"{what} fields must say where the email is, like "
                                                     "`email: customer.email`")
        own_id = self.text(fields, "id", node, what)
        if own_id and not DOTTED.match(own_id):
            self.problem(fields["id"], f"id {own_id!r} is not a dotted path like id or payload.uri")
        when = self.names(fields["when"], f"{what} when") if "when" in fields else {}
        products = self.names(fields["products"], f"{what} products") if "products" in fields else {}
        return Hook(name, secret, signature, event, mapped, own_id, when, products)

    def hooks(self, node: Node) -> dict[str, Hook]:
        if not isinstance(node, MappingNode):
            self.problem(node, "hooks map a name (the address /integrations/hooks/NAME) to its settings")
            return {}
        hooks = {}
        for key_node, value_node in node.value:
            name = str(key_node.value)
            if not re.match(r"^[a-z0-9][a-z0-9-]{0,63}$", name):
                self.problem(key_node, f"hook name {name!r} must use lowercase letters, digits and dashes")
            elif name in hooks:
                self.problem(key_node, f"duplicate hook {name!r}")
            elif (hook := self.hook(name, value_node)) is not None:
                hooks[name] = hook
        return hooks

    def window(self, fields: dict[str, Node], key: str, default: timedelta) -> timedelta:
        if key not in fields:
            return default
        node = fields[key]
        try:
            delay = parse_duration(str(node.value) if isinstance(node, ScalarNode) else "")
        except ValueError as exc:
            self.problem(node, str(exc))
            return default
        window = timedelta(days=delay.days, seconds=delay.seconds)
        if window <= timedelta(0):
            self.problem(node, f"{key} must be longer than 0s")
        return window

    def attribution(self, node: Node) -> Attribution:
        fields = self.mapping(node, {"click", "send"}, "attribution")
        default = Attribution()
        return Attribution(self.window(fields, "click", default.click), self.window(fields, "send", default.send))

    def integrations(self, root: Node) -> Integrations:
        fields = self.mapping(root, {"stripe", "hooks", "attribution"}, "integrations file")
        return Integrations(
            stripe_products=self.stripe(fields["stripe"]) if "stripe" in fields else {},
            hooks=self.hooks(fields["hooks"]) if "hooks" in fields else {},
            attribution=self.attribution(fields["attribution"]) if "attribution" in fields else Attribution())


def parse_integrations(source: str, path: str) -> tuple[Integrations, list[Problem]]:
    """The mapping in `source` (the defaults when empty), and its problems."""
    root, problems = compose(source, path)
    if root is None:
        return Integrations(), problems
    reader = _IntegrationsReader(path)
    integrations = reader.integrations(root)
    return integrations, sorted(reader.problems)


def check_integrations(path: Path, shown: str) -> list[Problem]:
    """The file's problems for `nurture check`; no file is no problem (nothing is wired). Whether each hook's
    secret variable is set is the environment's business, not the file's: the endpoint says so when not."""
    if not path.is_file():
        return []
    return parse_integrations(path.read_text(encoding="utf-8"), shown)[1]


class IntegrationsFile:
    """The mapping a running process uses, re-read when the file's mtime or size changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.current = Integrations()
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def get(self) -> Integrations:
        with self._lock:
            stat = self.path.stat() if self.path.is_file() else None
            stamp = (stat.st_mtime_ns, stat.st_size) if stat else None
            if stamp != self._stamp:
                self._stamp = stamp
                self._load()
            return self.current

    def _load(self) -> None:
        if self._stamp is None:
            self.current = Integrations()
            return
        integrations, problems = parse_integrations(self.path.read_text(encoding="utf-8"), str(self.path))
        if problems:
            log.error("%s has errors; keeping the mapping already loaded (nurture check):", self.path)
            for problem in problems:
                log.error("  %s", problem)
            return
        self.current = integrations
