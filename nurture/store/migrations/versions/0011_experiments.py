"""experiments in steps: the variant each delivery sent

Revision ID: 0011_experiments
Revises: 0010_broadcasts
Create Date: 2026-12-06 19:40:00

One nullable column: rows written before it (and deliveries of steps without variants) hold NULL, so no
data moves. The results (store.experiments) read it by sequence and step, the keys the delivery's unique
index already leads with.
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0011_experiments'
down_revision = "0010_broadcasts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on both databases, not a batch: SQLite's batch mode copies the table into a new
    # one, which would drop the funnel rollup's triggers on it (0009_funnel_rollup).
    op.add_column('delivery', sa.Column('variant', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':  # DROP COLUMN in place (SQLite 3.35+), the triggers kept
        op.execute("ALTER TABLE delivery DROP COLUMN variant")
    else:
        op.drop_column('delivery', 'variant')
