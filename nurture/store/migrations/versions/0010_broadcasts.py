"""broadcasts: one-off messages to a segment (docs/broadcasts.md)

Revision ID: 0010_broadcasts
Revises: 0009_segments
Create Date: 2026-12-06 19:40:00

A broadcast's progress (how many of its enrollments wait, and why) is counted by sequence id:
ix_enrollment_sequence serves that, and cancelling, without reading every enrollment of every sequence.
Its deliveries are counted through ix_delivery_funnel (sequence_id first), already there.
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

import nurture.store.models

revision = '0010_broadcasts'
down_revision = '0009_segments'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('broadcast',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=54), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('path', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('send_at', nurture.store.models.UTCDateTime(), nullable=True),
    sa.Column('test_version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('test_to', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('test_sent_at', nurture.store.models.UTCDateTime(), nullable=True),
    sa.Column('materialised_to', sa.Integer(), nullable=False),
    sa.Column('materialised_at', nurture.store.models.UTCDateTime(), nullable=True),
    sa.Column('started_at', nurture.store.models.UTCDateTime(), nullable=True),
    sa.Column('started_by', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('cancelled_at', nurture.store.models.UTCDateTime(), nullable=True),
    sa.Column('created_at', nurture.store.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', nurture.store.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    op.create_index('ix_enrollment_sequence', 'enrollment', ['sequence_id', 'status'])


def downgrade() -> None:
    op.drop_index('ix_enrollment_sequence', table_name='enrollment')
    op.drop_table('broadcast')
