"""console pages: who added or removed a suppression, when and why (suppression_change)

Revision ID: 0004_console_pages
Revises: 0003
Create Date: 2026-12-06 16:20:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

import nurture.store.models

revision = '0004_console_pages'
down_revision = '0003'
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


def downgrade() -> None:
    op.drop_index(op.f('ix_suppression_change_address'), table_name='suppression_change')
    op.drop_table('suppression_change')
