"""consent.legal_basis: the lawful basis a CSV import claimed for the consent it records

Revision ID: 0005_import
Revises: 0004_webhooks_out
Create Date: 2026-12-06 16:30:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005_import'
down_revision = '0004_webhooks_out'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('consent') as batch:
        batch.add_column(sa.Column('legal_basis', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('consent') as batch:
        batch.drop_column('legal_basis')
