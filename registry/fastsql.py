"""Statements compiled once per dialect and run on the DBAPI cursor.

SQLAlchemy Core costs tens of microseconds per ``execute`` here, more than the
SQLite work of a registration's inserts. The handful of statements on the write
hot path (registration, audit append) are compiled once with SQLAlchemy into the
driver's named parameter style and executed on the raw cursor of the connection
that already holds the transaction, so savepoints and commit stay SQLAlchemy's.
Values are encoded the way SQLAlchemy's own types would store them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

_SQLITE = sqlite.dialect(paramstyle="named")
_POSTGRES = postgresql.dialect(paramstyle="pyformat")  # type: ignore[no-untyped-call]


def _dialect(name: str) -> sa.Dialect:
    if name == "sqlite":
        return _SQLITE
    if name == "postgresql":
        return _POSTGRES
    raise ValueError(f"no fast path for dialect {name!r}")


class Prepared:
    """One statement, compiled per dialect on first use, with its JSON/time columns."""

    def __init__(self, statement: sa.ClauseElement, keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.keys = list(keys) if keys is not None else None
        self._sql: dict[str, str] = {}
        self._defaults: dict[str, dict[str, Any]] = {}
        table = getattr(statement, "table", None)
        columns = table.columns if table is not None else ()
        # Tuples, walked once per row: cheaper than set intersections with each row.
        self._json = tuple(c.key for c in columns if isinstance(c.type, sa.JSON))
        self._time = tuple(c.key for c in columns if isinstance(c.type, sa.DateTime))

    def sql(self, dialect: str) -> str:
        found = self._sql.get(dialect)
        if found is None:
            compiled = self.statement.compile(dialect=_dialect(dialect), column_keys=self.keys)
            # Literal binds SQLAlchemy made for us (LIMIT 1, ...) keep their values.
            self._defaults[dialect] = {k: v for k, v in compiled.params.items() if v is not None}
            found = self._sql[dialect] = compiled.string
        return found

    def params(self, dialect: str, values: Mapping[str, Any]) -> dict[str, Any]:
        defaults = self._defaults.get(dialect)
        out = {**defaults, **values} if defaults else dict(values)
        for key in self._json:
            value = out.get(key)
            if value is not None:
                out[key] = json.dumps(value)
        if dialect == "sqlite":
            for key in self._time:
                if key in out:
                    out[key] = sqlite_time(out[key])
        return out


_SQLITE_QMARK = sqlite.dialect(paramstyle="qmark")


class MultiRow:
    """An INSERT of rows given as tuples in ``keys`` order (the table's column order),
    values in the driver's form (see ``Cursor.run``).

    SQLite: one positional statement stepped per row (``executemany``), which SQLite
    runs faster than a multi-row ``VALUES`` and which binds tuples faster than names.
    PostgreSQL: one multi-row ``VALUES`` statement per ``CHUNK`` rows, one round trip,
    compiled once per row count. ``returning`` columns are read back by ``insert_one``.
    """

    CHUNK = 64

    def __init__(self, table: sa.Table, keys: Sequence[str], returning: Sequence[str] = ()) -> None:
        self.table = table
        self.keys = tuple(keys)
        self.returning = tuple(returning)
        self._compiled: dict[tuple[str, int], tuple[str, tuple[str, ...]]] = {}
        self._positional: str | None = None

    def positional(self) -> str:
        """SQLite's one-row statement with ``?`` parameters in ``keys`` order."""
        if self._positional is None:
            statement = self.table.insert()
            if self.returning:
                statement = statement.returning(*(self.table.c[k] for k in self.returning))
            compiled = statement.compile(dialect=_SQLITE_QMARK, column_keys=list(self.keys))
            if tuple(compiled.positiontup or ()) != self.keys:
                raise ValueError(f"keys of {self.table.name} must follow its column order")
            self._positional = compiled.string
        return self._positional

    def compiled(self, dialect: str, rows: int) -> tuple[str, tuple[str, ...]]:
        """The statement for ``rows`` rows and its parameter names, row after row."""
        found = self._compiled.get((dialect, rows))
        if found is None:
            names = tuple(f"{k}__{i}" for i in range(rows) for k in self.keys)
            columns = self.table.columns
            values = [
                {k: sa.bindparam(f"{k}__{i}", type_=columns[k].type) for k in self.keys}
                for i in range(rows)
            ]
            statement = self.table.insert().values(values)
            if self.returning:
                statement = statement.returning(*(columns[k] for k in self.returning))
            found = (statement.compile(dialect=_dialect(dialect)).string, names)
            self._compiled[(dialect, rows)] = found
        return found


_last_time: tuple[datetime | None, str | None] = (None, None)


def sqlite_time(value: datetime | None) -> str | None:
    """What SQLAlchemy's SQLite ``DateTime`` stores: naive UTC ``YYYY-MM-DD HH:MM:SS.ffffff``.

    Remembers the last conversion: one transaction stamps every row with one ``now``.
    """
    global _last_time  # noqa: PLW0603 - a one-entry memo, safe to race on
    if value is None:
        return None
    last_in, last_out = _last_time
    if value is last_in:
        return last_out
    naive = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    out = naive.isoformat(sep=" ", timespec="microseconds")
    _last_time = (value, out)
    return out


def json_text(value: Any) -> str | None:
    """A JSON column's value as ``Prepared`` stores it (``None`` stays SQL NULL)."""
    return None if value is None else json.dumps(value)


def stored_time(dialect: str, value: datetime) -> Any:
    """A ``DateTime`` column's value as ``Prepared`` stores it on ``dialect``."""
    return sqlite_time(value) if dialect == "sqlite" else value


def json_value(value: Any) -> Any:
    """Decode a JSON column read raw (text on SQLite, already decoded by psycopg)."""
    return json.loads(value) if isinstance(value, str | bytes) else value


_CURSOR = "modelreg_fastsql_cursor"  # the key of a connection's Cursor in its ``info``


class Cursor:
    """Runs ``Prepared`` statements on the transaction's DBAPI connection."""

    def __init__(self, conn: sa.Connection) -> None:
        self.dialect = conn.dialect.name
        raw = conn.connection.driver_connection
        assert raw is not None
        self.driver: Any = raw
        self._cursor = raw.cursor()

    @classmethod
    def of(cls, conn: sa.Connection) -> Cursor:
        """The cursor of ``conn``'s DBAPI connection, made once rather than once per
        transaction (``conn.info`` lives exactly as long as that connection)."""
        found = conn.info.get(_CURSOR)
        if not isinstance(found, Cursor):
            found = conn.info[_CURSOR] = cls(conn)
        return found

    def execute(self, prepared: Prepared, values: Mapping[str, Any]) -> Any:
        self._cursor.execute(prepared.sql(self.dialect), prepared.params(self.dialect, values))
        return self._cursor

    def executemany(self, prepared: Prepared, rows: Sequence[Mapping[str, Any]]) -> None:
        sql = prepared.sql(self.dialect)
        self._cursor.executemany(sql, [prepared.params(self.dialect, r) for r in rows])

    def insert_rows(self, multi: MultiRow, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` (see ``MultiRow``)."""
        if self.dialect == "sqlite":
            self._cursor.executemany(multi.positional(), rows)
            return
        for start in range(0, len(rows), multi.CHUNK):
            chunk = rows[start : start + multi.CHUNK]
            sql, names = multi.compiled(self.dialect, len(chunk))
            self._cursor.execute(sql, dict(zip(names, chain.from_iterable(chunk), strict=True)))

    def insert_one(self, multi: MultiRow, row: Sequence[Any]) -> tuple[Any, ...]:
        """Insert one row (see ``MultiRow``); returns its ``returning`` columns."""
        if self.dialect == "sqlite":
            self._cursor.execute(multi.positional(), row)
        else:
            sql, names = multi.compiled(self.dialect, 1)
            self._cursor.execute(sql, dict(zip(names, row, strict=True)))
        return tuple(self._cursor.fetchall()[0]) if multi.returning else ()

    def raw(self, sql: str) -> None:
        """A statement without parameters (savepoints)."""
        self._cursor.execute(sql)

    def one(self, prepared: Prepared, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row, reading the statement to its end: the cursor outlives the
        transaction, and a SQLite statement left mid-result would hold its snapshot
        (and block checkpoints) after the commit."""
        rows = self.execute(prepared, values).fetchall()
        return tuple(rows[0]) if rows else None
