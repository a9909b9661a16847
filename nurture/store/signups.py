"""The writes of a sign-up from an address no contact has: one statement on PostgreSQL, four on SQLite.

The ORM wrote these rows in twelve statements (a flush per INSERT to learn the new id, a SELECT before the
enrollment, an UPDATE per consent change) inside BEGIN and COMMIT: on PostgreSQL fourteen round trips to
another process, each a wait for a core on a busy machine, and most of a sign-up's cost (bench/README.md,
P4). Here the contact is inserted with its final columns (`ON CONFLICT (email) DO NOTHING RETURNING id`:
no SELECT first, and a taken address answers None instead of raising), then its consent records, its
enrollment and its timeline events:

- PostgreSQL: all in ONE statement, the contact's INSERT a data-modifying CTE the other INSERTs select its
  id from (a taken address gives no id, so nothing else is written either). Alone, it commits by itself
  (autocommit): no BEGIN, no COMMIT round trip, and all or nothing all the same.
- SQLite: in-process, where statements cost no round trip: one transaction, one INSERT per table.

Rows are inserted in the order given (a timeline is read in id order). The statements are built once per
shape (how many rows of each table) with bound parameters, so a sign-up only binds values, and run on the
driver's own connection (psycopg, sqlite3) taken from the pool: SQLAlchemy's execution of them cost more
CPU than the databases' own work (bench/README.md, P4). When anyone listens for SQLAlchemy's statement
events they go through SQLAlchemy, so that the events fire.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import CTE, JSON, Integer, Select, Table, bindparam, column, exists, func, insert, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.types import TypeDecorator

from nurture.store.db import driver_transaction
from nurture.store.models import Consent, Contact, Enrollment, ErasedAddress, Event

Row = Mapping[str, object]
_CONTACTS: Table = Contact.__table__  # type: ignore[attr-defined]
_CHILDREN: tuple[tuple[str, Table], ...] = (
    ("consent", Consent.__table__), ("enrollment", Enrollment.__table__), ("event", Event.__table__))  # type: ignore[attr-defined]
_ORDER = "_n"  # each row's place in its JSON array (json_to_recordset takes no WITH ORDINALITY)
_SET_FIELDS = update(_CONTACTS).where(_CONTACTS.c.id == bindparam("contact_id"))


def insert_new_signup(engine: Engine, contact: Row, children: Mapping[str, Sequence[Row]],
                      fields_for: Callable[[int], dict] | None = None, digest: str = "") -> int | None:
    """Insert the contact `contact` (its email normalised by the caller) and its `children` rows ("consent",
    "enrollment", "event"; their `contact_id` is the new contact's, whatever they say), all or nothing.
    The rows of one table all name the same columns.
    `fields_for(id)`, when given, replaces the contact's custom fields once its id is known (the lead
    magnet's link is signed with it). Returns the new id, or None, having written nothing, when a contact
    has that address already (the caller merges into it instead) or `digest` is on the erased list."""
    for attempt in (1, 2):
        try:
            return _insert_once(engine, contact, children, fields_for, digest)
        except DBAPIError as exc:
            # The server went away under a pooled connection (a restart): SQLAlchemy invalidated it and the
            # connections older than it. One statement (or one transaction) that did not answer: nothing was
            # written, or, if the server committed it and died before the answer, the second try finds the
            # address taken and returns None (the caller merges into it, as for a repeat sign-up). Once more,
            # on a new connection: the pool no longer pings at every checkout (store.db.ping_when_idle).
            if not exc.connection_invalidated or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _insert_once(engine: Engine, contact: Row, children: Mapping[str, Sequence[Row]],
                 fields_for: Callable[[int], dict] | None, digest: str) -> int | None:
    if fields_for is None and not _statements_listened(engine):
        alone = _insert_alone if engine.dialect.name == "postgresql" else _insert_sqlite_alone
        return alone(engine, contact, children, digest)
    if engine.dialect.name == "postgresql" and fields_for is None:
        with engine.connect() as connection:  # the same, SQLAlchemy's way: its statement events fire
            driver = connection.connection.driver_connection
            driver.autocommit = True
            try:
                return _insert(connection, contact, children, digest)
            finally:
                if not driver.closed:  # closed: invalidated (the server went away); the pool reconnects
                    driver.autocommit = False
    with engine.begin() as connection:
        contact_id = _insert(connection, contact, children, digest)
        if contact_id is not None and fields_for is not None:
            connection.execute(_SET_FIELDS, {"contact_id": contact_id, "fields": fields_for(contact_id)})
        return contact_id


def _statements_listened(engine: Engine) -> bool:
    """Whether anyone listens for statement events on `engine` (tracing, the tests' statement counts)."""
    return bool(engine.dispatch.before_cursor_execute or engine.dispatch.after_cursor_execute)


def _insert_alone(engine: Engine, contact: Row, children: Mapping[str, Sequence[Row]], digest: str) -> int | None:
    """The one statement on psycopg's own connection and cursor, committed by itself (autocommit).

    SQLAlchemy's Connection and execution around one statement that returns one id (the Connection made and
    closed, the execution context, a CursorResult and its metadata built per call) were 14% of a
    sign-up's CPU in the web worker (bench/README.md, P4). What it did beyond psycopg is kept: the pool's
    checkout (and its ping after a pause, store.db) and check-in, and an error goes through a Connection's
    own handling (wrapped in DBAPIError; on a lost server this connection and the pool's older ones
    invalidated, which the caller's retry relies on)."""
    sql, bound = _one_statement_bound(engine.dialect, contact, children, digest)
    pooled: PoolProxiedConnection | None = engine.raw_connection()
    try:
        row = _fetch_one(pooled.driver_connection, sql, bound)
    except engine.dialect.loaded_dbapi.Error as exc:
        connection, pooled = Connection(engine, pooled), None
        with connection:  # hands the pooled connection back, or drops it
            connection._handle_dbapi_exception(exc, sql, bound, None, None)  # raises, having invalidated
    finally:
        if pooled is not None:
            pooled.close()
    return None if row is None else row[0]


def _insert_sqlite_alone(engine: Engine, given: Row, children: Mapping[str, Sequence[Row]], digest: str) -> int | None:
    """SQLite: the four INSERTs on sqlite3's own connection, in one store.db.driver_transaction (BEGIN
    IMMEDIATE, retried while another process writes, as the engine's own transactions begin).
    SQLAlchemy's execution around each of them (its statement's cache key, execution context and result)
    was more of a sign-up's CPU than SQLite's own work; the values are bound by the same types'
    processors."""
    contact, rows = _rows(given, children)
    pooled: PoolProxiedConnection | None = engine.raw_connection()
    sql = ""
    try:
        with driver_transaction(pooled.driver_connection, "sqlite") as driver:
            sql, order, processors = _positional_sql(engine.dialect, _sqlite_contact(tuple(contact)))
            cursor = driver.execute(sql, _positional(order, processors, {**contact, "erased_digest": digest}))
            contact_id = (cursor.fetchone() or (None,))[0]
            cursor.close()
            for name, _table in _CHILDREN if contact_id is not None else ():
                if rows[name]:
                    sql, order, processors = _positional_sql(engine.dialect, _SQLITE_INSERTS[name],
                                                             ("contact_id", *rows[name][0]))
                    driver.executemany(sql, [_positional(order, processors, {**row, "contact_id": contact_id})
                                             for row in rows[name]])
    except engine.dialect.loaded_dbapi.Error as exc:
        connection, pooled = Connection(engine, pooled), None
        with connection:  # hands the pooled connection back, or drops it
            connection._handle_dbapi_exception(exc, sql, None, None, None)  # raises, wrapped as SQLAlchemy does
    finally:
        if pooled is not None:
            pooled.close()
    return contact_id


_Positional = tuple[str, tuple[str, ...], tuple[Callable | None, ...]]


@lru_cache(maxsize=32)
def _positional_sql(dialect: Dialect, statement: object, columns: tuple[str, ...] | None = None) -> _Positional:
    """`statement` compiled once for `dialect` (for an INSERT, naming `columns`): its SQL with positional
    parameters, their names in order, and each one's bind processor."""
    compiled = statement.compile(dialect=dialect, column_keys=list(columns) if columns else None)  # type: ignore[attr-defined]
    order = tuple(compiled.positiontup)
    kinds = {name: bind.type for name, bind in compiled.binds.items()}
    return compiled.string, order, tuple(kinds[name].dialect_impl(dialect).bind_processor(dialect) for name in order)


def _positional(order: tuple[str, ...], processors: tuple[Callable | None, ...], values: Mapping[str, object]) -> list:
    return [values[name] if process is None else process(values[name])
            for name, process in zip(order, processors, strict=True)]


def _fetch_one(driver: Any, sql: str, bound: dict[str, object]) -> tuple | None:
    """Run `sql` in autocommit on psycopg's connection `driver`: its first row.

    Autocommit is set on psycopg's connection itself (while idle: no round trip), not through SQLAlchemy's
    isolation-level option, which set and reset it through its characteristics machinery on every call (4%
    of a sign-up's CPU), and set back before the pool has the connection again."""
    driver.autocommit = True
    try:
        with driver.cursor() as cursor:
            cursor.execute(sql, bound)
            return cursor.fetchone()
    finally:
        if not driver.closed:  # closed: the server went away; the connection is invalidated, not reused
            driver.autocommit = False


def _defaults(table: Table) -> dict[str, object]:
    """The model's defaults (stage "lead", attempts 0 ...): SQLAlchemy fills them in for a plain INSERT,
    not for one inside a CTE, so every row here names every column."""
    return {c.name: c.default.arg for c in table.c
            if c.default is not None and c.default.is_scalar and not c.primary_key}


_DEFAULTS = {table.name: _defaults(table) for table in (_CONTACTS, *(t for _n, t in _CHILDREN))}


def _rows(given: Row, children: Mapping[str, Sequence[Row]]) -> tuple[dict[str, object], dict[str, list]]:
    contact = {**_DEFAULTS[_CONTACTS.name], **given}
    rows = {name: [{k: v for k, v in {**_DEFAULTS[table.name], **row}.items() if k != "contact_id"}
                   for row in children.get(name, ())] for name, table in _CHILDREN}
    return contact, rows


def _one_statement_bound(dialect: Dialect, given: Row, children: Mapping[str, Sequence[Row]],
                         digest: str) -> tuple[str, dict[str, object]]:
    """The one statement's SQL (PostgreSQL) and its parameters, bound as its types bind them; every JSON
    parameter as its text (see _json_text)."""
    contact, rows = _rows(given, children)
    shape = tuple((name, tuple(rows[name][0]) if rows[name] else ()) for name, _table in _CHILDREN)
    params: dict[str, object] = {f"contact_{k}": v for k, v in contact.items()}
    params["erased_digest"] = digest
    sql, processors = _one_statement_sql(dialect, tuple(contact), shape)
    bound = {name: params[name] if process is None else process(params[name]) for name, process in processors}
    converted: _Converted = {}
    bound.update({name: _json_text(table, rows[name], dialect, converted) for name, table in _CHILDREN if rows[name]})
    return sql, bound


def _insert(connection: Connection, given: Row, children: Mapping[str, Sequence[Row]], digest: str) -> int | None:
    if connection.dialect.name == "postgresql":
        sql, bound = _one_statement_bound(connection.dialect, given, children, digest)
        return connection.exec_driver_sql(sql, bound).scalar()
    contact, rows = _rows(given, children)
    contact_id = connection.execute(_sqlite_contact(tuple(contact)), {**contact, "erased_digest": digest}).scalar()
    if contact_id is None:
        return None
    for name, _table in _CHILDREN:
        if rows[name]:
            connection.execute(_SQLITE_INSERTS[name], [{**row, "contact_id": contact_id} for row in rows[name]])
    return contact_id


def _not_erased() -> object:
    """No row when the address's digest is on the erased list (people.erasure): the caller then takes the
    general path, which refuses it (contacts.ErasedAddress). In the same statement: no extra round trip."""
    return ~exists().where(ErasedAddress.digest == bindparam("erased_digest"))


def _contact_insert(dialect: object, columns: tuple[str, ...], prefix: str) -> object:
    values = select(*[bindparam(f"{prefix}{c}", type_=_CONTACTS.c[c].type) for c in columns]).where(_not_erased())
    return (dialect.insert(_CONTACTS).from_select(list(columns), values)  # type: ignore[attr-defined]
            .on_conflict_do_nothing(index_elements=[_CONTACTS.c.email]).returning(_CONTACTS.c.id))
_SQLITE_INSERTS = {name: insert(table) for name, table in _CHILDREN}


@lru_cache(maxsize=8)
def _sqlite_contact(columns: tuple[str, ...]) -> object:
    return _contact_insert(sqlite, columns, "")


@lru_cache(maxsize=32)
def _one_statement(contact_columns: tuple[str, ...], shape: tuple[tuple[str, tuple[str, ...]], ...]) -> Select:
    """WITH new_contact AS (INSERT INTO contact ... ON CONFLICT (email) DO NOTHING RETURNING id),
    new_consent AS (INSERT INTO consent (contact_id, ...) SELECT new_contact.id, r.* FROM new_contact,
    json_to_recordset(:consent) AS r(channel VARCHAR(8), ...)), new_enrollment AS (...), new_event AS (...)
    SELECT id FROM new_contact.

    Each table's rows are ONE parameter, a JSON array, not a parameter per value: psycopg converts a query
    with more than 50 parameters (or longer than 4 KB) anew on every call, and that parse cost more than
    the rest of the statement did."""
    new = _contact_insert(postgresql, contact_columns, "contact_").cte("new_contact")  # type: ignore[attr-defined]
    ctes: list[CTE] = []
    for (name, columns), (_name, table) in zip(shape, _CHILDREN, strict=True):
        if columns:
            rows = (func.json_to_recordset(bindparam(name, type_=JSON))
                    .table_valued(*[column(c, table.c[c].type) for c in columns], column(_ORDER, Integer))
                    .render_derived(with_types=True))
            chosen = (select(new.c.id, *[rows.c[c] for c in columns]).select_from(new).join(rows, true())
                      .order_by(rows.c[_ORDER]))  # ids in the order given: a timeline is read in id order
            ctes.append(insert(table).from_select(["contact_id", *columns], chosen, include_defaults=False)
                        .cte(f"new_{name}"))
    return select(new.c.id).add_cte(*ctes)


_Processors = tuple[tuple[str, Callable | None], ...]


@lru_cache(maxsize=32)
def _one_statement_sql(dialect: Dialect, contact_columns: tuple[str, ...],
                       shape: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[str, _Processors]:
    """`_one_statement` compiled once for `dialect`: its SQL, and each contact parameter's name with its
    type's bind processor (UTC datetimes, statuses; a JSON column's value as its text). Executed as driver
    SQL, a sign-up skips what SQLAlchemy does again for every execution of a statement object (its cache
    key, the compiled cache's lookup, the processors found per call): a fifth of a sign-up's CPU in the web
    worker (bench/README.md, P4). The children's rows are bound by _one_statement_bound."""
    compiled = _one_statement(contact_columns, shape).compile(dialect=dialect)
    children = {name for name, _table in _CHILDREN}
    processors = tuple((name, _json_column_text(bind.type) if isinstance(bind.type, JSON)
                        else bind.type.dialect_impl(dialect).bind_processor(dialect))
                       for name, bind in compiled.binds.items() if name not in children)
    return compiled.string, processors


def _converts(kind: object) -> bool:
    """A column type of ours that converts values before they are stored (SQLModel's AutoString does not)."""
    return isinstance(kind, TypeDecorator) and type(kind).process_bind_param is not TypeDecorator.process_bind_param


def _converting(tables: Sequence[Table]) -> dict[str, dict[str, TypeDecorator]]:
    """Per table, the columns whose type converts a value before it is stored (UTCDateTime, StatusColumn),
    found once: asking each value's column type on every sign-up was 7% of its CPU (bench/README.md, P4).
    Types that convert alike (every UTCDateTime; a StatusColumn of the same enum) are one object here, so
    that a value is converted once for all of them (see _json_text)."""
    alike: dict[object, TypeDecorator] = {}
    return {table.name: {c.name: alike.setdefault(c.type._static_cache_key, c.type)
                         for c in table.c if _converts(c.type)} for table in tables}


_CONVERTING = _converting([_CONTACTS, *(t for _n, t in _CHILDREN)])
_Converted = dict[tuple[int, object], object]


def _json_text(table: Table, rows: Sequence[Row], dialect: Dialect, converted: _Converted) -> str:
    """`rows` as json_to_recordset reads them, as JSON text: each value as its column stores it (UTC
    datetimes naive, statuses plain strings), datetimes in ISO form, each row's place in `_ORDER`.

    Text, made by one encode (the C encoder), not a JSON object for the driver to serialise: asking each
    value's column type, then psycopg's JSON dumper per parameter, were a tenth of a sign-up's CPU in the
    web worker (bench/README.md, P4). Only the columns whose type converts are looked at, and a value is
    converted once for all of a sign-up's tables (`converted`, shared by the caller): its rows all carry
    the same time."""
    converting = _CONVERTING[table.name]
    found = []
    for number, row in enumerate(rows):
        plain = {**row, _ORDER: number}
        for key, kind in converting.items():
            if key in plain:
                value = plain[key]
                try:
                    plain[key] = converted[id(kind), value]
                except KeyError:
                    plain[key] = converted[id(kind), value] = _stored(kind, value, dialect)
        found.append(plain)
    return _ENCODER.encode(found)


def _stored(kind: TypeDecorator, value: object, dialect: Dialect) -> object:
    value = kind.process_bind_param(value, dialect)
    return value.isoformat() if isinstance(value, datetime) else value


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(default=_iso)  # made once: json.dumps with an argument makes one every call


def _json_column_text(kind: JSON) -> Callable[[object], str | None]:
    """A JSON column's value as the text PostgreSQL casts (the statement says ::JSON), None as SQLAlchemy's
    JSON type binds it: the JSON `null`, or SQL NULL where the column says none_as_null."""
    def text(value: object) -> str | None:
        return None if value is None and kind.none_as_null else json.dumps(value)

    return text


def event_row(type_: str, at: object, data: Mapping[str, object], delivery_id: int | None = None) -> dict[str, object]:
    """A new contact's event, for `insert_new_signup` (the columns store.contacts.insert_event writes)."""
    return {"type": type_, "data": dict(data), "delivery_id": delivery_id, "occurred_at": at, "created_at": at}
