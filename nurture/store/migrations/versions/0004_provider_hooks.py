"""provider receipts: the email providers' webhook events already taken in (replays change nothing)

Revision ID: 0004_provider_hooks
Revises: 0003
Create Date: 2026-12-06 16:30:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

import nurture.store.models

revision = '0004_provider_hooks'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('provider_receipt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('received_at', nurture.store.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    op.create_index(op.f('ix_provider_receipt_received_at'), 'provider_receipt', ['received_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_provider_receipt_received_at'), table_name='provider_receipt')
    op.drop_table('provider_receipt')
