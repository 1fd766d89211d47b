"""End-to-end fixtures: screenpop as a real process on a real port, driven over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from telephony.generic import sign
from tests.conftest import CHROMIUM, free_port, need

DEMO_SECRET = "demo-secret"
# Debian's Chromium, headless, without the background requests a closed network refuses
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]


def sign_in_page(page: Any, base_url: str, username: str, password: str = "demo", lands: str = "/",
                 timeout_ms: int = 10_000) -> Any:
    """Sign in through the login page (its fields by id: the page may be in any language) and wait for the
    page the role lands on; returns `page`."""
    page.goto(f"{base_url}/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.locator("#login-submit").click()
    page.wait_for_url(f"{base_url}{lands}", timeout=timeout_ms)
    return page


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, for the whole module (skipped, or failed in CI, without it)."""
    need(os.path.exists(CHROMIUM), f"Debian chromium not installed ({CHROMIUM})")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "the playwright package is not installed")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class ServerProcess:
    """A screenpop process started by a test; stopped (and its output kept) at the end."""

    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    secret: str = DEMO_SECRET
    calls: list[str] = field(default_factory=list)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 30) -> None:
        """Poll /healthz until it answers; fail with the process output if it dies or never answers."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"screenpop exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        pytest.fail(f"screenpop did not answer within {timeout_s} s:\n{self.log()[-4000:]}")

    def event(self, call_id: str, event: str, number: str = "+14155550100", agents: list[str] | None = None,
              secret: str | None = None) -> httpx.Response:
        """POST one signed generic-webhook event."""
        body: dict[str, object] = {"call_id": call_id, "event": event, "caller": number}
        if agents:
            body["agents"] = agents
        raw = json.dumps(body).encode()
        return httpx.post(f"{self.url}/telephony/webhook", content=raw, timeout=10,
                          headers={"X-Screenpop-Signature": sign(raw, secret or self.secret),
                                   "Content-Type": "application/json"})

    def call(self, number: str, agent: str, event: str = "ringing", call_id: str | None = None) -> str:
        """Offered, then `event` at `agent`; returns the call id."""
        call_id = call_id or f"t-{uuid.uuid4().hex[:10]}"
        for kind in ("offered", event) if event != "offered" else ("offered",):
            r = self.event(call_id, kind, number, [agent] if kind != "offered" else None)
            assert r.status_code == 202, r.text
        self.calls.append(call_id)
        return call_id

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_process(args: list[str], tmp: Path, env: dict[str, str] | None = None, port: int | None = None,
                  name: str = "screenpop") -> ServerProcess:
    """Run `python -m screenpop.cli ARGS` with output in a log file; the caller waits and stops it."""
    port = port or free_port()
    log_path = tmp / f"{name}-{port}.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "screenpop.cli", *args], stdout=out,
                                stderr=subprocess.STDOUT, env=full_env, cwd=tmp)
    return ServerProcess(url=f"http://127.0.0.1:{port}", proc=proc, log_path=log_path)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`screenpop demo` as a real process (with its sample backends as real servers) on a free port."""
    tmp = tmp_path_factory.mktemp("demo")
    port = free_port()
    server = start_process(["demo", "--port", str(port)], tmp, port=port, name="demo")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def login(url: str, user: str, password: str = "demo") -> str:
    """Log in over HTTP; the bearer token."""
    r = httpx.post(f"{url}/api/login", json={"username": user, "password": password}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["token"]
