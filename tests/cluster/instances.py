"""`screenpop serve` processes of one cluster, and what they share: the config file and the stub back office.

Each instance is `python -m screenpop.cli serve --port P` with the same SCREENPOP_* environment (one session
secret, one webhook secret, one bus and cache URL, one config file). The back office is bench/stubs.py (an
identity source and three sections, latency set at run time through `/_latency`).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import httpx

from screenpop.auth import hash_password
from tests.cluster.procs import Child, tcp_open
from tests.conftest import free_port

AGENTS = {"alice": "1001", "bob": "1002", "carol": "1003"}  # login -> extension
PASSWORD = "cluster-pw"
SECTIONS = ("balance", "orders", "credit")


class Backend:
    """The stub back office (python -m bench.stubs) on a free port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.child = Child("stubs", [sys.executable, "-m", "bench.stubs", "--port", str(self.port)], workdir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15) -> None:
        self.child.start()
        self.child.wait_until(lambda: tcp_open(self.port), "listening", timeout_s)

    def set_latency(self, **ms: float) -> None:
        """Delay the answers of `identity` and each section by this many milliseconds."""
        r = httpx.get(f"{self.url}/_latency", params={k: str(v) for k, v in ms.items()}, timeout=5)
        r.raise_for_status()

    def close(self) -> None:
        self.child.stop(timeout_s=5)


def write_config(path: Path, backend_url: str, deadline_ms: int = 3000) -> None:
    """The config every instance reads: alice/bob/carol on 1001/1002/1003, an identity and three sections."""
    one_hash = hash_password(PASSWORD)
    config = {
        "agents": [{"id": login, "name": login.title(), "password_hash": one_hash, "extensions": [ext]}
                   for login, ext in AGENTS.items()],
        "connectors": [
            {"name": "customers", "kind": "http", "role": "identity", "timeout_ms": 2000,
             "options": {"url": f"{backend_url}/identity?phone={{phone}}"}},
            *({"name": s, "kind": "http", "role": "section", "title": s.title(), "timeout_ms": 2000,
               "options": {"url": f"{backend_url}/{s}/{{customer_id}}"}} for s in SECTIONS),
        ],
        "lookup": {"deadline_ms": deadline_ms},
    }
    path.write_text(json.dumps(config, indent=1))  # JSON is YAML


class Instance:
    """One `screenpop serve` on its own port; start, kill, terminate and restart it on the same port."""

    def __init__(self, index: int, workdir: Path, env: dict[str, str]) -> None:
        self.index = index
        self.port = free_port()
        self.child = Child(f"screenpop-{index}", [sys.executable, "-m", "screenpop.cli", "serve", "--port",
                                                  str(self.port)], workdir, env={"PYTHONUNBUFFERED": "1", **env},
                           cwd=workdir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/agent"

    @property
    def alive(self) -> bool:
        return self.child.alive

    def healthz(self) -> dict[str, object]:
        """GET /healthz on this instance (raises when it does not answer 200)."""
        r = httpx.get(f"{self.url}/healthz", timeout=2)
        r.raise_for_status()
        return dict(r.json())

    def events(self) -> int:
        """The telephony events this instance took, as its /healthz says."""
        events = self.healthz()["events"]
        assert isinstance(events, int), f"/healthz events: {events!r}"
        return events

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self, timeout_s: float = 30) -> float:
        """Start on this instance's port; the seconds until /healthz answers. ChildError (with the log) if it
        exits first, e.g. when the CLI refuses the port."""
        started = time.monotonic()
        self.child.start()
        self.child.wait_until(self._answers, "answering /healthz", timeout_s, every_s=0.05)
        return time.monotonic() - started

    def wait_started(self, timeout_s: float = 30) -> None:
        """Wait for a start already begun (several instances start in parallel)."""
        self.child.wait_until(self._answers, "answering /healthz", timeout_s, every_s=0.05)

    def kill(self) -> int:
        """SIGKILL: the instance vanishes mid-work, as in a crash or an OOM kill. The exit code."""
        return self.child.kill()

    def terminate(self, timeout_s: float = 15) -> tuple[int | None, float]:
        """SIGTERM, as an orchestrator stops it; (exit code, seconds to exit). Killed after timeout_s
        (exit code -9 then)."""
        started = time.monotonic()
        code = self.child.stop(signal.SIGTERM, timeout_s=timeout_s)
        return code, time.monotonic() - started

    def restart(self, down_s: float = 0.0, kill: bool = False, timeout_s: float = 30) -> float:
        """Stop (SIGTERM, or SIGKILL with `kill`), wait down_s, start again on the same port; the seconds
        from the new start until /healthz answers. ChildError if the new process exits (e.g. port refused)."""
        if self.alive:
            self.kill() if kill else self.terminate()
        time.sleep(down_s)
        return self.start(timeout_s)

    def close(self) -> None:
        """Stop the instance (SIGINT, then SIGKILL) at the end of the test."""
        self.child.stop(signal.SIGINT, timeout_s=10)


def start_all(instances: list[Instance], timeout_s: float = 60) -> None:
    """Start every instance at once and wait until each answers."""
    for inst in instances:
        inst.child.start()
    deadline = time.monotonic() + timeout_s
    for inst in instances:
        inst.wait_started(max(1.0, deadline - time.monotonic()))

