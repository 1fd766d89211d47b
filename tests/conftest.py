"""Shared test helpers: real parts (Redis, PostgreSQL, Chromium) are used when present.

A test that needs a missing part is skipped with its reason; with SCREENPOP_REQUIRE_ALL=1 (CI) it fails
instead, so that nothing is silently skipped there.
"""

from __future__ import annotations

import os
import socket

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
