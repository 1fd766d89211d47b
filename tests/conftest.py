"""Shared test helpers: real parts (Redis, PostgreSQL, Chromium) are used when present.

A test that needs a missing part is skipped with its reason; with SCREENPOP_REQUIRE_ALL=1 (CI) it fails
instead, so that nothing is silently skipped there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

REQUIRE_ALL = os.environ.get("SCREENPOP_REQUIRE_ALL") == "1"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
CHROMIUM = os.environ.get("SCREENPOP_CHROMIUM", "/usr/bin/chromium")


def need(ok: bool, reason: str) -> None:
    """Skip the test when `ok` is false, or fail it when SCREENPOP_REQUIRE_ALL=1."""
    if ok:
        return
    if REQUIRE_ALL:
        pytest.fail(f"required part missing (SCREENPOP_REQUIRE_ALL=1): {reason}")
    pytest.skip(reason)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url() -> str:
    """The URL of a real Redis server (skips or fails when none answers)."""
    from urllib.parse import urlsplit

    u = urlsplit(REDIS_URL)
    need(port_open(u.hostname or "127.0.0.1", u.port or 6379), f"no Redis server at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture
def database_url() -> str:
    """The URL of a real PostgreSQL server (skips or fails when none answers)."""
    from urllib.parse import urlsplit

    u = urlsplit(DATABASE_URL)
    need(port_open(u.hostname or "127.0.0.1", u.port or 5432), f"no PostgreSQL server at {DATABASE_URL}")
    return DATABASE_URL


@contextlib.contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve an aiohttp `web.Application` on a free loopback port from an event loop of its own, in a thread
    (for tests whose own code is synchronous: TestClient, Playwright); its base URL until the block ends."""
    from aiohttp import web

    loop = asyncio.new_event_loop()
    port = free_port()
    runner = web.AppRunner(app)

    async def up() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(up(), loop).result(10)
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()

