"""The claim token index holds claimed enrollments only (migration 0002), and the send path's lookups by
token still use it."""

from __future__ import annotations

from sqlalchemy import text

from nurture.store.db import alembic_config


def test_the_claim_token_index_holds_only_claimed_enrollments(make_runtime, database_url) -> None:
    rt = make_runtime(database_url)
    with rt.db.connect() as connection:
        if rt.db.dialect.name == "sqlite":
            definition = connection.execute(text(
                "SELECT sql FROM sqlite_master WHERE name = 'ix_enrollment_claim_token'")).scalar_one()
        else:
            definition = connection.execute(text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_enrollment_claim_token'")).scalar_one()
    assert "claim_token IS NOT NULL" in definition.replace("(", "").replace(")", "")


def test_a_lookup_by_claim_token_uses_it(make_runtime, sqlite_url) -> None:
    rt = make_runtime(sqlite_url)
    with rt.db.connect() as connection:
        plan = " ".join(str(row) for row in connection.execute(text(
            "EXPLAIN QUERY PLAN SELECT id FROM enrollment WHERE claim_token = 'abc' AND claimed_until >= '2026'")))
    assert "ix_enrollment_claim_token" in plan


def test_the_migration_goes_back_down_to_the_full_index(make_runtime, sqlite_url) -> None:
    from alembic import command

    rt = make_runtime(sqlite_url)
    config = alembic_config()
    with rt.db.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
    with rt.db.connect() as connection:
        definition = connection.execute(text(
            "SELECT sql FROM sqlite_master WHERE name = 'ix_enrollment_claim_token'")).scalar_one()
    assert "WHERE" not in definition
