"""experiments in steps: the variant each delivery sent

Revision ID: 0009_experiments
Revises: 0008_contacts
Create Date: 2026-12-06 19:40:00

One nullable column: rows written before it (and deliveries of steps without variants) hold NULL, so no
data moves. The results (store.experiments) read it by sequence and step, the keys the delivery's unique
index already leads with.
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0009_experiments'
down_revision = '0008_contacts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('delivery') as batch:
        batch.add_column(sa.Column('variant', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('delivery') as batch:
        batch.drop_column('variant')
