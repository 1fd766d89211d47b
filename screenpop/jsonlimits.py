"""JSON from outside, parsed with a bounded nesting depth (never a RecursionError, never a 500).

pydantic-core's parser (Rust, no Python recursion) refuses more than 200 levels itself; `loads` also refuses
more than `max_depth` (default 32: no message screenpop reads is deeper than 6), so code that walks the
value (redaction, validation, serialisation) never meets a deep one.
"""

from __future__ import annotations

from typing import Any

import pydantic_core

MAX_DEPTH = 32


class JsonError(ValueError):
    """Not JSON, or nested too deeply; the message says which."""


def depth(value: Any) -> int:
    """How deeply containers nest in `value` (a scalar is 0, `[]` is 1), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        stack.extend((child, level) for child in children)
    return deepest


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """The value of a JSON text; JsonError when it is not JSON or nests deeper than `max_depth`."""
    try:
        value = pydantic_core.from_json(raw)
    except ValueError as err:
        if "recursion" in str(err):
            raise JsonError(f"JSON nested more than {max_depth} levels deep") from None
        raise JsonError(f"not valid JSON: {err}") from None
    if depth(value) > max_depth:
        raise JsonError(f"JSON nested more than {max_depth} levels deep")
    return value
