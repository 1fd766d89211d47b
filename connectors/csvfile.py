"""The `csv` connector kind: a CSV file (a spreadsheet export) as a source, held in memory.

    path        /srv/crm/customers.csv
    key_column  phone          the column compared with the lookup's key
    key         phone          phone: the caller's E.164 number (identity) | customer_id (sections)
                               | suffix: the number's last digits (identity_fallback)
    fields      {"id": "id", "name": "\"Full Name\"", "balance": "to_number(balance)"}
                               output key -> JMESPath expression on the row (optional: every column)
    delimiter ","   encoding "utf-8-sig"   region "US"   one false   max_rows 50   reload_s 5   max_bytes 64 MiB

With `key: phone` or `key: suffix`, the key column is normalised to E.164 when the file is read
(`phonenumbers`, national numbers in `region`), so "(415) 555-0100" matches +14155550100; the row then
carries the normalised number in that column. Every value of a CSV row is a string: JMESPath's
`to_number()` turns one into a number. Several rows may match: a list (or the first one with `one: true`).

The file is read in a thread, at `start()` and again whenever its modification time or size changes (a
background task looks every `reload_s` seconds; 0 = never). A lookup only reads the table in memory. A
read that fails keeps the last good table (`ping` reports the failure); a file that changes while it is
read is read again at the next look.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import phonenumbers
from pydantic import Field, field_validator

from connectors.base import Connector, ConnectorError, ConnectorOptions
from connectors.lanes import LaneRefused
from connectors.mapping import Expression, Mapping
from screenpop.models import LookupQuery

log = logging.getLogger(__name__)

_PUNCTUATION = re.compile(r"[\s().\-/]")
Stamp = tuple[int, int]  # (st_mtime_ns, st_size)


class CsvOptions(ConnectorOptions):
    """Options of the `csv` kind (see the module docstring)."""

    path: str = Field(min_length=1)
    key_column: str = Field(min_length=1)
    key: Literal["phone", "customer_id", "suffix"] = "phone"
    fields: dict[str, Expression] | None = None
    delimiter: str = ","
    encoding: str = "utf-8-sig"
    region: str = "US"
    one: bool = False
    max_rows: int = Field(default=50, ge=1)
    reload_s: float = Field(default=5.0, ge=0)
    max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)

    @field_validator("delimiter")
    @classmethod
    def _check_delimiter(cls, v: str) -> str:
        if len(v) != 1 or v in "\r\n\"":
            raise ValueError(f"one character other than a quote or a newline is expected, got {v!r}")
        return v

    @field_validator("encoding")
    @classmethod
    def _check_encoding(cls, v: str) -> str:
        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown encoding {v!r}") from None
        return v

    @field_validator("region")
    @classmethod
    def _check_region(cls, v: str) -> str:
        if v.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"a two-letter region like 'US' or 'DE' is expected, got {v!r}")
        return v.upper()


def to_e164(value: str, region: str) -> str:
    """A phone number from a spreadsheet in E.164 when it parses as a possible number; else as it was."""
    value = value.strip()
    compact = _PUNCTUATION.sub("", value)
    if compact.startswith("00") and compact[2:].isdigit():
        compact = "+" + compact[2:]
    try:
        number = phonenumbers.parse(compact, region)
    except phonenumbers.NumberParseException:
        return value
    if not phonenumbers.is_possible_number(number):
        return value
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


@dataclass
class Table:
    """The file's rows, mapped, by key. `by_suffix` is built per suffix length on first use."""

    stamp: Stamp
    by_key: dict[str, list[dict[str, Any]]]
    by_suffix: dict[int, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)

    def find(self, key: str, suffix: bool) -> list[dict[str, Any]]:
        if not suffix:
            return self.by_key.get(key, [])
        index = self.by_suffix.get(len(key))
        if index is None:
            index = {}
            for value, rows in self.by_key.items():
                digits = _digits(value)
                if len(digits) >= len(key):
                    index.setdefault(digits[-len(key):], []).extend(rows)
            self.by_suffix[len(key)] = index
        return index.get(key, [])


class _Changed(Exception):
    """The file changed while it was read."""


