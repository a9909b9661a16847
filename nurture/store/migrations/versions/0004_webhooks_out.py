"""webhooks out: the endpoints' state, the outbox of messages and the log of attempts

Revision ID: 0004_webhooks_out
Revises: 0004_provider_hooks
Create Date: 2026-12-06 16:30:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

import nurture.store.models
from nurture.rules.webhooks import WebhookStatus

revision = '0004_webhooks_out'
down_revision = '0004_provider_hooks'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('webhook_endpoint',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('url', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('secret_env', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('cursor', sa.Integer(), nullable=False),
    sa.Column('failing_since', nurture.store.models.UTCDateTime(), nullable=True),
    sa.Column('disabled_at', nurture.store.models.UTCDateTime(), nullable=True),
    sa.Column('owner_told_at', nurture.store.models.UTCDateTime(), nullable=True),
    sa.Column('created_at', nurture.store.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', nurture.store.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('webhook_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('endpoint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('message_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=True),
    sa.Column('event_type', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', nurture.store.models.StatusColumn(WebhookStatus), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', nurture.store.models.UTCDateTime(), nullable=True),
    sa.Column('claim_token', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('claimed_until', nurture.store.models.UTCDateTime(), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('created_at', nurture.store.models.UTCDateTime(), nullable=False),
    sa.Column('delivered_at', nurture.store.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_id'),
    sa.UniqueConstraint('endpoint', 'event_id', name='uq_webhook_message_endpoint_event')
    )
    op.create_index('ix_webhook_message_endpoint', 'webhook_message', ['endpoint'], unique=False)
    op.create_index('ix_webhook_message_due', 'webhook_message', ['status', 'next_attempt_at'], unique=False)
    op.create_table('webhook_attempt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('endpoint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('attempted_at', nurture.store.models.UTCDateTime(), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['webhook_message.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_webhook_attempt_message_id', 'webhook_attempt', ['message_id'], unique=False)
    op.create_index('ix_webhook_attempt_endpoint_at', 'webhook_attempt', ['endpoint', 'attempted_at'], unique=False)


def downgrade() -> None:
    op.drop_table('webhook_attempt')
    op.drop_table('webhook_message')
    op.drop_table('webhook_endpoint')
