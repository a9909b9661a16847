"""`nurture check`, `nurture db upgrade`, `nurture send-due` and `nurture dev`: the project and its running."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from nurture.cli.common import fail, with_runtime
from nurture.config import ConfigError, Settings, startup_settings
from nurture.content.broadcasts_file import load_broadcasts
from nurture.content.checker import CheckResult, SmsCheck, TemplateCheck, check_tree, shown_path
from nurture.content.integrations_file import INTEGRATIONS_FILE, check_integrations
from nurture.content.lifecycle_file import LIFECYCLE_FILE, parse_lifecycle
from nurture.content.loader import load_sequences
from nurture.content.segments_file import check_segments, load_segments
from nurture.content.webhooks_file import parse_webhooks
from nurture.content.yaml_reader import Problem
from nurture.delivery import alerts, broadcasts, dispatch, versions, webhooks
from nurture.rules.lifecycle import Lifecycle
from nurture.runtime import Runtime


@click.command()
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="project folder holding sequences/ and email_templates/ (default: from settings)")
def check(root: Path | None) -> None:
    """Validate every sequence file and template; print each problem as path:line: message."""
    try:
        settings = startup_settings(root=root)
    except ConfigError as exc:
        fail(f"configuration error: {exc}", 2)
    result = check_project(settings, root)
    for problem in result.problems + result.warnings:  # warnings (what a text costs) never fail the check
        click.echo(str(problem))
    if result.problems:
        fail(f"{len(result.problems)} problem(s) found")
    click.echo(result.summary)


def check_project(settings: Settings, root: Path | None = None, shown_from: Path | None = None) -> CheckResult:
    """What `nurture check` finds: under `root` if given, else in the folders the settings name; paths are
    shown relative to `shown_from` (default: the root, else the current folder)."""
    base = shown_from or root or Path.cwd()
    sequences_dir = root / "sequences" if root else settings.sequences_dir
    templates_dir = root / "email_templates" if root else settings.templates_dir
    forms_dir = root / "forms" if root else settings.forms_dir
    sms = SmsCheck(root / "sms_templates" if root else settings.sms.templates_dir, settings.sms.max_segments,
                   settings.brand_name, settings.base_url)
    result = check_tree(sequences_dir, templates_dir, base, forms_dir, sms)
    segments_dir = root / "segments" if root else settings.segments_dir
    sequences, _ = load_sequences(sequences_dir, display_root=base.resolve(), partial=True)
    lifecycle_file = sequences_dir / LIFECYCLE_FILE
    stages = (parse_lifecycle(lifecycle_file.read_text(encoding="utf-8"), str(lifecycle_file))[0] if
              lifecycle_file.is_file() else Lifecycle()).stages
    segments, segment_problems = check_segments(segments_dir, sequences, base.resolve(), stages)
    integrations = root / INTEGRATIONS_FILE if root else settings.integrations_file
    problems = result.problems + segment_problems + check_integrations(integrations, shown_path(integrations, base))
    webhooks_file = root / "webhooks.yaml" if root else settings.webhooks_file
    if webhooks_file.is_file():
        problems += parse_webhooks(webhooks_file.read_text(encoding="utf-8"), shown_path(webhooks_file, base),
                                   settings.webhooks.secrets)[1]
    broadcasts, broadcast_problems_found = check_broadcasts(settings, root, base)
    return replace(result, problems=problems + broadcast_problems_found, segments=segments, broadcasts=broadcasts)


def check_broadcasts(settings: Settings, root: Path | None, base: Path) -> tuple[int, list[Problem]]:
    """broadcasts/*.yaml: how many load, and each file's problems, in the templates it names, its segment
    (docs/broadcasts.md)."""
    project = root or settings.root
    check = TemplateCheck(root / "email_templates" if root else settings.templates_dir,
                          root / "sms_templates" if root else settings.sms.templates_dir, base)
    segments, _ = load_segments(root / "segments" if root else settings.segments_dir, display_root=project)
    found, problems = load_broadcasts(root / "broadcasts" if root else settings.broadcasts_dir, check, set(segments))
    return len(found), problems


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@with_runtime
def db_upgrade(rt: Runtime) -> None:
    """Create or migrate the database to the newest schema."""
    click.echo(f"database ready: {rt.db.url.render_as_string(hide_password=True)}")


@click.command("send-due")
@with_runtime
def send_due(rt: Runtime) -> None:
    """Send everything due now, in this process, without Redis (handy for a cron job or a quick look)."""
    total: dict[str, int] = {}

    def run_now(token: str) -> None:
        for outcome, n in dispatch.run_batch(rt, token).counts.items():
            total[outcome] = total.get(outcome, 0) + n

    versions.housekeeping(rt)
    alerts.send_alerts(rt)
    while broadcasts.materialise_due(rt):  # a started broadcast's members, all of them (the tick: 50 pages)
        pass
    dispatch.claim_batches(rt, run_now, max_batches=10_000)
    webhooks.deliver_due(rt)  # the events just recorded, out to the webhook endpoints (one attempt each)
    click.echo(", ".join(f"{n} {k}" for k, n in sorted(total.items())) or "nothing due")


@click.command()
@click.option("--port", default=8000, show_default=True)
def dev(port: int) -> None:
    """Run web, worker and tick together on embedded defaults (what `make run` does)."""
    from nurture.cli.devserver import run

    sys.exit(run(port))
