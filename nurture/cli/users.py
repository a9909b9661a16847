"""`nurture users`: the console's accounts (add, list, remove, password)."""

from __future__ import annotations

import click
from sqlmodel import Session

from nurture.cli.common import fail, with_runtime
from nurture.people import accounts
from nurture.runtime import Runtime


@click.group("users")
def users() -> None:
    """Who may log in to the console: owners (everything) and viewers (reads only)."""


@users.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(accounts.ROLES), default="owner", show_default=True)
@click.password_option(help="asked for when not given (typed twice, not shown)")
@with_runtime
def users_add(rt: Runtime, email: str, role: str, password: str) -> None:
    """Create an account for EMAIL; asks for its password."""
    with Session(rt.db) as session:
        try:
            user = accounts.add(session, email, password, role, rt.clock())
        except accounts.AccountError as exc:
            fail(str(exc))
        session.commit()
        click.echo(f"added {user.email} ({user.role}): log in at {rt.settings.base_url}/login")


@users.command("list")
@with_runtime
def users_list(rt: Runtime) -> None:
    """Every account, its role, and when it last logged in."""
    with Session(rt.db) as session:
        found = accounts.listing(session)
    if not found:
        click.echo("no accounts yet: nurture users add EMAIL")
    for account in found:
        last = f"{account.last_login_at:%Y-%m-%d %H:%M}" if account.last_login_at else "never"
        click.echo(f"{account.email}\t{account.role}\tlast login {last}")


@users.command("remove")
@click.argument("email")
@with_runtime
def users_remove(rt: Runtime, email: str) -> None:
    """Delete the account of EMAIL (its sessions end at their next request)."""
    with Session(rt.db) as session:
        try:
            accounts.remove(session, email)
        except accounts.AccountError as exc:
            fail(str(exc))
        session.commit()
    click.echo(f"removed {email}")


@users.command("password")
@click.argument("email")
@click.password_option(help="asked for when not given (typed twice, not shown)")
@with_runtime
def users_password(rt: Runtime, email: str, password: str) -> None:
    """Set a new password for EMAIL; every session opened with the old one ends."""
    with Session(rt.db) as session:
        try:
            accounts.set_password(session, email, password)
        except accounts.AccountError as exc:
            fail(str(exc))
        session.commit()
    click.echo(f"new password set for {email}; its other sessions are logged out")
