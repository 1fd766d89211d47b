"""The csv connector: phone normalisation, matching, mapping, reloading, failures, and reading off the loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connectors import csvfile
from connectors.base import ConnectorError
from connectors.csvfile import CsvConnector, to_e164
from screenpop.models import LookupQuery
from screenpop.plugins import connector_kind

PHONE = "+14155550100"
HEADER = "id,name,phone,balance\n"
ROWS = (
    "C1,Ada Lovelace,(415) 555-0100,12.50\n"
    "C2,Alan Turing,415.555.0101,-3\n"
    "C3,Grace Hopper,+1 415 555 0100,0\n"  # shares Ada's number, written differently
    "C4,Edsger Dijkstra,not a number,7\n"
    "C5,Nobody,,1\n"
)


@contextlib.asynccontextmanager
async def running(options: dict[str, Any]) -> AsyncIterator[CsvConnector]:
    conn = CsvConnector.from_config("test-csv", options)
    assert isinstance(conn, CsvConnector)
    await conn.start()
    try:
        yield conn
    finally:
        await conn.close()


def q(phone: str = PHONE, customer_id: str | None = None, suffix: str | None = None) -> LookupQuery:
    return LookupQuery(phone=phone, raw=phone, customer_id=customer_id, suffix=suffix)


@pytest.fixture
def people(tmp_path: Path) -> Path:
    """A customers CSV with phone numbers as people type them."""
    path = tmp_path / "people.csv"
    path.write_text(HEADER + ROWS, encoding="utf-8")
    return path


def put(path: Path, data: str | bytes) -> None:
    """Replace the file's content (a spreadsheet saving its export)."""
    path.write_bytes(data.encode() if isinstance(data, str) else data)


async def until(check: Callable[[], Any], within_s: float = 5.0) -> None:
    """Poll `check` (async or not) until it returns a true value; bounded by `within_s`."""
    async with asyncio.timeout(within_s):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [("(415) 555-0100", "US", PHONE), ("415.555.0100", "US", PHONE), ("+1 415 555 0100", "DE", PHONE),
     ("0014155550100", "DE", PHONE), ("14155550100", "US", PHONE), ("030 1234567", "DE", "+49301234567"),
     ("020 7946 0123", "GB", "+442079460123"), ("not a number", "US", "not a number"), (" 12 ", "US", "12")],
)
def test_numbers_are_normalised_to_e164(value: str, region: str, expected: str) -> None:
    """Spreadsheet numbers become E.164 (national ones in `region`); what is no number stays as it was."""
    assert to_e164(value, region) == expected


async def test_identity_by_phone_matches_every_spelling(people: Path) -> None:
    """Several rows with the same number, written differently, all match; the row carries the E.164 form."""
    async with running({"path": str(people), "key_column": "phone"}) as conn:
        rows = await conn.fetch(q())
        assert [(r["id"], r["phone"]) for r in rows] == [("C1", PHONE), ("C3", PHONE)]
        assert rows[0] == {"id": "C1", "name": "Ada Lovelace", "phone": PHONE, "balance": "12.50"}
        assert await conn.fetch(q("+14155550101")) == [
            {"id": "C2", "name": "Alan Turing", "phone": "+14155550101", "balance": "-3"}]
        assert await conn.fetch(q("+14155550000")) is None
        assert await conn.fetch(q("")) is None  # an empty key matches nothing, not the rows without a number


async def test_one_max_rows_and_fields(people: Path) -> None:
    """one gives the first match, max_rows caps the list, fields maps each row with JMESPath."""
    fields = {"id": "id", "balance": "to_number(balance)", "label": "join(' / ', [id, name])"}
    async with running({"path": str(people), "key_column": "phone", "fields": fields, "max_rows": 1}) as conn:
        assert await conn.fetch(q()) == [{"id": "C1", "balance": 12.5, "label": "C1 / Ada Lovelace"}]
    async with running({"path": str(people), "key_column": "phone", "one": True}) as conn:
        assert (await conn.fetch(q()))["id"] == "C1"


async def test_section_by_customer_id(people: Path) -> None:
    """key customer_id compares the column as text (trimmed), without any phone normalisation."""
    options = {"path": str(people), "key_column": "id", "key": "customer_id", "one": True,
               "fields": {"balance": "to_number(balance)"}}
    async with running(options) as conn:
        assert await conn.fetch(q(customer_id="C2")) == {"balance": -3}
        assert await conn.fetch(q(customer_id="C9")) is None
        assert await conn.fetch(q(customer_id=None)) is None


async def test_suffix_key_for_the_fallback(people: Path) -> None:
    """key suffix matches the last digits of the numbers in the file (for an identity_fallback source)."""
    async with running({"path": str(people), "key_column": "phone", "key": "suffix"}) as conn:
        assert [r["id"] for r in await conn.fetch(q(suffix="5550100"))] == ["C1", "C3"]
        assert [r["id"] for r in await conn.fetch(q(suffix="0101"))] == ["C2"]
        assert await conn.fetch(q(suffix="9999999")) is None
        assert await conn.fetch(q(suffix=None)) is None


async def test_delimiter_encoding_and_quoted_headers(tmp_path: Path) -> None:
    """A semicolon, Latin-1 export with a header holding spaces works with a quoted JMESPath key."""
    path = tmp_path / "export.csv"
    path.write_bytes("Kundennummer;Full Name;Telefon;extra\nK1;Jürgen Groß;030 1234567;x;surplus\n"
                     "K2;Short\n".encode("latin-1"))
    options = {"path": str(path), "key_column": "Kundennummer", "key": "customer_id", "delimiter": ";",
               "encoding": "latin-1", "fields": {"name": '"Full Name"', "phone": "Telefon", "extra": "extra"}}
    async with running(options) as conn:
        assert await conn.fetch(q(customer_id="K1")) == [{"name": "Jürgen Groß", "phone": "030 1234567",
                                                          "extra": "x"}]
        assert await conn.fetch(q(customer_id="K2")) == [{"name": "Short", "phone": None, "extra": None}]


