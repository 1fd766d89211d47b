"""Child processes of the benchmark: start, wait until ready, read CPU and memory from /proc, stop."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the orchestrator dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class Proc:
    """One server process in its own session (Ctrl-C reaches only the orchestrator, which stops it)."""

    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None,
                 pipes: bool = False, cwd: Path = ROOT) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, **(env or {})}
        self.p = subprocess.Popen(args, cwd=cwd, env=full_env, start_new_session=True,
                                  stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                                  stdout=subprocess.PIPE if pipes else self._log, stderr=self._log,
                                  preexec_fn=_die_with_parent)  # noqa: PLW1509 - no threads here

    @property
    def pid(self) -> int:
        return self.p.pid

    def log_tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.p.poll() is not None:
            raise RuntimeError(f"{self.name} exited with code {self.p.returncode}:\n{self.log_tail()}")

    def cpu_s(self) -> float:
        """User + system CPU seconds so far."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def wait_port(self, port: int, timeout_s: float = 30.0, path: str | None = None) -> None:
        """Until the port answers (and `path` answers 200); raises with the log's tail otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if path is None:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        return
                else:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                        if r.status == 200:
                            return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not listen on port {port} within {timeout_s} s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 8.0) -> None:
        if self.p.poll() is None:
            try:
                self.p.send_signal(signal.SIGTERM)
                self.p.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
            except ProcessLookupError:
                pass
        for f in (self.p.stdin, self.p.stdout):
            if f is not None:
                f.close()
        self._log.close()


class LoadGenProc(Proc):
    """The load generator, spoken to in JSON lines."""

    def __init__(self, log_dir: Path, secret: str, session_secret: str) -> None:
        super().__init__("loadgen", [sys.executable, "-m", "bench.loadgen", secret, session_secret], log_dir,
                         pipes=True)

    def ask(self, timeout_s: float, **command: Any) -> dict[str, Any]:
        assert self.p.stdin is not None and self.p.stdout is not None
        self.p.stdin.write((json.dumps(command) + "\n").encode())
        self.p.stdin.flush()
        ready, _, _ = select.select([self.p.stdout], [], [], timeout_s)
        if not ready:
            raise RuntimeError(f"the load generator did not answer {command['cmd']} within {timeout_s:.0f} s")
        line = self.p.stdout.readline()
        if not line:
            self.check_alive()
            raise RuntimeError(f"the load generator closed its output:\n{self.log_tail()}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"load generator: {answer['error']}")
        return answer

    def stop(self, timeout_s: float = 8.0) -> None:
        if self.p.poll() is None and self.p.stdin is not None:
            try:
                self.p.stdin.write(b'{"cmd": "quit"}\n')
                self.p.stdin.flush()
                self.p.wait(timeout_s)
            except (OSError, subprocess.TimeoutExpired):
                pass
        super().stop(timeout_s)
