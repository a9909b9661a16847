"""deliverability: the reputation guard's pause, and an index on delivery.sent_at (the guard's window and
the warm-up's count of today's sends)

Revision ID: 0007_pacing
Revises: 0006_console_pages
Create Date: 2026-12-06 16:20:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

import nurture.store.models

revision = '0007_pacing'
down_revision = '0006_console_pages'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sending_pause',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('open_key', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('sends_total', sa.Integer(), nullable=False),
    sa.Column('window_sends', sa.Integer(), nullable=False),
    sa.Column('bounce_rate', sa.Float(), nullable=False),
    sa.Column('complaint_rate', sa.Float(), nullable=False),
    sa.Column('paused_at', nurture.store.models.UTCDateTime(), nullable=False),
    sa.Column('alert_status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('alert_recipient', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('alert_error', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('resumed_at', nurture.store.models.UTCDateTime(), nullable=True),
    sa.Column('resumed_by', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('resumed_after', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('open_key')
    )
    op.create_index('ix_delivery_sent_at', 'delivery', ['sent_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_delivery_sent_at', table_name='delivery')
    op.drop_table('sending_pause')
