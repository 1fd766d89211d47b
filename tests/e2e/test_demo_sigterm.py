"""`screenpop demo` stopped with SIGTERM removes its temporary folder (state database, password hashes)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.e2e.conftest import start_process

pytestmark = pytest.mark.e2e


def test_sigterm_removes_the_demo_folder(tmp_path: Path) -> None:
    """After SIGTERM the demo exits and no screenpop-demo-* folder is left in TMPDIR."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    port = free_port()
    server = start_process(["demo", "--port", str(port)], tmp_path, env={"TMPDIR": str(tmp)}, port=port, name="demo")
    try:
        server.wait_ready()
        assert list(tmp.glob("screenpop-demo-*")), "the demo made no temporary folder"
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=30)
    finally:
        server.stop()
    assert list(tmp.glob("screenpop-demo-*")) == [], server.log()[-2000:]
