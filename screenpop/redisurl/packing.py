"""Redis commands packed by hiredis (C) instead of redis-py's Python packer, on asyncio connections.

redis-py's synchronous connections pack each command with `hiredis.pack_command` when hiredis is installed;
its asyncio connections always use the Python packer (`AbstractConnection.pack_command`: an encoder call and
several byte joins per argument). The call store's compare-and-set sends some twenty arguments several times
per call, so that packer is a large share of a cluster instance's Redis work (bench/RESULTS.md, ADR 0007).

`pack_in_c(client)` gives the client's pool a subclass of its own connection class (plain, TLS, or Sentinel
managed alike) whose `pack_command` is hiredis's. The rule it relies on: hiredis writes the same bytes as the
Python packer for the argument types redis-py accepts (str, bytes, int, float), and the command name is split
at spaces first as redis-py splits it ("SCRIPT LOAD" is two words); tests/unit/test_redis_packing.py checks
both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

import hiredis  # redis[hiredis] is a dependency

_CLASSES: dict[type, type] = {}


class _PackInC:
    """Mixed in before a redis-py asyncio connection class."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        return [hiredis.pack_command(args)]


def pack_in_c(client: Redis) -> Redis:
    """`client`, its commands packed by hiredis from now on (before it opens any connection)."""
    pool = client.connection_pool
    cls = pool.connection_class
    if not issubclass(cls, _PackInC):
        if cls not in _CLASSES:
            _CLASSES[cls] = type(f"CPacked{cls.__name__}", (_PackInC, cls), {})
        pool.connection_class = _CLASSES[cls]
    return client
