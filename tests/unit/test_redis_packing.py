"""Redis commands packed by hiredis: the same bytes as redis-py's Python packer, on every kind of client."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection, SSLConnection

from screenpop.redisurl import parse_redis_url
from screenpop.redisurl.packing import _PackInC

COMMANDS = [
    ("EVALSHA", "a" * 40, 3, "p:call:c1", "p:call:c1:v", "p:due", "7", '{"card": "é ü \\n"}', 14400,
     1764500000.123456, "", "c1", 0, 1, "p.agents", 1, 1, 1, b"\x00\xffbinary", -5, 0.1, 1e-7, 12345678901234567890),
    ("SCRIPT LOAD", "return 1"),
    (b"CLIENT SETNAME", b"screenpop"),
    ("PUBLISH", "chan", "x" * 100_000),  # larger than redis-py's buffer cutoff: it sends it in pieces
    ("PING",),
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: str(a[0]))
def test_hiredis_writes_the_bytes_redis_py_writes(args: tuple) -> None:
    """For each argument type redis-py accepts, and a command name of two words, the packed bytes are equal."""
    packed = type("P", (_PackInC, Connection), {})()
    assert b"".join(packed.pack_command(*args)) == b"".join(Connection().pack_command(*args))


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://127.0.0.1:6380/0",
                                 "redis+sentinel://127.0.0.1:26379/main"])
def test_every_client_packs_in_c_and_keeps_its_connection_kind(url: str) -> None:
    """Plain, TLS and Sentinel clients get a connection class that packs in C and is still their own kind."""
    client = parse_redis_url(url).client()
    cls = client.connection_pool.connection_class
    assert issubclass(cls, _PackInC)
    assert issubclass(cls, SSLConnection) == url.startswith("rediss")
    assert type(parse_redis_url(url).client().connection_pool).__name__ == type(client.connection_pool).__name__
    assert parse_redis_url(url).client().connection_pool.connection_class is cls  # one subclass per kind
