"""`nurture webhooks list | log [ENDPOINT] | test NAME | enable NAME | secret`: webhooks out (docs/webhooks.md)."""

from __future__ import annotations

import base64
import secrets

import click

from nurture.cli.common import fail, with_runtime
from nurture.delivery import webhook_views, webhooks
from nurture.runtime import Runtime


@click.group("webhooks")
def webhooks_group() -> None:
    """Webhooks out: the endpoints in webhooks.yaml, what they answered, a test ping."""


@webhooks_group.command("list")
@with_runtime
def list_command(rt: Runtime) -> None:
    """Each endpoint: its state, its events, and its messages waiting, delivered and given up on."""
    views = webhook_views.endpoint_views(rt)
    if not views:
        click.echo(f"no endpoints (none in {rt.settings.webhooks_file}, or `nurture check` reports problems)")
    for view in views:
        click.echo(f"{view.endpoint.name}  {view.state}  {view.endpoint.url}  events: {view.events}  "
                   f"pending {view.pending}, delivered {view.delivered}, failed {view.failed}")


@webhooks_group.command("log")
@click.argument("endpoint", required=False)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@with_runtime
def log_command(rt: Runtime, endpoint: str | None, limit: int) -> None:
    """The newest attempts first, of ENDPOINT or of all: when, which message, what came back."""
    rows = webhook_views.attempt_log(rt, endpoint, limit)
    if not rows:
        click.echo("no attempts yet")
    for row in rows:
        attempt = row.attempt
        click.echo(f"{attempt.attempted_at:%Y-%m-%d %H:%M:%S}  {attempt.endpoint}  {row.message_id}  "
                   f"{row.event_type}  {webhook_views.describe(row)}  {attempt.duration_ms} ms")


@webhooks_group.command("test")
@click.argument("name")
@with_runtime
def test_command(rt: Runtime, name: str) -> None:
    """Send a signed webhook.ping to endpoint NAME now and say what it answered."""
    try:
        outcome = webhooks.send_ping(rt, name)
    except webhooks.UnknownEndpoint:
        fail(f"no endpoint {name!r} in {rt.settings.webhooks_file} (or its secret is not set: run `nurture check`)")
    if not outcome.ok:
        fail(f"{name}: {outcome.error}")
    click.echo(f"{name}: {outcome.status_code} accepted in {outcome.duration_ms} ms")


@webhooks_group.command("enable")
@click.argument("name")
@with_runtime
def enable_command(rt: Runtime, name: str) -> None:
    """Switch endpoint NAME back on after it was disabled for failing a day; its waiting events go out."""
    if not webhooks.enable(rt, name):
        fail(f"no endpoint {name!r} has been used yet")
    click.echo(f"{name}: enabled")


@webhooks_group.command("secret")
def secret_command() -> None:
    """Print a new random endpoint secret (whsec_...) to put in a WEBHOOK_SECRET_* variable."""
    click.echo("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
