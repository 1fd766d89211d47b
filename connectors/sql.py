"""The `sql` connector kind: one parameterised, read-only SELECT per lookup, through SQLAlchemy's asyncio.

    url     postgresql://user@host/db (or postgres://, postgresql+asyncpg://)  -> asyncpg
            mysql://user@host/db or mariadb://user@host/db (or mysql+aiomysql://) -> aiomysql
            sqlite:///path/to/file.db (or sqlite+aiosqlite://)                 -> aiosqlite
    query   SELECT id, name FROM customers WHERE phone = :phone
            named parameters among :phone :customer_id :raw :called :suffix (strings; "" when unknown);
            a literal colon that is not a parameter is written "\\:". PostgreSQL casts (x::int) are fine.

The query check at options time catches mistakes (not a SELECT / WITH, several statements, MySQL's
SELECT ... INTO OUTFILE); the guarantee comes from the database: PostgreSQL runs every lookup in a READ
ONLY transaction on sessions whose default is read-only, SQLite connections have `PRAGMA query_only = ON`,
MySQL / MariaDB sessions are set to READ ONLY transactions. A write smuggled through a CTE or a stored
function fails there. Give the database user SELECT rights only, all the same.

Rows become dicts of JSON-friendly values (Decimal -> float, dates and times -> ISO 8601 strings,
bytes -> hex, UUID -> str). `one: true` returns the first row or None; otherwise a list of at most
`max_rows` rows, or None when there is none.

An identity connector may have a `search_query` (a SELECT too, read-only the same way) for the agent's
search by hand: its parameters are :text (what the agent typed), :like ("%text%") and :digits ("%4155%",
the typed digits; matches nothing with fewer than three). At most `max_rows` rows are returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
from collections.abc import AsyncGenerator, Sequence
from typing import Any, ClassVar

from pydantic import ConfigDict, Field, field_validator
from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from connectors.base import Connector, ConnectorError, ConnectorOptions
from connectors.lanes import LaneRefused, Lanes
from connectors.sql_rules import PARAMETERS, SEARCH_PARAMETERS, check_query, jsonable, normalize_url, sql_errors
from screenpop.models import LookupQuery

__all__ = ["SqlConnector", "SqlOptions", "check_query", "jsonable", "normalize_url"]

_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}


class SqlOptions(ConnectorOptions):
    """Options of the `sql` kind (see the module docstring)."""

    model_config = ConfigDict(hide_input_in_errors=True)  # the URL may carry a password

    SECRET_URLS: ClassVar[tuple[str, ...]] = ("url",)  # its password and its query values are secret
    PUBLIC_PARAMS: ClassVar[tuple[str, ...]] = ("sslmode", "ssl", "charset", "application_name", "connect_timeout",
                                                "target_session_attrs")

    url: str
    query: str
    max_rows: int = Field(default=50, ge=1)
    one: bool = False
    pool_size: int = Field(default=5, ge=1)
    search_query: str | None = None  # identity only: the agent's search (see the module docstring)

    @field_validator("url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        return normalize_url(v)

    @field_validator("query")
    @classmethod
    def _check_query(cls, v: str) -> str:
        return check_query(v)

    @field_validator("search_query")
    @classmethod
    def _check_search_query(cls, v: str | None) -> str | None:
        return None if v is None else check_query(v, SEARCH_PARAMETERS)


def _require_file(path: str, lanes: Lanes, *_args: Any) -> None:
    """Refuse to open a missing SQLite file (sqlite would create an empty one), or one outside the lanes."""
    if not os.path.exists(path):
        raise ConnectorError("database file not found")
    try:
        lanes.check_file(path)
    except LaneRefused as err:
        raise ConnectorError(str(err)) from None


def _sqlite3(raw: Any) -> sqlite3.Connection | None:
    """The sqlite3 connection under SQLAlchemy's pooled one (its aiosqlite adapter, aiosqlite's connection)."""
    seen = raw
    for _ in range(4):
        if isinstance(seen, sqlite3.Connection):
            return seen
        seen = next((getattr(seen, a) for a in ("dbapi_connection", "_connection", "_conn") if hasattr(seen, a)), None)
    return None


def _read_only_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only = ON")
    cursor.close()


def _read_only_mysql(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION TRANSACTION READ ONLY")
    cursor.close()


class SqlConnector(Connector):
    """Runs one read-only query per lookup on a pooled async engine."""

    kind: ClassVar[str] = "sql"
    Options: ClassVar[type[ConnectorOptions]] = SqlOptions
    options: SqlOptions

    def __init__(self, name: str, options: ConnectorOptions) -> None:
        super().__init__(name, options)
        self._statement = text(self.options.query)
        self._params = [p for p in PARAMETERS if p in self._statement.compile().params]
        self._url: URL = make_url(self.options.url)
        backend = self._url.get_backend_name()
        if backend == "sqlite":
            self._where = "the database file"
        else:
            self._where = f"{self._url.host or 'localhost'}:{self._url.port or _DEFAULT_PORTS[backend]}"
        self._engine: AsyncEngine | None = None

    async def start(self) -> None:
        """Create the engine and its pool (connections are made on first use)."""
        if self._engine is not None:
            return
        backend = self._url.get_backend_name()
        kwargs: dict[str, Any] = {}
        if backend == "postgresql":
            settings = {"default_transaction_read_only": "on", "application_name": "screenpop"}
            kwargs["connect_args"] = {"server_settings": settings}
            kwargs["execution_options"] = {"postgresql_readonly": True}
        if backend != "sqlite" or self._url.database not in (None, "", ":memory:"):
            kwargs.update(pool_size=self.options.pool_size, max_overflow=0)
        try:
            engine = create_async_engine(self._url, **kwargs)
        except (ImportError, SQLAlchemyError, TypeError, ValueError) as err:
            raise ConnectorError(f"cannot use this database URL ({type(err).__name__})") from err
        if backend == "sqlite":
            event.listen(engine.sync_engine, "connect", _read_only_sqlite)
            path = self._url.database
            if path and path != ":memory:":
                event.listen(engine.sync_engine, "do_connect", functools.partial(_require_file, path, self.lanes))
        elif backend == "mysql":
            event.listen(engine.sync_engine, "connect", _read_only_mysql)
        self._engine = engine

    def check_lanes(self) -> None:
        """A SQLite file must be inside the data folders and none of screenpop's own; a database server's
        host must be allowed (checked by name or address when configured: the drivers resolve and connect by
        themselves)."""
        path = self._url.database
        backend = self._url.get_backend_name()
        if backend == "sqlite":
            if path and path != ":memory:":
                self.lanes.check_file(path)
            return
        self.lanes.check_host_name(self._url.host or "localhost")

    async def close(self) -> None:
        """Dispose of the engine and close every pooled connection."""
        engine, self._engine = self._engine, None
        if engine is not None:
            with contextlib.suppress(Exception):
                await engine.dispose()

    def _require_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise ConnectorError("connector is not started")
        return self._engine

    async def batches(self, query: LookupQuery,
                      batch: int = 1000) -> AsyncGenerator[tuple[list[str], list[Sequence[Any]]], None]:
        """The column names and the next rows (as the driver returns the values), `batch` rows at a time,
        so that a big result never holds the event loop for long, nor needs to sit in memory whole. An
        empty result yields its columns once with no rows. Raises ConnectorError."""
        engine = self._require_engine()
        values = query.template_values()
        params = {p: values[p] for p in self._params}
        with sql_errors(self._where):
            async with engine.connect() as conn:
                result = await conn.stream(self._statement, params)
                columns = [str(c) for c in result.keys()]
                try:
                    first = True
                    while (chunk := await result.fetchmany(batch)) or first:
                        first = False
                        yield columns, list(chunk)
                        if not chunk:
                            break
                finally:
                    await result.close()

    async def select(self, query: LookupQuery, limit: int,
                     batch: int = 1000) -> tuple[list[str], list[Sequence[Any]], bool]:
        """The column names, at most `limit` rows (as the driver returns the values), and whether there
        were more. Rows are read in batches, so a big result never holds the event loop for long; on
        SQLite a cancellation (the section's deadline) interrupts the statement in its thread."""
        engine = self._require_engine()
        values = query.template_values()
        params = {p: values[p] for p in self._params}
        rows: list[Sequence[Any]] = []
        more = False
        with sql_errors(self._where):
            async with engine.connect() as conn:
                if self._url.get_backend_name() != "sqlite":
                    columns = await self._read(conn, params, rows, limit, batch)
                else:  # SQLite runs in a thread: at the deadline, stop the statement there before anything else
                    sqlite_conn = _sqlite3(await conn.get_raw_connection())
                    work = asyncio.ensure_future(self._read(conn, params, rows, limit, batch))
                    try:
                        columns = await asyncio.shield(work)
                    except asyncio.CancelledError:
                        if sqlite_conn is not None:
                            sqlite_conn.interrupt()
                        await asyncio.gather(work, return_exceptions=True)
                        raise
        if len(rows) > limit:
            rows, more = rows[:limit], True
        return columns, rows, more

    async def _read(self, conn: AsyncConnection, params: dict[str, str], rows: list[Sequence[Any]], limit: int,
                    batch: int) -> list[str]:
        """Run the statement, append at most `limit` + 1 rows to `rows`; the column names."""
        result = await conn.stream(self._statement, params)
        columns = [str(c) for c in result.keys()]
        while len(rows) <= limit:
            chunk = await result.fetchmany(min(batch, limit + 1 - len(rows)))
            if not chunk:
                break
            rows.extend(chunk)
        await result.close()
        return columns

    async def fetch(self, query: LookupQuery) -> dict[str, Any] | list[Any] | None:
        """Run the query with the parameters it names; rows as dicts (see the module docstring)."""
        size = 1 if self.options.one else self.options.max_rows
        columns, rows, _ = await self.select(query, size)
        records = [{k: jsonable(v) for k, v in zip(columns, row, strict=True)} for row in rows]
        if self.options.one:
            return records[0] if records else None
        return records or None

    async def search(self, text_: str, limit: int) -> list[dict[str, Any]]:
        """Run `search_query` with :text, :like and :digits; at most `limit` rows as dicts."""
        if self.options.search_query is None:
            return await super().search(text_, limit)
        engine = self._require_engine()
        statement = text(self.options.search_query)
        digits = "".join(c for c in text_ if c.isdigit())
        values = {"text": text_, "like": f"%{text_}%", "digits": f"%{digits}%" if len(digits) >= 3 else ""}
        params = {p: v for p, v in values.items() if p in statement.compile().params}
        with sql_errors(self._where):
            async with engine.connect() as conn:
                result = await conn.execute(statement, params)
                columns = [str(c) for c in result.keys()]
                rows = result.fetchmany(min(limit, self.options.max_rows))
        return [{k: jsonable(v) for k, v in zip(columns, row, strict=True)} for row in rows]

    async def ping(self) -> None:
        """Run `SELECT 1`."""
        engine = self._require_engine()
        with sql_errors(self._where):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
