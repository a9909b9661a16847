"""Database engine and schema migrations (Alembic).

Connections are made here and passed in; nothing in nurture holds a global engine.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy import exc as exc_module
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

MIGRATIONS = Path(__file__).parent / "migrations"
POOL_SIZE, POOL_OVERFLOW = 10, 10  # per process; a worker uses one at a time, a web worker one a thread


def make_engine(url: str, *, idle_ping_seconds: float | None = None, **kwargs: Any) -> Engine:
    """An engine for `url`. SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE so that two worker
    processes wait for each other instead of failing with "database is locked" when a read turns into a
    write halfway through a transaction."""
    if not url.startswith("sqlite"):
        # More kept connections than a web worker has threads (the Procfile: 8): past SQLAlchemy's default
        # 5, every busy moment opened and closed a connection a request, a PostgreSQL backend started
        # each time (bench/README.md, P4). Last in, first out: the connection just given back is the next
        # one taken, so a steady load keeps reusing the few it needs, warm in the caches on both sides,
        # instead of turning through every one the pool holds (FIFO, SQLAlchemy's default, spread the
        # sign-ups evenly over 8 backends for ~2 at a time: 8% fewer sign-ups a second, measured in turns);
        # the rest stay idle, and are pinged when taken again (ping_when_idle).
        kwargs = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW, "pool_recycle": RECYCLE_SECONDS,
                  "pool_use_lifo": True, **kwargs}
        engine = create_engine(url, **kwargs)
        ping_when_idle(engine, IDLE_PING_SECONDS if idle_ping_seconds is None else idle_ping_seconds)
        return engine
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cursor = dbapi_connection.cursor()
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL is durable across process crashes
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(READ_SNAPSHOT):
            connection.connection.driver_connection.execute("BEGIN")  # a reader: no write lock (WAL)
        else:
            begin_immediate(connection.connection.driver_connection)

    return engine


# A database restart (or a connection dropped by a proxy or an idle timeout) leaves the pool holding dead
# connections. SQLAlchemy's pool_pre_ping sends `SELECT 1` at EVERY checkout to find them: on a sign-up, one
# more round trip to PostgreSQL than its one statement, 9% of its time (bench/README.md, P4). Instead:
# - a connection back from a pause of IDLE_PING_SECONDS or more is pinged at checkout (`ping_when_idle`):
#   after a quiet night or a restart while nothing ran, no request meets a dead connection;
# - a connection in steady use is not: when the server went away under it, the statement fails, SQLAlchemy
#   marks it invalid and with it every connection older than the failure (the whole pool reconnects), and
#   the sign-up's statement is tried once more on a new connection (store.signups: it is all or nothing,
#   so the first try wrote nothing);
# - pool_recycle replaces a connection after RECYCLE_SECONDS, before any server or proxy timeout ends it.
IDLE_PING_SECONDS = 5.0
RECYCLE_SECONDS = 1800


def ping_when_idle(engine: Engine, idle_seconds: float = IDLE_PING_SECONDS) -> None:
    """Ping a pooled connection at checkout when it sat unused `idle_seconds` or more. A dead one is replaced,
    and every connection older than it (a restart ended them all): the pool reconnects on InvalidatePoolError."""

    @event.listens_for(engine, "connect")
    def _fresh(_dbapi_connection: Any, record: Any) -> None:
        record.info["nurture_checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _back(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["nurture_checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("nurture_checked_in", 0.0) < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise exc_module.InvalidatePoolError(f"a pooled connection was dead after a pause: {exc}") from exc


# SQLite's own busy handler sleeps in growing steps (1, 2, 5, 10, 15 ms ...) while another process holds
# the write lock. Two workers take it for about a millisecond per message each, so those sleeps were
# most of the send path's wall time; retrying BEGIN IMMEDIATE every 0.2 ms waits as long as needed
# and no longer. Statements inside a transaction never wait (the lock is already ours), so the busy
# timeout below is only a safety net for anything outside one.
BUSY_TIMEOUT = 0.05
# An execution option for a Connection whose next transaction only reads the database (it may write its
# own TEMPORARY tables): on SQLite a plain BEGIN, a snapshot that in WAL mode neither waits for the writers
# nor makes them wait, instead of BEGIN IMMEDIATE. A write in it would fail (SQLITE_BUSY) while another
# process writes. PostgreSQL ignores it.
READ_SNAPSHOT = "nurture_read_snapshot"
WAL_SWITCH_SECONDS = 10


def _use_wal(cursor: Any) -> None:
    """Put the database file in WAL mode (it stays so: later connections find it already). Switching takes
    the file's lock, and with the short busy timeout above the switch failed with "database is locked" when
    two processes opened a new database at once (gunicorn's two workers at first start, one migrating)."""
    if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
        return
    give_up = time.monotonic() + WAL_SWITCH_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")  # (an in-memory database answers "memory": fine)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > give_up:
                raise
            time.sleep(0.01)
BEGIN_DEADLINE = 30.0


def begin_write(dbapi_connection: Any, dialect_name: str) -> None:
    """Begin a write transaction on a DBAPI connection that has none open (the send path's own
    transactions, store.prepared.DriverTransactions): on SQLite, BEGIN IMMEDIATE, waiting for the write
    lock as the engine's transactions do; psycopg begins one by itself at the first statement."""
    if dialect_name == "sqlite":
        begin_immediate(dbapi_connection)


@contextmanager
def driver_transaction(dbapi_connection: Any, dialect_name: str) -> Iterator[Any]:
    """A write transaction on a DBAPI connection that has none open, with nothing of SQLAlchemy between
    BEGIN and COMMIT (the send path's per-message writes, a sign-up's INSERTs on SQLite): begun as
    `begin_write` begins it, committed at the end, rolled back on any error, which goes on up. Yields the
    connection."""
    begin_write(dbapi_connection, dialect_name)
    try:
        yield dbapi_connection
    except BaseException:
        dbapi_connection.rollback()
        raise
    dbapi_connection.commit()


def begin_immediate(dbapi_connection: Any) -> None:
    """BEGIN IMMEDIATE on a sqlite3 connection, retried every 0.2 ms while another process writes."""
    # BEGIN IMMEDIATE is itself subject to the busy timeout: with it on, a BEGIN that met the other
    # worker's transaction slept in SQLite's busy handler (1, 2, 5, 10 ms ...), and the 0.2 ms retry below
    # never ran — py-spy found 14% of a worker's wall time on that line (bench/README.md, P1). So the
    # timeout is off while BEGIN is tried, and back on once it is ours (two PRAGMAs, ~2 us each).
    dbapi_connection.execute("PRAGMA busy_timeout = 0")
    try:
        _retry_begin(dbapi_connection, time.monotonic() + BEGIN_DEADLINE)
    finally:
        dbapi_connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")


def _retry_begin(dbapi_connection: Any, deadline: float) -> None:
    while True:
        try:
            dbapi_connection.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.0002)


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration. Safe to run at every start."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def ping(engine: Engine) -> None:
    """Raise unless the database answers a trivial query (the health check)."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
