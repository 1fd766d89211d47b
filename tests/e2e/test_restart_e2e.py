"""Graceful shutdown and restart of `screenpop serve` as a real process: SIGTERM drains (readiness 503,
webhooks 503, agent sockets closed with 1012), and a new process starts at once on the same port, connections
of the old one still in TIME_WAIT."""

from __future__ import annotations

import asyncio
import errno
import json
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from screenpop.auth import hash_password
from screenpop.cli import _port_free
from tests.conftest import free_port
from tests.e2e.conftest import ServerProcess, login, start_process

pytestmark = pytest.mark.e2e

ENV = {"SCREENPOP_WEBHOOK_SECRET": "demo-secret", "SCREENPOP_SESSION_SECRET": "restart-e2e-session-secret",
       "SCREENPOP_DRAIN_S": "1.5"}


def test_the_port_probe_ignores_time_wait() -> None:
    """A port whose server closed its connections first (TIME_WAIT on the server side) is free for the CLI."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    for _ in range(3):
        client = socket.create_connection(("127.0.0.1", port), timeout=2)
        conn, _ = listener.accept()
        conn.close()  # the server closes first: its side goes to TIME_WAIT
        client.close()
    listener.close()
    plain = socket.socket()
    try:
        with pytest.raises(OSError) as err:
            plain.bind(("127.0.0.1", port))  # without SO_REUSEADDR, TIME_WAIT holds the port
        assert err.value.errno == errno.EADDRINUSE
    finally:
        plain.close()
    assert _port_free("127.0.0.1", port)
    with socket.create_server(("127.0.0.1", port)):  # a listener is still refused
        assert not _port_free("127.0.0.1", port)


def wait_status(url: str, status: int, within_s: float = 10) -> None:
    """Poll `url` until it answers `status` (bounded)."""
    deadline = time.monotonic() + within_s
    while httpx.get(url, timeout=2).status_code != status:
        assert time.monotonic() < deadline, f"{url} never answered {status}"
        time.sleep(0.05)


def serve(tmp: Path, port: int, name: str) -> ServerProcess:
    """`screenpop serve` on `port` with one agent, alice; returns once it answers."""
    config = tmp / "agents.json"
    config.write_text(json.dumps({"agents": [{"id": "alice", "name": "Alice", "password_hash": hash_password("pw"),
                                              "extensions": ["1001"]}]}))
    server = start_process(["serve", "--port", str(port)], tmp, port=port, name=name,
                           env={**ENV, "SCREENPOP_CONFIG": str(config)})
    server.wait_ready()
    return server


async def test_sigterm_drains_then_a_restart_on_the_same_port_starts_at_once(tmp_path: Path) -> None:
    """SIGTERM: /readyz 503 and webhook 503 while the port is still open, the agent's socket closed with 1012,
    exit; the next `screenpop serve` on that port (connections in TIME_WAIT) answers at once."""
    port = free_port()
    first = await asyncio.to_thread(serve, tmp_path, port, "first")
    try:
        for _ in range(5):  # a few requests: connections the server will close
            assert (await asyncio.to_thread(first.event, "c-before", "offered")).status_code == 202
        bearer = await asyncio.to_thread(login, first.url, "alice", "pw")
        ws = await connect(first.url.replace("http", "ws") + "/ws/agent",
                           additional_headers={"Authorization": f"Bearer {bearer}"})
        async with asyncio.timeout(10):
            assert json.loads(await ws.recv())["type"] == "snapshot"
        first.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            await asyncio.to_thread(wait_status, f"{first.url}/readyz", 503)
        refused = await asyncio.to_thread(first.event, "c-during", "offered")
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(15):
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        code = await asyncio.to_thread(first.proc.wait, 20)
        assert code in (0, -signal.SIGTERM), first.log()[-3000:]
        assert "draining" in first.log()
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
            first.proc.wait(timeout=5)
    second = await asyncio.to_thread(serve, tmp_path, port, "second")  # fails if the CLI refuses the port
    try:
        assert (await asyncio.to_thread(second.event, "c-after", "offered")).status_code == 202
    finally:
        await asyncio.to_thread(second.stop)

