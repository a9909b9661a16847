"""segments: who was seen inside a segment that starts a sequence, and how far the tick has looked

Revision ID: 0009_segments
Revises: 0008_contacts
Create Date: 2026-12-06 19:30:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

import nurture.store.models

revision = '0009_segments'
down_revision = '0008_contacts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('segment_member',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('segment_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('entered_at', nurture.store.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('segment_id', 'contact_id', name='uq_segment_member')
    )
    op.create_index('ix_segment_member_contact_id', 'segment_member', ['contact_id'])
    op.create_table('segment_watch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('segment_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('event_cursor', sa.Integer(), nullable=False),
    sa.Column('contact_cursor', nurture.store.models.UTCDateTime(), nullable=True),
    sa.Column('sweep_after', sa.Integer(), nullable=True),
    sa.Column('swept_at', nurture.store.models.UTCDateTime(), nullable=True),
    sa.Column('updated_at', nurture.store.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('segment_id')
    )
    # The contacts whose facts changed since the last look: found by updated_at.
    op.create_index('ix_contact_updated_at', 'contact', ['updated_at'])


def downgrade() -> None:
    op.drop_index('ix_contact_updated_at', table_name='contact')
    op.drop_table('segment_watch')
    op.drop_index('ix_segment_member_contact_id', table_name='segment_member')
    op.drop_table('segment_member')
