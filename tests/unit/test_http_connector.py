"""The http connector against real local aiohttp servers, some of which misbehave on purpose."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from connectors.base import ConnectorError
from connectors.http import HttpConnector
from connectors.mapping import Mapping
from screenpop.models import LookupQuery
from tests.conftest import free_port, need

PHONE = "+14155550100"
BIG = 50 * 1024 * 1024
CHUNK = b"x" * 65536
SHAPED = {
    "data": {"customers": [{"id": 1, "name": "Ada", "account": {"balance": 3}, "phones": ["+1415", "+1416"]},
                           {"id": 2, "name": "Bob"}]},
    "account": {"balance": 9.5},
    "currency": "EUR",
}
BODIES = {"null": "null", "empty": "[]", "invalid": "{not json", "truncated": "[1,", "scalar": "42"}


@dataclass
class Server:
    """A running test server: its base URL and what its handlers observed."""

    url: str = ""
    sent: int = 0
    stream_completed: bool = False
    stream_done: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    peers: set[Any] = field(default_factory=set)


def make_app(state: Server) -> web.Application:
    async def status(request: web.Request) -> web.Response:
        return web.json_response({"error": "nope"}, status=int(request.match_info["code"]))

    async def body(request: web.Request) -> web.Response:
        return web.Response(text=BODIES[request.match_info["name"]], content_type="application/json")

    async def echo(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        return web.json_response({"method": request.method, "raw_path": request.raw_path, "body": body,
                                  "query": dict(request.query), "headers": dict(request.headers)})

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        if request.match_info["how"] == "declared":
            resp.content_length = BIG
        else:
            resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
            await resp.write(b'["')
            while state.sent < BIG:
                await resp.write(CHUNK)
                state.sent += len(CHUNK)
            state.stream_completed = True
            return resp
        finally:
            state.stream_done.set()

    async def hang(request: web.Request) -> web.Response:
        await state.release.wait()
        return web.json_response({"late": True})

    async def peer(request: web.Request) -> web.Response:
        state.peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        await asyncio.sleep(0)
        return web.json_response({"ok": True})

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"a": 1})

    async def shaped(request: web.Request) -> web.Response:
        return web.json_response(SHAPED)

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/echo")

    app = web.Application()
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/body/{name}", body)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/stream/{how}", stream)
    app.router.add_get("/hang", hang)
    app.router.add_get("/peer", peer)
    app.router.add_get("/ok", ok)
    app.router.add_get("/shaped", shaped)
    app.router.add_get("/moved", moved)
    return app


@contextlib.asynccontextmanager
async def serve(state: Server) -> AsyncIterator[web.AppRunner]:
    runner = web.AppRunner(make_app(state), shutdown_timeout=5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield runner
    finally:
        state.release.set()  # let a hanging handler finish before the server stops
        await runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """A misbehaving-on-demand server on 127.0.0.1, stopped afterwards."""
    state = Server()
    async with serve(state):
        yield state


@contextlib.asynccontextmanager
async def running(options: dict[str, Any]) -> AsyncIterator[HttpConnector]:
    conn = HttpConnector.from_config("test-http", options)
    assert isinstance(conn, HttpConnector)
    await conn.start()
    try:
        yield conn
    finally:
        await conn.close()


def q(raw: str = PHONE, customer_id: str | None = None) -> LookupQuery:
    return LookupQuery(phone=PHONE, raw=raw, customer_id=customer_id)


async def fetch(url: str, query: LookupQuery | None = None, **options: Any) -> Any:
    async with running({"url": url, **options}) as conn:
        return await conn.fetch(query or q())


async def test_http_500_is_an_error(server: Server) -> None:
    """A 500 answer raises ConnectorError('HTTP 500')."""
    with pytest.raises(ConnectorError, match=r"^HTTP 500$"):
        await fetch(server.url + "/status/500")


async def test_http_404_is_empty_or_an_error(server: Server) -> None:
    """A 404 gives None by default, and ConnectorError('HTTP 404') with not_found='error'."""
    assert await fetch(server.url + "/status/404") is None
    with pytest.raises(ConnectorError, match=r"^HTTP 404$"):
        await fetch(server.url + "/status/404", not_found="error")


@pytest.mark.parametrize(
    ("name", "reason"),
    [("null", None), ("empty", None), ("invalid", "invalid JSON"), ("truncated", "invalid JSON"),
     ("scalar", "expected a JSON object or list")],
)
async def test_body_outcomes(server: Server, name: str, reason: str | None) -> None:
    """null and [] give None; invalid JSON, or JSON neither object nor list, raise ConnectorError."""
    if reason is None:
        assert await fetch(f"{server.url}/body/{name}") is None
        return
    with pytest.raises(ConnectorError, match=f"^{reason}"):
        await fetch(f"{server.url}/body/{name}")


@pytest.mark.parametrize("how", ["chunked", "declared"])
async def test_huge_answer_is_cut_at_max_bytes(server: Server, how: str) -> None:
    """A 50 MB answer (chunked, or with its length declared) stops at max_bytes; the rest is never read."""
    with pytest.raises(ConnectorError, match=r"^response larger than 100000 bytes$"):
        await fetch(f"{server.url}/stream/{how}", max_bytes=100_000)
    await asyncio.wait_for(server.stream_done.wait(), 30)
    assert not server.stream_completed
    assert server.sent < BIG // 2  # what the socket buffers took, nothing like the whole body


async def test_hanging_server_is_cancelled_cleanly(server: Server) -> None:
    """A hanging request is cancelled by the caller's wait_for, and the connector still works afterwards."""
    async with running({"url": server.url + "/{raw}"}) as conn:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(conn.fetch(q("hang")), 0.2)
        assert await conn.fetch(q("ok")) == {"a": 1}