def _stamp(path: str) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def load_table(opts: CsvOptions, mapping: Mapping) -> Table:
    """Read and index the file (blocking: run it in a thread). Raises ConnectorError with a short reason."""
    before = _stamp(opts.path)
    if before is None:
        raise ConnectorError("CSV file not found")
    if before[1] > opts.max_bytes:
        raise ConnectorError(f"CSV file larger than {opts.max_bytes} bytes")
    phone = opts.key != "customer_id"
    by_key: dict[str, list[dict[str, Any]]] = {}
    try:
        with open(opts.path, newline="", encoding=opts.encoding) as f:
            reader = csv.DictReader(f, delimiter=opts.delimiter)
            if reader.fieldnames is not None and opts.key_column not in reader.fieldnames:
                raise ConnectorError(f"CSV file has no column {opts.key_column!r}")
            for row in reader:
                raw = row.get(opts.key_column)
                if not raw or not raw.strip():
                    continue
                key = to_e164(raw, opts.region) if phone else raw.strip()
                record = {k: v for k, v in row.items() if k is not None}  # not the cells past the header
                record[opts.key_column] = key
                by_key.setdefault(key, []).append(mapping.pick(record))
    except OSError as err:
        raise ConnectorError("CSV file cannot be read") from err
    except UnicodeDecodeError as err:
        raise ConnectorError(f"CSV file is not valid {opts.encoding}") from err
    except csv.Error as err:
        raise ConnectorError(f"bad CSV: {str(err)[:100]}") from err
    if _stamp(opts.path) != before:
        raise _Changed
    return Table(before, by_key)


class CsvConnector(Connector):
    """Answers lookups from a CSV file kept in memory and re-read when it changes."""

    kind: ClassVar[str] = "csv"
    Options: ClassVar[type[ConnectorOptions]] = CsvOptions
    options: CsvOptions

    def __init__(self, name: str, options: ConnectorOptions) -> None:
        super().__init__(name, options)
        self._mapping = Mapping(None, self.options.fields)
        self._table: Table | None = None
        self._seen: Stamp | None = None  # the file's stamp at the last look, loaded or not
        self._error: str | None = "connector is not started"
        self._watcher: asyncio.Task[None] | None = None
        self._started = False

    async def start(self) -> None:
        """Read the file (a missing or bad file shows in fetch and ping), then watch it for changes."""
        if self._started:
            return
        self._started = True
        self._seen = await asyncio.to_thread(_stamp, self.options.path)
        await self._load()
        if self.options.reload_s > 0:
            self._watcher = asyncio.create_task(self._watch(), name=f"csv-watch-{self.name}")

    def check_lanes(self) -> None:
        """The file must be inside the data folders and none of screenpop's own."""
        self.lanes.check_file(self.options.path)

    async def _load(self) -> None:
        try:
            self.lanes.check_file(self.options.path)  # again at each read: a link may have changed
            self._table = await asyncio.to_thread(load_table, self.options, self._mapping)
            self._error = None
        except LaneRefused as err:
            self._table, self._error = None, str(err)
            log.warning("csv connector %s: %s", self.name, err)
        except _Changed:
            self._seen = None  # look again next time
        except ConnectorError as err:
            self._error = str(err)
            log.warning("csv connector %s: %s", self.name, err)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.options.reload_s)
            try:
                stamp = await asyncio.to_thread(_stamp, self.options.path)
                if stamp == self._seen:
                    continue
                self._seen = stamp
                if stamp is None:
                    self._error = "CSV file not found"
                else:
                    await self._load()
            except Exception:  # a bug here must not end the watch
                log.exception("csv connector %s: reload failed", self.name)

    async def close(self) -> None:
        """Stop watching the file."""
        self._started = False
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def fetch(self, query: LookupQuery) -> dict[str, Any] | list[Any] | None:
        """The rows whose key column matches the query's key; never reads the file."""
        table = self._table
        if table is None:
            raise ConnectorError(self._error or "CSV file not loaded")
        key = {"phone": query.phone, "customer_id": query.customer_id, "suffix": query.suffix}[self.options.key]
        key = (_digits(key) if self.options.key == "suffix" else key.strip()) if key else ""
        rows = table.find(key, self.options.key == "suffix") if key else []
        if not rows:
            return None
        if self.options.one:
            return dict(rows[0])
        return [dict(r) for r in rows[: self.options.max_rows]]

    async def search(self, text: str, limit: int) -> list[dict[str, Any]]:
        """Rows where any text value contains `text` (case-insensitive), or, for three digits or more, a
        value's digits contain them; in the file's order."""
        table = self._table
        if table is None:
            raise ConnectorError(self._error or "CSV file not loaded")
        needle, digits = text.casefold(), _digits(text)
        found: list[dict[str, Any]] = []
        for rows in table.by_key.values():
            for row in rows:
                values = [v for v in row.values() if isinstance(v, str)]
                if any(needle in v.casefold() for v in values) or (
                        len(digits) >= 3 and any(digits in _digits(v) for v in values)):
                    found.append(dict(row))
                    if len(found) >= limit:
                        return found
        return found

    async def ping(self) -> None:
        """Fine when the file was read and its latest version could be read too."""
        if self._table is None or self._error is not None:
            raise ConnectorError(self._error or "CSV file not loaded")
