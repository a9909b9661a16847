"""console users: the people who log in to the owner's console (nurture users add)

Revision ID: 0003
Revises: 0002_claim_token_partial
Create Date: 2026-12-06 13:18:15.433469
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

import nurture.store.models

revision = '0003'
down_revision = '0002_claim_token_partial'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('session_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', nurture.store.models.UTCDateTime(), nullable=False),
    sa.Column('last_login_at', nurture.store.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email'),
    sa.UniqueConstraint('session_id')
    )


def downgrade() -> None:
    op.drop_table('console_user')
