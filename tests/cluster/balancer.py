"""HAProxy in front of the instances, from the configuration file the docs ship (docs/deploy/haproxy.cfg).

The template's `{{name}}` placeholders are filled (comment lines are left as they are) and HAProxy runs in the
foreground (`haproxy -f <file> -db`) as a child of the test. Its admin socket answers `show stat`: the harness
reads each server's state there (UP, DOWN, MAINT ...).
"""

from __future__ import annotations

import csv
import re
import shutil
import socket
import time
from pathlib import Path

from tests.cluster.procs import ROOT, Child, ChildError, tcp_open
from tests.conftest import free_port

TEMPLATE = ROOT / "docs" / "deploy" / "haproxy.cfg"
HAPROXY = "/usr/sbin/haproxy"
BACKEND = "screenpop"


def haproxy_missing() -> str | None:
    """Why HAProxy cannot run here, or None."""
    if Path(HAPROXY).exists() or shutil.which("haproxy"):
        return None
    return "haproxy is not installed (Debian: apt-get install haproxy)"


def render(template: str, values: dict[str, str]) -> str:
    """The template with every `{{name}}` outside comment lines replaced; KeyError for a name not given."""
    out = []
    for line in template.splitlines():
        if not line.lstrip().startswith("#"):
            line = re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], line)
        out.append(line)
    return "\n".join(out) + "\n"


def server_name(i: int) -> str:
    """The HAProxy server name of instance i."""
    return f"s{i}"


class Balancer:
    """HAProxy, round-robin over `ports` (instance i is server `s<i>`), health-checked on `health_path`."""

    def __init__(self, workdir: Path, ports: list[int], health_path: str = "/healthz",
                 check_inter: str = "200ms", template: Path = TEMPLATE) -> None:
        self.port = free_port()
        self.socket_path = workdir / "haproxy.sock"
        self.config_path = workdir / "haproxy.cfg"
        servers = "\n".join(f"    server {server_name(i)} 127.0.0.1:{p} check" for i, p in enumerate(ports))
        self.config_path.write_text(render(template.read_text(), {
            "bind": f"127.0.0.1:{self.port}", "stats_socket": str(self.socket_path),
            "health_path": health_path, "check_inter": check_inter, "maxconn": "2000", "servers": servers}))
        binary = HAPROXY if Path(HAPROXY).exists() else (shutil.which("haproxy") or HAPROXY)
        self.child = Child("haproxy", [binary, "-f", str(self.config_path), "-db"], workdir)
        self.count = len(ports)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10) -> None:
        """Start HAProxy; return once it listens and every server is UP."""
        self.child.start()
        self.child.wait_until(lambda: tcp_open(self.port) and self.socket_path.exists(), "listening", timeout_s)
        for i in range(self.count):
            self.wait_state(i, "UP", timeout_s)

    def close(self) -> None:
        self.child.stop(timeout_s=5)

    def command(self, line: str) -> str:
        """One command on the admin socket (`show stat`, `disable server screenpop/s1` ...); its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(str(self.socket_path))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stats(self) -> dict[str, dict[str, str]]:
        """`show stat` of the backend's servers, by server name (fields: status, stot (sessions), check_status ...)."""
        text = self.command("show stat").lstrip("# ")
        rows = csv.DictReader(text.splitlines())
        return {r["svname"]: r for r in rows if r["pxname"] == BACKEND and r["svname"] not in ("FRONTEND", "BACKEND")}

    def state(self, i: int) -> str:
        """The state of instance i as HAProxy sees it: UP, DOWN, `UP 1/2` (going down), MAINT ..."""
        return self.stats()[server_name(i)]["status"]

    def sessions(self) -> list[int]:
        """How many sessions HAProxy sent to each instance so far (HTTP requests and sockets), by index."""
        stats = self.stats()
        return [int(stats[server_name(i)]["stot"] or 0) for i in range(self.count)]

    def wait_state(self, i: int, state: str, timeout_s: float = 10) -> float:
        """Until HAProxy says instance i is `state` (UP, DOWN ...); the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout_s
        seen = "?"
        while time.monotonic() < deadline:
            self.child.check_alive()
            try:
                seen = self.state(i)
            except OSError:
                seen = "(admin socket not answering)"
            if seen == state:
                return time.monotonic() - started
            time.sleep(0.05)
        raise ChildError(f"HAProxy: {server_name(i)} is {seen!r}, not {state!r}, after {timeout_s} s")
