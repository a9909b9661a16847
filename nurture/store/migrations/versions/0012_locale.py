"""each contact's language: contact.locale (a Babel tag like fr or pt_BR; NULL means DEFAULT_LOCALE)

Revision ID: 0012_locale
Revises: 0011_experiments
Create Date: 2026-12-06 19:30:00

A nullable column without a default: adding it rewrites no row on PostgreSQL (11+) and is a plain
ALTER TABLE ADD COLUMN on SQLite, so it is instant on a large contact table.
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0012_locale'
down_revision = '0011_experiments'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('contact', sa.Column('locale', sqlmodel.sql.sqltypes.AutoString(length=35), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('contact') as batch:  # SQLite drops a column only by rebuilding the table
        batch.drop_column('locale')
