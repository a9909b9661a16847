"""`webhooks.yaml` → the endpoints webhooks go out to, with `path:line` problems.

    endpoints:
      - name: crm
        url: https://crm.example.com/hooks/nurture
        events: [contact.created, stage.changed]   # leave out for every event
        secret_env: WEBHOOK_SECRET_CRM             # the variable holding whsec_...; never the secret itself
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import yaml
from yaml.nodes import Node, ScalarNode, SequenceNode

from nurture.content.yaml_reader import NodeReader, Problem, compose
from nurture.rules.webhooks import EVENT_NAMES, BadSecret, Endpoint, secret_bytes

ENDPOINT_KEYS = {"name", "url", "events", "secret_env"}
_SECRET_VARIABLE = re.compile(r"^WEBHOOK_SECRET_[A-Z0-9_]+$")


class _WebhooksReader(NodeReader):
    def __init__(self, path: str, secrets: Mapping[str, str] | None) -> None:
        super().__init__(path)
        self.secrets = secrets  # None: do not check that the variables are set (the console's read)

    def endpoints(self, root: Node) -> list[Endpoint]:
        fields = self.mapping(root, {"endpoints"}, "webhooks file")
        listed = fields.get("endpoints")
        if listed is None:
            return []
        if not isinstance(listed, SequenceNode):
            self.problem(listed, "endpoints is a list, each item `- name: ..., url: ..., secret_env: ...`")
            return []
        found: list[Endpoint] = []
        for item in listed.value:
            endpoint = self.endpoint(item)
            if endpoint and any(e.name == endpoint.name for e in found):
                self.problem(item, f"duplicate endpoint name {endpoint.name!r}")
            elif endpoint:
                found.append(endpoint)
        return found

    def endpoint(self, node: Node) -> Endpoint | None:
        before = len(self.problems)
        fields = self.mapping(node, ENDPOINT_KEYS, "endpoint")
        name = self.identifier(fields, "name", node, "endpoint")
        url = self.url(fields, node)
        secret_env = self.secret_env(fields, node)
        events = self.events(fields["events"]) if "events" in fields else ()
        if len(self.problems) > before:
            return None
        return Endpoint(name=name, url=url, secret_env=secret_env, events=events)

    def url(self, fields: dict[str, Node], parent: Node) -> str:
        url = self.text(fields, "url", parent, "endpoint")
        parts = urlsplit(url)
        if url and (parts.scheme not in ("https", "http") or not parts.hostname or parts.username):
            self.problem(fields["url"], f"url must be an http(s) address without a password, got {url!r}")
        return url

    def secret_env(self, fields: dict[str, Node], parent: Node) -> str:
        name = self.text(fields, "secret_env", parent, "endpoint")
        if not name:
            return ""
        if not _SECRET_VARIABLE.match(name):
            self.problem(fields["secret_env"], f"secret_env names a variable like WEBHOOK_SECRET_CRM (the secret "
                                               f"itself never goes in this file), got {name[:20]!r}")
        elif self.secrets is not None:
            self.check_secret(fields["secret_env"], name)
        return name

    def check_secret(self, node: Node, name: str) -> None:
        if name not in self.secrets:
            self.problem(node, f"{name} is not set (generate one with `nurture webhooks secret`)")
            return
        try:
            secret_bytes(self.secrets[name])
        except BadSecret as exc:
            self.problem(node, f"{name} {exc}")

    def events(self, node: Node) -> tuple[str, ...]:
        items = node.value if isinstance(node, SequenceNode) else None
        if items is None or not all(isinstance(i, ScalarNode) for i in items):
            self.problem(node, "events is a list of event names, like [contact.created, stage.changed]")
            return ()
        for item in items:
            if item.value not in EVENT_NAMES:
                self.problem(item, f"unknown event {item.value!r} (known: {', '.join(EVENT_NAMES)})")
        return tuple(dict.fromkeys(str(i.value) for i in items))


def parse_webhooks(source: str, path: str, secrets: Mapping[str, str] | None = None,
                   ) -> tuple[list[Endpoint], list[Problem]]:
    """The endpoints in `source` (only the ones without problems) and the problems. With `secrets`, each
    endpoint's secret variable must be set there and hold a valid `whsec_` secret."""
    root, problems = compose(source, path)
    if root is None:
        return [], problems
    reader = _WebhooksReader(path, secrets)
    endpoints = reader.endpoints(root)
    return endpoints, sorted(reader.problems)


def check_endpoint(name: str, url: str, events: list[str], secret_env: str, secrets: Mapping[str, str],
                   ) -> tuple[Endpoint | None, list[str]]:
    """One endpoint typed into the console, checked by the same rules as the file's (it is written out as
    the file would hold it, escaped by the YAML writer, and read back). Returns it, or the problems."""
    item: dict[str, object] = {"name": name, "url": url, "secret_env": secret_env}
    if events:
        item["events"] = list(events)
    source = yaml.safe_dump({"endpoints": [item]}, allow_unicode=True)
    found, problems = parse_webhooks(source, "console", secrets)
    return (found[0] if found and not problems else None), [p.message for p in problems]