async def test_values_are_percent_encoded(server: Server) -> None:
    """'+' and every other reserved character of a value is percent-encoded in the URL."""
    echo = await fetch(server.url + "/echo?phone={phone}&raw={raw}", q("a/b&c=d ü"))
    assert "phone=%2B14155550100&" in echo["raw_path"]
    assert "raw=a%2Fb%26c%3Dd%20%C3%BC" in echo["raw_path"]
    assert echo["query"] == {"phone": PHONE, "raw": "a/b&c=d ü"}


async def test_header_placeholders(server: Server) -> None:
    """Header values get the raw values, with control characters removed (no header injection)."""
    headers = {"X-Phone": "{phone}", "X-Raw": "{raw}", "Authorization": "Bearer t0k"}
    echo = await fetch(server.url + "/echo", q("a\r\nX-Injected: 1"), headers=headers)
    assert echo["headers"]["X-Phone"] == PHONE
    assert echo["headers"]["X-Raw"] == "aX-Injected: 1"
    assert echo["headers"]["Authorization"] == "Bearer t0k"
    assert "X-Injected" not in echo["headers"]


async def test_post_sends_the_values_as_json(server: Server) -> None:
    """method POST sends the template values as a JSON body."""
    echo = await fetch(server.url + "/echo", q("raw", "C7"), method="POST")
    assert echo["method"] == "POST"
    assert echo["body"] == {"phone": PHONE, "raw": "raw", "called": "", "customer_id": "C7", "suffix": ""}


async def test_items_and_fields_mapping(server: Server) -> None:
    """items picks the list, fields maps each item (or the object) with JMESPath; nothing found gives None."""
    url = server.url + "/shaped"
    fields = {"id": "id", "name": "name", "balance": "account.balance", "phone": "phones[0]"}
    assert await fetch(url, items="data.customers", fields=fields) == [
        {"id": 1, "name": "Ada", "balance": 3, "phone": "+1415"},
        {"id": 2, "name": "Bob", "balance": None, "phone": None},
    ]
    assert await fetch(url, items="data.customers") == SHAPED["data"]["customers"]
    mapped = await fetch(url, fields={"balance": "account.balance", "currency": "currency", "x": "no.where"})
    assert mapped == {"balance": 9.5, "currency": "EUR", "x": None}
    assert await fetch(url, fields={"first": "data.customers[0].name"}) == {"first": "Ada"}
    assert await fetch(url, items="nothing.here") is None
    with pytest.raises(ConnectorError, match="expected a list at account, got dict"):
        await fetch(url, items="account")


