"""contacts in the console: erased addresses (GDPR erasure), and the indexes the contact search needs

Revision ID: 0008_contacts
Revises: 0007_pacing
Create Date: 2026-12-06 16:30:00

The search (store.contact_list) looks an address or a name up by prefix on every database, and by any
part (trigrams) on PostgreSQL when the pg_trgm extension can be created: it ships with PostgreSQL, but
creating it needs a role that may (a superuser, or the database owner on PostgreSQL 13+ where it is
trusted). Without it the search stays a prefix search, still indexed. Measured with bench/contact_search.py.
"""
import logging

import sqlalchemy as sa
import sqlmodel
from alembic import op

import nurture.store.models

revision = '0008_contacts'
down_revision = '0007_pacing'
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)

FULL_NAME = "lower(first_name || ' ' || last_name)"
# varchar_pattern_ops: a plain btree only serves LIKE 'abc%' under the C collation; these do under any.
PG_INDEXES = {
    "ix_contact_email_prefix": "contact (email varchar_pattern_ops)",
    "ix_contact_name_prefix": f"contact (({FULL_NAME}) text_pattern_ops)",
    "ix_contact_last_name_prefix": "contact ((lower(last_name)) text_pattern_ops)",
    "ix_contact_tags": "contact USING gin ((tags::jsonb))",
}
TRIGRAM_INDEXES = {
    "ix_contact_email_trgm": "contact USING gin (email gin_trgm_ops)",
    "ix_contact_name_trgm": f"contact USING gin (({FULL_NAME}) gin_trgm_ops)",
}


def upgrade() -> None:
    op.create_table('erased_address',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', nurture.store.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('digest')
    )
    op.create_index('ix_contact_stage', 'contact', ['stage'])
    op.create_index('ix_contact_email_status', 'contact', ['email_status'])
    if op.get_bind().dialect.name != 'postgresql':
        return
    for name, definition in PG_INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {definition}")
    if _trigrams_available():
        for name, definition in TRIGRAM_INDEXES.items():
            op.execute(f"CREATE INDEX {name} ON {definition}")


def _trigrams_available() -> bool:
    """Create pg_trgm if this role may; a refusal rolls back to the savepoint, not the migration."""
    bind = op.get_bind()
    savepoint = bind.begin_nested()
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as exc:
        savepoint.rollback()
        log.warning("pg_trgm could not be created (%s): the contact search stays a prefix search",
                    str(exc.orig).strip().splitlines()[0])
        return False
    savepoint.commit()
    return True


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for name in [*TRIGRAM_INDEXES, *PG_INDEXES]:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    op.drop_index('ix_contact_email_status', table_name='contact')
    op.drop_index('ix_contact_stage', table_name='contact')
    op.drop_table('erased_address')
