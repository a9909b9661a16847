"""Alembic environment: migrations run on the connection nurture hands in (see nurture.store.db.upgrade)."""

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import nurture.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    # render_as_batch: SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    with create_engine(config.get_main_option("sqlalchemy.url")).connect() as connection:
        _run(connection)
        connection.commit()
