"""the funnel's exact rollup: funnel_member, funnel_day, funnel_dirty and the triggers that fill the last

Revision ID: 0009_funnel_rollup
Revises: 0008_contacts
Create Date: 2026-12-06 19:40:00

nurture/store/funnel_rollup.py says how the rollup works. The triggers here append (contact, sequence) to
funnel_dirty whenever a delivery is written, changes a column the funnel groups by, or goes, and whenever an
event the funnel counts is written, changed (erasure scrubs data) or goes. Nothing else on the send path
changes: the worker writes its rows as before, and the database adds one small row per write in the same
transaction (no unique key, so two workers never wait for each other on it).

Existing data: every (contact, sequence) found is marked dirty here, in one INSERT ... SELECT; the worker's
fold job works through them after the upgrade (or `nurture funnel rebuild` at once), and until the backlog
is small the funnel reads the raw rows as before. The counts are the same either way.
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

import nurture.store.models

revision = '0009_funnel_rollup'
down_revision = '0008_contacts'
branch_labels = None
depends_on = None

# rules.funnel_members.EVENT_KINDS and LINKED, written out: a migration must not change when the code does.
LINKED = "('email.unsubscribed', 'sms.unsubscribed', 'email.bounced', 'sms.bounced', 'sms.undelivered')"
EVENT_KINDS = ("('step.skipped', 'step.branched', 'email.deferred', 'sms.deferred', 'email.unsubscribed', "
               "'sms.unsubscribed', 'email.bounced', 'sms.bounced', 'sms.undelivered', 'email.clicked', "
               "'sequence.goal', 'sequence.enrolled')")
GROUPED = ("contact_id", "sequence_id", "sequence_version", "step_id", "channel", "status", "provider_status",
           "error", "created_at", "sent_at")
EVERYONE = f"""
    SELECT contact_id, sequence_id FROM delivery
    UNION SELECT contact_id, ev_sequence FROM event WHERE type IN {EVENT_KINDS} AND ev_sequence IS NOT NULL
    UNION SELECT e.contact_id, d.sequence_id FROM event e JOIN delivery d ON d.id = e.delivery_id
          WHERE e.type IN {LINKED}"""


def upgrade() -> None:
    op.create_table('funnel_dirty',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('sequence_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_funnel_dirty_sequence', 'funnel_dirty', ['sequence_id', 'contact_id'])
    op.create_table('funnel_member',
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('sequence_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('latest_at', nurture.store.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('contact_id', 'sequence_id', 'version', 'key')
    )
    op.create_index('ix_funnel_member_latest', 'funnel_member', ['sequence_id', 'version', 'latest_at'])
    op.create_table('funnel_day',
    sa.Column('sequence_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('sequence_id', 'version', 'key', 'day')
    )
    op.create_table('funnel_rollup_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('folds', sa.Integer(), nullable=False),
    sa.Column('folded_at', nurture.store.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.execute("INSERT INTO funnel_rollup_state (id, folds) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        _triggers_postgresql()
    else:
        _triggers_sqlite()
    op.execute(f"INSERT INTO funnel_dirty (contact_id, sequence_id) {EVERYONE}")


def _changed(old: str, new: str) -> str:
    return " OR ".join(f"{old}.{c} IS DISTINCT FROM {new}.{c}" for c in GROUPED)


def _triggers_postgresql() -> None:
    # Deliveries: one statement-level trigger per kind of write, reading the statement's rows from its
    # transition tables: a batch's multi-row INSERT or UPDATE pays one INSERT ... SELECT, not a PL/pgSQL call
    # per row (bench/funnel_triggers.py). An UPDATE marks only the rows whose grouped columns changed.
    changed = f"({', '.join(f'o.{c}' for c in GROUPED)}) IS DISTINCT FROM ({', '.join(f'n.{c}' for c in GROUPED)})"
    op.execute(f"""
    CREATE FUNCTION funnel_mark_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO funnel_dirty (contact_id, sequence_id) SELECT DISTINCT contact_id, sequence_id FROM new_rows;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO funnel_dirty (contact_id, sequence_id) SELECT DISTINCT contact_id, sequence_id FROM old_rows;
        ELSE
            INSERT INTO funnel_dirty (contact_id, sequence_id)
            SELECT o.contact_id, o.sequence_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE {changed}
            UNION
            SELECT n.contact_id, n.sequence_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE {changed};
        END IF;
        RETURN NULL;
    END $$""")
    op.execute("CREATE TRIGGER funnel_delivery_insert AFTER INSERT ON delivery REFERENCING NEW TABLE AS new_rows "
               "FOR EACH STATEMENT EXECUTE FUNCTION funnel_mark_deliveries()")
    op.execute("CREATE TRIGGER funnel_delivery_update AFTER UPDATE ON delivery "
               "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
               "FOR EACH STATEMENT EXECUTE FUNCTION funnel_mark_deliveries()")
    op.execute("CREATE TRIGGER funnel_delivery_delete AFTER DELETE ON delivery REFERENCING OLD TABLE AS old_rows "
               "FOR EACH STATEMENT EXECUTE FUNCTION funnel_mark_deliveries()")
    op.execute(f"""
    CREATE FUNCTION funnel_mark_event() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        ev event;
    BEGIN
        FOREACH ev IN ARRAY (CASE TG_OP WHEN 'INSERT' THEN ARRAY[NEW] WHEN 'DELETE' THEN ARRAY[OLD]
                                         ELSE ARRAY[OLD, NEW] END) LOOP
            IF ev.type IN {EVENT_KINDS} AND ev.ev_sequence IS NOT NULL THEN
                INSERT INTO funnel_dirty (contact_id, sequence_id) VALUES (ev.contact_id, ev.ev_sequence);
            END IF;
            IF ev.type IN {LINKED} AND ev.delivery_id IS NOT NULL THEN
                INSERT INTO funnel_dirty (contact_id, sequence_id)
                SELECT ev.contact_id, d.sequence_id FROM delivery d WHERE d.id = ev.delivery_id;
            END IF;
        END LOOP;
        RETURN NULL;
    END $$""")
    op.execute(f"CREATE TRIGGER funnel_event_insert AFTER INSERT ON event FOR EACH ROW "
               f"WHEN (NEW.type IN {EVENT_KINDS}) EXECUTE FUNCTION funnel_mark_event()")
    op.execute("CREATE TRIGGER funnel_event_change AFTER UPDATE OR DELETE ON event FOR EACH ROW "
               "EXECUTE FUNCTION funnel_mark_event()")


def _event_marks(row: str) -> str:
    return f"""
        INSERT INTO funnel_dirty (contact_id, sequence_id) SELECT {row}.contact_id, {row}.ev_sequence
            WHERE {row}.type IN {EVENT_KINDS} AND {row}.ev_sequence IS NOT NULL;
        INSERT INTO funnel_dirty (contact_id, sequence_id) SELECT {row}.contact_id, d.sequence_id
            FROM delivery d WHERE d.id = {row}.delivery_id AND {row}.type IN {LINKED};"""


def _triggers_sqlite() -> None:
    mark = "INSERT INTO funnel_dirty (contact_id, sequence_id) VALUES ({0}.contact_id, {0}.sequence_id);"
    op.execute(f"CREATE TRIGGER funnel_delivery_insert AFTER INSERT ON delivery BEGIN {mark.format('NEW')} END")
    op.execute(f"CREATE TRIGGER funnel_delivery_delete AFTER DELETE ON delivery BEGIN {mark.format('OLD')} END")
    changed = _changed("OLD", "NEW").replace("IS DISTINCT FROM", "IS NOT")
    op.execute(f"CREATE TRIGGER funnel_delivery_update AFTER UPDATE ON delivery WHEN {changed} BEGIN "
               f"{mark.format('NEW')} INSERT INTO funnel_dirty (contact_id, sequence_id) "
               f"SELECT OLD.contact_id, OLD.sequence_id WHERE OLD.contact_id IS NOT NEW.contact_id "
               f"OR OLD.sequence_id IS NOT NEW.sequence_id; END")
    op.execute(f"CREATE TRIGGER funnel_event_insert AFTER INSERT ON event WHEN NEW.type IN {EVENT_KINDS} "
               f"BEGIN {_event_marks('NEW')} END")
    op.execute(f"CREATE TRIGGER funnel_event_update AFTER UPDATE ON event BEGIN {_event_marks('OLD')} "
               f"{_event_marks('NEW')} END")
    op.execute(f"CREATE TRIGGER funnel_event_delete AFTER DELETE ON event BEGIN {_event_marks('OLD')} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS funnel_delivery_insert ON delivery")
        op.execute("DROP TRIGGER IF EXISTS funnel_delivery_update ON delivery")
        op.execute("DROP TRIGGER IF EXISTS funnel_delivery_delete ON delivery")
        op.execute("DROP TRIGGER IF EXISTS funnel_event_insert ON event")
        op.execute("DROP TRIGGER IF EXISTS funnel_event_change ON event")
        op.execute("DROP FUNCTION IF EXISTS funnel_mark_deliveries()")
        op.execute("DROP FUNCTION IF EXISTS funnel_mark_event()")
    else:
        for name in ("funnel_delivery_insert", "funnel_delivery_delete", "funnel_delivery_update",
                     "funnel_event_insert", "funnel_event_update", "funnel_event_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table('funnel_rollup_state')
    op.drop_table('funnel_day')
    op.drop_index('ix_funnel_member_latest', table_name='funnel_member')
    op.drop_table('funnel_member')
    op.drop_index('ix_funnel_dirty_sequence', table_name='funnel_dirty')
    op.drop_table('funnel_dirty')
