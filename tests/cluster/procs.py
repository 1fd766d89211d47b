"""Child processes of the cluster harness: own session, output in a log file, killed with the test run.

Every child gets SIGKILL when the pytest process dies, even by SIGKILL (Linux PR_SET_PDEATHSIG), and runs in
its own session so that a Ctrl-C reaches only pytest, which then stops the children in order.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class ChildError(RuntimeError):
    """A child process exited, or did not become ready in time; the message ends with its log's tail."""


def _die_with_parent() -> None:
    """In the child, before exec: get SIGKILL when the parent dies."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def tcp_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.3) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


class Child:
    """One process; `start()` may be called again after it exited (same arguments, same log, appended)."""

    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None,
                 cwd: Path = ROOT) -> None:
        self.name = name
        self.args = args
        self.env = env or {}
        self.cwd = cwd
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process (it must not be running)."""
        assert not self.alive, f"{self.name} is already running"
        with open(self.log_path, "ab") as out:
            out.write(f"--- start {time.strftime('%H:%M:%S')}: {' '.join(self.args)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(self.args, cwd=self.cwd, env={**os.environ, **self.env},
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=_die_with_parent)  # noqa: PLW1509

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        """The exit code (negative: the signal), None while it runs or before it started."""
        return None if self.proc is None else self.proc.poll()

    def log(self) -> str:
        """Everything the process wrote so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def fail(self, what: str) -> ChildError:
        """An error naming this child, `what` went wrong, and its log's tail."""
        return ChildError(f"{self.name}: {what} (exit code {self.returncode}); log {self.log_path}:\n"
                          f"{self.log_tail()}")

    def check_alive(self) -> None:
        """Raise ChildError when the process has exited."""
        if not self.alive:
            raise self.fail("exited")

    def send(self, sig: signal.Signals) -> None:
        """Send `sig` if the process runs."""
        if self.alive:
            assert self.proc is not None
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout_s: float) -> int | None:
        """Wait up to timeout_s for the exit; the exit code, or None if it still runs."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> int:
        """SIGKILL, then wait for the exit; the exit code."""
        self.send(signal.SIGKILL)
        code = self.wait(10)
        assert code is not None, f"{self.name} survived SIGKILL"
        return code

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 8.0) -> int | None:
        """Send `sig`, wait up to timeout_s, then SIGKILL; the exit code (None if it never started)."""
        if self.proc is None:
            return None
        if self.alive:
            self.send(sig)
            if self.wait(timeout_s) is None:
                self.kill()
        return self.proc.returncode

    def wait_until(self, ready: Callable[[], bool], what: str, timeout_s: float, every_s: float = 0.05,
                   errors: tuple[type[BaseException], ...] = (OSError,)) -> None:
        """Poll `ready()` until true (`errors` count as not yet); ChildError if the child exits or time runs out."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            try:
                if ready():
                    return
            except errors:
                pass
            if time.monotonic() >= deadline:
                raise self.fail(f"not {what} within {timeout_s} s")
            time.sleep(every_s)
