"""The error tree (screenpop/errors.py) and the one formatter of pydantic errors."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

import screenpop.errors
from screenpop.bus import BusError
from screenpop.cache import CacheError
from screenpop.config import ConfigError
from screenpop.errors import ScreenpopError
from screenpop.models import MAX_MESSAGE, CallEvent, format_validation_error
from screenpop.store import StoreError


def test_every_error_is_under_the_root_and_importable_where_it_was() -> None:
    """ConfigError, BusError, CacheError and StoreError are ScreenpopErrors, the same classes as errors.py's."""
    for cls in (ConfigError, BusError, CacheError, StoreError):
        assert issubclass(cls, ScreenpopError) and getattr(screenpop.errors, cls.__name__) is cls


def test_the_docstring_draws_every_error() -> None:
    """The tree in errors.py's docstring names every class of the module."""
    doc = screenpop.errors.__doc__ or ""
    for cls in ScreenpopError.__subclasses__():
        assert cls.__name__ in doc
    assert set(screenpop.errors.__all__) == {"ScreenpopError", *(c.__name__ for c in ScreenpopError.__subclasses__())}


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["agent", "admin"]


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Inner]


def problems(model: type[BaseModel], data: object) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return info.value


def test_formatter_names_the_path_and_says_what() -> None:
    """`where: what` with the field's path, choices as "expected one of", unknown keys as "unknown field"."""
    err = problems(Outer, {"items": [{"role": "agent"}, {"role": "boss", "colour": "red"}]})
    assert format_validation_error(err) == (
        "items[1].role: expected one of 'agent' or 'admin'; items[1].colour: unknown field")
    assert format_validation_error(err, prefix="options.").startswith("options.items[1].role: ")


def test_formatter_root_prefix_and_where() -> None:
    """A problem with the whole value says `root`; a `where` function renders the path its own way."""
    err = problems(Outer, [1])
    assert format_validation_error(err, root="body") == "body: Input should be a valid dictionary or instance of Outer"
    missing = problems(Outer, {})
    assert format_validation_error(missing, where=lambda loc: "ENV_" + "_".join(map(str, loc)).upper()) == (
        "ENV_ITEMS: Field required")


def test_formatter_never_shows_the_input_and_is_bounded() -> None:
    """The refused value is never echoed; a thousand problems and huge keys still give one short line."""
    err = problems(CallEvent, {"call_id": "c", "event": "secret-value-123", "caller": "1"})
    assert "secret-value-123" not in format_validation_error(err)
    many = problems(Outer, {"items": [{"role": "x", "k" * 10_000: 1}] * 1000})
    text = format_validation_error(many)
    assert len(text) <= MAX_MESSAGE and "\n" not in text and "k" * 100 not in text
    assert "and 1990 more" in format_validation_error(many, limit=10)