async def test_jmespath_expressions(server: Server) -> None:
    """Filters, projections and functions of JMESPath work in items and fields."""
    url = server.url + "/shaped"
    assert await fetch(url, items="data.customers[?account.balance > `1`]", fields={"id": "id"}) == [{"id": 1}]
    assert await fetch(url, fields={"names": "data.customers[*].name", "n": "length(data.customers)"}) == {
        "names": ["Ada", "Bob"], "n": 2}
    with pytest.raises(ConnectorError, match="^mapping failed at fields.n: In function length"):
        await fetch(url, fields={"n": "length(account.balance)"})


def test_mapping_compiles_once_and_refuses_bad_expressions() -> None:
    """Mapping shapes plain data; a bad expression is a ValueError with a hint for dotted list indexes."""
    mapping = Mapping("rows", {"id": "id", "tag": "tags[-1]"})
    assert mapping.apply({"rows": [{"id": 1, "tags": ["a", "b"]}, {"id": 2}]}) == [
        {"id": 1, "tag": "b"}, {"id": 2, "tag": None}]
    assert mapping.apply({"rows": []}) is None
    with pytest.raises(ValueError, match=r"write a list index as name\[0\]"):
        Mapping(None, {"x": "phones.0"})
    with pytest.raises(ValueError, match="empty"):
        Mapping("", None)


