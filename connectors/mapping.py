"""Shaping a source's answer with JMESPath (https://jmespath.org), shared by the kinds that map data.

    items    "data.customers"                   where the list of records is (optional)
    fields   {"balance": "account.balance",     output key -> JMESPath expression, applied to each
              "phone": "phones[0]",             record of the list, or to the whole answer
              "total": "to_number(amount)"}

A plain dotted name ("account.balance") is already a JMESPath expression; a list index is written
`phones[0]`, and a key that is not a plain identifier is quoted: `"First Name"`. An expression that finds
nothing gives None. Expressions are checked and compiled when the options are read (`expression` is the
pydantic-facing check), so a typo is a validation error naming the option, never a failed call.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any

import jmespath
from jmespath import exceptions as jp_errors
from jmespath.parser import ParsedResult
from pydantic import AfterValidator

from connectors.base import ConnectorError

_DOTTED_INDEX = re.compile(r"\.\d")


@functools.lru_cache(maxsize=1024)
def compile_expression(expr: str) -> ParsedResult:
    """The compiled expression; raises ValueError with a short reason when it is not valid JMESPath."""
    if not isinstance(expr, str) or not expr.strip():
        raise ValueError("a JMESPath expression like 'data.customers' is expected, got an empty one")
    try:
        return jmespath.compile(expr)
    except jp_errors.ParseError as err:
        hint = "; write a list index as name[0]" if _DOTTED_INDEX.search(expr) else ""
        raise ValueError(f"not a valid JMESPath expression: unexpected {err.token_value!r} "
                         f"at column {err.lex_position}{hint}") from None
    except jp_errors.LexerError as err:
        raise ValueError(f"not a valid JMESPath expression: unexpected {err.lexer_value!r} "
                         f"at column {err.lexer_position}") from None
    except jp_errors.JMESPathError:
        raise ValueError("not a valid JMESPath expression") from None


def _check(expr: str) -> str:
    compile_expression(expr)
    return expr


Expression = Annotated[str, AfterValidator(_check)]
"""An options field holding a JMESPath expression (validated, and compiled once, when options are read)."""


def _search(compiled: ParsedResult, data: Any, where: str) -> Any:
    try:
        return compiled.search(data)
    except jp_errors.JMESPathError as err:
        reason = str(err).splitlines()[0][:120]
        raise ConnectorError(f"mapping failed at {where}: {reason}") from None


class Mapping:
    """The `items` and `fields` of a connector, compiled; `apply` shapes one answer."""

    def __init__(self, items: str | None = None, fields: dict[str, str] | None = None) -> None:
        self.items_source = items
        self.items = compile_expression(items) if items is not None else None
        self.fields = {key: compile_expression(expr) for key, expr in fields.items()} if fields is not None else None

    def select_items(self, data: Any) -> Any:
        """The list at `items` (or `data` itself when there is no `items`); ConnectorError if not a list."""
        if self.items is None:
            return data
        found = _search(self.items, data, "items")
        if found is not None and not isinstance(found, list):
            raise ConnectorError(f"expected a list at {self.items_source}, got {type(found).__name__}")
        return found

    def pick(self, record: Any) -> Any:
        """`record` mapped by `fields` into a new dict (or unchanged when there are no `fields`)."""
        if self.fields is None:
            return record
        return {key: _search(compiled, record, f"fields.{key}") for key, compiled in self.fields.items()}

    def apply(self, data: Any) -> Any:
        """`items`, then `fields` on each record of the list (or on the object); None when nothing is left."""
        data = self.select_items(data)
        if data is None or data == []:
            return None
        return [self.pick(x) for x in data] if isinstance(data, list) else self.pick(data)
