"""What the SQL connectors (the `sql` lookup kind, connectors.sql, and the SQL journal, connectors.journal)
check and translate, apart from running anything: a database URL made async (and refused when screenpop
cannot use it safely), a query's text checked to be one SELECT with known parameters, a row's values made
JSON-friendly, and driver failures turned into short, safe ConnectorErrors.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import re
from collections.abc import Iterator, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from connectors.base import ConnectorError
from screenpop.models import LookupQuery

__all__ = ["PARAMETERS", "SEARCH_PARAMETERS", "check_parameters", "check_query", "jsonable", "mask_literals",
           "normalize_url", "one_statement", "sql_errors"]

PARAMETERS = tuple(LookupQuery(phone="").template_values())
SEARCH_PARAMETERS = ("text", "like", "digits")
_DRIVERS = {"postgresql": "asyncpg", "postgres": "asyncpg", "sqlite": "aiosqlite", "mysql": "aiomysql",
            "mariadb": "aiomysql"}
_BACKENDS = {"postgres": "postgresql", "mariadb": "mysql"}
_DB_MODULES = frozenset({"asyncpg", "aiosqlite", "sqlite3", "aiomysql", "pymysql"})
_MYSQL_NO_SERVER = frozenset({2002, 2003, 2005, 2006, 2013})  # cannot connect, unknown host, gone, lost
_INTO_FILE = re.compile(r"\binto\s+(outfile|dumpfile)\b", re.IGNORECASE)
# comments and quoted text, so that a ";" or a keyword inside them is not taken for code
_NOT_CODE = re.compile(
    r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\$(?P<tag>[A-Za-z_]\w*)?\$.*?\$(?P=tag)\$", re.S
)


def normalize_url(url: str) -> str:
    """The async form of a database URL; raises ValueError for a driver screenpop cannot use."""
    try:
        u = make_url(url)
    except (ArgumentError, ValueError):
        raise ValueError("not a database URL; expected postgresql://, mysql://... or sqlite:///path") from None
    backend, _, driver = u.drivername.lower().partition("+")
    wanted = _DRIVERS.get(backend)
    if wanted is None or driver not in ("", wanted):
        raise ValueError(
            f"unsupported database driver {u.drivername!r}; use postgresql://, mysql://, mariadb:// "
            "or sqlite:///"
        )
    if wanted == "aiomysql" and importlib.util.find_spec("aiomysql") is None:
        raise ValueError("mysql needs the aiomysql package, which is not installed")
    backend = _BACKENDS.get(backend, backend)
    if backend == "sqlite" and (u.query or (u.database or "").startswith("file:")):
        raise ValueError("a SQLite URL is sqlite:///path/to/file.db, without file: URIs or ?options "
                         "(they could open a file for writing)")
    return u.set(drivername=f"{backend}+{wanted}").render_as_string(hide_password=False)


def mask_literals(sql: str) -> str:
    """`sql` with comments blanked and quoted text replaced, same length, so positions still match."""
    return _NOT_CODE.sub(lambda m: (" " if m.group().startswith(("--", "/*")) else "0") * len(m.group()), sql)


def one_statement(sql: str, kind: str, message: str) -> tuple[str, str]:
    """(`sql` without a trailing ";", the same with comments and quoted text masked); ValueError with
    `message` unless it starts with the `kind` pattern, when more SQL follows a ";", or when a quote or a
    comment is left open."""
    code = mask_literals(sql)
    if not re.match(kind, code, re.IGNORECASE):
        raise ValueError(message)
    end = code.find(";")
    if end >= 0:
        if code[end + 1 :].strip():
            raise ValueError("only one statement is allowed (found ';' followed by more SQL)")
        sql, code = sql[:end], code[:end]
    if "'" in code or '"' in code or "/*" in code:
        raise ValueError("unterminated quote or comment")
    return sql, code


def check_parameters(sql: str, parameters: tuple[str, ...]) -> None:
    """ValueError naming the first `:name` in `sql` that is not one of `parameters`."""
    unknown = sorted(set(text(sql).compile().params) - set(parameters))
    if unknown:
        names = ", ".join(f":{p}" for p in parameters)
        raise ValueError(f"unknown parameter :{unknown[0]}; use {names} (write \\: for a literal colon)")


def check_query(query: str, parameters: tuple[str, ...] = PARAMETERS) -> str:
    """The query without a trailing ";"; raises ValueError unless it is one SELECT / WITH statement."""
    query, code = one_statement(query, r"\s*(select|with)\b",
                                "the query must be one SELECT (or WITH ... SELECT) statement")
    if _INTO_FILE.search(code):
        raise ValueError("SELECT ... INTO OUTFILE / DUMPFILE writes a file; it is not allowed")
    check_parameters(query, parameters)
    return query


def jsonable(value: Any) -> Any:
    """A value from a database row as a JSON-friendly one."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return jsonable(float(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def _reason(err: BaseException) -> str:
    """A short, safe reason: the driver's first line, without SQLAlchemy's SQL echo or links."""
    orig = err.orig if isinstance(err, DBAPIError) and err.orig is not None else err
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):  # MySQL: (code, message)
        return f"database error: {args[1]}"[:200]
    lines = str(orig).strip().splitlines()
    message = re.sub(r"^<class '[^']*'>:\s*", "", lines[0]) if lines else type(orig).__name__
    return f"database error: {message}"[:200]


def _mysql_code(err: BaseException | None) -> int | None:
    args = getattr(err, "args", ())
    return args[0] if type(err).__module__.startswith("pymysql") and args and isinstance(args[0], int) else None


@contextlib.contextmanager
def sql_errors(where: str) -> Iterator[None]:
    """Turn driver and SQLAlchemy failures into short ConnectorErrors; timeouts pass through."""
    try:
        yield
    except (ConnectorError, TimeoutError):
        raise
    except OSError as err:
        raise ConnectorError(f"cannot connect to {where}") from err
    except DBAPIError as err:
        if isinstance(err.orig, OSError) or _mysql_code(err.orig) in _MYSQL_NO_SERVER:
            raise ConnectorError(f"cannot connect to {where}") from err
        raise ConnectorError(_reason(err)) from err
    except SQLAlchemyError as err:
        raise ConnectorError(f"database error: {type(err).__name__}") from err
    except Exception as err:
        if type(err).__module__.partition(".")[0] not in _DB_MODULES:
            raise
        raise ConnectorError(_reason(err)) from err