@pytest.mark.parametrize(
    ("options", "field_name"),
    [
        ({"url": "http://h/c?phone={phone}&x={nope}"}, "url"), ({"url": "ftp://h/{phone}"}, "url"),
        ({"url": "http://{phone}.example/"}, "url"), ({"url": "http://h/{phone!r}"}, "url"),
        ({"url": "http://h/{phone"}, "url"), ({"url": "http://h/", "colour": "red"}, "colour"),
        ({"url": "http://h/", "method": "PUT"}, "method"), ({"url": "http://h/", "max_bytes": 0}, "max_bytes"),
        ({"url": "http://h/", "headers": {"X-A": "{who}"}}, "headers"),
        ({"url": "http://h/", "items": "a..b"}, "items"), ({"url": "http://h/", "fields": {"x": ""}}, "fields"),
        ({"url": "http://h/", "fields": {"x": "phones.0"}}, "fields"), ({"url": "http://h/", "items": "a["}, "items"),
        ({"url": "http://h/", "ping_url": "http://h/{phone}"}, "ping_url"),
        ({"url": "http://h/", "auth": {"type": "digest", "token": "t"}}, "auth"),
        ({"url": "http://h/", "auth": {"type": "bearer"}}, "auth"),
        ({"url": "http://h/", "auth": {"type": "api_key", "value": "k"}}, "auth"),
        ({"url": "http://h/", "auth": {"type": "api_key", "header": "X-K", "query": "k", "value": "k"}}, "auth"),
        ({"url": "http://h/", "auth": {"type": "api_key", "header": "X K", "value": "k"}}, "auth"),
        ({"url": "http://h/", "auth": {"type": "basic", "username": "a:b", "password": "p"}}, "auth"),
        ({"url": "http://h/", "auth": {"type": "bearer", "token": "t\r\nX: 1"}}, "auth"),
        ({"url": "http://h/", "headers": {"authorization": "x"}, "auth": {"type": "bearer", "token": "t"}}, "auth"),
        ({"url": "http://h/", "ca_file": "/no/such/ca.pem"}, "ca_file"),
        ({"url": "http://h/", "verify_tls": False, "ca_file": __file__}, "ca_file"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, Any], field_name: str) -> None:
    """Bad options raise pydantic.ValidationError naming the field."""
    with pytest.raises(ValidationError) as info:
        HttpConnector.from_config("bad", options)
    assert field_name in [e["loc"][0] for e in info.value.errors()]


def test_option_errors_do_not_echo_secrets() -> None:
    """A refused URL is not repeated in the error, so a password in it does not leak."""
    with pytest.raises(ValidationError) as info:
        HttpConnector.from_config("bad", {"url": "http://user:s3cret@h/{nope}"})
    assert "s3cret" not in str(info.value)
    assert "unknown placeholder {nope}" in str(info.value)


async def test_connection_refused_names_only_host_and_port() -> None:
    """A closed port gives 'cannot connect to host:port', without path, query or credentials."""
    port = free_port()
    with pytest.raises(ConnectorError) as info:
        await fetch(f"http://user:s3cret@127.0.0.1:{port}/c?token=abc&phone={{phone}}")
    assert str(info.value) == f"cannot connect to 127.0.0.1:{port}"


async def test_stopped_server_after_success() -> None:
    """A connector whose server goes away after a first answer raises ConnectorError, for fetch and ping."""
    state = Server()
    async with serve(state) as runner, running({"url": state.url + "/ok"}) as conn:
        assert await conn.fetch(q()) == {"a": 1}
        await runner.cleanup()
        with pytest.raises(ConnectorError, match="^cannot connect to 127.0.0.1:"):
            await conn.fetch(q())
        with pytest.raises(ConnectorError, match="^cannot connect to 127.0.0.1:"):
            await conn.ping()


async def test_ping(server: Server) -> None:
    """ping uses ping_url when set (a status >= 400 fails), else a TCP connection to the url's host."""
    async with running({"url": server.url + "/ok"}) as conn:
        await conn.ping()
    async with running({"url": server.url + "/ok", "ping_url": server.url + "/status/204"}) as conn:
        await conn.ping()
    async with running({"url": server.url + "/ok", "ping_url": server.url + "/status/503"}) as conn:
        with pytest.raises(ConnectorError, match=r"^HTTP 503$"):
            await conn.ping()


async def test_keep_alive_and_connection_limit(server: Server) -> None:
    """Sequential fetches reuse one connection; concurrent ones never open more than max_connections."""
    async with running({"url": server.url + "/peer"}) as conn:
        for _ in range(5):
            await conn.fetch(q())
    assert len(server.peers) == 1
    server.peers.clear()
    async with running({"url": server.url + "/peer", "max_connections": 2}) as conn:
        await asyncio.gather(*(conn.fetch(q()) for _ in range(20)))
    assert 1 <= len(server.peers) <= 2


async def test_not_started_and_double_close() -> None:
    """fetch before start raises ConnectorError; close twice does no harm."""
    conn = HttpConnector.from_config("idle", {"url": "http://127.0.0.1:9/x"})
    with pytest.raises(ConnectorError, match="not started"):
        await conn.fetch(q())
    await conn.start()
    await conn.close()
    await conn.close()



SECRET = "s3cret-K3y"


@pytest.mark.parametrize(
    ("auth", "header", "expected"),
    [
        ({"type": "bearer", "token": SECRET}, "Authorization", f"Bearer {SECRET}"),
        ({"type": "basic", "username": "ada", "password": SECRET}, "Authorization",
         "Basic " + base64.b64encode(f"ada:{SECRET}".encode()).decode()),
        ({"type": "api_key", "header": "X-Api-Key", "value": SECRET}, "X-Api-Key", SECRET),
    ],
)
async def test_auth_in_a_header(server: Server, auth: dict[str, Any], header: str, expected: str) -> None:
    """bearer, basic and api_key-in-a-header auth send the right header, on fetch and on ping."""
    echo = await fetch(server.url + "/echo", auth=auth)
    assert echo["headers"][header] == expected
    assert SECRET not in echo["raw_path"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/echo", "/echo?k=s3cret-K3y%2B%26"), ("/echo?phone={phone}", "/echo?phone=%2B14155550100&k=s3cret-K3y%2B%26"),
     ("/echo?#frag", "/echo?k=s3cret-K3y%2B%26")],
)
async def test_auth_api_key_in_the_query(server: Server, path: str, expected: str) -> None:
    """api_key in the query is appended, percent-encoded, after the template's own query (before a fragment)."""
    auth = {"type": "api_key", "query": "k", "value": SECRET + "+&"}
    echo = await fetch(server.url + path, auth=auth)
    assert echo["raw_path"] == expected
    assert echo["query"]["k"] == SECRET + "+&"
    assert "Authorization" not in echo["headers"]