async def test_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    """A UTF-8 file saved by a spreadsheet with a byte order mark still has its first column by name."""
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfphone,name\n415-555-0100,Ada\n")
    async with running({"path": str(path), "key_column": "phone"}) as conn:
        assert await conn.fetch(q()) == [{"phone": PHONE, "name": "Ada"}]


async def test_file_changes_are_picked_up(people: Path) -> None:
    """A rewritten file is read again in the background; lookups see the new rows."""
    async with running({"path": str(people), "key_column": "phone", "reload_s": 0.05}) as conn:
        assert len(await conn.fetch(q())) == 2
        put(people, HEADER + "C7,Katherine Johnson,(415) 555-0100,1\n")

        async def replaced() -> bool:
            rows = await conn.fetch(q())
            return [r["id"] for r in rows or []] == ["C7"]

        await until(replaced)
        await conn.ping()


async def test_a_bad_new_version_keeps_the_last_good_table(people: Path) -> None:
    """A reload that fails keeps serving the last good rows; ping says why, until the file is fixed."""
    async with running({"path": str(people), "key_column": "phone", "reload_s": 0.05}) as conn:
        put(people, HEADER.encode() + b"C8,\xff\xfe broken,(415) 555-0100,1\n")
        await until(lambda: conn._error is not None)
        with pytest.raises(ConnectorError, match="^CSV file is not valid utf-8-sig$"):
            await conn.ping()
        assert [r["id"] for r in await conn.fetch(q())] == ["C1", "C3"]
        put(people, HEADER + "C9,Fixed,(415) 555-0100,1\n")
        await until(lambda: conn._error is None)
        assert [r["id"] for r in await conn.fetch(q())] == ["C9"]


async def test_missing_file_then_created(tmp_path: Path) -> None:
    """A missing file makes fetch and ping fail with a short reason; once it appears it is read."""
    path = tmp_path / "later.csv"
    async with running({"path": str(path), "key_column": "phone", "reload_s": 0.05}) as conn:
        with pytest.raises(ConnectorError, match="^CSV file not found$"):
            await conn.fetch(q())
        with pytest.raises(ConnectorError, match="^CSV file not found$"):
            await conn.ping()
        put(path, "phone,id\n4155550100,C1\n")

        async def loaded() -> bool:
            with contextlib.suppress(ConnectorError):
                return await conn.fetch(q()) == [{"phone": PHONE, "id": "C1"}]
            return False

        await until(loaded)


@pytest.mark.parametrize(
    ("content", "options", "reason"),
    [(b"id,name\nC1,Ada\n", {}, "CSV file has no column 'phone'"),
     (b"phone,name\n" + b"4155550100,Ada\n" * 100, {"max_bytes": 100}, "CSV file larger than 100 bytes"),
     (b'phone,name\n"4155550100,Ada\n' + b"x" * 200_000, {}, "bad CSV: field larger than field limit"),
     (b"phone,name\n4155550100,Ada\n", {"fields": {"n": "length(to_number(phone))"}},
      "mapping failed at fields.n: In function length()")],
)
async def test_unusable_files_are_short_errors(tmp_path: Path, content: bytes, options: dict[str, Any],
                                               reason: str) -> None:
    """A file without the key column, too large, malformed, or failing the mapping gives a short reason."""
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    async with running({"path": str(path), "key_column": "phone", **options}) as conn:
        with pytest.raises(ConnectorError) as info:
            await conn.fetch(q())
    assert str(info.value).startswith(reason)


async def test_file_is_read_in_a_thread(people: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is read off the event loop's thread (a spy on the loader records where it ran)."""
    threads: list[int] = []
    real = csvfile.load_table

    def spy(*args: Any) -> Any:
        threads.append(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(csvfile, "load_table", spy)
    async with running({"path": str(people), "key_column": "phone", "reload_s": 0}) as conn:
        assert await conn.fetch(q())
    assert threads and threading.get_ident() not in threads


async def test_reload_zero_reads_once(people: Path) -> None:
    """reload_s 0 reads the file at start only: a later change is not seen."""
    async with running({"path": str(people), "key_column": "phone", "reload_s": 0}) as conn:
        put(people, HEADER)
        await asyncio.sleep(0.1)
        assert len(await conn.fetch(q())) == 2


@pytest.mark.parametrize(
    ("options", "field_name"),
    [({"delimiter": ";;"}, "delimiter"), ({"delimiter": "\n"}, "delimiter"), ({"encoding": "klingon"}, "encoding"),
     ({"region": "XX"}, "region"), ({"fields": {"x": "a..b"}}, "fields"), ({"key": "email"}, "key"),
     ({"reload_s": -1}, "reload_s"), ({"key_column": ""}, "key_column"), ({"colour": "red"}, "colour")],
)
def test_bad_options_name_the_field(options: dict[str, Any], field_name: str) -> None:
    """Bad options raise pydantic.ValidationError naming the field."""
    with pytest.raises(ValidationError) as info:
        connector_kind("csv").from_config("bad", {"path": "x.csv", "key_column": "phone", **options})
    assert field_name in [e["loc"][0] for e in info.value.errors()]
