"""Fixtures of the contract suites: the real MySQL / MariaDB server, next to tests.conftest's others."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from tests.conftest import need, port_open

MYSQL_URL = os.environ.get("MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


def mysql_server_url() -> str:
    """The URL of a real MySQL or MariaDB server (skips the test, or fails it in CI, when none answers)."""
    u = urlsplit(MYSQL_URL)
    need(port_open(u.hostname or "127.0.0.1", u.port or 3306), f"no MySQL/MariaDB server at {u.hostname}:{u.port}")
    return MYSQL_URL


@pytest.fixture
def mysql_url() -> str:
    """The URL of a real MySQL or MariaDB server (skips or fails when none answers)."""
    return mysql_server_url()
