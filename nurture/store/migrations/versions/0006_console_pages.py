"""console pages: who added or removed a suppression, when and why (suppression_change); the funnel's
indexes and the event columns they need

The funnel (nurture/store/funnel.py) reads a sequence's deliveries of a period and the events that name a
sequence and step inside their JSON `data`. Before this revision both were table scans (1.9 s on
PostgreSQL at a million deliveries). Now:

- `event.ev_sequence`, `ev_step`, `ev_bot`: the JSON's `sequence`, `step` and `bot`, as generated
  columns (PostgreSQL: stored; SQLite: virtual) so that they can sit in an index and be read from it.
  They are the very expressions the funnel's queries used before (`data ->> 'sequence'`; SQLite
  `json_extract(data, '$.sequence')`), so the counts cannot change. No code writes them.
- `ix_event_funnel`: events by (type, sequence, step, contact), carrying bot, time and delivery id.
- `ix_delivery_funnel` and `ix_delivery_funnel_error`: a sequence's deliveries by creation time,
  split by `error IS NULL`. The first carries every column the funnel groups by except `error` (up to
  1,000 characters: too big for an index entry, which PostgreSQL caps near 2.7 kB), so most of the
  funnel is read from it alone; the rows with an error (skips and failures) are found by the second and
  read from the table.

On PostgreSQL adding a stored column rewrites the event table once (seconds per million rows, under a
lock): run this upgrade at a quiet time on a big database.

Revision ID: 0006_console_pages
Revises: 0005_import
Create Date: 2026-12-06 16:20:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

import nurture.store.models

revision = '0006_console_pages'
down_revision = '0005_import'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('suppression_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('created_at', nurture.store.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_suppression_change_address'), 'suppression_change', ['address'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        _funnel_postgresql()
    else:
        _funnel_sqlite()


EVENT_KEYS = {"ev_sequence": "sequence", "ev_step": "step", "ev_bot": "bot"}
COHORT = ["sequence_id", "created_at"]
COHORT_COLUMNS = ["step_id", "channel", "status", "provider_status", "contact_id", "sequence_version", "sent_at"]
# PostgreSQL: the id too, for the events that name their delivery. (In SQLite every index holds the rowid.)


def _funnel_postgresql() -> None:
    op.execute("ALTER TABLE event " + ", ".join(
        f"ADD COLUMN {name} VARCHAR GENERATED ALWAYS AS (data ->> '{key}') STORED" for name, key in EVENT_KEYS.items()))
    op.create_index("ix_event_funnel", "event", ["type", "ev_sequence", "ev_step", "contact_id"],
                    postgresql_include=["ev_bot", "occurred_at", "delivery_id"])
    op.create_index("ix_delivery_funnel", "delivery", COHORT, postgresql_include=[*COHORT_COLUMNS, "id"],
                    postgresql_where=sa.text("error IS NULL"))
    op.create_index("ix_delivery_funnel_error", "delivery", COHORT, postgresql_where=sa.text("error IS NOT NULL"))


def _funnel_sqlite() -> None:
    # SQLite adds only VIRTUAL generated columns to an existing table; an index stores their values. TEXT
    # turns a number into text exactly as the queries' CAST(... AS VARCHAR) did; `ev_bot` has no type, so
    # it holds what json_extract gives (1, 0, NULL, or text) and the query's CAST(... AS BOOLEAN) sees that.
    for name, key in EVENT_KEYS.items():
        kind = "" if name == "ev_bot" else " TEXT"
        op.execute(f"ALTER TABLE event ADD COLUMN {name}{kind} "
                   f"GENERATED ALWAYS AS (json_extract(data, '$.{key}')) VIRTUAL")
    op.create_index("ix_event_funnel", "event",
                    ["type", "ev_sequence", "ev_step", "contact_id", "ev_bot", "occurred_at", "delivery_id"])
    op.create_index("ix_delivery_funnel", "delivery", COHORT + COHORT_COLUMNS, sqlite_where=sa.text("error IS NULL"))
    op.create_index("ix_delivery_funnel_error", "delivery", COHORT, sqlite_where=sa.text("error IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_delivery_funnel_error", table_name="delivery")
    op.drop_index("ix_delivery_funnel", table_name="delivery")
    op.drop_index("ix_event_funnel", table_name="event")
    for name in reversed(EVENT_KEYS):  # SQLite 3.35+ and PostgreSQL both drop a column by ALTER TABLE
        op.execute(f"ALTER TABLE event DROP COLUMN {name}")
    op.drop_index(op.f('ix_suppression_change_address'), table_name='suppression_change')
    op.drop_table('suppression_change')
