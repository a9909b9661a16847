"""`nurture broadcasts list | plan ID | test ID --to owner@… | start ID | cancel ID | status ID`
(docs/broadcasts.md)."""

from __future__ import annotations

import click
from sqlmodel import Session

from nurture.cli.common import fail, with_runtime
from nurture.delivery import broadcasts
from nurture.rules.broadcasts import BroadcastError
from nurture.runtime import Runtime
from nurture.store import broadcasts as store


@click.group("broadcasts")
def broadcasts_group() -> None:
    """One-off messages to a segment: broadcasts/*.yaml and those made in the console."""


def _read(rt: Runtime, session: Session) -> None:
    """Bring the files into the database first; say what is wrong with any (it is not read)."""
    for problem in broadcasts.read_files(rt, session, rt.clock()):
        click.echo(f"{problem}", err=True)
    session.commit()


@broadcasts_group.command("list")
@with_runtime
def list_command(rt: Runtime) -> None:
    """Every broadcast: its state, where it comes from, whether its current version was tested."""
    with Session(rt.db, expire_on_commit=False) as session:
        _read(rt, session)
        rows = store.every(session)
        if not rows:
            click.echo(f"no broadcasts (none in {rt.settings.broadcasts_dir}, none made in the console)")
        for row in rows:
            spec = broadcasts.spec_of(row)
            tested = "tested" if row.test_version == row.version else "not tested"
            when = f"{row.send_at:%Y-%m-%d %H:%M} UTC" if row.send_at else (
                "now" if spec.send_at is None else f"{spec.send_at:%Y-%m-%d %H:%M %z}")
            click.echo(f"{row.key}  {row.status}  {row.origin}  {spec.channel} to {spec.segment}  {when}  {tested}"
                       f"  {row.name}")


@broadcasts_group.command("plan")
@click.argument("broadcast_id")
@with_runtime
def plan_command(rt: Runtime, broadcast_id: str) -> None:
    """How many of the segment will get it, and how many are held back by what (the worker's decisions)."""
    from nurture.insight.broadcast_plan import make_plan

    with Session(rt.db, expire_on_commit=False) as session:
        _read(rt, session)
        try:
            plan = make_plan(rt, session, broadcast_id)
        except BroadcastError as exc:
            fail(str(exc))
    click.echo("\n".join(plan.lines()))


@broadcasts_group.command("test")
@click.argument("broadcast_id")
@click.option("--to", "to", default=None, metavar="ADDRESS",
              help="where the test goes (default: the owner in _lifecycle.yaml's alerts, else SUPPORT_EMAIL)")
@with_runtime
def test_command(rt: Runtime, broadcast_id: str, to: str | None) -> None:
    """Send the broadcast once to the owner, marked [TEST]: it counts for nobody and records which
    version was tested (start needs it)."""
    address = to or rt.sequences.lifecycle.owner_email or rt.settings.support_email
    with Session(rt.db, expire_on_commit=False) as session:
        _read(rt, session)
        try:
            broadcasts.test_send(rt, session, broadcast_id, address, rt.clock())
        except BroadcastError as exc:
            fail(str(exc))
        session.commit()
    click.echo(f"test of {broadcast_id} sent to {address}")


@broadcasts_group.command("start")
@click.argument("broadcast_id")
@click.option("--skip-test", is_flag=True, help="start without a test send of this version")
@click.option("--by", default="cli", show_default=True, help="who starts it (kept on the record)")
@with_runtime
def start_command(rt: Runtime, broadcast_id: str, skip_test: bool, by: str) -> None:
    """Start it: at its send_at (or now) the tick writes one enrollment per segment member and the worker
    sends. Starting again changes nothing."""
    with Session(rt.db, expire_on_commit=False) as session:
        _read(rt, session)
        try:
            started = broadcasts.start(rt, session, broadcast_id, by, rt.clock(), skip_test=skip_test)
        except BroadcastError as exc:
            fail(str(exc))
        session.commit()
    row = started.broadcast
    if started.already:
        click.echo(f"{broadcast_id} was started already ({row.started_at:%Y-%m-%d %H:%M} UTC by {row.started_by}); "
                   "nothing changed")
    else:
        click.echo(f"{broadcast_id} started: sends from {row.send_at:%Y-%m-%d %H:%M} UTC")


@broadcasts_group.command("cancel")
@click.argument("broadcast_id")
@with_runtime
def cancel_command(rt: Runtime, broadcast_id: str) -> None:
    """Send nothing more of it; what was sent stays on the record."""
    with Session(rt.db, expire_on_commit=False) as session:
        try:
            stopped = broadcasts.cancel(rt, session, broadcast_id, rt.clock())
        except BroadcastError as exc:
            fail(str(exc))
        session.commit()
    click.echo(f"{broadcast_id} cancelled; {stopped} contact(s) still waiting will not get it")


@broadcasts_group.command("status")
@click.argument("broadcast_id")
@with_runtime
def status_command(rt: Runtime, broadcast_id: str) -> None:
    """Sent, skipped, failed and waiting so far."""
    with Session(rt.db, expire_on_commit=False) as session:
        try:
            row = broadcasts.get(rt, session, broadcast_id)
        except BroadcastError as exc:
            fail(str(exc))
        done = store.progress(session, broadcasts.spec_of(row).sequence_id)
    click.echo(f"{row.key}: {row.status}; {done.count('sent')} sent, {done.count('skipped')} skipped, "
               f"{done.count('failed')} failed, {done.waiting} waiting, {done.written} written"
               + ("" if row.materialised_at or row.status != store.STARTED else " (members still being written)"))
