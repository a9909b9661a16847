"""`nurture bounces read` and `nurture bounces serve`: the bounce mailbox now, or an SMTP endpoint for a
relay that forwards bounces and feedback reports."""

from __future__ import annotations

import threading

import click

from nurture.cli.common import fail, with_runtime
from nurture.delivery import bounce_mail
from nurture.delivery.bounce_server import start_server
from nurture.runtime import Runtime


@click.group("bounces")
def bounces_group() -> None:
    """Bounces and spam complaints coming back (see docs/deliverability.md)."""


@bounces_group.command("read")
@with_runtime
def read_command(rt: Runtime) -> None:
    """Read BOUNCE_MAILDIR and BOUNCE_IMAP_URL once now (the worker does it at every tick)."""
    if rt.settings.bounces.maildir is None and not rt.settings.bounces.imap_url:
        fail("no bounce mailbox: set BOUNCE_MAILDIR or BOUNCE_IMAP_URL")
    counts = bounce_mail.read_mailbox(rt)
    click.echo(", ".join(f"{what} {n}" for what, n in sorted(counts.items())) or "no messages")


@bounces_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=2525, show_default=True, help="port to listen on")
@with_runtime
def serve_command(rt: Runtime, host: str, port: int) -> None:
    """Take bounces and feedback reports over SMTP until stopped (Ctrl-C)."""
    try:
        controller = start_server(rt, host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc}")
    click.echo(f"taking bounces on {host}:{port}; point the relay's bounce route for {rt.settings.bounce_address} here")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