async def test_ping_carries_the_auth(server: Server) -> None:
    """ping_url is called with the same auth as the lookups (a health endpoint may need it)."""
    seen: list[str] = []

    async def guarded(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.Response(status=204 if request.headers.get("Authorization") == f"Bearer {SECRET}" else 401)

    app = web.Application()
    app.router.add_get("/health", guarded)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        options = {"url": base + "/x", "ping_url": base + "/health", "auth": {"type": "bearer", "token": SECRET}}
        async with running(options) as conn:
            await conn.ping()
    finally:
        await runner.cleanup()
    assert seen == [f"Bearer {SECRET}"]


async def test_redirects_are_not_followed_with_auth(server: Server) -> None:
    """Without auth a redirect is followed; with auth it is not (the secret stays with the configured host)."""
    assert (await fetch(server.url + "/moved"))["raw_path"] == "/echo"
    auth = {"type": "api_key", "header": "X-Api-Key", "value": SECRET}
    with pytest.raises(ConnectorError, match=r"^HTTP 302 \(redirects are not followed when auth is set\)$"):
        await fetch(server.url + "/moved", auth=auth)
    async with running({"url": server.url + "/ok", "ping_url": server.url + "/moved", "auth": auth}) as conn:
        with pytest.raises(ConnectorError, match=r"^HTTP 302$"):
            await conn.ping()


def test_secrets_stay_out_of_repr_and_errors() -> None:
    """auth secrets are SecretStr: not in the options' repr, and not echoed by a validation error."""
    for auth in ({"type": "bearer", "token": SECRET}, {"type": "basic", "username": "u", "password": SECRET},
                 {"type": "api_key", "query": "k", "value": SECRET}):
        conn = HttpConnector.from_config("ok", {"url": "http://h/", "auth": auth})
        assert SECRET not in repr(conn.options) and SECRET not in str(conn.options)
    for bad in ({"type": "bearer", "token": SECRET, "extra": SECRET},
                {"type": "api_key", "header": "X-K", "query": "k", "value": SECRET},
                {"type": "basic", "username": "u:" + SECRET, "password": SECRET},
                {"type": "nope", "token": SECRET}):
        with pytest.raises(ValidationError) as info:
            HttpConnector.from_config("bad", {"url": "http://h/", "auth": bad})
        assert SECRET not in str(info.value)
        assert SECRET not in repr(info.value.errors(include_input=False))


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and its key, made by openssl."""
    openssl = shutil.which("openssl")
    need(openssl is not None, "the openssl command is not installed")
    assert openssl is not None
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    return cert, key


@pytest.fixture
async def tls_url(tls_files: tuple[Path, Path]) -> AsyncIterator[str]:
    """An HTTPS server on 127.0.0.1 with the self-signed certificate; stopped afterwards."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    runner = web.AppRunner(make_app(Server()), shutdown_timeout=5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_tls_is_verified_and_ca_file_trusts_a_private_ca(tls_url: str, tls_files: tuple[Path, Path],
                                                               tmp_path: Path) -> None:
    """An unknown certificate is refused by default; ca_file trusts it; verify_tls false skips the check."""
    port = tls_url.rsplit(":", 1)[1]
    with pytest.raises(ConnectorError, match=f"^TLS certificate of 127.0.0.1:{port} is not trusted$"):
        await fetch(tls_url + "/ok")
    assert await fetch(tls_url + "/ok", ca_file=str(tls_files[0])) == {"a": 1}
    assert await fetch(tls_url + "/ok", verify_tls=False) == {"a": 1}
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    conn = HttpConnector.from_config("bad-ca", {"url": tls_url + "/ok", "ca_file": str(garbage)})
    with pytest.raises(ConnectorError, match="^ca_file is not a readable PEM bundle"):
        await conn.start()
    await conn.close()
