"""The `nurture` command: one module per command group, gathered here. Domain errors become one clear line
and an exit code, never a traceback (see cli.common)."""

from __future__ import annotations

import click

from nurture.cli import (
    bounces,
    contacts,
    doctor,
    events,
    forms,
    importing,  # noqa: F401  (its commands join the `contacts` group)
    insight,
    lifecycle_map,
    ops,
    reputation,
    stats,
    suppress,
    users,
)
from nurture.cli import webhooks as webhooks_cli
from nurture.cli.common import fail, with_runtime

__all__ = ["fail", "main", "with_runtime"]  # fail and with_runtime: for command modules, here or in cli.common


@click.group()
def main() -> None:
    """nurture: email/SMS nurture sequences from files."""


for command in (ops.check, ops.db, contacts.contacts, forms.forms_group, suppress.suppress, events.events,
                insight.plan, contacts.referrals, ops.send_due, ops.dev, insight.simulate_command,
                insight.why_command, bounces.bounces_group, users.users, lifecycle_map.map_command,
                stats.stats_command, stats.funnel_group, doctor.doctor_command, webhooks_cli.webhooks_group,
                reputation.reputation_command, reputation.resume_sending):
    main.add_command(command)

if __name__ == "__main__":
    main()
