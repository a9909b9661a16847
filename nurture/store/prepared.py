"""Statements compiled once per dialect and run on the DBAPI cursor of the session's transaction.

The send path runs four statements a message. Through SQLAlchemy's `Connection.execute` each cost ~0.1 ms
of CPU even when built once (the cache-key lookup, the execution context, the result object, the events),
against ~0.01 ms for the same SQL on the driver (bench/README.md, P1). `Prepared` keeps what SQLAlchemy
would do that matters — the SQL as its compiler writes it for the dialect, and each parameter through its
column type's bind processor (UTC datetimes, status enums, JSON) — and skips the rest.

Two ways to run them. `Prepared.execute` runs one inside the session's transaction: `session.connection()`
begins it (with BEGIN IMMEDIATE on SQLite, see store.db) and `session.commit()` ends it. The send path's
per-message writes go further (`DriverTransactions`): their parameters are bound first (`Prepared.bind`:
the bind processors, the event's JSON), and only then is the transaction begun and committed on the DBAPI
connection itself — SQLAlchemy's Session and Connection transaction machinery (begin, the state machine,
commit) cost ~0.3 ms of CPU a transaction here, and on SQLite every microsecond spent inside BEGIN
IMMEDIATE ... COMMIT is a microsecond the other worker waits for the write lock.
No statement event fires for them (nothing in nurture listens to the send path's statements).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection, Executable
from sqlalchemy.engine import Dialect
from sqlmodel import Session

from nurture.store.db import driver_transaction


@dataclass(frozen=True)
class _Compiled:
    sql: str
    # (name, bind processor or None, the value the statement carries, processed, or _GIVEN), in the order
    # the driver wants them (positional dialects), or once per name (named ones).
    params: tuple[tuple[str, Callable[[Any], Any] | None, Any], ...]
    positional: bool
    names: tuple[str, ...]


class Prepared:
    """A Core statement whose bind parameters are all named (`bindparam("x")`) or fixed values."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

    def compile_for(self, dialect: Dialect) -> None:
        self._compiled(dialect)

    def _compiled(self, dialect: Dialect) -> _Compiled:
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            compiled = self._by_dialect[dialect.name] = _compile(self.statement, dialect)
        return compiled

    def bind(self, dialect: Dialect, params: Mapping[str, Any]) -> Bound:
        """The SQL and its parameters as the driver takes them, each through its column type's bind
        processor: all the per-statement work that need not happen inside a transaction."""
        compiled = self._compiled(dialect)
        values = [(params[name] if process is None else _processed(process, params[name])) if fixed is _GIVEN
                  else fixed for name, process, fixed in compiled.params]
        if compiled.positional:
            return Bound(compiled.sql, tuple(values))
        return Bound(compiled.sql, dict(zip(compiled.names, values, strict=True)))

    def execute(self, session: Session, params: Mapping[str, Any]) -> Any:
        """Run in the session's transaction (begun here if need be); returns the DBAPI cursor."""
        dialect, driver = _driver(session)
        bound = self.bind(dialect, params)
        cursor = driver.cursor()
        cursor.execute(bound.sql, bound.params)
        return cursor

    def rowcount(self, session: Session, params: Mapping[str, Any]) -> int:
        cursor = self.execute(session, params)
        count = cursor.rowcount
        cursor.close()
        return count


@dataclass(frozen=True)
class Bound:
    """A statement ready for the driver: its SQL and its processed parameters."""

    sql: str
    params: tuple[Any, ...] | dict[str, Any]


class DriverTransactions:
    """Short write transactions on the DBAPI connection under a SQLAlchemy `Connection` (a batch's), begun
    and committed on the driver: BEGIN IMMEDIATE (SQLite) ... COMMIT with nothing of SQLAlchemy between.

    Only between the Connection's own transactions: a session bound to it must have committed (or rolled
    back) before, and finds the connection idle after; `transaction()` refuses to start inside one.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect

    @contextmanager
    def transaction(self) -> Iterator[Callable[[Bound], int]]:
        """Begin; yield a function that runs a bound statement and returns its row count; commit (roll
        back on any error, and let it through)."""
        if self.connection.in_transaction():
            raise RuntimeError("a driver transaction inside the Connection's own transaction")
        # Asked each time, not kept: after a lost PostgreSQL connection SQLAlchemy puts a new one here.
        with driver_transaction(self.connection.connection.driver_connection, self.dialect.name) as driver:
            yield partial(_rowcount, driver)


def _rowcount(driver: Any, bound: Bound) -> int:
    cursor = driver.execute(bound.sql, bound.params)
    count = cursor.rowcount
    cursor.close()
    return count


_KEY = "nurture.prepared"


def _driver(session: Session) -> tuple[Dialect, Any]:
    """The dialect and DBAPI connection of the session's current transaction. `session.connection()` costs
    more than a statement here (~0.1 ms), so it is asked once per transaction and kept in `session.info`
    beside the transaction it was asked in."""
    transaction = session.get_transaction()
    kept = session.info.get(_KEY)
    if kept is not None and transaction is not None and kept[0] is transaction and transaction.is_active:
        return kept[1], kept[2]
    connection = session.connection()  # begins the transaction if none is open
    driver = connection.connection.driver_connection
    session.info[_KEY] = (session.get_transaction(), connection.dialect, driver)
    return connection.dialect, driver


_GIVEN = object()  # a `bindparam("x")` without a value: given at each call

# A message's statements carry its one instant five to eight times (the delivery's sent_at, the event's,
# the enrollment's updated_at and due_at, the next mark's), and each went through UTCDateTime and then
# SQLite's DATETIME formatting: ~5% of a worker's CPU (bench/README.md, P1). The last few instants' processed
# values are kept, per processor; the tzinfo is in the key, as equal instants in two zones are equal
# datetimes and a processor may keep the wall-clock time.
_TIMES: dict[tuple[Callable[[Any], Any], datetime, Any], Any] = {}
_TIMES_KEPT = 64


def _processed(process: Callable[[Any], Any], value: Any) -> Any:
    if type(value) is not datetime:
        return process(value)
    key = (process, value, value.tzinfo)
    found = _TIMES.get(key, _GIVEN)
    if found is _GIVEN:
        if len(_TIMES) >= _TIMES_KEPT:
            _TIMES.clear()
        found = _TIMES[key] = process(value)
    return found


def _compile(statement: Executable, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    names = compiled.positiontup if compiled.positional else list(dict.fromkeys(compiled.bind_names.values()))
    params = []
    for name in names:
        bind = compiled.binds[name]
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        fixed = bind.effective_value  # a value the statement carries, processed once here
        fixed = _GIVEN if bind.required else process(fixed) if process is not None else fixed
        params.append((name, process, fixed))
    return _Compiled(compiled.string, tuple(params), compiled.positional, tuple(names))
