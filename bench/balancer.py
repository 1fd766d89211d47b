"""HAProxy for the cluster scenario, from the configuration file the docs ship (docs/deploy/haproxy.cfg).

The template is filled by the cluster tests' own `render` (tests/cluster/balancer.py), so the benchmark runs
exactly the balancer the docs describe and the tests use: round-robin, HTTP and websockets, health checks.
One line is added to the backend: `http-response set-header X-Bench-Server %s`, so the load generator
learns which instance answered each webhook (and can say how many calls had their events split). HAProxy
runs as a bench `Proc` (its CPU read from /proc like every other process, stopped with the run).
"""

from __future__ import annotations

import csv
import shutil
import socket
from pathlib import Path

from bench.procs import Proc, free_port
from tests.cluster.balancer import BACKEND, HAPROXY, TEMPLATE, render

SERVER_HEADER = "X-Bench-Server"


def haproxy_binary() -> str | None:
    """The HAProxy executable, or None when it is not installed."""
    return HAPROXY if Path(HAPROXY).exists() else shutil.which("haproxy")


class Balancer:
    """HAProxy round-robin over `ports` (server `s<i>` is `ports[i]`), health-checked on /healthz."""

    def __init__(self, name: str, log_dir: Path, ports: list[int], check_inter: str = "1s") -> None:
        binary = haproxy_binary()
        if binary is None:
            raise RuntimeError("haproxy is not installed (Debian: apt-get install haproxy)")
        self.port = free_port()
        self.socket_path = log_dir / f"{name}.sock"
        config = log_dir / f"{name}.cfg"
        servers = [f"    server s{i} 127.0.0.1:{p} check" for i, p in enumerate(ports)]
        servers.append(f"    http-response set-header {SERVER_HEADER} %s")
        config.write_text(render(TEMPLATE.read_text(), {
            "bind": f"127.0.0.1:{self.port}", "stats_socket": str(self.socket_path), "health_path": "/healthz",
            "check_inter": check_inter, "maxconn": "4000", "servers": "\n".join(servers)}))
        self.count = len(ports)
        self.proc = Proc(name, [binary, "-f", str(config), "-db"], log_dir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout_s: float = 15) -> None:
        """Until HAProxy listens and every server is UP."""
        import time

        self.proc.wait_port(self.port, timeout_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if all(s["status"] == "UP" for s in self.stats().values()):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        states = {name: (row["status"], row["last_chk"]) for name, row in self.stats().items()}
        raise RuntimeError(f"HAProxy {self.proc.name}: not every server UP within {timeout_s} s: {states}")

    def stats(self) -> dict[str, dict[str, str]]:
        """`show stat` of the backend's servers by name (status, scur: connections now, stot: in all)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(str(self.socket_path))
            s.sendall(b"show stat\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        rows = csv.DictReader(b"".join(chunks).decode().lstrip("# ").splitlines())
        return {r["svname"]: r for r in rows
                if r["pxname"] == BACKEND and r["svname"] not in ("FRONTEND", "BACKEND")}

    def connections(self) -> list[int]:
        """Connections open to each server right now (the agent sockets, once the calls are over)."""
        stats = self.stats()
        return [int(stats[f"s{i}"]["scur"] or 0) for i in range(self.count)]
